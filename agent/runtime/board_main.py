"""The agent's loop on a MicroPython board (portable): build it from flash and step it forever.

Flash layout (written by `civicmote provision --port`):
    /civicmote/             the device folder (agent.runtime.device): device.key, device.pem,
                            board.json, config.json, device.crt, ca.crt, privacy.ledger, seq, outbox/
    /civicmote/wifi.json    Wi-Fi credentials (read by boot code; never printed)

    run()                   what main.py calls: real clocks, the MQTT transport, forever
    run(windows=3, clock=SimClock(t0), transport=None)   what a test on a virtual board calls
"""
import json
import sys
import time

from agent import compat
from agent.runtime.agent import DEFAULT_PREFIX

DEVICE_DIR = "/civicmote"
CONFIG = "config.json"
WIFI = "wifi.json"
BOARD = "board.json"
BOARD_RECEIPT_S = 10
SIGN_TABLE = "p256.table"  # the signing table on flash (agent/crypto/table_file.py): public, rebuilt if damaged
# Modules only start-up needs (profile checks, sensor assembly, key file, identity, manifest,
# credentials, URL parsing). Once
# the agent is built nothing refers to them, so they are dropped for the collector (their
# interned names stay). Frozen firmware needs none of it.
BOOT_ONLY = ("agent.privacy.manifest", "agent.runtime.manifest_file",
             "agent.profile_check", "agent.sensors.assembly", "agent.sensors.catalog", "agent.crypto.table_file",
             "agent.runtime.device", "agent.store.identity", "agent.store.keyfile", "agent.net.tls_files",
             "agent.net.url")


def read_json(path):
    with open(path) as f:
        return json.load(f)


class SimClock:
    """A simulated clock for tests: every call advances step_s seconds. () -> (now_s, now_ms)."""

    def __init__(self, start_s, step_s=1):
        self.s = start_s
        self.ms = 0
        self.step_s = step_s

    def __call__(self):
        now = (self.s, self.ms)
        self.s += self.step_s
        self.ms += self.step_s * 1000
        return now


def real_clock():
    # Sensor periods and network deadlines compare plain integers: a tick that never wraps.
    return int(time.time()), compat.monotonic_ms()


def network_plan(device_dir, config):
    """(host, port, DER credentials or None) of the broker in config.json, or None if there is
    none: read at start-up, so the URL parser and the credential reader can be dropped after."""
    url = config.get("broker")
    if not url:
        return None
    from agent.net.url import parse_broker

    host, port, tls = parse_broker(url)
    creds = None
    if tls:
        from agent.net import tls_files

        creds = tls_files.load(device_dir, config.get("tls"))  # DER: what every MicroPython ssl parses
    return host, port, creds


def mqtt_transport(plan, config, dev):
    """Our MQTT client over the board's sockets (mutual TLS for mqtts://), or None if no broker."""
    if plan is None:
        return None
    from agent.net import socket_mpy
    from agent.net.mqtt_client import MQTTClient
    from agent.runtime.agent import topics

    host, port, creds = plan
    status = topics(config.get("topic_prefix", DEFAULT_PREFIX), config["district"], dev)[2]
    # 5 s per network wait: below the watchdog's 8 s (the longest an RP2040 allows).
    return MQTTClient(host, port, dev, socket_mpy.opener(creds), status_topic=status, timeout=5.0)


def build(device_dir=DEVICE_DIR, transport="auto", clock=real_clock, restart=None):
    """The Agent of this board. transport: "auto" (from config.json), None (offline) or an object.

    In two phases, for a small heap: first everything only start-up needs (the profile's
    checks, the signing table, the key, the manifest, the broker's URL and credentials), whose
    modules are then dropped, so that the agent is built in a heap they no longer cut up; then
    the agent, offline, and its network client. restart(): what an update calls once it is
    staged (machine.reset on a board; None: updates are not fetched)."""
    from agent.board import load_profile

    config = read_json(device_dir + "/" + CONFIG)
    board = load_profile(device_dir + "/" + BOARD)
    now_s, now_ms = clock()
    if compat.MICROPYTHON:
        sign_from_flash(device_dir + "/" + SIGN_TABLE)
    key, manifest = first_manifest(device_dir, board)
    plan = network_plan(device_dir, config) if transport == "auto" else None
    receipts = board_receipts(device_dir, plan, config)
    ota = board_updates(device_dir, plan, config, key, restart)
    forget(BOOT_ONLY)
    from agent.runtime.device import open_agent

    # The privacy ledger is opened by the agent only once the wall clock is valid (after NTP).
    agent = open_agent(device_dir, board, config["district"], now_s, now_ms, compat.urandom,
                       transport=None if transport == "auto" else transport,
                       prefix=config.get("topic_prefix", DEFAULT_PREFIX), log=lambda text: print("civicmote: " + text),
                       manifest=manifest, street=chip_bridge(config), key=key, receipts=receipts, ota=ota)
    forget(BOOT_ONLY)
    if transport == "auto":
        agent.transport = mqtt_transport(plan, config, config["device_id"])
    return agent


