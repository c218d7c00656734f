"""Turn a validated Board into running sensors: buses by backing, drivers, supervision.

Start-up only (a board drops this module and the driver table once its sensors are built);
what runs is agent.sensors.sensor_set. The runtime loop calls SensorSet.poll(now_ms) (or
iterates .sensors and calls each read(now_ms)); identifiers (BLE addresses) go to
identifier_sink(metric, addr) and are never returned. On a board with emulated buses,
every read first moves the scripted street to now_ms, so the emulators answer for that time.
"""
from agent.sensors.catalog import DRIVERS, driver_class
from agent.sensors.sensor_set import LazyBus, SensorSet, identifier_sink_of
from agent.sensors.supervisor import Supervised


def sensors_on(board, bus):
    """The specs of the sensors wired to one bus, in name order."""
    return [board.sensors[s] for s in sorted(board.sensors) if board.sensors[s]["bus"] == bus]


def emulated_bus(spec, sensors_on_bus, street):
    """The in-process emulated bus of spec, its chips driven by street (also the chip server's)."""
    from agent.hal import emulated as e

    t = spec["type"]
    if t == "i2c":
        from agent.emulators.bme280_chip import Bme280Chip
        from agent.emulators.scd4x_chip import Scd4xChip

        bus = e.EmulatedI2C()
        for s in sensors_on_bus:
            chip = Bme280Chip(street) if s["driver"] == "bme280" else Scd4xChip(street)
            bus.attach(s.get("address", DRIVERS[s["driver"]][5]), chip)
        return bus
    if t == "uart":
        from agent.emulators.serial_chips import Pms5003Chip, Sds011Chip

        drivers = [s["driver"] for s in sensors_on_bus]
        return e.EmulatedUART(Pms5003Chip(street) if "pms5003" in drivers else Sds011Chip(street))
    from agent.emulators import signals

    if t == "pin":
        return e.EmulatedPin(signals.PirEdges(street))
    if t in ("i2s", "adc"):
        return e.EmulatedSamples(signals.AudioSource(street, spec.get("rate_hz", 16000)))
    return e.EmulatedBle(signals.BleAdverts(street))


def _machine_bus(spec):
    from agent.hal import machine_bus as mb

    t = spec["type"]
    if t == "i2c":
        return mb.I2C(spec.get("id", 0), spec["sda"], spec["scl"], spec.get("freq", 100000))
    if t == "uart":
        return mb.UART(spec.get("id", 1), spec["tx"], spec["rx"], spec.get("baud", 9600))
    if t == "pin":
        return mb.EdgeCounter(spec["pin"], spec.get("pull", "down"), spec.get("debounce_ms", 0))
    if t == "i2s":
        return mb.I2SMic(spec.get("id", 0), spec["sck"], spec["ws"], spec["sd"], spec.get("rate_hz", 16000))
    if t == "adc":
        return mb.AdcMic(spec["pin"], spec.get("rate_hz", 4000))
    return mb.BleScanner()


def _linux_bus(spec):
    # The Linux backings are CPython only; a MicroPython board's profile never names them.
    from agent.hal import linux as lx

    t = spec["type"]
    if t == "i2c":
        return lx.I2C(spec["device"])
    if t == "uart":
        return lx.UART(spec["device"], spec.get("baud", 9600))
    if t == "pin":
        return lx.EdgeCounter(spec["pin"], spec.get("chip", "/dev/gpiochip0"), spec.get("debounce_ms", 0))
    if t == "i2s":
        return lx.AlsaMic(spec.get("device", "default"), spec.get("rate_hz", 16000))
    from agent.hal.ble_linux import BleakScanner

    return BleakScanner()


def _driver(name, spec, bus, sink):
    cls = driver_class(spec["driver"])
    d = spec["driver"]
    if DRIVERS[d][2] == "i2c":
        return cls(bus, spec.get("address", DRIVERS[d][5]))
    if d == "sds011" and "work_s" in spec:
        return cls(bus, work_ms=spec["work_s"] * 1000, period_ms=spec["duty_period_s"] * 1000)
    if d == "sound":
        return cls(bus, spec.get("frame", 1024), spec.get("weighting", "A"), spec.get("cal_db", 120.0))
    if d == "ble_presence":
        return cls(bus, sink)
    if d == "pir":
        return cls(bus, spec.get("refractory_s", 0))
    return cls(bus)


def build(board, now_ms, identifier_sink=None, seed=1, street=None):
    """-> SensorSet. Bus construction errors (a missing device) surface as the first
    read's fault, not here, except a missing optional package (ConfigError). street: the
    scripted street of emulated buses (made here if None), or an agent.hal.bridge.Bridge whose
    chip server emulates them outside this interpreter."""
    specs = board.sensors
    if street is None and any(b["backing"] == "emulated" for b in board.buses.values()):
        from agent.emulators.street import Street

        street = Street(seed)
    if street is not None:
        street.set_now(now_ms)
    buses = {}
    for bname in sorted(board.buses):
        spec = board.buses[bname]
        if spec["backing"] == "emulated" and hasattr(street, "bus"):  # chips outside: agent/hal/bridge.py
            buses[bname] = street.bus(bname)
        elif spec["backing"] == "emulated":
            buses[bname] = emulated_bus(spec, sensors_on(board, bname), street)
        elif spec["backing"] == "machine":
            buses[bname] = LazyBus(_machine_bus, spec)
        else:
            buses[bname] = LazyBus(_linux_bus, spec)
    routes = {}
    sensors = []
    for name in sorted(specs):
        spec = specs[name]
        for metric, reading in board.metrics_of(name):
            routes[(name, reading)] = metric
        sink = identifier_sink_of(name, routes, identifier_sink)
        drv = _driver(name, spec, buses[spec["bus"]], sink)
        emulated = board.buses[spec["bus"]]["backing"] == "emulated"
        sensors.append(
            Supervised(name, drv, int(spec.get("period_s", 10) * 1000), before_read=street.set_now if emulated else None)
        )
    return SensorSet(board, sensors, buses, street, routes)
