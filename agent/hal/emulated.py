"""Emulated buses: the bus interfaces over chip emulators, with faults to inject.

Faults every bus takes: unplug() / replug() (a replugged chip is in its reset state),
fail_next(n, errno) (the next n transactions raise OSError(errno): 5 EIO for a NACK,
110 ETIMEDOUT for a stretched clock).
"""
EIO = 5
ENODEV = 19
ETIMEDOUT = 110


class _Faults:
    def _init_faults(self):
        self.unplugged = False
        self._fail = 0
        self._errno = EIO
        self.transactions = 0

    def fail_next(self, n=1, errno=EIO):
        self._fail = n
        self._errno = errno

    def _check(self):
        self.transactions += 1
        if self._fail:
            self._fail -= 1
            raise OSError(self._errno)


class EmulatedI2C(_Faults):
    """An I2C bus with chips at addresses. Unplugging takes every chip off the bus."""

    def __init__(self, chips=None):
        self.chips = dict(chips or {})
        self.delayed_ms = 0
        self._init_faults()

    def attach(self, address, chip):
        self.chips[address] = chip

    def _chip(self, addr):
        self._check()
        c = None if self.unplugged else self.chips.get(addr)
        if c is None:
            raise OSError(ENODEV)  # no ACK for the address
        return c

    def readfrom_mem(self, addr, reg, n):
        return self._chip(addr).read_mem(reg, n)

    def writeto_mem(self, addr, reg, data):
        self._chip(addr).write_mem(reg, data)

    def readfrom(self, addr, n):
        return self._chip(addr).read(n)

    def writeto(self, addr, data):
        self._chip(addr).write(data)
        return len(data)

    def scan(self):
        return [] if self.unplugged else sorted(self.chips)

    def delay_ms(self, ms):
        self.delayed_ms += ms  # emulated time does not pass during a transaction

    def unplug(self):
        self.unplugged = True

    def replug(self):
        self.unplugged = False
        for c in self.chips.values():
            c.reset()


class EmulatedUART(_Faults):
    """A UART wired to a frame-stream emulator. Unplugged: silence, writes lost."""

    def __init__(self, chip):
        self.chip = chip
        self._init_faults()

    def any(self):
        self._check()
        return 0 if self.unplugged else self.chip.any()

    def read(self, n=-1):
        self._check()
        return None if self.unplugged else self.chip.read(n)

    def write(self, data):
        self._check()
        if not self.unplugged:
            self.chip.write(data)
        return len(data)

    def unplug(self):
        self.unplugged = True

    def replug(self):
        self.unplugged = False
        self.chip.awake = True  # power-on default: working, reporting actively
        self.chip.read(-1)


class EmulatedPin(_Faults):
    """A digital input with an edge counter. Unplugged: a floating line, no edges."""

    def __init__(self, edges):
        self.edges = edges
        self._init_faults()

    def take_count(self):
        self._check()
        n = self.edges.take_count()
        return 0 if self.unplugged else n

    def unplug(self):
        self.unplugged = True

    def replug(self):
        self.unplugged = False


class EmulatedSamples(_Faults):
    """A microphone (ADC or I2S). Unplugged: all-zero samples, as an I2S bus gives."""

    def __init__(self, source):
        self.source = source
        self.rate_hz = source.rate_hz
        self._init_faults()

    def readinto(self, buf):
        self._check()
        n = self.source.readinto(buf)
        if self.unplugged:
            for i in range(n):
                buf[i] = 0
        return n

    def unplug(self):
        self.unplugged = True

    def replug(self):
        self.unplugged = False


class EmulatedBle(_Faults):
    """A BLE scanner hearing emulated advertisements."""

    def __init__(self, adverts):
        self.adverts = adverts
        self._init_faults()

    def start(self):
        self._check()
        self.adverts.start()

    def drain(self, fn):
        self._check()
        return 0 if self.unplugged else self.adverts.drain(fn)

    def unplug(self):
        self.unplugged = True

    def replug(self):
        self.unplugged = False
