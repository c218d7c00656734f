"""Board profile checks: every field of a profile, with errors that name it (start-up only).

Used by agent.board.load_profile. Nothing here is needed once the agent runs, so a board drops
this module after start-up (agent.runtime.board_main.BOOT_ONLY).
"""
from agent.errors import ConfigError
from agent.sensors.catalog import DRIVERS, IDENTIFIER_READINGS, OPTIONS

RUNTIMES = ("cpython", "micropython")
CHIPS = ("esp32", "rp2040", "bcm2711", "sim")
BACKINGS = {"emulated": None, "linux": "cpython", "machine": "micropython"}
CLASSES = ("environmental", "personal")
PIN_FIELDS = ("sda", "scl", "tx", "rx", "pin", "sck", "ws", "sd")
# bus type -> (driver bus kind, fields required per backing, optional fields)
BUS_TYPES = {
    "i2c": ("i2c", {"machine": ("sda", "scl"), "linux": ("device",)}, ("id", "sda", "scl", "freq", "device")),
    "uart": ("uart", {"machine": ("tx", "rx"), "linux": ("device",)}, ("id", "tx", "rx", "baud", "device")),
    "pin": ("pin", {"machine": ("pin",), "linux": ("pin",), "emulated": ()}, ("pin", "pull", "debounce_ms", "chip")),
    "i2s": ("samples", {"machine": ("sck", "ws", "sd")}, ("id", "sck", "ws", "sd", "rate_hz", "device")),
    "adc": ("samples", {"machine": ("pin",)}, ("pin", "rate_hz")),
    "ble": ("ble", {}, ()),
}
SENSOR_FIELDS = ("driver", "bus", "address", "period_s")
# Statistics an environmental metric may release (see docs/wire-format.md).
ENV_STATS = ("n", "mean", "min", "max", "sd", "leq")
METRIC_FIELDS = ("sensor", "reading", "unit", "class", "dp", "description", "resolution", "stats", "window")


