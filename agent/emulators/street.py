"""A scripted street: what the sensors of the `sim` board would measure at a time.

now_ms is Unix time in ms (UTC; tz_h shifts the local day). Daily temperature curve
peaking mid-afternoon, particulate and CO2 peaks at the 08:00 and 17:30 rush hours,
traffic noise following both, and people (agent.emulators.people): arriving more by day and
at rush hour (or at a constant rate_per_h), some passing again, some lingering, many with a
phone whose Bluetooth address rotates. Options for the people are passed on to Crowd.
"""
import math

from agent.emulators.people import Crowd
from agent.emulators.prng import unit

DAY_MS = 86400000


class Street:
    def __init__(self, seed=1, tz_h=0, rate_per_h=None, **people):
        self.seed = seed
        self.tz_ms = int(tz_h * 3600000)
        self.now_ms = 0
        self.rate_per_h = rate_per_h
        self.people = Crowd(seed, self.pedestrian_rate, **people)

    def set_now(self, now_ms):
        self.now_ms = now_ms

    def hour(self, t):
        return ((t + self.tz_ms) % DAY_MS) / 3600000.0

    def rush(self, t):
        h = self.hour(t)
        a = (h - 8.0) / 1.0
        b = (h - 17.5) / 1.2
        return math.exp(-a * a) + 0.8 * math.exp(-b * b)

    def daylight(self, t):
        h = self.hour(t)
        return math.sin(math.pi * (h - 6.0) / 16.0) if 6.0 < h < 22.0 else 0.0

    def wobble(self, t, channel):
        """Smooth noise in [-1, 1]: linear between per-minute random points."""
        m = t // 60000
        f = (t % 60000) / 60000.0
        a = unit(self.seed, channel, m) * 2 - 1
        b = unit(self.seed, channel, m + 1) * 2 - 1
        return a + (b - a) * f

    def temperature_c(self, t):
        h = self.hour(t)
        return 11.0 + 6.0 * math.cos(2 * math.pi * (h - 15.0) / 24.0) + 0.3 * self.wobble(t, 1)

    def humidity_pct(self, t):
        v = 75.0 - 3.0 * (self.temperature_c(t) - 11.0) + 2.0 * self.wobble(t, 2)
        return min(98.0, max(20.0, v))

    def pressure_pa(self, t):
        return 101325.0 + 250.0 * math.sin(2 * math.pi * (t % (3 * DAY_MS)) / (3 * DAY_MS)) + 8 * self.wobble(t, 3)

    def pm2_5(self, t):
        return max(0.0, 6.0 + 22.0 * self.rush(t) + 2.5 * self.wobble(t, 4))

    def pm10(self, t):
        return self.pm2_5(t) * 1.7 + 2.0 + 1.5 * self.wobble(t, 5)

    def co2_ppm(self, t):
        return 425.0 + 90.0 * self.rush(t) + 6.0 * self.wobble(t, 6)

    def traffic_db(self, t):
        """Unweighted street noise level, dB SPL."""
        return 50.0 + 16.0 * self.rush(t) + 8.0 * self.daylight(t) + 1.5 * self.wobble(t, 7)

    def pedestrian_rate(self, t):
        """Expected people arriving per second at t (ms): rate_per_h / 3600 if set."""
        if self.rate_per_h is not None:
            return self.rate_per_h / 3600.0
        return 0.01 + 0.25 * self.rush(t) + 0.08 * self.daylight(t)

    def arrivals(self, second):
        """People arriving at the sensor during the given Unix second (0 or 1)."""
        return 1 if self.people.arrives(second) else 0
