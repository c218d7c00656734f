# civicmote boot.py (ESP32-DevKitC): runs at every reset, also before the raw REPL, so it
# stays tiny and never starts the agent (main.py does, and only from the friendly REPL).
import esp

esp.osdebug(None)  # keep ROM debug output off the serial port the technician uses
