"""Bosch BME280 on I2C: temperature, pressure, humidity in forced mode.

Readings: temperature_c (°C, -40..85), pressure_pa (Pa, 30000..110000),
humidity_pct (%RH, 0..100). Integer compensation from the datasheet (bme280_math).
"""
from agent.sensors import bme280_math as m
from agent.sensors.fault import IDENTITY, STUCK, TIMEOUT, SensorFault, check_range

CHIP_ID = 0x60
REG_ID = 0xD0
REG_RESET = 0xE0
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7
MODE_FORCED = 0x01
OSRS_X1 = 0x01


class BME280:
    READINGS = ("temperature_c", "pressure_pa", "humidity_pct")

    def __init__(self, bus, address=0x76, max_polls=20):
        self.bus = bus
        self.address = address
        self.max_polls = max_polls
        self.cal = None

    def start(self, now_ms):
        """Check the chip id, read the calibration (again: a replugged chip may differ)."""
        cid = self.bus.readfrom_mem(self.address, REG_ID, 1)[0]
        if cid != CHIP_ID:
            raise SensorFault(IDENTITY, "chip id 0x%02x at 0x%02x, expected 0x60 (BME280)" % (cid, self.address))
        tp = self.bus.readfrom_mem(self.address, 0x88, 26)
        h = self.bus.readfrom_mem(self.address, 0xE1, 7)
        self.cal = m.parse_calibration(tp, h)
        self.bus.writeto_mem(self.address, REG_CONFIG, b"\x00")  # filter off, standby n/a

    def read(self, now_ms):
        """Trigger one forced measurement and return the compensated readings."""
        if self.cal is None:
            self.start(now_ms)
        a = self.address
        # ctrl_hum takes effect only after the following write to ctrl_meas (datasheet 5.4.3).
        self.bus.writeto_mem(a, REG_CTRL_HUM, bytes((OSRS_X1,)))
        self.bus.writeto_mem(a, REG_CTRL_MEAS, bytes(((OSRS_X1 << 5) | (OSRS_X1 << 2) | MODE_FORCED,)))
        for _ in range(self.max_polls):
            self.bus.delay_ms(2)
            if not self.bus.readfrom_mem(a, REG_STATUS, 1)[0] & 0x08:
                break
        else:
            raise SensorFault(TIMEOUT, "measurement still running after %d polls" % self.max_polls)
        adc_p, adc_t, adc_h = m.parse_raw(self.bus.readfrom_mem(a, REG_DATA, 8))
        if adc_t == m.SKIPPED_20 or adc_p == m.SKIPPED_20 or adc_h == m.SKIPPED_16:
            raise SensorFault(STUCK, "chip returned its 'not measured' value")
        t, p, h = m.compensate(self.cal, adc_p, adc_t, adc_h)
        return {
            "temperature_c": check_range("temperature_c", t / 100, -40, 85),
            "pressure_pa": check_range("pressure_pa", round(p / 256, 2), 30000, 110000),
            "humidity_pct": check_range("humidity_pct", round(h / 1024, 3), 0, 100),
        }
