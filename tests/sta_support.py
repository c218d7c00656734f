"""Stores for the SensorThings tests and bench: days of one sim device's signed summaries, written
straight through the collector's Store (one transaction: a week in a second, where the Collector's
fsync per message would take minutes), and its registry.

    city = days_store(folder, end, days)  -> .store, .registry, .device (web_support.SimDevice), .windows
"""
from agent.privacy.manifest import payload as manifest_payload
from agent.core import cose, summary
from provisioning.city.store_pg import open_store
from provisioning.pki.registry import Registry

from web_support import WINDOW, City, SimDevice, metrics


def days_store(folder, end, days, district="north", only=None, also=()):
    """only: the metric names to keep (default all of the sim board's); also: more stores (e.g. a
    postgresql:// URL) that get the same rows."""
    city = City()
    folder.mkdir(parents=True, exist_ok=True)
    city.store, city.registry = str(folder / "city.db"), str(folder / "registry.db")
    dev = city.device = SimDevice(district)
    if only:
        dev.manifest["metrics"] = [e for e in dev.manifest["metrics"] if e["name"] in only]
        dev.mh = summary.manifest_hash(manifest_payload(dev.manifest))
    reg = Registry(city.registry, create=True)
    reg.register(dev.record())
    reg.close()
    end -= end % WINDOW
    for target in [city.store] + list(also):
        _fill(open_store(target), dev, end, days, only, district, city)
    return city


def _fill(store, dev, end, days, only, district, city):
    city.windows = []
    with store.transaction():
        store.count(dev.dev, district, end - days * 86400, 0, manifests=1)
        store.add_manifest(dev.dev, dev.mh, dev.manifest, cose.sign1(manifest_payload(dev.manifest), dev.key,
                                                                     dev.dev.encode()), end - days * 86400)
        for i in range(days * 86400 // WINDOW):
            seq, t1 = 1 + i, end - days * 86400 + WINDOW * (i + 1)
            m = {k: v for k, v in metrics(seq, t1).items() if not only or k in only}
            s = summary.build(dev.dev, seq, t1 - WINDOW, t1, m, dev.mh)
            signed = cose.sign1(summary.encode(s), dev.key, dev.dev.encode())
            store.add_summary(s, True, dev.topic("summary"), t1 + 1, signed)
            city.windows.append((seq, t1))
        store.count(dev.dev, district, end, 0, accepted=len(city.windows))
        store.set_last_seq(dev.dev, city.windows[-1][0])
    store.close()
