"""SCD4x: Sensirion CRC known answers, word parsing, driver against its command emulator."""
from support import load_vectors, raises, unhex

from agent.emulators.scd4x_chip import Scd4xChip
from agent.emulators.street import Street
from agent.hal.emulated import EmulatedI2C
from agent.sensors import scd4x
from agent.sensors.fault import SensorFault

V = load_vectors("sensor_scd4x.json")
T0 = 1764230400000


def test_crc_datasheet_example():
    for case in V["crc"]:
        assert scd4x.crc8(unhex(case["data"])) == case["crc"]


def test_read_measurement_example():
    ex = V["read_measurement"]
    ws = scd4x.words(unhex(ex["reply"]))
    assert scd4x.convert(*ws) == (ex["co2_ppm"], ex["centi_c"], ex["centi_rh"])
    assert scd4x.pack_words(ws) == unhex(ex["reply"])


def test_bad_replies():
    for case in V["bad_replies"]:
        e = raises(SensorFault, scd4x.words, unhex(case["reply"]))
        assert e.kind == "checksum", case["why"]


def _rig():
    street = Street(9)
    street.set_now(T0)
    chip = Scd4xChip(street)
    bus = EmulatedI2C({0x62: chip})
    return street, chip, bus, scd4x.SCD4x(bus)


def test_periodic_measurement_every_five_seconds():
    street, chip, bus, drv = _rig()
    drv.start(T0)
    assert chip.started_ms == T0
    street.set_now(T0 + 3000)
    assert drv.read(T0 + 3000) is None  # not ready yet
    street.set_now(T0 + 5000)
    r = drv.read(T0 + 5000)
    assert abs(r["co2_ppm"] - street.co2_ppm(T0 + 5000)) <= 1
    assert abs(r["temperature_c"] - (street.temperature_c(T0 + 5000) + 1.5)) <= 0.02
    assert drv.read(T0 + 6000) is None  # that measurement was consumed


def test_crc_fault_and_timeout():
    street, chip, bus, drv = _rig()
    drv.start(T0)
    street.set_now(T0 + 5000)
    chip.corrupt_crc = 1
    assert raises(SensorFault, drv.read, T0 + 5000).kind == "checksum"
    chip.started_ms = T0 + 100000000  # the chip's data-ready flag never comes up again
    street.set_now(T0 + 30000)
    assert raises(SensorFault, drv.read, T0 + 30000).kind == "timeout"


def test_replug_needs_restart():
    street, chip, bus, drv = _rig()
    drv.start(T0)
    bus.unplug()
    e = raises(OSError, drv.read, T0 + 5000)
    assert e.args[0] == 19
    bus.replug()
    assert chip.started_ms is None  # reset: idle again
    drv.start(T0 + 6000)
    street.set_now(T0 + 11000)
    assert drv.read(T0 + 11000)["co2_ppm"] > 400
