"""Board-side script for bench/bench_board_heap.py: the agent's own time per window, with the
emulators' time measured apart (runs on the native port; source text, not imported there).

The sim board's chips and street are emulators: Python code on the board's CPU that a real
board replaces with silicon. Every method of every class in agent/hal/emulated.py and
agent/emulators/ is wrapped with a timer before the agent is built; calls from one emulator
into another are not timed twice, and a callback an emulator makes into the agent (a BLE
advert handed to the agent's sink) is timed as the agent's. The agent runs offline with a
simulated clock at one step per second (every sensor at its real period, a real window's
worth of samples) for `windows` windows of the profile's length.
Prints: CPU windows total_us emulator_us, then SENSOR name read_us emulator_us per sensor.
"""
CPU_RUN = """
import time
_acc = [0, 0, None]  # emulator us, depth, start ticks of the timed stretch

def _back(fn):
    def agent_side(*a):
        _acc[0] += time.ticks_diff(time.ticks_us(), _acc[2])
        d = _acc[1]
        _acc[1] = 0
        try:
            return fn(*a)
        finally:
            _acc[1] = d
            _acc[2] = time.ticks_us()
    return agent_side

def _timed(f):
    def w(*a, **k):
        if _acc[1]:
            return f(*a, **k)
        a = tuple(_back(x) if type(x).__name__ in ('function', 'bound_method', 'closure') else x for x in a)
        _acc[1] = 1
        _acc[2] = time.ticks_us()
        try:
            return f(*a, **k)
        finally:
            _acc[0] += time.ticks_diff(time.ticks_us(), _acc[2])
            _acc[1] = 0
    return w

def _wrap_module(name):
    mod = __import__(name, None, None, ['x'])
    for cname in dir(mod):
        cls = getattr(mod, cname)
        if type(cls) is not type or getattr(cls, '__module__', name) != name and cname.startswith('_'):
            continue
        for m in dir(cls):
            f = getattr(cls, m)
            if m.startswith('__') or type(f).__name__ not in ('function', 'closure'):
                continue
            setattr(cls, m, _timed(f))

for _m in ('agent.hal.emulated', 'agent.emulators.signals', 'agent.emulators.street',
           'agent.emulators.bme280_chip', 'agent.emulators.scd4x_chip', 'agent.emulators.serial_chips'):
    _wrap_module(_m)

from agent.runtime import board_main
clock = board_main.SimClock(%(t0)d, 1)
a = board_main.build('/civicmote', transport=None, clock=clock)
_per = {}  # sensor name -> [us in its read, emulator us inside it]

def _per_sensor(sup):
    f = sup.read
    cell = _per.setdefault(sup.name, [0, 0])
    def read(now_ms):
        e0, t0 = _acc[0], time.ticks_us()
        try:
            return f(now_ms)
        finally:
            cell[0] += time.ticks_diff(time.ticks_us(), t0)
            cell[1] += _acc[0] - e0
    sup.read = read

for _s in a.sensors.sensors:
    _per_sensor(_s)
while a.closed < 1:  # the first window is a partial one: not counted
    s, ms = clock(); a.step(s, ms)
_acc[0] = 0
for _c in _per.values():
    _c[0] = _c[1] = 0
t = time.ticks_us()
while a.closed < 1 + %(windows)d:
    s, ms = clock(); a.step(s, ms)
print('CPU', a.closed - 1, time.ticks_diff(time.ticks_us(), t), _acc[0])
for _n in sorted(_per):
    print('SENSOR', _n, _per[_n][0], _per[_n][1])
"""


def run_cpu(city, windows, prelude=(), extra_maps=()):
    """Run CPU_RUN on the native port for the city's device (offline), after the prelude
    scripts: ({sensor: (read s, emulator s)}, (windows, total s, emulator s))."""
    import mpy_port
    from board_city import BoardFailed

    scripts = list(prelude) + [CPU_RUN % {"t0": 1767225600, "windows": windows}]
    proc = mpy_port.run(scripts, maps=tuple(city.maps()) + tuple(extra_maps), cwd=None, port="native",
                        timeout=1800)
    per, total = {}, None
    for line in proc.stdout.splitlines():
        f = line.split()
        if f[:1] == ["CPU"]:
            total = (int(f[1]), int(f[2]) / 1e6, int(f[3]) / 1e6)
        elif f[:1] == ["SENSOR"]:
            per[f[1]] = (int(f[2]) / 1e6, int(f[3]) / 1e6)
    if total is None:
        raise BoardFailed(proc.stdout[-2000:] + proc.stderr[-2000:])
    return per, total
