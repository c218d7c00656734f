"""`civicmote manifest show`: what a device collects, in plain language (CPython only)."""
from pathlib import Path

from agent.privacy.manifest import board_manifest
from provisioning import files
from provisioning.language import catalogue, manifest_words
from provisioning.device import devicedir
from provisioning.cli.common import add_command, add_group


def register(sub, common):
    g = add_group(sub, "manifest", "a device's privacy manifest: what it measures and how it protects people")
    p = add_command(g, "show", do_show, common, "print the privacy manifest a board profile gives",
                    "Print the privacy manifest a device with this board profile publishes (signed, retained) "
                    "in plain language a resident can read; --json prints the manifest itself.")
    p.add_argument("--board", metavar="FILE", help="board profile (default: DIR/board.json with --device-dir)")
    p.add_argument("--device-dir", metavar="DIR", help="name the device (its device_id) in the manifest")
    p.add_argument("--lang", default="en", metavar="CODE|FILE",
                   help="language of the text: en or de, or a city's catalogue JSON file (see docs/web.md)")
    p.add_argument("--port", metavar="PORT", help="the manifest of the MicroPython board on this serial port, from the "
                   "profile and identity it holds (default without --board/--device-dir: the one USB board attached)")


def do_show(out, args):
    cat = catalogue.load(args.lang)  # a bad --lang is refused before a board is touched
    if args.port or not (args.board or args.device_dir):
        return _show_on_board(out, args, cat)
    dev = None
    board_path = args.board
    if args.device_dir:
        _, dev, _ = devicedir.load_identity(args.device_dir)
        board_path = board_path or Path(args.device_dir) / devicedir.BOARD_FILE
    if not board_path:
        from provisioning.errors import UsageError

        raise UsageError("give --board FILE (or --device-dir DIR of an initialised device)")
    board = files.load_board(board_path)
    m = board_manifest(board, dev)
    out.record(m, lambda _: manifest_words.describe(m, cat))
    return 0


def _show_on_board(out, args, cat):
    import json

    from agent.board import load_profile
    from provisioning.errors import UsageError
    from provisioning.field import board_tools

    session = board_tools.open_board(board_tools.find_port(args.port))
    try:
        raw, dev = board_tools.board_profile(session)
    finally:
        board_tools.restart(session)
        session.close()
    src = "%s:%s/board.json" % (session.port, board_tools.DEVICE_DIR)
    try:
        board = load_profile(json.loads(raw), source=src)
    except ValueError as e:
        raise UsageError("%s: %s" % (src, e))
    m = board_manifest(board, dev)
    out.record(m, lambda _: manifest_words.describe(m, cat))
    return 0
