# civicmote main.py (ESP32-DevKitC): start the agent unless the BOOT button (GPIO0) is held.
# Safe mode: hold BOOT while pressing EN (reset) and the agent does not start, so the REPL
# (mpremote, civicmote provision --port) is always reachable. Crashes go to /crash.log.
import machine

SAFE_PIN = 0  # the BOOT button, active low

if machine.Pin(SAFE_PIN, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0:
    print("civicmote: safe mode (BOOT held at reset): agent not started")
else:
    from agent.runtime import board_main

    board_main.main()
