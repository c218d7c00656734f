"""The technician's tools: getting a device onto a pole (CPython only).

Used by a field technician (and the provisioning scripts that drive `civicmote --json`):
`targets` reaches a Linux device (a local folder, or a Raspberry Pi over ssh) and writes its
systemd unit; `serial_board` and `serial_target` reach a MicroPython board over USB through
its raw REPL (mpremote); `deploy` copies the compiled agent onto a board; `flash` writes
MicroPython firmware (esptool, UF2); `virtual_board` is a MicroPython interpreter behind a
pseudo-terminal that stands in for a board (`native_board` the same with a network);
`chip_server` serves a sim board's emulated chips from outside it; `label` draws the sign for
the pole. Field code may use the trust anchor (pki/) and the device side (device/), never the
city's data plane.
"""
