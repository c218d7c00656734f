"""Supervision: every fault kind counted per sensor, degraded, backed off, recovered."""
from agent.emulators.bme280_chip import Bme280Chip
from agent.emulators.serial_chips import Sds011Chip
from agent.emulators.street import Street
from agent.hal.emulated import ETIMEDOUT, EmulatedI2C, EmulatedUART
from agent.sensors.bme280 import BME280
from agent.sensors.sds011 import SDS011
from agent.sensors.supervisor import DEGRADED, OK, Supervised, fault_kind

T0 = 1764230400000


def _bme():
    street = Street(1)
    street.set_now(T0)
    chip = Bme280Chip(street)
    bus = EmulatedI2C({0x76: chip})
    return street, chip, bus, Supervised("bme", BME280(bus), period_ms=1000, backoff_ms=1000, max_backoff_ms=8000, before_read=street.set_now)


def test_nack_degrades_backs_off_and_recovers():
    street, chip, bus, sup = _bme()
    assert sup.read(T0)["temperature_c"] > -40
    bus.fail_next(3)  # three NACKs (EIO)
    assert sup.read(T0 + 1000) is None and sup.state == DEGRADED
    assert sup.faults == {"bus": 1}
    assert not sup.due(T0 + 1999) and sup.due(T0 + 2000)  # 1 s backoff
    assert sup.read(T0 + 2000) is None  # second NACK: backoff doubles
    assert not sup.due(T0 + 3999) and sup.due(T0 + 4000)
    assert sup.read(T0 + 4000) is None
    assert sup.read(T0 + 7999) is None and sup.faults == {"bus": 3}  # not due: not counted
    r = sup.read(T0 + 8000)
    assert r is not None and sup.state == OK and sup.recoveries == 1
    assert sup.status()["last_error"].startswith("bus")


def test_backoff_is_capped():
    street, chip, bus, sup = _bme()
    bus.unplug()
    t = T0
    gaps = []
    for _ in range(8):
        while not sup.due(t):
            t += 500
        sup.read(t)
        gaps.append(sup._next_ms - t)
    assert gaps == [1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000]
    assert sup.faults == {"bus": 8}


def test_unplug_replug_recovers_with_restart():
    street, chip, bus, sup = _bme()
    sup.read(T0)
    bus.unplug()
    sup.read(T0 + 1000)
    assert sup.state == DEGRADED
    bus.replug()  # chip back in reset state: sleep mode, calibration to be read again
    assert sup.read(T0 + 2000) is not None and sup.state == OK


def test_timeout_stuck_identity_range_internal_are_counted():
    street, chip, bus, sup = _bme()

    def step():
        t = sup._next_ms if sup._next_ms is not None else T0
        sup.read(t)
        return t

    bus.fail_next(1, ETIMEDOUT)
    step()  # clock stretched: ETIMEDOUT
    chip.busy = True
    step()  # status never clears
    chip.busy = False
    chip.stuck = True
    step()  # 'not measured' values
    chip.stuck = False
    chip.override["temperature_c"] = 90.0
    step()  # beyond the data sheet's -40..85 °C
    chip.override = {}
    chip.chip_id = 0x58  # a BMP280 answers after the restart that follows a fault
    step()
    assert sup.faults == {"timeout": 2, "stuck": 1, "range": 1, "identity": 1}
    assert sup.consecutive == 5 and sup.state == DEGRADED
    chip.chip_id = 0x60
    sup.driver.read = None  # a bug in a driver is contained too
    step()
    assert sup.faults["internal"] == 1
    del sup.driver.read
    t = step()
    assert sup.state == OK and sup.recoveries == 1 and sup._next_ms == t + 1000


def test_checksum_faults_counted_per_frame_without_double_counting():
    street = Street(1)
    street.set_now(T0)
    chip = Sds011Chip(street)
    sup = Supervised("dust", SDS011(EmulatedUART(chip)), period_ms=1000, before_read=street.set_now)
    sup.read(T0)
    chip.corrupt = 2
    sup.read(T0 + 2000)  # two corrupt frames, no good one: one degraded read
    assert sup.faults == {"checksum": 2} and sup.state == DEGRADED
    chip.corrupt = 1
    assert sup.read(T0 + 4000) is not None  # one bad, one good: a reading, one more count
    assert sup.faults == {"checksum": 3} and sup.state == OK


def test_silent_uart_times_out_then_recovers_after_replug():
    street = Street(1)
    street.set_now(T0)
    chip = Sds011Chip(street)
    uart = EmulatedUART(chip)
    sup = Supervised("dust", SDS011(uart, timeout_ms=3000), period_ms=1000, before_read=street.set_now)
    sup.read(T0)
    uart.unplug()
    t = T0
    while sup.state == OK:
        t += 1000
        sup.read(t)
    assert sup.faults == {"timeout": 1}
    uart.replug()
    t = sup._next_ms
    r = sup.read(t)
    t += 1000
    r = r or sup.read(t)
    assert r is not None and sup.state == OK


def test_fault_kind_mapping():
    assert fault_kind(OSError(5)) == "bus"
    assert fault_kind(OSError(110)) == "timeout"
    assert fault_kind(ValueError("x")) == "internal"
