"""BME280: our integer compensation against an independent reference, RPi.bme280 0.2.4
(the data sheet's double-precision formulas, by another author), and its whole read path
(calibration readout, forced mode, burst read) against our register-level emulator."""
import random

import pytest

bme280_ref = pytest.importorskip("bme280")  # RPi.bme280==0.2.4 (test-only dependency)

from agent.emulators.bme280_chip import DEFAULT_CAL, Bme280Chip  # noqa: E402
from agent.emulators.street import Street  # noqa: E402
from agent.hal.emulated import EmulatedI2C  # noqa: E402
from agent.sensors import bme280_math as m  # noqa: E402
from agent.sensors.bme280 import BME280  # noqa: E402
from support import load_vectors  # noqa: E402


def _ref_params(cal):
    p = bme280_ref.params()
    for k, v in cal.items():
        p["dig_" + k] = v
    return p


class _Raw:
    def __init__(self, adc_p, adc_t, adc_h):
        self.pressure, self.temperature, self.humidity = adc_p, adc_t, adc_h


def _reference(cal, adc_p, adc_t, adc_h):
    r = bme280_ref.compensated_readings(_Raw(adc_p, adc_t, adc_h), _ref_params(cal))
    return r.temperature, r.pressure * 100.0, r.humidity


def test_datasheet_example_against_reference():
    ex = load_vectors("sensor_bme280.json")["datasheet_example"]
    cal = dict(ex["cal"], H1=0, H2=0, H3=0, H4=0, H5=0, H6=0)
    t, p, _ = _reference(cal, ex["adc_P"], ex["adc_T"], 0)
    assert round(t, 2) == 25.08 and round(p, 2) == float(ex["pressure_double_pa"])
    tf = m.t_fine(cal, ex["adc_T"])
    assert abs(m.pressure_q24_8(cal, tf, ex["adc_P"]) / 256 - p) < 0.05
    assert abs(m.pressure_pa_32(cal, tf, ex["adc_P"]) - p) < 4


def test_humidity_vectors_against_reference():
    v = load_vectors("sensor_bme280.json")
    cal = v["calibration_registers"]["cal"]
    for case in v["humidity_cases"]:
        _, _, h = _reference(cal, 415148, case["adc_T"], case["adc_H"])
        assert abs(case["humidity_q22_10"] / 1024 - h) < 0.1


def test_random_raw_values_agree_with_reference():
    rnd = random.Random(20240611)
    worst = [0.0, 0.0, 0.0, 0.0]
    for _ in range(2000):
        adc_t = rnd.randrange(400000, 600000)
        adc_p = rnd.randrange(250000, 500000)
        adc_h = rnd.randrange(15000, 40000)
        t, p, h = _reference(DEFAULT_CAL, adc_p, adc_t, adc_h)
        ct, q, qh = m.compensate(DEFAULT_CAL, adc_p, adc_t, adc_h)
        p32 = m.pressure_pa_32(DEFAULT_CAL, m.t_fine(DEFAULT_CAL, adc_t), adc_p)
        d = (abs(ct / 100 - t), abs(q / 256 - p), abs(p32 - p), abs(qh / 1024 - h) if 0 < h < 100 else 0)
        worst = [max(a, b) for a, b in zip(worst, d)]
    # Integer vs double formulas over raw values spanning ~25..135 kPa and -10..60 °C:
    # measured worst 0.0075 °C, 0.51 Pa (64-bit), 6.3 Pa (32-bit), 0.008 %RH; all below the
    # chip's own noise (data sheet: 0.01 °C resolution, 1.3 Pa RMS at x1 oversampling).
    assert worst[0] <= 0.01 and worst[1] < 0.6 and worst[2] < 8 and worst[3] < 0.05, worst


class SMBusOnEmulator:
    """The smbus2 calls RPi.bme280 makes, served by our emulated I2C bus."""

    def __init__(self, bus):
        self.bus = bus

    def read_byte_data(self, addr, reg):
        return self.bus.readfrom_mem(addr, reg, 1)[0]

    def read_word_data(self, addr, reg):
        b = self.bus.readfrom_mem(addr, reg, 2)
        return b[0] | b[1] << 8

    def write_byte_data(self, addr, reg, value):
        self.bus.writeto_mem(addr, reg, bytes((value,)))
        if reg == 0xF4:
            self.bus.readfrom_mem(addr, 0xF3, 1)  # the conversion finishes during its sleep

    def read_i2c_block_data(self, addr, reg, n):
        return list(self.bus.readfrom_mem(addr, reg, n))


def test_reference_driver_reads_our_emulator_like_ours():
    street = Street(3)
    for hour in range(0, 24, 3):
        now = 1764201600000 + hour * 3600000
        street.set_now(now)
        bus = EmulatedI2C({0x76: Bme280Chip(street)})
        ours = BME280(bus)
        ours.start(now)
        a = ours.read(now)
        params = bme280_ref.load_calibration_params(SMBusOnEmulator(bus), 0x76)
        assert params.dig_H4 == DEFAULT_CAL["H4"] and params.dig_H5 == DEFAULT_CAL["H5"]
        b = bme280_ref.sample(SMBusOnEmulator(bus), 0x76, params)
        assert abs(a["temperature_c"] - b.temperature) <= 0.006
        assert abs(a["pressure_pa"] - b.pressure * 100) < 0.1
        assert abs(a["humidity_pct"] - b.humidity) < 0.05
        assert abs(a["temperature_c"] - street.temperature_c(now)) <= 0.02
