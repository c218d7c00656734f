"""The web page's read-only connection to a PostgreSQL collector store (CPython only).

`civicmote web --store postgresql://...` reads the same tables `civicmote collect --store
postgresql://...` writes (provisioning/city/store_pg.py). query.CityData speaks SQLite's SQL with
`?` placeholders; `connect(url)` returns a connection with the same `execute(sql, args)` ->
cursor shape, turning `?` into psycopg's `%s`. Every transaction of the session is read only
(`default_transaction_read_only`), so the page can never change what the city recorded, as
with SQLite's `PRAGMA query_only`.
"""
from provisioning.city.store_pg import redact
from provisioning.errors import EnvironmentProblem, UsageError


class PgReader:
    def __init__(self, db):
        self.db = db

    def execute(self, sql, args=()):
        return self.db.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(args))

    def tables(self):
        return {r[0] for r in self.db.execute("SELECT table_name FROM information_schema.tables "
                                              "WHERE table_schema = current_schema()")}

    def close(self):
        self.db.close()


def connect(url):
    """A read-only PgReader on the store at `url`; one-line errors naming it."""
    try:
        import psycopg
    except ImportError:
        raise EnvironmentProblem("--store %s needs psycopg 3: pip install 'psycopg[binary]'" % redact(url))
    try:
        db = psycopg.connect(url, autocommit=True, connect_timeout=10,
                             options="-c default_transaction_read_only=on")
    except psycopg.OperationalError as e:  # unreachable, refused, authentication, no such database
        raise EnvironmentProblem("%s: cannot open the collector store (%s)"
                                 % (redact(url), (str(e).strip().splitlines() or ["?"])[0]))
    except psycopg.Error as e:
        raise UsageError("%s: not a readable collector store (%s)" % (redact(url), str(e).strip()[:200]))
    return PgReader(db)
