"""Linux backings: pyserial on a real pseudo-terminal, smbus2 calls routed to an emulator."""
import os
import pty
from array import array

import pytest

from agent.emulators.bme280_chip import Bme280Chip
from agent.emulators.street import Street
from agent.hal import linux
from agent.hal.emulated import EmulatedI2C
from agent.sensors import sds011
from agent.sensors.bme280 import BME280
from agent.sensors.supervisor import Supervised


def test_sds011_over_pyserial_on_a_pty():
    master, slave = pty.openpty()
    try:
        uart = linux.UART(os.ttyname(slave), 9600)
        drv = sds011.SDS011(uart)
        drv.start(0)
        cmd = os.read(master, 64)
        assert cmd == sds011.work_command()
        os.write(master, b"\x01\x02" + bytes.fromhex("aac0d4043a0aa1601dab"))
        import time

        for _ in range(50):
            if uart.any() >= 12:
                break
            time.sleep(0.01)
        r = drv.read(1000)
        assert r == {"pm2_5_ugm3": 123.6, "pm10_ugm3": 261.8}
        assert uart.read(10) is None  # non-blocking when empty
        uart.close()
    finally:
        os.close(master)
        os.close(slave)


class FakeSMBus:
    """smbus2.SMBus as the kernel would answer it, backed by our emulated bus."""

    def __init__(self, bus):
        self.bus = bus

    def __call__(self, device):
        assert device == "/dev/i2c-1"
        return self

    def read_i2c_block_data(self, addr, reg, n):
        return list(self.bus.readfrom_mem(addr, reg, n))

    def write_i2c_block_data(self, addr, reg, data):
        self.bus.writeto_mem(addr, reg, bytes(data))

    def close(self):
        pass


def test_bme280_over_smbus2_adapter(monkeypatch):
    import smbus2

    street = Street(1)
    street.set_now(1764230400000)
    emu = EmulatedI2C({0x76: Bme280Chip(street)})
    monkeypatch.setattr(smbus2, "SMBus", FakeSMBus(emu))
    bus = linux.I2C("/dev/i2c-1")
    sup = Supervised("bme", BME280(bus))
    r = sup.read(1764230400000)
    assert abs(r["temperature_c"] - street.temperature_c(1764230400000)) < 0.02
    bus.close()


def test_missing_device_is_a_counted_fault_not_a_crash():
    from agent.board import load_profile
    from agent.sensors.assembly import build

    b = load_profile({
        "board": "t", "runtime": "cpython", "chip": "bcm2711", "window_s": 60,
        "buses": {"i2c": {"type": "i2c", "backing": "linux", "device": "/dev/i2c-does-not-exist"}},
        "sensors": {"bme": {"driver": "bme280", "bus": "i2c"}},
        "metrics": {"t": {"sensor": "bme", "reading": "temperature_c", "unit": "°C", "class": "environmental"}},
    })  # fmt: skip
    ss = build(b, 0)
    assert ss.poll(0) == {}
    h = ss.health()["bme"]
    assert h["state"] == "degraded" and h["faults"] == {"bus": 1}
    assert ss.poll(500) == {}  # backing off
    assert ss.health()["bme"]["faults"] == {"bus": 1}
    ss.close()


def test_alsa_mic_reads_int16(monkeypatch, tmp_path):
    raw = array("h", [0, 1000, -1000, 32767]).tobytes()

    class Proc:
        def __init__(self, cmd, stdout, stderr):
            assert cmd[0] == "arecord" and "S16_LE" in cmd
            import io

            self.stdout = io.BytesIO(raw * 2)

        def terminate(self):
            pass

    monkeypatch.setattr(linux.subprocess, "Popen", Proc)
    mic = linux.AlsaMic("default", 16000)
    buf = array("h", bytes(8))
    assert mic.readinto(buf) == 4 and list(buf) == [0, 1000, -1000, 32767]
    assert mic.readinto(buf) == 4
    with pytest.raises(OSError):
        mic.readinto(buf)
