"""Board profiles: load, validate (errors name the field), and open the sensors.

A profile is JSON (see docs/sensors.md): board, runtime, chip, window_s, buses,
sensors, metrics. load_profile() returns a Board or raises ConfigError such as
"boards/x.json: sensors.bme.bus: no bus named 'i2c9'". The checks live in
agent.profile_check, which a board drops from its heap once it has started.
"""
import json

from agent.errors import ConfigError

# The statistics an environmental metric releases unless its profile says (docs/wire-format.md).
DEFAULT_STATS = ("mean", "min", "max")


class Board:
    """A validated profile. Plain dicts inside; dp holds each personal metric's DPPolicy."""

    def __init__(self, raw, source, dp, daily_epsilon=None):
        self.raw = raw
        self.source = source
        self.name = raw["board"]
        self.runtime = raw["runtime"]
        self.chip = raw["chip"]
        self.window_s = raw["window_s"]
        self.buses = raw["buses"]
        self.sensors = raw["sensors"]
        self.metrics = raw["metrics"]
        self.dp = dp
        # One budget per person per UTC day across all personal metrics (a rational), or None.
        self.daily_epsilon = daily_epsilon

    def metrics_of(self, sensor):
        """[(metric name, reading)] fed by a sensor, in name order."""
        out = [(m, spec["reading"]) for m, spec in self.metrics.items() if spec["sensor"] == sensor]
        out.sort()
        return out

    def personal_metrics(self):
        return sorted(m for m, s in self.metrics.items() if s["class"] == "personal")

    def environmental_metrics(self):
        return sorted(m for m, s in self.metrics.items() if s["class"] == "environmental")

    def metric_window(self, name):
        """Seconds over which a metric is released: its own "window" or the board's window_s."""
        return self.metrics[name].get("window", self.window_s)

    def env_spec(self, name):
        """(resolution as a rational (num, den), statistics tuple) of an environmental metric.

        Values are released as integers in units of the resolution: 0.1 degC -> 215 is 21.5 degC.
        """
        from agent.core import rational

        m = self.metrics[name]
        return rational.parse(m.get("resolution", 1)), tuple(m.get("stats", DEFAULT_STATS))


def load_profile(path_or_dict, source=None):
    """Parse and validate a profile from a JSON file path or an already-parsed dict."""
    if isinstance(path_or_dict, dict):
        raw, src = path_or_dict, source or "profile"
    else:
        src = source or path_or_dict
        try:
            with open(path_or_dict) as f:
                raw = json.load(f)
        except OSError as e:
            raise ConfigError("%s: cannot read the profile (%s)" % (src, e)) from None
        except ValueError as e:
            raise ConfigError("%s: not valid JSON (%s)" % (src, e)) from None
    from agent.profile_check import Validator

    v = Validator(src)
    dp = v.profile(raw)
    return Board(raw, src, dp, v.budget(raw.get("privacy"), dp))


def open_sensors(board, now_ms, identifier_sink=None, seed=1, street=None):
    """Build the buses and drivers of a board; see agent.sensors.assembly.SensorSet."""
    from agent.sensors.assembly import build

    return build(board, now_ms, identifier_sink, seed, street)
