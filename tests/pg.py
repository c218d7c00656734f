"""A real PostgreSQL server for tests and benches: initdb in a temporary folder, a free loopback port.

    with PgServer() as pg:            # pg.url("db") -> postgresql://civicmote@127.0.0.1:PORT/db
        url = pg.new_database()       # a fresh, empty database each call

PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user (Debian's
package creates it) and its commands run through `runuser`. Trust authentication on loopback
only: the server is this process' and is removed at exit. `PgServer.available()` says why not
when the binaries are missing (tests skip with that reason).
"""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

USER = "civicmote"


def _bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self):
        self.bindir = _bindir()
        self.folder = None
        self.proc = None
        self.port = _free_port()
        self._n = 0

    @staticmethod
    def available():
        """None if a server can be started here, else the reason it cannot."""
        if _bindir() is None:
            return "PostgreSQL is not installed (tools/install-system-deps postgresql)"
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "psycopg is not installed (make setup)"
        if os.geteuid() == 0:
            import pwd

            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no 'postgres' user to run the server as"
        return None

    def _run_as(self):
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self):
        self.folder = tempfile.mkdtemp(prefix="civicmote-pg-")
        data = os.path.join(self.folder, "data")
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
        subprocess.run(self._run_as() + [os.path.join(self.bindir, "initdb"), "-D", data, "-U", USER, "-A", "trust",
                                         "--no-sync", "-E", "UTF8"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        opts = ["-c", "listen_addresses=127.0.0.1", "-c", "port=%d" % self.port, "-c",
                "unix_socket_directories=%s" % self.folder, "-c", "fsync=off", "-c", "max_connections=200",
                "-c", "shared_buffers=32MB"]
        self.proc = subprocess.Popen(self._run_as() + [os.path.join(self.bindir, "postgres"), "-D", data] + opts,
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.folder, "log"), "ab"))
        end = time.monotonic() + 30
        import psycopg

        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError("postgres did not start: %s" % self.log())
                time.sleep(0.1)

    def log(self):
        try:
            with open(os.path.join(self.folder, "log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def url(self, db):
        return "postgresql://%s@127.0.0.1:%d/%s" % (USER, self.port, db)

    def new_database(self):
        import psycopg

        self._n += 1
        name = "city%d" % self._n
        with psycopg.connect(self.url("postgres"), autocommit=True) as c:
            c.execute("CREATE DATABASE %s" % name)
        return self.url(name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: smart shutdown; runuser passes it on
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
