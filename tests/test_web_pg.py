"""`civicmote web --store postgresql://...`: the page reads a PostgreSQL collector store as it
reads SQLite. The same messages go through the real Collector into both stores; every query the
page makes answers the same from either, the pages and exports come out the same, and the
PostgreSQL session is read only."""
import pytest

from pg import PgServer
from web_support import make_city

from provisioning.web.app import Settings, create_app
from provisioning.web.query import CityData, check_store
from provisioning.errors import EnvironmentProblem, UsageError

NOW = 1764500000


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    reason = PgServer.available()
    if reason:
        pytest.skip(reason)
    with PgServer() as pg:
        url = pg.new_database()
        city = make_city(tmp_path_factory.mktemp("city"), NOW, also=[url])
        yield city, url, pg


def test_every_query_answers_the_same_from_postgresql(both):
    city, url, _ = both
    lite, pg = CityData(city.store, city.registry), CityData(url, city.registry)
    try:
        a, r = city.active.dev, city.revoked.dev
        assert len(pg.devices()) == 2 and pg.devices() == lite.devices()  # the two that sent
        for dev in (a, r, city.empty.dev):
            assert pg.device(dev) == lite.device(dev)
            assert pg.status(dev) == lite.status(dev)
            assert pg.manifest(dev) == lite.manifest(dev)
            assert pg.manifests(dev) == lite.manifests(dev)
            assert pg.latest_summary(dev) == lite.latest_summary(dev)
            assert pg.latest_message(dev) == lite.latest_message(dev)
            assert pg.messages(dev, NOW - 86400, NOW) == lite.messages(dev, NOW - 86400, NOW)
            assert pg.gaps_by_cause(dev) == lite.gaps_by_cause(dev)
        got = pg.summaries([a, r], NOW - 86400, NOW)
        assert len(got) == 288 - 3 + 12 and got == lite.summaries([a, r], NOW - 86400, NOW)
        assert pg.status(a)[0] == "online" and pg.gaps_by_cause(a) and pg.gaps_by_cause() == lite.gaps_by_cause()
        assert pg.district_devices("north") == lite.district_devices("north")
        assert pg.held() == lite.held() == {city.stranger.dev: 1}
        assert pg.rejected_by_reason() == lite.rejected_by_reason() and pg.rejected_by_reason()
    finally:
        lite.close()
        pg.close()


def test_pages_and_exports_are_the_same_from_either_store(both):
    city, url, _ = both
    dev = city.active.dev
    paths = ["/d/%s" % dev, "/d/%s/data.csv" % dev, "/d/%s/data.json" % dev, "/district/north/data.csv",
             "/fleet.json", "/metrics", "/d/%s/manifest.cose" % dev]
    pages = {}
    for store in (city.store, url):
        app = create_app(Settings(store, city.registry, clock=lambda: NOW))
        c = app.test_client()
        pages[store] = [(c.get(p).status_code, c.get(p).data) for p in paths]
    assert all(code == 200 for code, _ in pages[url]), [(p, code) for p, (code, _) in zip(paths, pages[url])]
    assert pages[url] == pages[city.store]


def test_the_postgresql_session_is_read_only(both):
    city, url, _ = both
    pg = CityData(url, None)
    try:
        with pytest.raises(Exception, match="read-only"):
            pg.db.execute("DELETE FROM summaries")
        assert pg.db.execute("SELECT count(*) FROM summaries").fetchone()[0] == 288 - 3 + 12
    finally:
        pg.close()


def test_bad_postgresql_stores_are_one_line_errors(both):
    _, url, pg = both
    with pytest.raises(UsageError, match="not a collector store"):
        check_store(pg.new_database())  # a database without the collector's tables
    dead = url.rsplit("/", 1)[0].rsplit(":", 1)[0] + ":1/city"
    with pytest.raises(EnvironmentProblem, match="cannot open the collector store"):
        check_store(dead)
