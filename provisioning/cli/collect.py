"""`civicmote collect`: subscribe to devices' summaries and manifests, verify, store, report gaps."""
import signal
import sqlite3
import time
from pathlib import Path

from provisioning import broker_url
from provisioning.device import devicedir
from provisioning.city import store_pg
from provisioning.city.collector import DEFAULT_PREFIX, Collector
from provisioning.city.intake import DEFAULT_BATCH, DEFAULT_LINGER_MS, Intake, inflight_for
from provisioning.cli.common import add_command
from provisioning.errors import EXIT_FAILED, EnvironmentProblem, UsageError
from provisioning.city.verifier import KeyRing

DEFAULT_CLIENT_ID = "civicmote-collector"
EXIT_HELP = """collect stops on --count, --duration, --idle, SIGTERM or Ctrl-C and then exits:
  0    stopped as asked (a signal, or --count reached)
  1    --duration or --idle stopped it before --count summaries arrived
  2    usage or bad input (arguments, registry export, device folders, store file)
  3    the broker could not be reached within --connect-timeout, or the store cannot be written"""


def register(sub, common):
    p = add_command(sub, "collect", do_collect, common,
                    "subscribe to devices' summaries and manifests: verify, store, de-duplicate, report gaps",
                    "Subscribe (QoS 1, persistent session) to PREFIX/+/+/summary, PREFIX/+/+/manifest and "
                    "PREFIX/+/+/status (kept as the device's online/offline for civicmote web), verify every "
                    "message against the registry export or the device folders, store accepted "
                    "summaries and rejected messages with their reasons in SQLite (--store), drop duplicates by "
                    "(device, seq), also across restarts, and report gaps: summaries a device dropped and "
                    "announced, seqs skipped at a reboot, and seqs missing. One line per event (JSON lines "
                    "with --json). A message signed by a device the registry does not know yet is held and "
                    "judged when the registry export (--registry, re-read whenever it changes) lists it; a "
                    "message that fails a check is acknowledged, stored as rejected with its reason, and "
                    "never stops the collector.\n\n" + EXIT_HELP)
    p.add_argument("--broker", required=True, metavar="URL", help="mqtt://HOST:PORT or mqtts://HOST:PORT, or a "
                   "RabbitMQ cluster: amqps://HOST:PORT[,HOST:PORT...] (its nodes; collectors share its queue)")
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument("--registry", metavar="FILE", help="registry export (civicmote registry export --json)")
    keys.add_argument("--device-dir", metavar="DIR", nargs="+", action="extend",
                      help="trust these (simulated) devices' public keys instead of a registry")
    p.add_argument("--store", metavar="FILE|URL", help="SQLite store file, or a postgresql://USER@HOST/DB URL "
                   "(several collectors may share one; default: in memory, forgotten at exit)")
    p.add_argument("--share", metavar="GROUP", help="one of N collectors sharing the stream: subscribe through the "
                   "MQTT shared subscription $share/GROUP/..., so the broker gives each message to one of the "
                   "group; give each its own --client-id and the same --store")
    p.add_argument("--tls-ca", metavar="FILE", help="CA that signed the broker's certificate (mqtts)")
    p.add_argument("--tls-cert", metavar="FILE", help="the collector's client certificate (e.g. collector.crt "
                   "from civicmote broker-config)")
    p.add_argument("--tls-key", metavar="FILE", help="its private key (collector.key)")
    p.add_argument("--receipt-cert", metavar="FILE", help="sign receipts to devices with this certificate of the "
                   "collector's key from the provisioning CA (collector.receipt from civicmote broker-config): each "
                   "device then gets, on PREFIX/{district}/{device_id}/receipt, 'stored up to seq N' and keeps its "
                   "summaries until then (docs/wire-format.md, Receipts)")
    p.add_argument("--receipt-key", metavar="FILE", help="the key that certificate names (default: --tls-key)")
    p.add_argument("--receipt-interval", type=float, default=5.0, metavar="S",
                   help="at most one receipt per device every S seconds (default 5)")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, metavar="P", help="topic prefix (default %s)" % DEFAULT_PREFIX)
    p.add_argument("--client-id", metavar="ID",
                   help="MQTT client id; the broker queues what arrives while a collector of this id is away. "
                   "Default: %s-<hash of the --store path>, stable for a store and different for another one, "
                   "so a second collector on another store never knocks this one off" % DEFAULT_CLIENT_ID)
    p.add_argument("--count", type=int, metavar="N", help="stop after N new summaries were accepted")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--idle", type=float, metavar="S", help="stop after S seconds without a message")
    p.add_argument("--max-ahead", type=float, default=3600.0, metavar="S",
                   help="reject a summary whose window ends more than S seconds after it arrives (default 3600; "
                   "0 turns the check off, for devices on a simulated clock: civicmote run --fast)")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                   help="give up (exit 3) if the broker has not let us in after S seconds (default 10)")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="N",
                   help="group commit: store up to N messages in one transaction, and acknowledge each to the "
                   "broker only after its transaction committed (default %d)" % DEFAULT_BATCH)
    p.add_argument("--batch-ms", type=float, default=DEFAULT_LINGER_MS, metavar="T",
                   help="wait at most T milliseconds for a batch to fill; what has arrived is taken at once "
                   "(default %g)" % DEFAULT_LINGER_MS)
    p.add_argument("--keepalive", type=int, default=30, metavar="S",
                   help="MQTT keepalive in seconds (default 30); the session's network runs in its own thread, "
                   "so a slow store never delays it")


