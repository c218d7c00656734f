# Freeze the civicmote agent into MicroPython firmware (micropython-lib manifest conventions).
#
#   rp2:   make -C ports/rp2 BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/civicmote/boards/manifest.py
#   esp32: make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/civicmote/boards/manifest.py
#
# The port's own manifest comes first (its asyncio, ntptime, network helpers ...); then every
# portable agent module, compiled at -O2 into the firmware's flash. Left out: the emulators
# and their emulated bus (a real board never loads them) and the CPython-only adapters (their
# first line says so). Frozen code runs from flash: the heap keeps only the agent's data.
# See docs/boards.md, "Freezing the agent into firmware".
import os

include("$(PORT_DIR)/boards/manifest.py")

_AGENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "agent")
_LEFT_OUT = ("emulators/", "hal/emulated.py")


def _portable(rel):
    if rel.startswith(_LEFT_OUT):
        return False
    with open(os.path.join(_AGENT, rel)) as f:
        return "CPython only" not in f.readline()


_files = []
for _dir, _subdirs, _names in os.walk(_AGENT):
    _subdirs.sort()
    for _name in sorted(_names):
        _rel = os.path.relpath(os.path.join(_dir, _name), _AGENT).replace(os.sep, "/")
        if _name.endswith(".py") and _portable(_rel):
            _files.append(_rel)

package("agent", files=_files, base_path=os.path.dirname(_AGENT), opt=2)
