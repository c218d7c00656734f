"""civicmote agent: everything that runs on a device (CPython or MicroPython)."""
