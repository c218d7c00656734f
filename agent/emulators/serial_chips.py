"""SDS011 and PMS5003 as the byte streams they send: one frame per second while awake.

UART side: any(), read(n), write(data). Frames are made for each whole second since the
last read (at most `fifo` bytes are kept, like a UART FIFO that overflows). Faults:
corrupt (the next n frames carry a bad checksum), garbage (bytes sent before the next
frame), silent (sends nothing; commands still heard).
"""
from agent.sensors import sds011 as sds
from agent.sensors import pms5003 as pms


class FrameStream:
    def __init__(self, street, fifo=256):
        self.street = street
        self.fifo = fifo
        self.corrupt = 0
        self.garbage = b""
        self.silent = False
        self.awake = True
        self._out = bytearray()
        self._last_s = None

    def _pump(self):
        now_s = self.street.now_ms // 1000
        if self._last_s is None or now_s < self._last_s:
            self._last_s = now_s
            return
        first = max(self._last_s + 1, now_s - self.fifo // self.FRAME_LEN)
        for s in range(first, now_s + 1):
            if self.silent or not self.awake:
                continue
            if self.garbage:
                self._out.extend(self.garbage)
                self.garbage = b""
            f = bytearray(self.frame(s * 1000))
            if self.corrupt:
                self.corrupt -= 1
                f[self.CHECK_AT] ^= 0x5A
            self._out.extend(f)
        self._last_s = now_s
        if len(self._out) > self.fifo:
            self._out = self._out[-self.fifo :]

    def any(self):
        self._pump()
        return len(self._out)

    def read(self, n=-1):
        self._pump()
        if not self._out:
            return None
        if n < 0 or n > len(self._out):
            n = len(self._out)
        r = bytes(self._out[:n])
        self._out = self._out[n:]
        return r

    def write(self, data):
        self._pump()
        self.command(bytes(data))
        return len(data)


class Sds011Chip(FrameStream):
    FRAME_LEN = 10
    CHECK_AT = 8

    def __init__(self, street, device_id=0xA160, fifo=256):
        FrameStream.__init__(self, street, fifo)
        self.device_id = device_id
        self.override = {}

    def frame(self, t):
        s = self.street
        p25 = int(self.override.get("pm2_5_ugm3", s.pm2_5(t)) * 10 + 0.5) & 0xFFFF
        p10 = int(self.override.get("pm10_ugm3", s.pm10(t)) * 10 + 0.5) & 0xFFFF
        f = bytearray((0xAA, 0xC0, p25 & 0xFF, p25 >> 8, p10 & 0xFF, p10 >> 8, self.device_id >> 8, self.device_id & 0xFF, 0, 0xAB))
        f[8] = sum(f[2:8]) & 0xFF
        return f

    def command(self, data):
        if len(data) != 19 or data[0] != 0xAA or data[1] != 0xB4 or data[18] != 0xAB:
            return
        if sum(data[2:17]) & 0xFF != data[17]:
            return  # the sensor ignores a command with a bad checksum
        if data[2] == sds.CMD_SLEEP_WORK and data[3] == 1:
            self.awake = data[4] == 1
            r = bytearray((0xAA, 0xC5, 6, 1, data[4], 0, self.device_id >> 8, self.device_id & 0xFF, 0, 0xAB))
            r[8] = sum(r[2:8]) & 0xFF
            if not self.silent:
                self._out.extend(r)


class Pms5003Chip(FrameStream):
    FRAME_LEN = 32
    CHECK_AT = 31

    def __init__(self, street, fifo=256):
        FrameStream.__init__(self, street, fifo)
        self.override = {}

    def frame(self, t):
        s = self.street
        p25 = int(self.override.get("pm2_5_ugm3", s.pm2_5(t)) + 0.5)
        p10 = int(self.override.get("pm10_ugm3", s.pm10(t)) + 0.5)
        p1 = int(p25 * 0.7)
        ws = (p1, p25, p10, p1, p25, p10, 900 + 40 * p25, 280 + 12 * p25, 50 + 2 * p25, 6, 2, 1, 0)
        f = bytearray(32)
        f[0], f[1], f[2], f[3] = 0x42, 0x4D, 0, 28
        for i, w in enumerate(ws):
            f[4 + 2 * i] = (w >> 8) & 0xFF
            f[5 + 2 * i] = w & 0xFF
        c = sum(f[:30])
        f[30], f[31] = c >> 8, c & 0xFF
        return f

    def command(self, data):
        if data == pms.sleep_command():
            self.awake = False
        elif data == pms.wake_command():
            self.awake = True
