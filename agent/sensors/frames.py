"""Framed serial sensors: UART bytes into a buffer, whole frames out, through a pure decoder.

The frame formats (header, length, checksum) live in each driver's pure `decode(buf, i)`,
which returns (kind, value, next_i) with kind "data", "reply", "checksum" or "more" (not
enough bytes yet). This is the thin read that feeds it, shared by the SDS011 and PMS5003.
"""


class FrameStream:
    def __init__(self, decode, frame_len):
        self.decode = decode
        self.frame_len = frame_len
        self.buf = bytearray()

    def reset(self):
        self.buf = bytearray()

    def drain(self, uart):
        """Read what the UART holds and decode every whole frame in the buffer.

        Returns (the last data frame's value or None, number of corrupt frames). Replies to
        commands are not data and not faults. Garbage is skipped byte by byte (resync); only
        a tail that may still start a frame is kept, so the buffer stays bounded.
        """
        n = uart.any()
        if n:
            data = uart.read(n)
            if data:
                self.buf.extend(data)
        frame = None
        bad = 0
        i = 0
        buf = self.buf
        while True:
            kind, value, i = self.decode(buf, i)
            if kind == "more":
                break
            if kind == "data":
                frame = value
            elif kind != "reply":
                bad += 1
        keep = len(buf) - i
        self.buf = buf[i:] if keep < 2 * self.frame_len else buf[-self.frame_len:]
        return frame, bad
