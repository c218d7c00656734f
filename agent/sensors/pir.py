"""PIR motion sensor (HC-SR501, AM312, ...) on a digital pin with an edge counter.

Reading: motion_events, the rising edges since the last read, counted with a refractory
time: after a counted event, further edges are not counted for refractory_s seconds, and a
read counts at most one event. So the sensor counts at most one event per refractory time,
for everyone together, and one person lingering in front of it all window adds at most
ceil(window / refractory_s) events: the physical bound that the privacy policy and the
manifest rest on (agent.privacy.policy). refractory_s = 0 counts every edge.

It counts people passing, so a profile must declare it a personal metric (agent.board
enforces this).
"""


class PIR:
    READINGS = ("motion_events",)

    def __init__(self, pin, refractory_s=0):
        self.pin = pin
        self.refractory_ms = int(refractory_s * 1000)
        self._last_ms = None  # monotonic ms of the last counted event

    def start(self, now_ms):
        self.pin.take_count()  # edges from before the agent ran are not ours

    def read(self, now_ms):
        n = self.pin.take_count()
        if not self.refractory_ms or n <= 0:
            return {"motion_events": n if n > 0 else 0}
        if self._last_ms is not None and now_ms - self._last_ms < self.refractory_ms:
            return {"motion_events": 0}
        self._last_ms = now_ms
        return {"motion_events": 1}
