# Freeze the civicmote agent into MicroPython firmware (micropython-lib manifest conventions).
#
#   rp2:   make -C ports/rp2 BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/civicmote/boards/manifest.py
#   esp32: make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/civicmote/boards/manifest.py
#   all three images `make firmware` builds: tools/firmware.py (it includes this file with options)
#
# The port's own manifest comes first (its asyncio, ntptime, network helpers ...); then every
# portable agent module, compiled at -O2 into the firmware's flash. Left out: the emulators
# and their emulated bus (a real board never loads them) and the CPython-only adapters (their
# first line says so). Frozen code runs from flash: the heap keeps only the agent's data.
#
# makemanifest runs this file with its own folder as the working directory (it defines no
# __file__), so every path here is relative to boards/. Options (include(..., name=value)):
#   port_manifest  the port's manifest to include first (default: $(PORT_DIR)/boards/manifest.py;
#                  the unix port has $(PORT_DIR)/variants/manifest.py instead)
#   boot_dir       a folder whose boot.py and main.py are frozen too (boards/pico-w)
#   stamp_dir      a folder holding civicmote_firmware.py (version and frozen-agent hash)
#   emulators      True: freeze the emulators too (the unix images, which are virtual boards)
# See docs/boards.md, "Freezing the agent into firmware".
import os

options.defaults(port_manifest="$(PORT_DIR)/boards/manifest.py", boot_dir=None, stamp_dir=None,
                 emulators=False)
include(options.port_manifest)

_AGENT = os.path.join(os.path.dirname(os.getcwd()), "agent")
_LEFT_OUT = () if options.emulators else ("emulators/", "hal/emulated.py")


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
if options.boot_dir:
    module("boot.py", base_path=options.boot_dir, opt=2)
    module("main.py", base_path=options.boot_dir, opt=2)
if options.stamp_dir:
    module("civicmote_firmware.py", base_path=options.stamp_dir)
