# CPython only: systemd's notify protocol (READY=1, WATCHDOG=1) without libsystemd.
"""Tell systemd the agent is alive, so `WatchdogSec=` restarts it if the loop ever hangs.

sd_notify is one datagram to the unix socket named in $NOTIFY_SOCKET; outside systemd the
variable is unset and every call is a no-op.
"""
import os
import socket
import time


class Watchdog:
    def __init__(self, env=None):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET")
        if addr and addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        self.addr = addr or None
        usec = env.get("WATCHDOG_USEC")
        # Ping at half the watchdog interval, as sd_watchdog_enabled(3) recommends.
        self.interval = int(usec) / 2e6 if usec and usec.isdigit() else 10.0
        self._last = None

    def notify(self, state):
        if not self.addr:
            return False
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.connect(self.addr)
                s.send(state.encode())
            finally:
                s.close()
            return True
        except OSError:
            return False

    def ready(self):
        return self.notify("READY=1")

    def feed(self, now=None):
        now = time.monotonic() if now is None else now
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            return self.notify("WATCHDOG=1")
        return False

    def stopping(self):
        return self.notify("STOPPING=1")
