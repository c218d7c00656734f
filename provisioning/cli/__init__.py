"""The `civicmote` command line: a table of commands, one error root, one exit-code policy (CPython only).

Every command follows parse -> settings -> action. A handler is `do_x(out, args)` and returns
an exit code; ProvisioningError (and the agent's own errors at the boundary) reach main() and
become one line on stderr with a documented exit code.

Used by technicians, city operators and provisioning scripts (`--json`). This package is the
top of the host side: one module per command group (`common` holds the table helpers,
`output` how commands speak), each a thin layer over the role packages (field/, pki/, city/,
web/, device/). Nothing below imports it.
"""
import argparse
import sys

from agent.errors import AgentError, ConfigError, DecodeError
from provisioning.errors import (EXIT_CODES_HELP, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_USAGE, EnvironmentProblem,
                                 ProvisioningError)
from provisioning.cli.output import Output

DESCRIPTION = """civicmote: a privacy-first agent for city sensors.
Devices aggregate at the edge, add noise to every count of people and sign every summary; this tool makes their
identities, runs the agent on Linux and verifies what devices publish."""


# The order of `civicmote --help`: a technician's path first, then the city side.
COMMANDS = ("device", "sensors", "manifest", "flash", "provision", "board", "batch", "label", "ca", "registry",
            "broker_config", "run", "collect", "web", "forward", "verify", "release", "rollout")


def _modules():
    return tuple(_command_module(name) for name in COMMANDS)


def _command_module(name):
    """One command module. A Linux device provisioned over ssh has only the standard library
    (docs/provisioning.md), so a command whose host-side packages are missing there (the city's
    `cryptography`, `flask`, ...) stays listed and says what it needs instead of taking the
    device's own commands (`device`, `run`) down with it. Our own import errors still raise."""
    from importlib import import_module

    try:
        return import_module("provisioning.cli." + name)
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        if not missing or missing in ("agent", "provisioning"):
            raise
        return _Unavailable(name.replace("_", "-"), missing)


class _Unavailable:
    """A stand-in for a command whose Python packages are not installed here."""

    def __init__(self, command, package):
        self.command = command
        self.package = package

    def register(self, sub, common):
        p = sub.add_parser(self.command, parents=[common], help="(not available here: needs %s)" % self.package,
                           add_help=False)
        p.set_defaults(handler=self.refuse, unavailable=True)

    def refuse(self, out, args):
        raise EnvironmentProblem("'%s' needs the Python package '%s', which is not installed here; it runs on the "
                                 "provisioning host or the city's servers (pip install civicmote there)"
                                 % (self.command, self.package))


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, the documented usage exit code, and where to look next.
        self.exit(EXIT_USAGE, "civicmote: error: %s (see '%s --help')\n" % (message, self.prog))


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts (stdout holds only JSON)")
    parser = _Parser(
        prog="civicmote",
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="civicmote " + _version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _modules():
        mod.register(sub, common)
    return parser


def _version():
    try:
        from importlib.metadata import version

        return version("civicmote")
    except Exception:
        return "unknown"


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "unavailable", False):  # an unavailable command takes any arguments
        parser.error("unrecognized arguments: %s" % " ".join(extra))
    out = Output(getattr(args, "json", False))
    handler = getattr(args, "handler", None)
    if handler is None:
        # A command group without its subcommand: show that group's help.
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(out, args) or 0
    except ProvisioningError as e:
        return _fail(out, str(e), e.exit_code, e)
    except (ConfigError, DecodeError) as e:
        return _fail(out, str(e), EXIT_USAGE, e)
    except AgentError as e:
        return _fail(out, str(e), 1, e)
    except KeyboardInterrupt as e:
        return _fail(out, "interrupted; re-run the same command to finish the job", EXIT_INTERRUPTED, e)
    except BrokenPipeError:
        return 0
    except OSError as e:  # e.g. damaged device state: one line naming the file, never a traceback
        return _fail(out, "%s: %s" % (e.filename or "a file", e.strerror or e), EXIT_ENVIRONMENT, e)


def _fail(out, message, code, exc):
    """One line on stderr; with --json also one failure object on stdout (docs/json.md), unless the
    command already ended its output with one (batch's summary)."""
    out.error(message)
    if out.json and not getattr(exc, "reported", False):
        try:
            out.record({"ok": False, "error": message, "exit_code": code})
        except (BrokenPipeError, OSError):
            pass
    return code
