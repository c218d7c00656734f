"""PIR motion sensor (HC-SR501, AM312, ...) on a digital pin with an edge counter.

Reading: motion_events (rising edges since the last read). It counts people passing,
so a profile must declare it a personal metric (agent.board enforces this).
"""


class PIR:
    READINGS = ("motion_events",)

    def __init__(self, pin):
        self.pin = pin

    def start(self, now_ms):
        self.pin.take_count()  # edges from before the agent ran are not ours

    def read(self, now_ms):
        return {"motion_events": self.pin.take_count()}
