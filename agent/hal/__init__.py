"""Buses: small interfaces, three backings (emulated, MicroPython `machine`, Linux).

A bus is any object with these methods (names follow MicroPython's `machine` API):

- I2C:  readfrom_mem(addr, reg, n) -> bytes, writeto_mem(addr, reg, data),
        readfrom(addr, n) -> bytes, writeto(addr, data), delay_ms(ms)
- UART: read(n) -> bytes or None, write(data) -> int, any() -> int
- Pin (edge counter): take_count() -> rising edges since the last call
- Samples (ADC or I2S microphone): readinto(array('h')) -> number of samples,
        `rate_hz` attribute
- BLE scanner: drain(fn) -> calls fn(addr) for each advertisement heard since the
        last drain (addr is a reused 6-byte buffer: hash it, never keep it); returns
        the number of advertisements

Errors are OSError (NACK, EIO, ETIMEDOUT), as on MicroPython. Drivers never create
a bus; agent.board.open_sensors does, from a board profile.
"""
