"""One module per command group; each has register(subparsers, common) and do_x(out, args) handlers."""
import argparse

from provisioning.errors import EXIT_CODES_HELP


def add_command(sub, name, handler, common, help, description=None):
    p = sub.add_parser(
        name,
        parents=[common],
        help=help,
        description=description or help,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=handler)
    return p


def add_group(sub, name, help):
    p = sub.add_parser(name, help=help, description=help)
    p.set_defaults(handler=None, group_parser=p)
    return p.add_subparsers(dest=name + "_command", metavar="SUBCOMMAND", parser_class=type(p))
