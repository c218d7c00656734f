"""MicroPython backings: thin wrappers over machine.I2C/UART/Pin/ADC/I2S and bluetooth.

Imported only on MicroPython boards (agent.board.open_sensors with backing "machine").
"""
import time

import machine


class I2C:
    def __init__(self, bus_id, sda, scl, freq=100000):
        self._i2c = machine.I2C(bus_id, sda=machine.Pin(sda), scl=machine.Pin(scl), freq=freq)
        self.readfrom_mem = self._i2c.readfrom_mem
        self.writeto_mem = self._i2c.writeto_mem
        self.readfrom = self._i2c.readfrom
        self.writeto = self._i2c.writeto
        self.scan = self._i2c.scan

    def delay_ms(self, ms):
        time.sleep_ms(ms)


def UART(bus_id, tx, rx, baud=9600):
    """machine.UART already has any(), read(n), write(b); timeout 0 so reads never block."""
    return machine.UART(bus_id, baudrate=baud, tx=machine.Pin(tx), rx=machine.Pin(rx), timeout=0, rxbuf=512)


class EdgeCounter:
    """Counts rising edges in an IRQ; edges closer than debounce_ms count once."""

    def __init__(self, pin, pull="down", debounce_ms=0):
        p = {"down": machine.Pin.PULL_DOWN, "up": machine.Pin.PULL_UP}.get(pull)
        self._pin = machine.Pin(pin, machine.Pin.IN, p)
        self._debounce = debounce_ms
        self._count = 0
        self._last = time.ticks_ms()
        self._pin.irq(self._irq, machine.Pin.IRQ_RISING)

    def _irq(self, _pin):
        now = time.ticks_ms()  # no allocation: small ints only
        if self._debounce and time.ticks_diff(now, self._last) < self._debounce:
            return
        self._last = now
        self._count += 1

    def take_count(self):
        state = machine.disable_irq()
        n = self._count
        self._count = 0
        machine.enable_irq(state)
        return n


class I2SMic:
    """A mono 16-bit I2S MEMS microphone (INMP441, SPH0645...)."""

    def __init__(self, bus_id, sck, ws, sd, rate_hz=16000, ibuf=8192):
        self.rate_hz = rate_hz
        self._i2s = machine.I2S(
            bus_id, sck=machine.Pin(sck), ws=machine.Pin(ws), sd=machine.Pin(sd),
            mode=machine.I2S.RX, bits=16, format=machine.I2S.MONO, rate=rate_hz, ibuf=ibuf,
        )  # fmt: skip

    def readinto(self, buf):
        return self._i2s.readinto(buf) // 2


class AdcMic:
    """An analogue microphone module on an ADC pin, sampled in a timed loop.

    Python-speed sampling: rate_hz is a target (a few kHz at most); fine for a level.
    """

    def __init__(self, pin, rate_hz=4000):
        self.rate_hz = rate_hz
        self._adc = machine.ADC(machine.Pin(pin))
        self._period_us = 1000000 // rate_hz

    def readinto(self, buf):
        read = self._adc.read_u16
        step = self._period_us
        t = time.ticks_us()
        for i in range(len(buf)):
            buf[i] = (read() >> 1) - 16384  # centre 0..65535 into int16
            t = time.ticks_add(t, step)
            while time.ticks_diff(t, time.ticks_us()) > 0:
                pass
        return len(buf)


class BleScanner:
    """Passive BLE scan; the IRQ copies addresses into a fixed ring of slots (no lists)."""

    def __init__(self, slots=64, interval_us=320000, window_us=80000):
        import bluetooth

        self._ble = bluetooth.BLE()
        self._ring = bytearray(6 * slots)
        self._slots = slots
        self._head = 0
        self._n = 0
        self._interval = interval_us
        self._window = window_us
        self._addr = bytearray(6)
        self.overflow = 0

    def start(self):
        self._ble.active(True)
        self._ble.irq(self._irq)
        self._ble.gap_scan(0, self._interval, self._window)

    def _irq(self, event, data):
        if event == 5:  # _IRQ_SCAN_RESULT: (addr_type, addr, adv_type, rssi, adv_data)
            if self._n == self._slots:
                self.overflow += 1
                return
            i = ((self._head + self._n) % self._slots) * 6
            self._ring[i : i + 6] = data[1]
            self._n += 1
        elif event == 6:  # _IRQ_SCAN_DONE: keep scanning
            self._ble.gap_scan(0, self._interval, self._window)

    def drain(self, fn):
        n = 0
        while self._n:
            state = machine.disable_irq()
            i = self._head * 6
            self._addr[:] = self._ring[i : i + 6]
            self._ring[i : i + 6] = b"\x00\x00\x00\x00\x00\x00"
            self._head = (self._head + 1) % self._slots
            self._n -= 1
            machine.enable_irq(state)
            fn(self._addr)
            n += 1
        return n
