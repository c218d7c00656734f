"""`civicmote flash`: what can be checked without hardware (arguments, UF2 copy, esptool errors)."""
import threading
import time

import pytest
import serial
from cli_helpers import cli

from provisioning.field import flash
from provisioning.errors import EnvironmentProblem
from provisioning.field.serial_errors import open_serial_error
from provisioning.field.virtual_board import SilentPort, VirtualBoard


def uf2(path, blocks=2):
    block = b"UF2\n" + (0x9E5D5157).to_bytes(4, "little") + bytes(504)
    path.write_bytes(block * blocks)
    return path


def esp_image(path):
    path.write_bytes(b"\xe9" + bytes(4095))
    return path


def test_arguments_are_checked_before_any_hardware(tmp_path, capsys):
    code, out, err = cli(capsys, "flash", "--board", "boards/rpi4.json", "--firmware", uf2(tmp_path / "f.uf2"))
    assert code == 2 and "not flashed with MicroPython" in err
    code, out, err = cli(capsys, "flash", "--board", "boards/esp32-devkitc.json", "--firmware", esp_image(tmp_path / "f.bin"))
    assert code == 2 and "--port is required" in err
    code, out, err = cli(capsys, "flash", "--board", "boards/pico-w.json", "--firmware", esp_image(tmp_path / "f.bin"),
                         "--drive", tmp_path)
    assert code == 2 and "not a UF2 file" in err
    code, out, err = cli(capsys, "flash", "--board", "boards/esp32-devkitc.json", "--firmware", uf2(tmp_path / "f.uf2"),
                         "--port", "/dev/null")
    assert code == 2 and "not an ESP32 firmware image" in err
    code, out, err = cli(capsys, "flash", "--board", "boards/pico-w.json", "--firmware", tmp_path / "missing.uf2")
    assert code == 2 and "cannot read" in err


def test_uf2_is_copied_to_the_drive(tmp_path, capsys):
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\n")
    fw = uf2(tmp_path / "RPI_PICO_W-1.27.0.uf2", blocks=4)
    code, out, err = cli(capsys, "flash", "--board", "boards/pico-w.json", "--firmware", fw, "--drive", drive, "--json")
    assert code == 0, err
    assert (drive / fw.name).read_bytes() == fw.read_bytes()
    assert '"bytes": 2048' in out


def test_uf2_waits_for_the_drive_to_appear(tmp_path):
    drive = tmp_path / "media" / "RPI-RP2"
    fw = uf2(tmp_path / "fw.uf2")

    def plug_in():
        time.sleep(0.3)
        drive.mkdir(parents=True)
        (drive / "INFO_UF2.TXT").write_text("UF2\n")

    threading.Thread(target=plug_in).start()
    r = flash.flash_uf2(fw, None, 5, say=lambda s: None, find=lambda: flash.find_uf2_drive([tmp_path / "media"]),
                        poll_s=0.05)
    assert r["drive"] == str(drive) and (drive / "fw.uf2").exists()


def test_missing_drive_times_out_with_what_to_do(tmp_path):
    with pytest.raises(EnvironmentProblem, match="no RPI-RP2 drive appeared within 1s; hold BOOTSEL"):
        flash.flash_uf2(uf2(tmp_path / "fw.uf2"), None, 1, say=lambda s: None, find=lambda: None, poll_s=0.05)
    with pytest.raises(EnvironmentProblem, match="--drive .*no such folder"):
        flash.flash_uf2(uf2(tmp_path / "fw.uf2"), str(tmp_path / "nope"), 1, say=lambda s: None)


def test_esptool_on_a_port_that_never_answers(tmp_path, capsys):
    with SilentPort() as port:
        with pytest.raises(EnvironmentProblem, match="no ESP32 bootloader answers; hold the BOOT button"):
            flash.flash_esp32(port.port, esp_image(tmp_path / "fw.bin"), say=lambda s: None, connect_attempts=1)
    assert capsys.readouterr().out == ""  # esptool's chatter stays off stdout (--json)


def test_busy_port_and_permission_errors_say_what_to_do(tmp_path, capsys):
    with VirtualBoard(tmp_path / "flash") as board:
        holder = serial.Serial(board.port, exclusive=True)
        try:
            code, out, err = cli(capsys, "provision", "--board", "boards/virtual.json", "--port", board.port,
                                 "--district", "north", "--ca", tmp_path / "ca", "--registry", tmp_path / "r.db")
            assert code == 3 and "the port is busy" in err and "close it and re-run" in err
            with pytest.raises(EnvironmentProblem, match="busy"):
                flash.flash_esp32(board.port, esp_image(tmp_path / "fw.bin"), say=lambda s: None, connect_attempts=1)
        finally:
            holder.close()
    e = open_serial_error("/dev/ttyUSB0", PermissionError(13, "Permission denied: '/dev/ttyUSB0'"))
    assert "dialout" in str(e) and e.exit_code == 3


def test_a_port_that_does_not_exist_is_named_as_missing_not_busy(tmp_path, capsys):
    from cli_helpers import cli

    fw = tmp_path / "fw.bin"
    fw.write_bytes(b"\xe9" + bytes(4000))
    code, out, err = cli(capsys, "flash", "--board", "boards/esp32-devkitc.json", "--port", "/dev/ttyUSB97",
                         "--firmware", fw)
    assert code == 3 and "/dev/ttyUSB97: no such port" in err and "busy" not in err
