"""The rollout service: orders out, status in, stages run (CPython only).

    svc = RolloutService(store, ring, signer, session)
    svc.run(stop)          # or, in tests: svc.handle(topic, payload); svc.step()

One MQTT session (city/subscription.py, as the collector's) under the service's own identity
(broker_config.ROLLOUT_CN), subscribed to PREFIX/+/+/ota/req and PREFIX/+/+/ota/status.
- Orders: for the newest rollout of each district the service signs an order (rollout key,
  docs/wire-format.md "Updates") whenever what it must say changes (a stage reached; a pause,
  halt or abort: the stop order, release h'') or half its life has passed, and publishes it
  retained on PREFIX/{district}/ota/order. A device also asks on every connect ({"op": "order"}
  on its ota/req): the answer goes to its own ota/down, because a RabbitMQ cluster keeps
  retained messages on the node they were published to only.
- Releases and blocks: every request is answered by the embedded block server (its
  BlockServer(artefacts, order_for, prefix, admit, on_request).handle(), see ota/block_answers.py),
  blocks only within the download cap (ota/download_cap.py), from the artefacts `rollout start`
  recorded.
- Status: device-signed, checked against the registry's keys (ota/device_msgs.py), recorded.
- Stages: each running rollout is evaluated (ota/stages.py) every `step`: advance, halt, done.
What the operator asks (`civicmote rollout start|pause|resume|abort`) arrives through the
rollout state file, read every step.
"""
import time

from provisioning.ota import device_msgs, stages
from provisioning.ota.block_answers import BlockServer
from provisioning.ota.download_cap import DownloadCap

PREFIX = "civicmote/v1"
ORDER_TTL_S = 24 * 3600  # an order is void a day after it is signed; renewed at half its life
NB_SLACK_S = 300  # not-before this far back: a device clock a little behind still takes it
DEFAULT_CAP = 50
STEP_S = 1.0


