"""Sensor faults: one exception carrying the fault kind the supervisor counts."""
from agent.errors import AgentError

# Fault kinds counted per sensor (see agent.sensors.supervisor).
CHECKSUM = "checksum"  # a frame or word failed its checksum / CRC
BUS = "bus"  # the bus raised (NACK, EIO, device absent)
TIMEOUT = "timeout"  # no answer in time (silent UART, measurement never ready)
RANGE = "range"  # a value outside the datasheet's range
STUCK = "stuck"  # the chip keeps returning its reset/skip value
IDENTITY = "identity"  # wrong chip id: a different chip, or none, answers
INTERNAL = "internal"  # anything else a driver raised (a bug); still contained


class SensorFault(AgentError):
    """A sensor misbehaved; `kind` is one of the constants above."""

    def __init__(self, kind, message):
        super().__init__("%s: %s" % (kind, message))
        self.kind = kind


def check_range(name, value, lo, hi):
    """Raise a RANGE fault unless lo <= value <= hi; return value."""
    if value < lo or value > hi:
        raise SensorFault(RANGE, "%s=%s outside [%s, %s]" % (name, value, lo, hi))
    return value
