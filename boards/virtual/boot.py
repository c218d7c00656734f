# civicmote boot.py (virtual board: the WebAssembly port behind a pty, tools/virtual-board).
