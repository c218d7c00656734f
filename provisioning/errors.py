"""One exception root for the host side, caught once by the CLI (CPython only)."""

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran, and what it checked failed (a message did not verify, a device failed)
EXIT_USAGE = 2  # usage or bad input: arguments, files, profiles, configs
EXIT_ENVIRONMENT = 3  # something outside us: a missing tool, a broker or target out of reach, permissions
EXIT_STATE = 4  # refused because of state: revoked device, identity conflict, registry inconsistency
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes:
  0    success
  1    the command ran and what it checked failed (e.g. a message did not verify)
  2    usage or bad input (arguments, files, board profiles, configs)
  3    environment (missing tool, unreachable broker or target, permissions)
  4    refused by state (revoked or disabled device, identity conflict)
  130  interrupted"""


class ProvisioningError(Exception):
    """An error for the user: one line saying what is wrong and what to do, plus an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(ProvisioningError):
    exit_code = EXIT_USAGE


class EnvironmentProblem(ProvisioningError):
    exit_code = EXIT_ENVIRONMENT


class StateError(ProvisioningError):
    exit_code = EXIT_STATE