def receipt_signer(args):
    """(key, certificate, collector id) for receipts, or None when --receipt-cert is not given."""
    if not args.receipt_cert:
        if args.receipt_key:
            raise UsageError("--receipt-key goes with --receipt-cert")
        return None
    if args.receipt_interval <= 0:
        raise UsageError("--receipt-interval must be positive")
    key = args.receipt_key or args.tls_key
    if not key:
        raise UsageError("--receipt-cert needs the key it certifies: --receipt-key FILE (or --tls-key)")
    from provisioning.city.receipts import load_signer

    return load_signer(key, args.receipt_cert)


def client_id_for(store):
    """The default client id: bound to the store's path (a session's queue belongs to one store)."""
    import hashlib
    import os

    if not store:
        return "%s-mem-%s" % (DEFAULT_CLIENT_ID, os.urandom(4).hex())
    return "%s-%s" % (DEFAULT_CLIENT_ID, hashlib.sha256(os.path.abspath(store).encode()).hexdigest()[:10])


def keyring_from_args(args):
    ring = KeyRing()
    if args.registry:
        from provisioning.pki.registry_export import load_export

        return load_export(args.registry, ring)
    for d in args.device_dir:
        record = devicedir.read_device(d)
        pub = record.get("public_key")
        try:
            sec1 = bytes.fromhex(pub) if pub else devicedir.load_identity(d)[2]
            dev = ring.add_public_key(sec1)
        except ValueError:
            raise UsageError("%s/device.json: public_key is not hex; re-run civicmote device init" % d)
        if record.get("device_id") not in (None, dev):
            raise UsageError("%s/device.json: device_id %s does not match its public key (%s)"
                             % (d, record.get("device_id"), dev))
    return ring


def tls_from_args(args, use_tls):
    files = {"cafile": args.tls_ca, "certfile": args.tls_cert, "keyfile": args.tls_key}
    given = [k for k, v in files.items() if v]
    if not use_tls:
        if given:
            raise UsageError("--tls-ca/--tls-cert/--tls-key need an mqtts:// broker URL")
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    for k in given:
        if not Path(files[k]).is_file():
            raise UsageError("%s: no such file (--%s)" % (files[k], {"cafile": "tls-ca", "certfile": "tls-cert",
                                                                      "keyfile": "tls-key"}[k]))
    return files