class Validator:
    """Validator(source).profile(raw) -> {metric: DPPolicy}; .budget(privacy block, dp). Raises ConfigError."""

    def __init__(self, source):
        self.source = source

    def fail(self, field, msg):
        raise ConfigError("%s: %s: %s" % (self.source, field, msg))

    def obj(self, field, v):
        if not isinstance(v, dict):
            self.fail(field, "must be a JSON object")
        return v

    def integer(self, field, v, lo=None, hi=None):
        if not isinstance(v, int) or isinstance(v, bool):
            self.fail(field, "must be an integer, got %r" % (v,))
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(field, "%d is outside %s..%s" % (v, lo, hi))
        return v

    def string(self, field, v, choices=None):
        if not isinstance(v, str) or not v:
            self.fail(field, "must be a non-empty string")
        if choices is not None and v not in choices:
            self.fail(field, "%r is not one of %s" % (v, ", ".join(choices)))
        return v

    def only(self, field, d, allowed):
        for k in d:
            if k not in allowed:
                self.fail(field + "." + k, "unknown field (expected one of %s)" % ", ".join(allowed))

    def profile(self, raw):
        self.obj("(top level)", raw)
        for k in ("board", "runtime", "chip", "window_s", "buses", "sensors", "metrics"):
            if k not in raw:
                self.fail(k, "missing")
        self.string("board", raw["board"])
        runtime = self.string("runtime", raw["runtime"], RUNTIMES)
        self.string("chip", raw["chip"], CHIPS)
        self.integer("window_s", raw["window_s"], 1, 86400)
        if 86400 % raw["window_s"]:
            self.fail("window_s", "must divide a day (86400 s) so windows close on wall-clock boundaries")
        self._window_s = raw["window_s"]
        self.buses(self.obj("buses", raw["buses"]), runtime)
        self.sensors(self.obj("sensors", raw["sensors"]), raw["buses"])
        return self.metrics(self.obj("metrics", raw["metrics"]), raw["sensors"])

    def budget(self, obj, dp):
        from agent.privacy.policy import parse_budget

        try:
            return parse_budget(obj, dp)
        except ConfigError as e:
            raise ConfigError("%s: %s" % (self.source, e)) from None

    def buses(self, buses, runtime):
        pins = {}
        for name in sorted(buses):
            f = "buses." + name
            b = self.obj(f, buses[name])
            btype = self.string(f + ".type", b.get("type"), sorted(BUS_TYPES))
            backing = self.string(f + ".backing", b.get("backing"), sorted(BACKINGS))
            if BACKINGS[backing] is not None and BACKINGS[backing] != runtime:
                self.fail(f + ".backing", "%r runs only on runtime %r, this board is %r" % (backing, BACKINGS[backing], runtime))
            kind, required, optional = BUS_TYPES[btype]
            self.only(f, b, ("type", "backing") + optional)
            if btype == "ble" or btype == "i2s" or btype == "adc":
                if backing == "linux" and btype == "adc":
                    self.fail(f + ".backing", "Linux has no ADC bus here; use an I2S or USB microphone (type i2s)")
            for k in required.get(backing, ()):
                if k not in b:
                    self.fail(f + "." + k, "missing (needed by a %s bus with backing %r)" % (btype, backing))
            for k in PIN_FIELDS:
                if k in b:
                    p = self.integer(f + "." + k, b[k], 0, 255)
                    if p in pins:
                        self.fail(f + "." + k, "pin %d already used by %s" % (p, pins[p]))
                    pins[p] = f + "." + k
            for k in ("id", "freq", "baud", "rate_hz", "debounce_ms"):
                if k in b:
                    self.integer(f + "." + k, b[k], 0)
            if "pull" in b:
                self.string(f + ".pull", b["pull"], ("up", "down", "none"))
            for k in ("device", "chip"):
                if k in b:
                    self.string(f + "." + k, b[k])

    def sensors(self, sensors, buses):
        used = {}
        for name in sorted(sensors):
            f = "sensors." + name
            s = self.obj(f, sensors[name])
            driver = self.string(f + ".driver", s.get("driver"))
            if driver not in DRIVERS:
                self.fail(f + ".driver", "unknown driver %r (known: %s)" % (driver, ", ".join(sorted(DRIVERS))))
            self.only(f, s, SENSOR_FIELDS + OPTIONS[driver])
            bus = self.string(f + ".bus", s.get("bus"))
            if bus not in buses:
                self.fail(f + ".bus", "no bus named %r" % bus)
            kind = BUS_TYPES[buses[bus]["type"]][0]
            need = DRIVERS[driver][2]
            if kind != need:
                self.fail(f + ".bus", "driver %r needs a %s bus, %r is %s" % (driver, need, bus, buses[bus]["type"]))
            key = bus
            if need == "i2c":
                addr = s.get("address", DRIVERS[driver][5])
                key = "%s@0x%02x" % (bus, self.integer(f + ".address", addr, 0x08, 0x77))
            elif "address" in s:
                self.fail(f + ".address", "only I2C sensors have an address")
            if key in used:
                what = "address %s" % key if need == "i2c" else "bus %r" % bus
                self.fail(f + ".bus", "%s already used by %s" % (what, used[key]))
            used[key] = f
            if "period_s" in s and (not isinstance(s["period_s"], (int, float)) or isinstance(s["period_s"], bool) or s["period_s"] <= 0):
                self.fail(f + ".period_s", "must be a positive number of seconds")
            if "weighting" in s:
                self.string(f + ".weighting", s["weighting"], ("A", "Z"))
            for k in ("frame", "work_s", "duty_period_s", "refractory_s"):
                if k in s:
                    self.integer(f + "." + k, s[k], 1)
            if ("work_s" in s) != ("duty_period_s" in s):
                self.fail(f + ".work_s", "work_s and duty_period_s go together")
            if "work_s" in s and s["work_s"] >= s["duty_period_s"]:
                self.fail(f + ".work_s", "must be shorter than duty_period_s")

    def metrics(self, metrics, sensors):
        from agent.privacy.policy import parse_dp

        dp = {}
        for name in sorted(metrics):
            f = "metrics." + name
            m = self.obj(f, metrics[name])
            self.only(f, m, METRIC_FIELDS)
            sensor = self.string(f + ".sensor", m.get("sensor"))
            if sensor not in sensors:
                self.fail(f + ".sensor", "no sensor named %r" % sensor)
            s = sensors[sensor]
            entry = DRIVERS[s["driver"]]
            readings = entry[3]
            if s["driver"] == "sound" and s.get("weighting", "A") == "Z":
                readings = ("sound_db",)
            reading = self.string(f + ".reading", m.get("reading"))
            if reading not in readings:
                self.fail(f + ".reading", "sensor %r (%s) has no reading %r (it has %s)" % (sensor, s["driver"], reading, ", ".join(readings)))
            self.string(f + ".unit", m.get("unit"))
            cls = self.string(f + ".class", m.get("class"), CLASSES)
            if "window" in m:
                w = m["window"]
                ws = self._window_s
                if isinstance(w, bool) or not isinstance(w, int) or w <= 0 or w % ws or 86400 % w:
                    self.fail(f + ".window", "must be a multiple of window_s (%d) that divides a day (86400 s)" % ws)
            if cls == "environmental":
                if reading in entry[4]:
                    self.fail(f + ".class", "reading %r counts people or their devices; it must be 'personal'" % reading)
                if "dp" in m:
                    self.fail(f + ".dp", "only personal metrics take a dp block")
                self.env_release(f, m)
                continue
            for k in ("resolution", "stats"):
                if k in m:
                    self.fail(f + "." + k, "personal metrics release only what their dp block says")
            if "dp" not in m:
                self.fail(f + ".dp", "missing: a personal metric needs differential privacy settings")
            self.obj(f + ".dp", m["dp"])
            if reading in IDENTIFIER_READINGS and m["dp"].get("mechanism") != "distinct":
                self.fail(f + ".dp.mechanism", "reading %r gives identifiers; use mechanism 'distinct'" % reading)
            window = m.get("window", self._window_s)
            try:
                dp[name] = parse_dp(name, m["dp"], window, s.get("refractory_s"))
            except ConfigError as e:
                self.fail(f + ".dp", str(e))
            self.readings_bound(f, dp[name], s, window)
        return dp

    def readings_bound(self, f, policy, sensor, window):
        # A person can touch at most every reading of a window: ceil(window / period) of them.
        if policy.mechanism not in ("sum", "mean", "histogram"):
            return
        period = sensor.get("period_s", 10)
        most = int(-(-window // period))
        if policy.per_person > most:
            self.fail(f + ".dp.per_person", "%d exceeds the %d readings the sensor makes in a window"
                      % (policy.per_person, most))

    def env_release(self, f, m):
        from agent.core import rational

        if "resolution" in m:
            try:
                res = rational.parse(m["resolution"])
            except (ValueError, TypeError):
                res = None
            if res is None or res[0] <= 0:
                self.fail(f + ".resolution", "must be a positive number such as 0.1 or \"1/2\"")
        if "stats" in m:
            st = m["stats"]
            if not isinstance(st, list) or not st:
                self.fail(f + ".stats", "must be a non-empty list of %s" % ", ".join(ENV_STATS))
            for x in st:
                if x not in ENV_STATS:
                    self.fail(f + ".stats", "unknown statistic %r (choose from %s)" % (x, ", ".join(ENV_STATS)))
            if len(set(st)) != len(st):
                self.fail(f + ".stats", "lists a statistic twice")
            if "leq" in st and (m.get("resolution") is None or rational.parse(m["resolution"]) != (1, 10)):
                self.fail(f + ".stats", "leq (the energy-average sound level) needs resolution 0.1 (tenths of a dB)")
