"""The agent's run time: one cooperative loop on both runtimes (see agent.runtime.agent)."""