class RolloutService:
    """RolloutService(store, ring, signer, session, member, prefix, default_cap, clock, order_ttl, log).

    store: RolloutStore; ring: KeyRing (registry export); signer: OrderSigner; session: an Inbox
    (publish, take, ack); member(dev, salt) -> 0..99 (agent.ota.docs.member)."""

    def __init__(self, store, ring, signer, session, member, prefix=PREFIX, default_cap=DEFAULT_CAP,
                 clock=time.time, order_ttl=ORDER_TTL_S, log=None):
        self.store, self.ring, self.signer, self.session, self.member = store, ring, signer, session, member
        self.prefix = prefix.rstrip("/")
        self.blocks = BlockServer(Artefacts(store), lambda district, dev: store.latest_order(district), self.prefix,
                                  admit=lambda district, dev, h, off: self._cap(district).admit(dev, time.monotonic()),
                                  on_request=self._counted)
        self.default_cap = default_cap
        self.clock, self.order_ttl = clock, order_ttl
        self.log = log or (lambda event: None)
        self.caps = {}  # district -> DownloadCap
        self.statuses = device_msgs.StatusChecker(ring)
        self.counts = {"req": 0, "status": 0, "refused": 0, "orders": 0, "answers": 0}

    # -- messages from devices --------------------------------------------------------------------
    def handle(self, topic, payload, now=None):
        now = time.monotonic() if now is None else now
        where = device_msgs.parse_topic(self.prefix, topic)
        if where is None:
            return
        kind, district, dev = where
        try:
            if kind == "status":
                self._status(district, dev, payload)
            else:
                self._request(topic, district, dev, payload, now)
        except device_msgs.Refused as e:
            self.counts["refused"] += 1
            self.log({"event": "refused", "device_id": dev, "topic": topic, "reason": str(e)})

    def _status(self, district, dev, payload):
        st = self.statuses.check(payload, dev, district)
        self.counts["status"] += 1
        self.store.record_status(district, st, payload)
        self._cap(district).status(dev, st["state"])

    def _request(self, topic, district, dev, payload, now):
        """Only a registered device, under its own district, is answered (the broker's ACL already
        lets a device write only its own ota/req); what it asks for is public."""
        if dev not in self.ring.keys:
            raise device_msgs.Refused("device %s is %s" % (dev, self.ring.refused.get(dev, "not in the registry")))
        if self.ring.districts.get(dev) not in (None, district):
            raise device_msgs.Refused("request under district %r, but %s is in %r" % (district, dev,
                                                                                    self.ring.districts.get(dev)))
        refused = self.blocks.refused
        for down, body in self.blocks.handle(topic, payload, now):
            self.session.publish(down, body, 1, False)
            self.counts["answers"] += 1
        if self.blocks.refused > refused:
            raise device_msgs.Refused("malformed request")

    def _counted(self, district, dev, req, now):
        self.counts["req"] += 1

    def set_ring(self, ring):
        """A new registry export (devices provisioned, revoked, moved): used from the next message on."""
        self.ring = ring
        self.statuses = device_msgs.StatusChecker(ring)

    def _cap(self, district):
        if district not in self.caps:
            self.caps[district] = DownloadCap(self.default_cap)
        return self.caps[district]

    # -- the stages and the orders ---------------------------------------------------------------
    def district_devices(self, district):
        return [d for d, k in self.ring.keys.items() if self.ring.districts.get(d) == district]

    def step(self):
        """Evaluate every district's newest rollout and sign the orders due; -> rollouts looked at."""
        now = int(self.clock())
        newest = self.store.newest_per_district()
        for district, r in sorted(newest.items()):
            self._cap(district).limit = r["cap"]
            if r["state"] == "running":
                r = self._evaluate(r)
            want = "stage:%d" % r["stage"] if r["state"] in ("running", "done") else "stop"
            if r["order_for"] != want or r["order_exp"] - now < self.order_ttl // 2:
                self._sign(r, want, now)
        return len(newest)

    def _evaluate(self, r):
        release = self.store.release(r["release"])
        devices = self.district_devices(r["district"])
        statuses = self.store.device_states(r["district"])
        while True:
            d = stages.evaluate(r, release, devices, statuses, self.member, self.clock())
            self.store.set_progress(r["id"], d.counts, len(d.targeted), d.pending)
            if d.action == "advance":
                self.store.set_stage(r["id"], r["stage"] + 1)
                self.log({"event": "stage", "rollout": r["id"], "stage": r["stage"] + 1,
                          "pct": stages.plan(r)[r["stage"] + 1]})
            elif d.action == "halt":
                self.store.set_state(r["id"], "halted", d.reason, allowed=("running",))
                self.log({"event": "halted", "rollout": r["id"], "reason": d.reason})
            elif d.action == "done":
                self.store.set_state(r["id"], "done", None, allowed=("running",))
                self.log({"event": "done", "rollout": r["id"]})
            r = self.store.rollout(r["id"])
            if d.action != "advance":  # a stage whose devices all finished already: look at the next at once
                return r

    def _sign(self, r, want, now):
        seq = self.store.next_order_seq()
        exp = now + self.order_ttl
        if want == "stop":
            cose = self.signer.order(seq, b"", r["district"], [], 0, r["salt"], now - NB_SLACK_S, exp)
        else:
            cose = self.signer.order(seq, r["release"], r["district"], r["canaries"], stages.plan(r)[r["stage"]],
                                     r["salt"], now - NB_SLACK_S, exp)
        self.store.add_order(seq, r["id"], r["district"], cose, exp, want)
        self.session.publish("%s/%s/ota/order" % (self.prefix, r["district"]), b"O" + cose, 1, True)
        self.counts["orders"] += 1
        self.log({"event": "order", "rollout": r["id"], "seq": seq, "says": want, "district": r["district"]})

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, stop=lambda: False, step_s=STEP_S, on_step=None):
        """Until stop() is true: take what devices sent (acknowledged once handled), step every step_s
        (and call on_step() first: e.g. reload the registry export when it changed)."""
        next_step = 0.0
        while not stop():
            for d in self.session.take(500, 0.0, 0.05):
                self.handle(d.topic, d.payload)
                self.session.ack([d])
            for ev in self.session.events():
                self.log({"event": ev[0], "detail": ev[1]})
            if time.monotonic() >= next_step:
                if on_step is not None:
                    on_step()
                self.step()
                next_step = time.monotonic() + step_s


class Artefacts:
    """The block server's view of the releases `rollout start` recorded: release(h), size(h),
    read(h, off, n); each release's row read once."""

    def __init__(self, store):
        self.store = store
        self._rows = {}

    def _row(self, h):
        h = bytes(h)
        if h not in self._rows:
            r = self.store.release(h)
            if r is None:
                return None
            self._rows[h] = r
        return self._rows[h]

    def release(self, h):
        r = self._row(h)
        return r["cose"] if r else None

    def size(self, h):
        r = self._row(h)
        return r["size"] if r else None

    def read(self, h, off, n):
        with open(self._row(h)["artefact"], "rb") as f:
            f.seek(off)
            return f.read(n)
