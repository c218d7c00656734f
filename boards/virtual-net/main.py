# civicmote main.py (networked virtual board: the native MicroPython unix port behind a pty,
# provisioning/field/native_board.py): start the agent as a Pico W does at power-on. Ctrl-C on
# the port (mpremote, civicmote provision --port) interrupts it and leaves the REPL free.
from agent.runtime import board_main

board_main.main()
