"""Files the host tools read and write: JSON and board profiles, with errors that name the file (CPython only).

Shared by every role (field, PKI, city, device side); it imports nothing above provisioning.errors.
"""
import json

from provisioning.errors import EnvironmentProblem, UsageError


def read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError("%s: no such file (%s)" % (path, what))
    except json.JSONDecodeError as e:
        raise UsageError("%s: not valid JSON (line %d: %s)" % (path, e.lineno, e.msg))
    except OSError as e:
        raise EnvironmentProblem("%s: cannot read (%s)" % (path, e.strerror))


def load_board(path):
    """Read and validate a board profile; errors name the file and the field."""
    from agent import board as boards

    try:
        return boards.load_profile(str(path))
    except (OSError, ValueError) as e:
        raise UsageError("%s: %s" % (path, e))
