"""Presence counter from BLE advertisements.

The scanner hands each advertiser's address to `sink(reading, addr)`, which feeds the
privacy engine's distinct counter (salted hash in RAM); this driver never keeps an
address. Readings: ble_devices (delivered through the sink only, as identifiers) and
ble_adverts (how many advertisements were heard since the last read). Both are personal.
"""


class BlePresence:
    READINGS = ("ble_devices", "ble_adverts")
    IDENTIFIERS = ("ble_devices",)

    def __init__(self, scanner, sink=None):
        self.scanner = scanner
        self.sink = sink

    def start(self, now_ms):
        self.scanner.start()

    def _emit(self, addr):
        if self.sink is not None:
            self.sink("ble_devices", addr)

    def read(self, now_ms):
        return {"ble_adverts": self.scanner.drain(self._emit)}
