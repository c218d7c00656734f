# CPython only: BLE scanning on Linux through bleak (optional: pip install bleak).
"""A passive BLE scanner in a background asyncio loop, matching agent.hal's scanner."""
import asyncio
import threading

from agent.errors import ConfigError


class BleakScanner:
    def __init__(self, slots=256):
        try:
            import bleak  # noqa: F401
        except ImportError:
            raise ConfigError("ble: backing 'linux' needs bleak; install it with: pip install bleak") from None
        self._slots = slots
        self._pending = []
        self._lock = threading.Lock()
        self._addr = bytearray(6)
        self.overflow = 0

    def _seen(self, device, _adv):
        raw = bytes.fromhex(device.address.replace(":", ""))[:6]
        with self._lock:
            if len(self._pending) >= self._slots:
                self.overflow += 1
            else:
                self._pending.append(raw)

    def start(self):
        import bleak

        async def run():
            async with bleak.BleakScanner(detection_callback=self._seen):
                while True:
                    await asyncio.sleep(3600)

        threading.Thread(target=lambda: asyncio.run(run()), daemon=True).start()

    def drain(self, fn):
        with self._lock:
            batch, self._pending = self._pending, []
        for raw in batch:
            self._addr[:] = raw
            fn(self._addr)
        return len(batch)
