"""`civicmote rollout serve`: the rollout service's process, from the CLI's arguments (CPython only).

Connects with the service's own identity (broker-config's rollout.crt/.key, CN ROLLOUT_CN),
subscribes to every device's ota/req and ota/status, and runs RolloutService until Ctrl-C or
--for seconds. The session is not persistent: statuses are retained (the broker hands them over
again at the next subscribe) and requests are repeated by devices every 10 s.
"""
import os
import signal

from provisioning import broker_url
from provisioning.city.broker_config import ROLLOUT_CN
from provisioning.city.subscription import Subscription
from provisioning.city.verifier import KeyRing
from provisioning.errors import UsageError
from provisioning.ota import rollout_store
from provisioning.pki import rollout_key
from provisioning.ota.service import RolloutService
from provisioning.pki.registry_export import load_export


def topics(prefix):
    p = prefix.rstrip("/")
    return ["%s/+/+/ota/req" % p, "%s/+/+/ota/status" % p]


def serve(out, args, monotonic):
    from agent.ota import docs

    host, port, tls = broker_url.parse(args.broker)
    d = args.broker_dir
    for name in ("ca.crt",) + rollout_key.ROLLOUT_FILES:
        if not os.path.exists(os.path.join(d, name)):
            raise UsageError("%s: no %s here; run civicmote broker-config --out %s first" % (d, name, d))
    signer = rollout_key.load_signer(d)
    ring = load_export(args.registry, KeyRing())
    store = rollout_store.RolloutStore(args.state or rollout_store.default_path(), create=True)
    tls_files = {"cafile": os.path.join(d, "ca.crt"), "certfile": os.path.join(d, "rollout.crt"),
                 "keyfile": os.path.join(d, "rollout.key")} if tls else None
    # client id = the identity: one service per city (it owns the state), and RabbitMQ names the
    # session's queue after it (cluster_config's permissions)
    session = Subscription(host, port, ROLLOUT_CN, topics(args.prefix),
                           tls=tls_files, persistent=False, protocol=args.mqtt)
    service = RolloutService(store, ring, signer, session, docs.member, prefix=args.prefix, log=out_log(out))
    stop = {"now": False}
    end = None if args.run_for is None else monotonic() + args.run_for
    previous = signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    out.note("civicmote rollout serve: %s:%d as %s, state %s" % (host, port, ROLLOUT_CN, store.path))
    try:
        service.run(lambda: stop["now"] or (end is not None and monotonic() >= end),
                    on_step=registry_watch(args.registry, service, out))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        session.close()
        store.close()
    out.record(dict(service.counts, event="stopped", peak_downloads={k: c.peak for k, c in service.caps.items()}),
               lambda r: "stopped: %d request(s), %d status(es), %d refused, %d order(s) signed"
               % (r["req"], r["status"], r["refused"], r["orders"]))
    return 0


def registry_watch(path, service, out, every=5.0):
    """on_step for the service: reload the registry export when the file changed (broker-config
    rewrites it after a provisioning or a revocation), at most every `every` s; a damaged file keeps
    the previous one."""
    import time

    def stamp():
        try:
            st = os.stat(path)
            return st.st_ino, st.st_size, st.st_mtime_ns
        except OSError:
            return None

    seen = {"stamp": stamp(), "next": 0.0}

    def check():
        now = time.monotonic()
        if now < seen["next"]:
            return
        seen["next"] = now + every
        s = stamp()
        if s is None or s == seen["stamp"]:
            return
        seen["stamp"] = s
        try:
            ring = load_export(path, KeyRing())
        except UsageError as e:
            out.note("registry export not reloaded, keeping the previous one: %s" % e)
            return
        service.set_ring(ring)
        out.note("registry export reloaded: %d device keys" % len(ring.keys))
    return check


def out_log(out):
    def log(event):
        if out.json:
            out.record(event)
        else:
            out.note(" ".join("%s=%s" % kv for kv in sorted(event.items())))
    return log