def _human(ev):
    k = ev["event"]
    dev = ev.get("device_id") or "-"
    if k == "summary":
        return "summary    %s seq %-5d %s UTC +%ds %4d bytes %2d metrics%s%s" % (
            dev, ev["seq"], time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ev["t0"])), ev["t1"] - ev["t0"],
            ev["bytes"], len(ev["m"]),
            {True: "", False: "  (manifest hash differs!)", None: "  (no manifest yet)"}[ev["mh_ok"]],
            "  (late)" if ev["late"] else "")
    if k == "gap":
        return "gap        %s seq %d..%d: %d %s" % (dev, ev["first"], ev["last"], ev["count"], {
            "dropped-on-device": "dropped on the device (outbox full), as it announced",
            "skipped-at-reboot": "never used (numbers skipped at a reboot)",
            "missing": "missing"}.get(ev["cause"], ev["cause"]))
    if k == "duplicate":
        return "duplicate  %s seq %d%s" % (dev, ev["seq"], "  (CONFLICT: differs from the stored one)"
                                           if ev["conflict"] else " (already stored, ignored)")
    if k == "manifest":
        names = [m.get("name") for m in ev["manifest"].get("metrics", []) if isinstance(m, dict)]
        return "manifest   %s %s %d metrics (mh %s)%s" % (dev, ev["manifest"].get("board", "?"), len(names),
                                                         ev["mh"], "" if ev["new"] else " again")
    if k == "rejected":
        return "rejected   %s on %s: %s" % (dev, ev["topic"], ev["reason"])
    if k == "held":
        return "held       %s on %s: %s" % (dev, ev["topic"], ev["reason"])
    if k == "status":
        return "status     %s %s" % (dev, ev["status"])
    return str(ev)


class _RegistryWatch:
    """Re-reads the registry export when its file changes (checked at most every `every` seconds)."""

    def __init__(self, path, every=2.0):
        self.path = path
        self.every = every
        self.next_at = 0.0
        self.seen = self._stamp()

    def _stamp(self):
        import os

        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self, now):
        if now < self.next_at:
            return False
        self.next_at = now + self.every
        stamp = self._stamp()
        if stamp is None or stamp == self.seen:
            return False
        self.seen = stamp
        return True


class _Stop:
    def __init__(self):
        self.reason = None

    def __call__(self, *_):
        self.reason = "signal"


