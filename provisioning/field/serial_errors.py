"""What can go wrong with a board on a serial port, as errors a technician can act on (CPython only).

Split from serial_board.py: the port-level failures (busy, no permission, unplugged) and the
board-level ones (a traceback, a full filesystem, not MicroPython at all), shared by the board
session, deploy and flash.
"""
from provisioning.errors import EXIT_ENVIRONMENT, EnvironmentProblem, ProvisioningError


class BoardError(ProvisioningError):
    """The board answered with a traceback; `text` holds it, the message its last line."""

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, message, text="", exit_code=None):
        super().__init__(message, exit_code)
        self.text = text


class NoSpace(EnvironmentProblem):
    """The board's filesystem is full."""


class NotMicroPython(EnvironmentProblem):
    """Something answers on the port, but it is not a MicroPython REPL."""


def open_serial_error(port, e):
    """A clear error for a port that cannot be opened (busy, no permission, missing)."""
    text = str(e)
    errno_ = getattr(e, "errno", None)
    if errno_ == 13 or "Permission denied" in text:
        return EnvironmentProblem("%s: permission denied; add yourself to the 'dialout' group (sudo usermod -aG "
                                  "dialout $USER), log out and in, then re-run" % port)
    if errno_ == 2 or "No such file" in text:  # before "busy": esptool says "busy or doesn't exist" for both
        return EnvironmentProblem("%s: no such port; is the board plugged in? (ls /dev/ttyUSB* /dev/ttyACM*)" % port)
    if errno_ == 11 or "Resource temporarily unavailable" in text or "busy" in text.lower() or "lock" in text.lower():
        return EnvironmentProblem("%s: the port is busy (another program has it open: a serial monitor, "
                                  "mpremote, Thonny?); close it and re-run" % port)
    if "could not open port" in text:
        return EnvironmentProblem("%s: no such port; is the board plugged in? (ls /dev/ttyUSB* /dev/ttyACM*)" % port)
    return EnvironmentProblem("%s: cannot open the port (%s)" % (port, text))
