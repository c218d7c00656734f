"""The running sensors of a board: poll them, route identifiers, report health (portable).

Made by agent.sensors.assembly.build at start-up; only this module is needed afterwards.
"""


class SensorSet:
    def __init__(self, board, sensors, buses, street, identifier_routes):
        self.board = board
        self.sensors = sensors  # list of Supervised, in name order
        self.buses = buses  # bus name -> bus object (emulated ones take faults)
        self.street = street  # the scripted street when any bus is emulated, else None
        self._routes = identifier_routes

    def sensor(self, name):
        for s in self.sensors:
            if s.name == name:
                return s
        raise KeyError(name)

    def poll(self, now_ms):
        """Read every due sensor; -> {sensor name: readings} for those that gave data."""
        out = {}
        for s in self.sensors:
            r = s.read(now_ms)
            if r is not None:
                out[s.name] = r
        return out

    def metric_values(self, readings):
        """{sensor: readings} -> [(metric, value)] for the board's value metrics."""
        out = []
        for sensor, values in readings.items():
            for metric, reading in self.board.metrics_of(sensor):
                if reading in values:
                    out.append((metric, values[reading]))
        return out

    def health(self):
        return {s.name: s.status() for s in self.sensors}

    def close(self):
        for b in self.buses.values():
            c = getattr(b, "close", None)
            if c is not None:
                try:
                    c()
                except Exception:  # noqa: BLE001 - closing must not stop a shutdown
                    pass


class LazyBus:
    """Opens a real bus on first use and again after it failed to open, so a device
    that is missing at boot (unplugged adapter, absent /dev node) is a counted fault of
    its sensor, retried with backoff, instead of an error that stops the agent."""

    def __init__(self, factory, spec):
        self._factory = factory
        self._spec = spec
        self._bus = None

    def __getattr__(self, name):
        if self._bus is None:
            self._bus = self._factory(self._spec)
        return getattr(self._bus, name)

    def close(self):
        if self._bus is not None and hasattr(self._bus, "close"):
            self._bus.close()


def identifier_sink_of(sensor, routes, identifier_sink):
    """sink(reading, addr) of one sensor: the address goes to identifier_sink under its metric."""
    def sink(reading, addr):
        metric = routes.get((sensor, reading))
        if metric is not None and identifier_sink is not None:
            identifier_sink(metric, addr)

    return sink