def parse_amqps(url):
    """[(host, port)] of amqps://HOST:PORT[,HOST:PORT...]."""
    nodes = []
    for part in url[len("amqps://"):].rstrip("/").split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError("--broker %s: expected amqps://HOST:PORT[,HOST:PORT...]" % url)
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def do_collect(out, args):
    amqp_nodes = parse_amqps(args.broker) if args.broker.startswith("amqps://") else None
    if amqp_nodes:
        host, port, use_tls = amqp_nodes[0][0], amqp_nodes[0][1], True
        if args.share:
            raise UsageError("--share is for MQTT brokers; collectors on amqps:// already share its queue")
    else:
        host, port, use_tls = broker_url.parse(args.broker)
    for name in ("count", "duration", "idle", "connect_timeout", "batch", "keepalive"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise UsageError("--%s must be positive" % name.replace("_", "-"))
    if args.batch_ms < 0:
        raise UsageError("--batch-ms must be 0 (take only what has arrived) or positive")
    if args.share is not None and (not args.share or any(ch in args.share for ch in "/+#")):
        raise UsageError("--share %r: a group name has no '/', '+' or '#'" % args.share)
    if args.share and not args.client_id:  # the default is one per store, and they all share one
        raise UsageError("--share needs a --client-id of this collector's own (e.g. %s-1), kept across restarts"
                         % DEFAULT_CLIENT_ID)
    tls = tls_from_args(args, use_tls)
    if amqp_nodes and not (tls.get("certfile") and tls.get("cafile")):
        raise UsageError("an amqps:// broker needs --tls-ca, --tls-cert and --tls-key (the collector's identity)")
    ring = keyring_from_args(args)
    if not args.client_id:
        args.client_id = client_id_for(args.store)
    if args.max_ahead < 0:
        raise UsageError("--max-ahead must be 0 (off) or positive")
    signer = receipt_signer(args)
    collector = Collector(ring, args.store, prefix=args.prefix, max_ahead=args.max_ahead or None)
    stop = _Stop()
    tally = {"accepted": 0, "duplicates": 0, "rejected": 0, "held": 0, "gaps": 0}
    clock = {"last": time.monotonic()}

    def report(events):
        for ev in events:
            key = {"summary": "accepted", "duplicate": "duplicates", "rejected": "rejected", "held": "held",
                   "gap": "gaps"}.get(ev["event"])
            if key:
                tally[key] += 1
            out.record(ev, _human)
        if args.count and tally["accepted"] >= args.count:
            stop.reason = "count"

    watch = _RegistryWatch(args.registry) if args.registry else None

    def reload_registry():
        from provisioning.pki.registry_export import load_export

        try:
            ring = load_export(args.registry, KeyRing())
        except UsageError as e:
            out.note("registry export not reloaded, keeping the previous one: %s" % e)
            return
        out.note("registry export reloaded: %d device keys" % len(ring.keys))
        report(collector.update_keyring(ring))

    report(collector.update_keyring(ring))  # what an earlier run held for devices known now

    from provisioning.city.subscription import Subscription

    topics = ["%s/+/+/%s" % (args.prefix, k) for k in ("summary", "manifest", "status")]
    if args.share:
        topics = ["$share/%s/%s" % (args.share, t) for t in topics]
    if amqp_nodes:
        from provisioning.city.amqp_subscription import AmqpSubscription

        sub = AmqpSubscription(amqp_nodes, tls, prefix=args.prefix, prefetch=inflight_for(args.batch))
    else:
        sub = Subscription(host, port, args.client_id, topics, tls=tls, keepalive=args.keepalive,
                           persistent=bool(args.store), inflight=inflight_for(args.batch))
    intake = Intake(sub, collector, args.batch, args.batch_ms / 1000.0)
    issuer = None
    if signer is not None:  # receipts (issue 25): told of every commit, published by the network thread
        from provisioning.city.collector import committed_seqs
        from provisioning.city.receipts import ReceiptIssuer

        issuer = ReceiptIssuer(collector.store, signer[0], signer[1],
                               lambda topic, payload: sub.publish(topic, payload, qos=1, retain=True), signer[2],
                               prefix=args.prefix, interval=args.receipt_interval)
        collector.on_committed.append(lambda events: issuer.committed(committed_seqs(events)))
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, stop)
        except ValueError:  # not the main thread (tests drive main() from a thread)
            pass
    out.say("collecting %s from %s as %s (trusting %d device keys), store %s" % (
        ", ".join(topics), args.broker, args.client_id, len(ring.keys),
        store_pg.redact(args.store) if args.store else "in memory"))
    start = time.monotonic()
    try:
        while stop.reason is None:
            seen = intake.messages
            news, events = intake.step(wait=0.1)
            if intake.messages != seen:
                clock["last"] = time.monotonic()
            for ev in news:  # first: a resumed session's backlog comes with its connection
                if ev[0] == "connected":
                    out.note("connected to %s (session %s)" % (args.broker, "resumed" if ev[1] else "new"))
                else:
                    out.note("broker: %s" % ev[1])
            report(events)
            if stop.reason is not None:
                break
            now = time.monotonic()
            if issuer is not None:
                issuer.tick(now)
            if watch is not None and watch.changed(now):
                reload_registry()
            if not sub.connects and now - start >= args.connect_timeout:
                raise EnvironmentProblem("%s: the broker did not let the collector in within %gs (%s)"
                                         % (args.broker, args.connect_timeout, sub.last_error or "no answer"))
            if args.duration and now - start >= args.duration:
                stop.reason = "duration"
            elif args.idle and now - max(start, clock["last"]) >= args.idle:
                stop.reason = "idle"
    except (OSError, sqlite3.Error) + store_pg.driver_errors() as e:
        raise EnvironmentProblem("collector: %s" % e)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sub.close()
        collector.close()
    final = dict(tally, event="stopped", reason=stop.reason)
    out.record(final, lambda r: "stopped (%s): %d summaries accepted, %d duplicates dropped, %d rejected, %d held, "
               "%d gaps" % (r["reason"], r["accepted"], r["duplicates"], r["rejected"], r["held"], r["gaps"]))
    if args.count and tally["accepted"] < args.count and stop.reason in ("duration", "idle"):
        return EXIT_FAILED
    return 0
