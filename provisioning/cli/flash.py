"""`civicmote flash`: write MicroPython firmware to an ESP32 or a Pico W (CPython only)."""
from provisioning.field import flash
from provisioning.cli.common import add_command
from provisioning.errors import UsageError


def register(sub, common):
    p = add_command(sub, "flash", do_flash, common,
                    "write MicroPython firmware (your file) to an ESP32 or a Pico W",
                    "ESP32 boards (profile chip esp32): through esptool over --port: detect the chip, check it "
                    "matches the profile, erase, write, verify, reset. Pico W (chip rp2040): copy the .uf2 to "
                    "the RPI-RP2 drive the board shows in BOOTSEL mode (waits for it; --drive to name it). "
                    "The networked virtual board (chip sim): the unix image `make firmware` builds, into its "
                    "ROM folder (--drive, printed when it starts). Then: civicmote provision --port PORT.")
    p.add_argument("--board", required=True, metavar="FILE", help="board profile (boards/*.json)")
    p.add_argument("--firmware", required=True, metavar="FILE",
                   help="MicroPython firmware: .bin (ESP32), .uf2 (Pico W), the unix image (virtual board)")
    p.add_argument("--port", metavar="PORT", help="serial port of an ESP32 (e.g. /dev/ttyUSB0)")
    p.add_argument("--drive", metavar="DIR", help="the Pico W's mounted RPI-RP2 drive (default: wait for it); the "
                   "virtual board's ROM folder")
    p.add_argument("--wait", type=int, default=60, metavar="S", help="seconds to wait for the drive (default 60)")


def do_flash(out, args):
    from provisioning import files

    profile = files.load_board(args.board)
    if profile.runtime != "micropython":
        raise UsageError("--board %s: a %s board is not flashed with MicroPython; see docs/provisioning.md"
                         % (args.board, profile.runtime))
    if profile.chip == "rp2040":
        result = flash.flash_uf2(args.firmware, args.drive, args.wait, say=out.note)
    elif profile.chip in flash.ESP_OFFSETS:
        if not args.port:
            raise UsageError("--port is required for an %s board (e.g. /dev/ttyUSB0)" % profile.chip)
        result = flash.flash_esp32(args.port, args.firmware, profile.chip, say=out.note)
    elif profile.chip == "sim":
        from provisioning.field import firmware_image

        if not args.drive:
            raise UsageError("--drive is required for the virtual board: its ROM folder (it prints it when it starts)")
        result = firmware_image.flash_virtual(args.firmware, args.drive, say=out.note)
    else:
        raise UsageError("--board %s: chip %r cannot be flashed by civicmote" % (args.board, profile.chip))
    result["board"] = profile.name
    out.record(result)
    return 0
