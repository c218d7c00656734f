"""The fleet simulator's devices (provisioning/demo/fleet.py): each its own key and certificate,
real signed messages the collector accepts."""
import os
import stat

from cryptography import x509
from cryptography.x509.oid import NameOID

from provisioning.city.collector import Collector
from provisioning.city.verifier import KeyRing
from provisioning.demo.fleet import T0, FleetCity


def test_each_device_has_its_own_key_certificate_and_signed_summaries(tmp_path):
    city = FleetCity.create(tmp_path / "fleet", 6, districts=2)
    ids = [d.dev for d in city.devices]
    assert len(set(ids)) == 6
    ca = x509.load_pem_x509_certificate(open(city.cafile, "rb").read())
    for d in city.devices:
        cert = x509.load_pem_x509_certificate(open(d.certfile, "rb").read())
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == d.dev
        cert.verify_directly_issued_by(ca)
        assert stat.S_IMODE(os.stat(d.keyfile).st_mode) == 0o600
    ring = KeyRing()
    for d in city.devices:
        ring.add_public_key(d.pub)
    c = Collector(ring, None)
    d = city.devices[1]
    events = c.handle(d.topic("manifest"), d.manifest(), received_at=T0 + 10 ** 6)
    events += c.handle(d.topic("summary"), d.summary(1), received_at=T0 + 10 ** 6)
    assert [e["event"] for e in events] == ["manifest", "summary"] and events[1]["mh_ok"] is True
    assert d.district == "district01"
    c.close()
