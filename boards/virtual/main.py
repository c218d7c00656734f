# civicmote main.py (virtual board): the WebAssembly port has no network and runs code
# synchronously (Ctrl-C cannot stop a loop), so power-on does not start the agent; tests run
# it for a number of windows through the raw REPL: board_main.run(windows=N, clock=...).
print("civicmote: virtual board; run the agent with agent.runtime.board_main.run(windows=N)")
