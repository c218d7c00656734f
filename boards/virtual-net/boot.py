# civicmote boot.py (networked virtual board: the native MicroPython unix port behind a pty,
# provisioning/field/native_board.py).
