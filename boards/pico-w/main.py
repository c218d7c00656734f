# civicmote main.py (Raspberry Pi Pico W): start the agent unless BOOTSEL is held.
# Safe mode: hold BOOTSEL for a second after power-on (after the LED blinks) and the agent does
# not start, so the REPL (mpremote, civicmote provision --port) is always reachable. Holding
# it while plugging in instead starts the UF2 bootloader, as always. Crashes go to /crash.log.
import time

import machine
import rp2

led = machine.Pin("LED", machine.Pin.OUT)
led.on()
time.sleep_ms(1000)  # the window in which BOOTSEL means "safe mode"
led.off()

if rp2.bootsel_button():
    print("civicmote: safe mode (BOOTSEL held): agent not started")
else:
    from agent.runtime import board_main

    board_main.main()
