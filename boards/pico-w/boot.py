# civicmote boot.py (Raspberry Pi Pico W): runs at every reset, also before the raw REPL, so
# it never starts the agent (main.py does, and only from the friendly REPL).
