"""Board-side scripts that check how the agent uses a capped heap (run on the native port).

FRAGMENTED_RUN: the board agent offline with a simulated clock (fast windows). After start-up
and a few warm-up windows it fills the free heap with FRAG-byte blocks and frees every other
one (after taking every smaller hole too), then plugs any hole still larger (where freed
neighbours merged), so no free block of the heap is larger than FRAG bytes (MicroPython's
collector never moves objects). Any later allocation above FRAG bytes then fails with MemoryError: a run that
closes its windows proves the agent made none. It also records the live heap (after a
collection) at window `early` and at the end, without the emulated crowd's caches (a rush
hour has more people around than a night): growth over the run is a leak.
Prints one line: FRAG closed grown_bytes max_free_bytes (or raises).
"""

FRAGMENT = """
gc.collect()
hold = []
try:
    while True:
        hold.append(bytearray(%(frag)d))
except MemoryError:
    pass
crumbs = []  # what is left between and after the big blocks, so no hole but theirs remains
try:
    while True:
        crumbs.append(bytearray(200))
except MemoryError:
    pass
for i in range(0, len(hold), 2):
    hold[i] = None
gc.collect()
plugs = []  # a hole that merged with its neighbours is filled again until none above %(frag)d is left
try:
    while True:
        plugs.append(bytearray(%(frag)d + 1))
except MemoryError:
    pass

"""

FRAGMENTED_RUN = """
import gc, micropython, time
from agent.runtime import board_main
FRAG = %(frag)d
clock = board_main.SimClock(%(t0)d, %(step_s)d)
a = board_main.build('/civicmote', transport=None, clock=clock)
while a.closed < %(warmup)d:
    s, ms = clock(); a.step(s, ms)
%(fragment)s
micropython.mem_info()  # the host reads 'max free sz' (GC blocks) from it
early = None
while a.closed < %(warmup)d + %(windows)d:
    s, ms = clock(); a.step(s, ms)
    if early is None and a.closed >= %(warmup)d + %(early)d:
        a.sensors.street.people.drop_caches()  # the emulated crowd follows the hour: not counted
        gc.collect(); early = gc.mem_alloc()
a.sensors.street.people.drop_caches()
gc.collect()
print('FRAGMENTED', FRAG, a.closed - %(warmup)d, gc.mem_alloc() - early, len(hold))
"""

# Offline until `offline` windows are queued (the broker is not there: every connect is
# refused), then (with FRAGMENT filled in) the heap is cut into small holes, then the host
# starts the broker and creates /civicmote/go, and the board flushes everything over mutual TLS. The clock is simulated while offline (one window a step) and
# follows real time from `go` on, so the MQTT client's timeouts are real ones.
# Prints OFFLINE depth, then BOARD closed delivered depth net_errors alloc free.
OFFLINE_THEN_FLUSH = """
import gc, os, time
from agent.runtime import board_main

class Clock:
    def __init__(self, t0, step_s):
        self.s, self.ms, self.step_s, self.real = t0, 0, step_s, None
    def __call__(self):
        if self.real is None:
            self.s += self.step_s
            self.ms += self.step_s * 1000
            return self.s, self.ms
        d = time.ticks_diff(time.ticks_ms(), self.real[1])
        return self.real[0] + d // 1000, self.ms + d

clock = Clock(%(t0)d, %(step_s)d)
a = board_main.build('/civicmote', clock=clock)
while a.closed < %(offline)d:
    s, ms = clock(); a.step(s, ms)
gc.collect()
print('OFFLINE', a.outbox.depth, a.closed, gc.mem_alloc())
%(fragment)s
end = time.time() + 60
while time.time() < end:
    try:
        os.stat('/civicmote/go')
        break
    except OSError:
        time.sleep_ms(100)
clock.real = (clock.s, time.ticks_ms())
end = time.time() + %(drain_s)d
while (a.outbox.depth or a.delivered < a.closed) and time.time() < end:
    s, ms = clock(); a.step(s, ms)
    time.sleep_ms(5)
gc.collect()
print('BOARD', a.closed, a.delivered, a.outbox.depth, a.net_errors, gc.mem_alloc(), gc.mem_free())
"""