def board_receipts(device_dir, plan, config):
    """The city's receipts, checked against the CA certificate the board already holds for TLS
    (None without TLS). A board checks at most one receipt every BOARD_RECEIPT_S: a pure-Python
    signature check is its slowest step."""
    if plan is None or not plan[2]:
        return None
    from agent.runtime.receipts import open_receipts

    return open_receipts(device_dir, plan[2]["cadata"], config["device_id"], min_interval_s=BOARD_RECEIPT_S,
                         log=lambda text: print("civicmote: " + text))


def board_updates(device_dir, plan, config, key, restart):
    """The update fetcher (agent/ota/fetch.py) over the board's MQTT session, trusting the CA the
    board holds for TLS for orders and its `release_keys` for code; None without TLS or restart."""
    if plan is None or not plan[2] or restart is None:
        return None
    from agent.ota import board_slots

    return board_slots.open_fetcher(device_dir, plan[2]["cadata"], config, key, restart,
                                    log=lambda text: print("civicmote: " + text))


def chip_bridge(config):
    """The chip server's Bridge if config.json names one ("chips": "tcp://host:port"), else None
    (a sim board then emulates its chips in its own heap)."""
    url = config.get("chips")
    if not url:
        return None
    from agent.errors import ConfigError
    from agent.hal.bridge import Bridge

    host, _, port = url[len("tcp://"):].rpartition(":")
    if not url.startswith("tcp://") or not host or not port.isdigit():
        raise ConfigError("config.json: chips: %r is not tcp://HOST:PORT" % (url,))
    return Bridge(host, int(port))


def first_manifest(device_dir, board):
    """(signing key, (signed manifest, mh)) of this board (agent.runtime.manifest_file)."""
    from agent.core.identity import device_id
    from agent.runtime import manifest_file
    from agent.store import identity

    key = identity.load_key(device_dir)
    sw = manifest_file.FACTORY_SW
    if compat.file_exists(device_dir + "/ota/journal"):  # an update ran here: the journal names the running one
        from agent.ota.board_slots import running_sw

        sw = running_sw(device_dir)
    made = manifest_file.ensure(device_dir, board, key, device_id(key.public_key().to_sec1()), BOARD, sw)
    return key, made


def sign_from_flash(path):
    """Sign with the fixed-base table read from flash a row at a time (25.6 KB of heap saved on
    the 64-bit port); if it cannot be written (a full flash), the table is kept in RAM as before."""
    from agent.crypto import p256, table_file

    try:
        p256.use_table(table_file.open_table(path))
    except OSError as e:
        print("civicmote: signing table kept in RAM (%s: %s)" % (path, e))


def forget(names):
    """Drop modules from sys.modules and from their package, so the collector can free them."""
    import gc

    for name in names:
        sys.modules.pop(name, None)
        pkg, _, leaf = name.rpartition(".")
        parent = sys.modules.get(pkg)
        if parent is not None and leaf in parent.__dict__:
            delattr(parent, leaf)
    gc.collect()


