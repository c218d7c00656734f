"""A real SensorThings API v1.1 server for the forwarder's tests: django-ogc-sensorthings (PyPI,
hydroserver2) on SQLite, served by waitress in a child process the test starts and stops.

    peer = StaPeer(folder); peer.start(); peer.url  ...  peer.stop(); peer.start()  (same data)
    peer.observations() -> [(datastream id, resultTime, phenomenonTime, result, parameters)] from its DB

Run as a script (python tests/sta_peer.py FOLDER PORT) it is that server. Its Django backend
keeps Observations as rows of FOLDER/sta.sqlite3, read here directly to count duplicates.
"""
import os
import socket
import sqlite3
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

URLS = types.ModuleType("sta_peer_urls")


class StaPeer:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = "http://127.0.0.1:%d/sta/v1.1" % self.port
        self.proc = None

    def start(self, timeout=60):
        ready = self.folder / "ready"
        if ready.exists():
            ready.unlink()
        self.log = open(self.folder / "server.log", "ab")
        self.proc = subprocess.Popen([sys.executable, __file__, str(self.folder), str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the SensorThings peer did not start: %s"
                                   % (self.folder / "server.log").read_text()[-2000:])
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
            self.log.close()

    def observations(self):
        db = sqlite3.connect(self.folder / "sta.sqlite3")
        try:
            return db.execute("SELECT o.datastream_id, o.result_time, o.phenomenon_time_begin, o.result, o.parameters "
                              "FROM sensorthings_v1_1_django_backend_observation o").fetchall()
        finally:
            db.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(folder, port):
    from django.conf import settings

    settings.configure(
        DEBUG=False, SECRET_KEY="test-only", ALLOWED_HOSTS=["*"], ROOT_URLCONF=URLS, USE_TZ=True, MIDDLEWARE=[],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "sensorthings.versions.v1_1",
                        "sensorthings.versions.v1_1.backends.django",
                        "sensorthings.versions.v1_1.extensions.dataarray"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(Path(folder) / "sta.sqlite3")}},
        SENSORTHINGS_V1_1_SERVICE_URL="http://127.0.0.1:%d/sta" % port,
        SENSORTHINGS_V1_1_BACKEND_ADAPTER="sensorthings.versions.v1_1.backends.django.adapter.DjangoBackendAdapter",
        SENSORTHINGS_V1_1_ID_TYPE=uuid.UUID, SENSORTHINGS_V1_1_ID_DELIMITER="'",
        LOGGING={"version": 1, "handlers": {"err": {"class": "logging.StreamHandler"}},
                 "root": {"handlers": ["err"], "level": "WARNING"}})
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from django.urls import include, path
    import waitress

    URLS.urlpatterns = [path("sta/", include("sensorthings.versions.v1_1.urls"))]
    call_command("migrate", verbosity=0)
    server = waitress.create_server(get_wsgi_application(), host="127.0.0.1", port=port, threads=2)
    Path(folder, "ready").write_text("%d\n" % os.getpid())
    server.run()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
