"""The agent's exception root. Every error the agent raises on purpose is an AgentError."""


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


class DecodeError(AgentError):
    """Bytes from outside (flash, network, a peer) are malformed or exceed a limit."""


class SignatureError(AgentError):
    """A signature, key or COSE message failed verification."""


class ConfigError(AgentError):
    """A board profile or device configuration is invalid; the message names the field."""
