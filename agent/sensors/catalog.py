"""The drivers a board profile may name: module, class, bus type, readings, defaults.

Kept as plain data so agent.board can validate a profile without importing every
driver (MicroPython imports only the drivers a board uses).
"""

# driver -> (module, class, bus type, readings, personal readings, default address)
DRIVERS = {
    "bme280": ("agent.sensors.bme280", "BME280", "i2c", ("temperature_c", "pressure_pa", "humidity_pct"), (), 0x76),
    "scd4x": ("agent.sensors.scd4x", "SCD4x", "i2c", ("co2_ppm", "temperature_c", "humidity_pct"), (), 0x62),
    "sds011": ("agent.sensors.sds011", "SDS011", "uart", ("pm2_5_ugm3", "pm10_ugm3"), (), None),
    "pms5003": ("agent.sensors.pms5003", "PMS5003", "uart", ("pm1_0_ugm3", "pm2_5_ugm3", "pm10_ugm3"), (), None),
    "pir": ("agent.sensors.pir", "PIR", "pin", ("motion_events",), ("motion_events",), None),
    "sound": ("agent.sensors.sound", "SoundLevel", "samples", ("sound_db", "sound_dba"), (), None),
    "ble_presence": (
        "agent.sensors.presence",
        "BlePresence",
        "ble",
        ("ble_devices", "ble_adverts"),
        ("ble_devices", "ble_adverts"),
        None,
    ),
}

# Readings delivered as identifiers through a sink, never as values.
IDENTIFIER_READINGS = ("ble_devices",)

# Options a sensor entry may carry besides driver/bus/address/period_s, per driver.
OPTIONS = {
    "bme280": (),
    "scd4x": (),
    "sds011": ("work_s", "duty_period_s"),
    "pms5003": (),
    "pir": ("refractory_s",),
    "sound": ("frame", "weighting", "cal_db"),
    "ble_presence": (),
}


def driver_class(name):
    mod, cls = DRIVERS[name][0], DRIVERS[name][1]
    m = __import__(mod, None, None, [cls])
    return getattr(m, cls)
