"""A rollout end to end on loopback: simulated fleet -> Mosquitto (mutual TLS, broker-config's ACL)
-> the rollout service, with real keys and signatures throughout (CPython only).

    with OtaCity(folder, devices=100) as oc:             # CA, fleet, release key, broker, service
        rid = oc.start(stages="5,25,100", canaries=2)    # `civicmote rollout start`'s code path
        devs = oc.run_fleet(bad=oc.pick(0.05), until=oc.finished(rid))
        oc.rollout(rid)                                  # state, stage, counts, done_at

The release is signed by a release key made here (never the CA), its artefact a bundle of
`artefact_kib`; the rollout service runs in this process (a thread: the same RolloutService
`civicmote rollout serve` runs) under broker-config's rollout identity. Used by
tests/test_ota_rollout.py, test_ota_cluster.py and bench/bench_rollout.py (test support:
it runs the command line in this process).
"""
import asyncio
import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

from agent.crypto.cpython_backend import SigningKey
from agent.ota import bundle, docs
from provisioning.city.broker_config import ROLLOUT_CN, ca_public_key_hex
from provisioning.city.subscription import Subscription
from provisioning.city.verifier import KeyRing
from provisioning.demo import ota_fleet
from provisioning.demo.fleet import FleetCity
from provisioning.demo.fleet_run import MOSQUITTO, _reap, _wait_port, free_port
from provisioning.ota import rollout_store
from provisioning.pki import rollout_key
from provisioning.ota.serve import topics
from provisioning.ota.service import RolloutService
from provisioning.pki.registry_export import load_export


def release_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    from provisioning.ota.keys import public_sec1

    k = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(k), public_sec1(k)


class OtaCity:
    def __init__(self, folder, devices=20, districts=1, artefact_kib=16, seq=2, port=None, mosquitto=True,
                 service=True):
        self.folder = Path(folder)
        self.city = FleetCity.create(self.folder / "fleet", devices, districts=districts)
        self.port = port or free_port()
        self.city.broker_config(self.port, user="root" if os.geteuid() == 0 else None)
        self.broker_dir = self.city.broker_dir
        self.ca_sec1 = bytes.fromhex(ca_public_key_hex(self.city.ca))
        self.rel_key, self.rel_pub = release_key()
        data = os.urandom(artefact_kib * 1024)
        self.artefact = self.folder / "agent.bundle"
        self.artefact.write_bytes(bundle.pack([("agent/payload.bin", data)]))
        art = self.artefact.read_bytes()
        self.release = docs.make_release(self.rel_key, self.rel_pub, seq, "0.%d.0" % seq, "agent", ["cpython3"],
                                         len(art), hashlib.sha256(art).digest(), docs.STATE_FORMAT, b"\x01" * 8)
        self.release_file = self.folder / "agent.release"
        self.release_file.write_bytes(self.release)
        self.state = str(self.folder / "rollout.db")
        self.broker = self.service = self.thread = None
        self._stop = False
        self.mosquitto, self.with_service = mosquitto, service
        self.crashed = None

    def __enter__(self):
        if not self.mosquitto:  # another broker (a RabbitMQ cluster): the caller starts the service
            return self
        self.broker = subprocess.Popen([MOSQUITTO, "-c", str(self.broker_dir / "mosquitto.conf")],
                                       stdout=subprocess.DEVNULL, stderr=open(self.folder / "mosquitto.log", "wb"))
        _wait_port(self.port, self.broker)
        if self.with_service:
            self.start_service()
        return self

    def start_service(self, default_cap=50, port=None, protocol=5):
        ring = load_export(self.city.export, KeyRing())
        d = str(self.broker_dir)
        session = Subscription("127.0.0.1", port or self.port, ROLLOUT_CN, topics("civicmote/v1"),
                               tls={"cafile": d + "/ca.crt", "certfile": d + "/rollout.crt",
                                    "keyfile": d + "/rollout.key"}, persistent=False, protocol=protocol)
        self.store = rollout_store.RolloutStore(self.state, create=True)
        self.events = []  # (monotonic s, event)
        self.service = RolloutService(self.store, ring, rollout_key.load_signer(d), session, docs.member,
                                      default_cap=default_cap, log=lambda e: self.events.append((time.monotonic(), e)))
        self.crashed = None

        def run():
            try:
                self.service.run(lambda: self._stop, 0.2)
            except BaseException as e:  # seen by finished() and the tests, not lost in a thread
                self.crashed = e
                raise

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        end = time.monotonic() + 20
        while not session.connected:
            if time.monotonic() > end:
                raise RuntimeError("the rollout service did not connect: %s" % session.last_error)
            time.sleep(0.05)

    def __exit__(self, *exc):
        self._stop = True
        if self.thread is not None:
            self.thread.join(10)
            self.service.session.close()
        if self.broker is not None:
            _reap(self.broker)

    def cli(self, *argv):
        """Run a civicmote command in this process (--json); -> (exit code, last JSON object or None).
        In this process: with `rollout pause`/`resume` run as child processes beside the service's
        thread, this process's next connection to the state read "disk I/O error" (not understood
        yet; `rollout serve` as its own process, as in production, is tested without it)."""
        import io
        import json
        from contextlib import redirect_stdout

        from provisioning.cli import main

        buf = io.StringIO()
        with redirect_stdout(buf):
            rc = main(list(argv) + ["--json"])
        lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
        return rc, (json.loads(lines[-1]) if lines else None)

    def start(self, stages="5,25,100", canaries=0, threshold=10, min_done=10, cap=50, district="district00"):
        args = ["rollout", "start", "--state", self.state, "--release", str(self.release_file), "--artefact",
                str(self.artefact), "--district", district, "--release-key", self.rel_pub.hex(), "--stages", stages,
                "--threshold", str(threshold), "--min-done", str(min_done), "--cap", str(cap)]
        for d in [d.dev for d in self.city.devices if d.district == district][:canaries]:
            args += ["--canary", d]
        rc, out = self.cli(*args)
        if rc:
            raise RuntimeError("rollout start failed: %s" % out)
        return out["rollout"]

    def rollout(self, rid):
        s = rollout_store.RolloutStore(self.state)
        try:
            return s.rollout(rid)
        finally:
            s.close()

    def finished(self, rid):
        def done(devs):
            if self.crashed is not None:
                raise RuntimeError("the rollout service died: %r" % self.crashed)
            return self.rollout(rid)["state"] in ("done", "halted", "aborted")
        return done

    def pick(self, share, district="district00"):
        """The ids of that share of the district's devices (by a fixed order: reproducible)."""
        ids = sorted((d.dev for d in self.city.devices if d.district == district),
                     key=lambda x: hashlib.sha256(x.encode()).digest())
        return set(ids[:int(round(share * len(ids)))])

    def run_fleet(self, bad=(), until=None, timeout=120.0, retry_s=2.0, trial_s=0.2, port=None, devices=None):
        city = self.city
        if devices is not None:
            city = _Subset(city, devices)
        return asyncio.run(ota_fleet.run_fleet(city, "127.0.0.1", port or self.port, self.ca_sec1, [self.rel_pub],
                                               bad=bad, until=until, retry_s=retry_s, trial_s=trial_s,
                                               timeout=timeout))


class _Subset:
    def __init__(self, city, devices):
        self.cafile, self.devices = city.cafile, list(devices)
