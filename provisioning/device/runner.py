"""Run the agent on CPython: real or simulated clock, the transport of device/link.py, --out files (CPython only).

The loop is the portable Agent's: this module only supplies the clocks, the transport, the
systemd watchdog and the sleeping. With --fast a simulated wall clock advances one second per
step, as fast as the work allows, while network deadlines keep using real monotonic time.
"""
import json
import os
import signal
import time
from pathlib import Path

from agent import compat
from agent.runtime import device
from agent.runtime.systemd import Watchdog


def file_sink(out_dir):
    """sink(name, message): write {seq}.cose and manifest.cose into out_dir, atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def sink(name, msg):
        compat.write_file_atomic(str(out / ("%s.cose" % name)), msg)

    return sink


def make_transport(device_dir, dev, broker, status_topic):
    """The device's transport (paho-mqtt if installed, else our own client on the standard library)."""
    from provisioning.device import link

    return link.open_transport(device_dir, read_config(device_dir), dev, broker, status_topic)


def read_config(device_dir):
    p = Path(device_dir) / "config.json"
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except ValueError:
        from provisioning.errors import UsageError

        raise UsageError("%s: not valid JSON; re-run civicmote provision" % p)


class Runner:
    def __init__(self, agent, fast=False, windows=None, on_summary=None, watchdog=None, drain_s=30.0, clock=None,
                 sleep=time.sleep):
        """clock() -> (wall Unix s, monotonic ms): the seam where tests step the wall clock."""
        self.agent = agent
        self.clock = clock or (lambda: (int(time.time()), compat.monotonic_ms()))
        self.sleep = sleep
        self.fast = fast
        self.windows = windows
        self.on_summary = on_summary
        self.watchdog = watchdog or Watchdog()
        self.drain_s = drain_s
        self.stopping = False

    def request_stop(self, *_):
        self.stopping = True

    def run(self, start_s=None):
        """Step until --windows closed (then drain the outbox to the broker) or a stop is asked."""
        ag = self.agent
        sim_s = start_s if start_s is not None else int(time.time())
        self.watchdog.ready()
        try:
            while not self.stopping:
                if self.fast:
                    now_s = sim_s
                    sim_s += 1
                    seq = ag.step(now_s, now_s * 1000, time.monotonic())
                else:  # wall and monotonic clocks apart, so the agent can tell when the wall clock steps
                    now_s, mono_ms = self.clock()
                    seq = ag.step(now_s, mono_ms, time.monotonic())
                if seq is not None and self.on_summary:
                    self.on_summary(seq)
                if self.windows is not None and ag.closed >= self.windows:
                    break
                if ag.healthy():  # windows progress, or the agent said why not: else systemd restarts it
                    self.watchdog.feed()
                if not self.fast:  # once a second; while an update downloads, as fast as its blocks come
                    self.sleep(0.05 if downloading(ag) else max(0.05, 1.0 - (time.time() % 1.0)))
            self.drain()
        finally:
            self.watchdog.stopping()
            if ag.transport is not None:
                ag.transport.close()
            ag.sensors.close()

    def drain(self):
        """Give queued summaries up to drain_s seconds to reach the broker before stopping."""
        ag = self.agent
        if ag.transport is None:
            return
        deadline = time.monotonic() + self.drain_s
        while ag.outbox.depth and time.monotonic() < deadline and not self.stopping:
            ag.flush(time.monotonic())
            time.sleep(0.01)


def downloading(agent):
    """True while the agent's update fetcher (agent/ota/fetch.py) has a download in progress."""
    part = getattr(getattr(agent, "ota", None), "part", None)
    return part is not None and not part.done


def install_signal_handlers(runner):
    signal.signal(signal.SIGTERM, runner.request_stop)
    signal.signal(signal.SIGINT, runner.request_stop)


def open_agent(device_dir, board, district, broker, prefix, out_dir, now_s):
    from agent.core.identity import device_id
    from agent.runtime.agent import topics
    from agent.store import identity

    key = identity.load_key(device_dir)
    dev = device_id(key.public_key().to_sec1())
    transport = None
    if broker is not None:
        transport = make_transport(device_dir, dev, broker, topics(prefix, district, dev)[2])
    sink = file_sink(out_dir) if out_dir else None
    # Emulated streets differ from device to device (a seed from the device_id), like real ones.
    seed = int.from_bytes(dev.encode()[-4:], "big")
    ota = pi_updates(device_dir, dev, district, key, broker, prefix)
    manifest = None
    if ota is not None:  # the manifest names the release this process runs (on trial too)
        from agent.runtime import manifest_file
        from provisioning.device.pi_agent import running_sw

        manifest = manifest_file.ensure(device_dir, board, key, dev, "board.json", running_sw())
    return device.open_agent(device_dir, board, district, now_s, now_s * 1000, compat.urandom,
                             transport=transport, sink=sink, prefix=prefix, seed=seed, log=log_line,
                             receipts=device_receipts(device_dir, dev, broker), ota=ota, manifest=manifest, key=key)


def pi_updates(device_dir, dev, district, key, broker, prefix):
    """The update fetcher when this agent runs from a Pi's install root and talks TLS to its broker
    (provisioning/device/pi_agent.py; the root updater installs what it stages), else None."""
    if broker is None or not broker[2]:
        return None
    from provisioning.device import pi_agent

    if pi_agent.install_root() is None:
        return None
    from agent.net.tls_files import der
    from provisioning.device import link

    try:
        ca = der(Path(link.tls_files(device_dir, read_config(device_dir))["cafile"]).read_bytes())
        return pi_agent.open_fetcher(device_dir, dev, district, key, ca, prefix, log=log_line)
    except Exception as e:  # noqa: BLE001 - updates off, sensing on: said once in the journal
        log_line("updates are off: %s" % e)
        return None


def device_receipts(device_dir, dev, broker):
    """The device's Receipts when it talks TLS to a broker (its CA certifies the collector's key)."""
    if broker is None or not broker[2]:
        return None
    from agent.net.tls_files import der
    from agent.runtime.receipts import open_receipts
    from provisioning.device import link

    try:
        ca = der(Path(link.tls_files(device_dir, read_config(device_dir))["cafile"]).read_bytes())
        return open_receipts(device_dir, ca, dev, log=log_line)
    except Exception:  # noqa: BLE001 - no usable CA: the transport says why; PUBACKs retire summaries
        return None


def log_line(text):
    """The agent's log: one line on stderr (the journal under systemd; stdout stays for --json)."""
    import sys

    print("civicmote: " + text, file=sys.stderr, flush=True)