def run(device_dir=DEVICE_DIR, transport="auto", clock=real_clock, windows=None, wdt=None, pause_ms=50,
        sleep=None, restart=None, builder=None, guard=None):
    """Step the agent until `windows` windows have closed (forever if None); returns the Agent.

    wdt: a machine.WDT (fed every step, so a hung step resets the board). sleep(ms) between
    steps: time.sleep_ms on a board; a test with a simulated clock passes lambda ms: None.
    restart: how an update restarts the board (None: no updates). builder: the build() of the
    version chosen at boot (default: this one); guard: its trial's guard (agent/ota/board_slots.py),
    which may roll it back and restart.
    """
    agent = (builder or build)(device_dir, transport, clock, restart)
    if sleep is None:
        sleep = time.sleep_ms if compat.MICROPYTHON else (lambda ms: time.sleep(ms / 1000))
    while windows is None or agent.closed < windows:
        now_s, now_ms = clock()
        agent.step(now_s, now_ms)
        if wdt is not None and agent.healthy():  # windows progress, or the agent said why not
            wdt.feed()
        if guard is not None and guard.guard(agent, now_ms // 1000):
            restart()
        sleep(pause_ms)
    return agent


# -- boot: what boards/<board>/main.py calls -------------------------------------------------

CRASH_LOG = "/crash.log"
CRASH_LOG_BYTES = 4096  # the newest crashes are kept; older text is cut from the front
WDT_MS = 8000


def log_crash(exc, path=CRASH_LOG, limit=CRASH_LOG_BYTES, now_s=None):
    """Append exc's traceback to the crash log on flash, keeping it under limit bytes."""
    import sys

    try:
        import io

        buf = io.StringIO()
        if compat.MICROPYTHON:
            sys.print_exception(exc, buf)
        else:
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__, file=buf)
        entry = ("--- %s\n%s" % (now_s if now_s is not None else int(time.time()), buf.getvalue())).encode()
        try:
            with open(path, "rb") as f:
                old = f.read()
        except OSError:
            old = b""
        data = (old + entry)[-limit:]
        compat.write_file_atomic(path, data)
    except Exception:  # noqa: BLE001 - the crash log must never be the next crash
        pass


MESSAGES_LOG = DEVICE_DIR + "/messages.log"
MESSAGES_BYTES = 2048  # the newest lines are kept


def note(text, path=MESSAGES_LOG, limit=MESSAGES_BYTES, now_s=None):
    """Print one line and keep it among the board's recent messages (`civicmote logs --port` reads them)."""
    line = "civicmote: " + text
    print(line)
    try:
        try:
            with open(path, "rb") as f:
                old = f.read()
        except OSError:
            old = b""
        entry = ("%s %s\n" % (now_s if now_s is not None else int(time.time()), line)).encode()
        compat.write_file_atomic(path, (old + entry)[-limit:])
    except Exception:  # noqa: BLE001 - a full flash must not stop the agent over a log line
        pass


def connect_wifi(device_dir=DEVICE_DIR, timeout_s=20):
    """Join the network in wifi.json ({"ssid", "password"}); True once connected. Never prints the password."""
    try:
        creds = read_json(device_dir + "/" + WIFI)
    except (OSError, ValueError):
        return False
    import network

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(creds["ssid"], creds.get("password", ""))
        t0 = time.ticks_ms()
        while not wlan.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < timeout_s * 1000:
            time.sleep_ms(200)
    return wlan.isconnected()


def sync_time(attempts=5):
    """Set the clock from NTP; True on success. Without it the agent closes no window."""
    try:
        import ntptime
    except ImportError:
        return False
    for _ in range(attempts):
        try:
            ntptime.settime()
            return True
        except Exception:  # noqa: BLE001 - OSError, timeouts: try again
            time.sleep_ms(1000)
    return False


def main(device_dir=DEVICE_DIR):
    """Start the agent the way a board does at power-on: Wi-Fi, NTP, watchdog, run forever.

    A crash is written to /crash.log and the board resets (the watchdog would anyway).
    """
    import machine

    note("wifi %s" % ("up" if connect_wifi(device_dir) else "DOWN (summaries wait in the outbox)"))
    note("clock %s" % ("synced" if sync_time() else "NOT synced (no window closes until it is)"))
    start(device_dir, machine.WDT(timeout=WDT_MS), machine.reset)


def start(device_dir=DEVICE_DIR, wdt=None, restart=None, windows=None):
    """Choose the version to run (agent/ota/board_slots.py: the journal, a trial, a roll back),
    then run it with this module's loop, this version's trial guard around it. A crash is logged
    and restarts the board (a trial counts its starts)."""
    from agent.ota import board_slots

    chosen = board_slots.boot(device_dir, log=note)
    try:
        builder = None
        if chosen.path is not None:  # the slot's modules, imported fresh from it
            from agent.runtime import board_main as chosen_main

            builder = chosen_main.build
        return run(device_dir, wdt=wdt, restart=restart, builder=builder, guard=chosen, windows=windows)
    except KeyboardInterrupt:
        raise  # a technician pressed Ctrl-C: leave them at the REPL (the watchdog still runs)
    except Exception as e:  # noqa: BLE001
        log_crash(e)
        note("crashed (%s); restarting, see /crash.log" % type(e).__name__)
        time.sleep(1)
        restart()
