"""Write MicroPython firmware to a board (CPython only). The firmware file is the user's.

ESP32 (profile chip "esp32"): esptool's Python API over the serial port: detect the chip,
check it is the profile's, erase, write at the chip's firmware offset, verify, hard reset.
Pico W (chip "rp2040"): the board in BOOTSEL mode shows up as a USB drive named RPI-RP2;
copy the .uf2 there (waiting for the drive, bounded), and the board reboots into it.

Errors are one line with what to do (wrong chip, busy port, no permission with the
`dialout` group to join, missing drive) and an exit code from provisioning.errors.
"""
import contextlib
import io
import os
import time
from pathlib import Path

from provisioning.errors import EXIT_STATE, EnvironmentProblem, ProvisioningError, UsageError
from provisioning.field.serial_errors import open_serial_error

# Where the MicroPython image starts in flash (the bootloader's offset on the original ESP32).
ESP_OFFSETS = {"esp32": 0x1000}
ESP_NAMES = {"esp32": "ESP32"}
UF2_MAGIC = (b"UF2\n", 0x9E5D5157)
UF2_DRIVE = "RPI-RP2"
UF2_MARKER = "INFO_UF2.TXT"


class WrongChip(ProvisioningError):
    exit_code = EXIT_STATE


def check_firmware_file(path, chip):
    """The firmware's bytes, after checking it looks right for the chip (UF2 for rp2040, a
    raw image starting with the ESP image magic 0xE9 for esp32)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UsageError("--firmware %s: cannot read (%s)" % (path, e.strerror))
    if chip == "rp2040":
        if len(data) < 512 or len(data) % 512 or data[:4] != UF2_MAGIC[0] \
                or int.from_bytes(data[4:8], "little") != UF2_MAGIC[1]:
            raise UsageError("--firmware %s: not a UF2 file; the Pico W needs MicroPython's .uf2 "
                             "(RPI_PICO_W-*.uf2 from micropython.org)" % path)
    elif chip in ESP_OFFSETS:
        if not data or data[0] != 0xE9:
            raise UsageError("--firmware %s: not an ESP32 firmware image (it should start with 0xE9); use "
                             "MicroPython's ESP32_GENERIC-*.bin" % path)
    else:
        raise UsageError("this board's chip %r is not flashed over USB by civicmote" % chip)
    return data


def flash_esp32(port, firmware, chip="esp32", say=print, connect_attempts=3):
    """Detect, check, erase, write, verify, reset; returns a result record."""
    import serial
    from esptool import cmds
    from esptool.util import FatalError

    data = check_firmware_file(firmware, chip)
    quiet = contextlib.redirect_stdout(io.StringIO())  # esptool prints progress; our stdout may be --json
    t0 = time.monotonic()
    esp = None
    try:
        with quiet:
            esp = cmds.detect_chip(port, 115200, "default-reset", False, connect_attempts)
        found = esp.CHIP_NAME
        if found != ESP_NAMES[chip]:
            raise WrongChip("%s: the board is an %s but the profile says %s; pick the profile for this board"
                            % (port, found, ESP_NAMES[chip]))
        say("chip %s on %s: erasing" % (found, port))
        with quiet:
            esp = cmds.run_stub(esp)
            cmds.attach_flash(esp)
            cmds.erase_flash(esp)
        say("writing %d bytes at 0x%x" % (len(data), ESP_OFFSETS[chip]))
        with quiet:
            cmds.write_flash(esp, [(ESP_OFFSETS[chip], data)])
            cmds.verify_flash(esp, [(ESP_OFFSETS[chip], data)])
            cmds.reset_chip(esp, "hard-reset")
    except FatalError as e:
        raise esptool_error(port, e)
    except (serial.SerialException, OSError) as e:
        raise open_serial_error(port, e)
    finally:
        if esp is not None:
            with contextlib.suppress(Exception):
                esp._port.close()
    return {"port": port, "chip": found, "bytes": len(data), "offset": ESP_OFFSETS[chip], "verified": True,
            "seconds": round(time.monotonic() - t0, 1)}


def esptool_error(port, e):
    text = str(e)
    if port.startswith("/dev/") and not os.path.exists(port):  # esptool says "busy or doesn't exist": say which
        return open_serial_error(port, FileNotFoundError(2, text))
    if "Permission denied" in text:
        return open_serial_error(port, PermissionError(13, text))
    if "busy" in text.lower() or "Resource temporarily unavailable" in text or "exclusive" in text.lower():
        return open_serial_error(port, OSError(11, text))
    if "No such file" in text or "could not open port" in text:
        return open_serial_error(port, FileNotFoundError(2, text))
    if "Failed to connect" in text or "No serial data received" in text or "Timed out" in text:
        return EnvironmentProblem("%s: no ESP32 bootloader answers; hold the BOOT button, press EN, release BOOT, "
                                  "then re-run (%s)" % (port, text.splitlines()[0]))
    return EnvironmentProblem("%s: esptool: %s" % (port, text.splitlines()[0] if text else type(e).__name__))


def find_uf2_drive(roots=("/media", "/run/media", "/mnt", "/Volumes")):
    """A mounted RPI-RP2 drive (it holds INFO_UF2.TXT), or None."""
    user = os.environ.get("USER", "")
    for root in roots:
        for cand in (Path(root) / UF2_DRIVE, Path(root) / user / UF2_DRIVE):
            if (cand / UF2_MARKER).exists():
                return cand
    return None


def flash_uf2(firmware, drive=None, timeout_s=60, say=print, find=find_uf2_drive, poll_s=0.5):
    """Copy the UF2 to the board's BOOTSEL drive (drive, or the first RPI-RP2 that appears)."""
    data = check_firmware_file(firmware, "rp2040")
    deadline = time.monotonic() + timeout_s
    target = Path(drive) if drive else None
    if target is not None and not target.is_dir():
        raise EnvironmentProblem("--drive %s: no such folder; is the Pico W's RPI-RP2 drive mounted there?" % drive)
    if target is None:
        say("waiting up to %ds for the %s drive: hold BOOTSEL and plug the Pico W in" % (timeout_s, UF2_DRIVE))
        while target is None:
            target = find()
            if target is None:
                if time.monotonic() >= deadline:
                    raise EnvironmentProblem("no %s drive appeared within %ds; hold BOOTSEL while plugging the Pico W "
                                             "in, mount the drive, or pass --drive DIR" % (UF2_DRIVE, timeout_s))
                time.sleep(poll_s)
    dest = target / Path(firmware).name
    try:
        with open(dest, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise EnvironmentProblem("%s: cannot write the firmware (%s)" % (dest, e.strerror))
    return {"drive": str(target), "file": dest.name, "bytes": len(data)}

