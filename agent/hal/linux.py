# CPython only: Linux backings (smbus2 for I2C, pyserial for UART, libgpiod or sysfs
# for pin edges, arecord for an ALSA microphone).
"""Linux buses for a Raspberry Pi; each matches the interface in agent.hal."""
import os
import subprocess
import threading
import time
from array import array


class I2C:
    """/dev/i2c-N through smbus2 (raises OSError on NACK, as machine.I2C does)."""

    def __init__(self, device="/dev/i2c-1"):
        import smbus2

        self._smbus2 = smbus2
        self._bus = smbus2.SMBus(device)

    def readfrom_mem(self, addr, reg, n):
        return bytes(self._bus.read_i2c_block_data(addr, reg, n))

    def writeto_mem(self, addr, reg, data):
        self._bus.write_i2c_block_data(addr, reg, list(data))

    def readfrom(self, addr, n):
        msg = self._smbus2.i2c_msg.read(addr, n)
        self._bus.i2c_rdwr(msg)
        return bytes(msg)

    def writeto(self, addr, data):
        self._bus.i2c_rdwr(self._smbus2.i2c_msg.write(addr, bytes(data)))
        return len(data)

    def delay_ms(self, ms):
        time.sleep(ms / 1000)

    def close(self):
        self._bus.close()


class UART:
    """A serial port through pyserial, non-blocking (timeout 0)."""

    def __init__(self, device="/dev/serial0", baud=9600):
        import serial

        self._port = serial.Serial(device, baudrate=baud, timeout=0)

    def any(self):
        return self._port.in_waiting

    def read(self, n=-1):
        data = self._port.read(n if n >= 0 else self._port.in_waiting)
        return data or None

    def write(self, data):
        return self._port.write(bytes(data))

    def close(self):
        self._port.close()


class EdgeCounter:
    """Rising edges on a GPIO line: libgpiod (python3-libgpiod v2) if present, else sysfs.

    A thread waits for edge events and counts them; take_count() swaps the count out.
    """

    def __init__(self, line, chip="/dev/gpiochip0", debounce_ms=0):
        self._count = 0
        self._lock = threading.Lock()
        self._debounce = debounce_ms / 1000
        self._last = 0.0
        self._stop = False
        try:
            import gpiod

            from gpiod.line import Edge

            self._req = gpiod.request_lines(
                chip, consumer="civicmote", config={line: gpiod.LineSettings(edge_detection=Edge.RISING)}
            )
            target = self._gpiod_loop
        except ImportError:
            self._req = None
            self._sysfs_setup(line)
            target = self._sysfs_loop
        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def _tick(self):
        now = time.monotonic()
        with self._lock:
            if not self._debounce or now - self._last >= self._debounce:
                self._count += 1
                self._last = now

    def _gpiod_loop(self):
        while not self._stop:
            if self._req.wait_edge_events(1.0):
                for _ in self._req.read_edge_events():
                    self._tick()

    def _sysfs_setup(self, line):
        base = "/sys/class/gpio/gpio%d" % line
        if not os.path.exists(base):
            with open("/sys/class/gpio/export", "w") as f:
                f.write(str(line))
        with open(base + "/direction", "w") as f:
            f.write("in")
        with open(base + "/edge", "w") as f:
            f.write("rising")
        self._value = open(base + "/value", "rb")

    def _sysfs_loop(self):
        import select

        p = select.poll()
        p.register(self._value, select.POLLPRI | select.POLLERR)
        self._value.read()
        while not self._stop:
            if p.poll(1000):
                self._value.seek(0)
                self._value.read()
                self._tick()

    def take_count(self):
        with self._lock:
            n, self._count = self._count, 0
        return n

    def close(self):
        self._stop = True


class AlsaMic:
    """A microphone through ALSA's arecord (S16_LE mono raw); no extra Python packages."""

    def __init__(self, device="default", rate_hz=16000):
        self.rate_hz = rate_hz
        cmd = ["arecord", "-q", "-D", device, "-f", "S16_LE", "-c", "1", "-r", str(rate_hz), "-t", "raw"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def readinto(self, buf):
        want = 2 * len(buf)
        data = self._proc.stdout.read(want)
        if not data or len(data) < want:
            raise OSError(5, "arecord stopped")
        buf[:] = array("h", data)  # little-endian host (ARM, x86)
        return len(buf)

    def close(self):
        self._proc.terminate()
