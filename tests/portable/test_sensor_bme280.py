"""BME280: datasheet compensation known answers, register layout, driver against its emulator."""
from support import load_vectors, raises, unhex

from agent.emulators.bme280_chip import DEFAULT_CAL, Bme280Chip, encode_calibration
from agent.emulators.street import Street
from agent.hal.emulated import EmulatedI2C
from agent.sensors import bme280_math as m
from agent.sensors.bme280 import BME280
from agent.sensors.fault import SensorFault

V = load_vectors("sensor_bme280.json")
NOON = 1764244800000  # 2025-11-27 12:00 UTC


def test_datasheet_temperature_example():
    ex = V["datasheet_example"]
    tf = m.t_fine(ex["cal"], ex["adc_T"])
    assert tf == ex["t_fine"]
    assert m.temperature_centi_c(tf) == ex["temperature_centi_c"]


def test_datasheet_pressure_example_64_and_32_bit():
    ex = V["datasheet_example"]
    tf = m.t_fine(ex["cal"], ex["adc_T"])
    q = m.pressure_q24_8(ex["cal"], tf, ex["adc_P"])
    assert q == ex["pressure_q24_8"]
    # Within 0.05 Pa of the data sheet's double-precision 100653.27 Pa (integer maths only).
    assert abs(q * 100 - 10065327 * 256) <= 5 * 256
    assert m.pressure_pa_32(ex["cal"], tf, ex["adc_P"]) == ex["pressure_pa_32"]


def test_humidity_known_answers():
    c = V["calibration_registers"]["cal"]
    for case in V["humidity_cases"]:
        tf = m.t_fine(c, case["adc_T"])
        assert tf == case["t_fine"]
        assert m.humidity_q22_10(c, tf, case["adc_H"]) == case["humidity_q22_10"]


def test_calibration_register_layout():
    r = V["calibration_registers"]
    cal = m.parse_calibration(unhex(r["tp"]), unhex(r["h"]))
    for k in r["cal"]:
        assert cal[k] == r["cal"][k], k
    tp, h = encode_calibration(r["cal"])
    assert tp == unhex(r["tp"]) and h == unhex(r["h"])
    raises(ValueError, m.parse_calibration, b"\x00" * 25, b"\x00" * 7)


def _rig(now=NOON):
    street = Street(7)
    street.set_now(now)
    chip = Bme280Chip(street)
    bus = EmulatedI2C({0x76: chip})
    return street, chip, bus, BME280(bus, 0x76)


def test_driver_reads_the_street_through_registers():
    street, chip, bus, drv = _rig()
    drv.start(NOON)
    r = drv.read(NOON)
    assert abs(r["temperature_c"] - street.temperature_c(NOON)) <= 0.02
    assert abs(r["pressure_pa"] - street.pressure_pa(NOON)) <= 1.0
    assert abs(r["humidity_pct"] - street.humidity_pct(NOON)) <= 0.2
    # Forced mode: one measurement per trigger, the chip is back in sleep mode afterwards.
    assert chip.regs[0xF4] & 3 == 0
    assert chip.regs[0xF2] == 1 and chip.regs[0xF4] >> 2 == 0b001001


def test_driver_follows_time():
    street, chip, bus, drv = _rig()
    drv.start(NOON)
    a = drv.read(NOON)["temperature_c"]
    later = NOON + 9 * 3600000  # 21:00: cooler than noon
    street.set_now(later)
    b = drv.read(later)["temperature_c"]
    assert b < a - 2


def test_wrong_chip_id_is_an_identity_fault():
    for cid in V["bad_chip_ids"]:
        street, chip, bus, drv = _rig()
        chip.chip_id = cid
        e = raises(SensorFault, drv.start, NOON)
        assert e.kind == "identity" and "0x60" in str(e)


def test_skipped_values_mean_stuck_and_busy_means_timeout():
    street, chip, bus, drv = _rig()
    drv.start(NOON)
    chip.stuck = True
    assert raises(SensorFault, drv.read, NOON).kind == "stuck"
    chip.stuck = False
    chip.busy = True
    assert raises(SensorFault, drv.read, NOON).kind == "timeout"


def test_out_of_range_value_is_a_range_fault():
    street, chip, bus, drv = _rig()
    drv.start(NOON)
    chip.override["temperature_c"] = 84.0
    assert drv.read(NOON)["temperature_c"] > 83.9
    chip.override["pressure_pa"] = 20000.0
    e = raises(SensorFault, drv.read, NOON)
    assert e.kind == "range" and "pressure_pa" in str(e)


def test_default_calibration_round_trips():
    assert m.parse_calibration(*encode_calibration(DEFAULT_CAL)) == DEFAULT_CAL
