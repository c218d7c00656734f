"""A real Mosquitto for tests: free loopback port, generated config, optional mutual TLS.

    with Broker(tmp_path, tls=True) as b:      # b.port (TLS if tls), b.plain_port (always plain)
        b.client_files("cm...")                # -> {"cafile", "certfile", "keyfile"} for a device
        b.pause(); b.resume(); b.restart(); b.kill()

TLS material (a P-256 CA, a server certificate for 127.0.0.1/localhost, client certificates
with CN = client id) is generated with `cryptography` into the broker's folder. Other tests
may reuse this helper. Skips the calling test if /usr/sbin/mosquitto is missing.
"""
import datetime
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Pki:
    """A throw-away P-256 CA issuing server and client certificates as PEM files in a folder."""

    def __init__(self, folder):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ser, self._ec, self._oid = x509, hashes, serialization, ec, NameOID
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "civicmote test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_name = name
        self.ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                        .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
                        .not_valid_before(now - datetime.timedelta(minutes=5))
                        .not_valid_after(now + datetime.timedelta(days=2))
                        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                        .sign(self.ca_key, hashes.SHA256()))
        self.cafile = str(self.folder / "ca.pem")
        Path(self.cafile).write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn, server=False):
        """Write cn.pem / cn.key; return (certfile, keyfile)."""
        import ipaddress

        x509, ser = self._x509, self._ser
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(self._oid.COMMON_NAME, cn)]))
             .issuer_name(self.ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1)))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = b.sign(self.ca_key, self._hashes.SHA256())
        certfile, keyfile = self.folder / (cn + ".pem"), self.folder / (cn + ".key")
        certfile.write_bytes(cert.public_bytes(ser.Encoding.PEM))
        keyfile.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
        return str(certfile), str(keyfile)


class Broker:
    """One Mosquitto process. tls=True: `port` needs a client certificate from our CA."""

    def __init__(self, folder, tls=False, extra_conf=""):
        if not os.path.exists(MOSQUITTO):
            import pytest

            pytest.skip("mosquitto is not installed")
        self.folder = Path(folder) / ("broker-%d" % free_port())
        self.folder.mkdir(parents=True)
        self.tls = tls
        self.host = "127.0.0.1"
        self.plain_port = free_port()
        self.port = free_port() if tls else self.plain_port
        self.pki = None
        lines = ["allow_anonymous true", "persistence false", "log_dest file %s" % (self.folder / "log"),
                 "log_type all", "listener %d 127.0.0.1" % self.plain_port]
        if os.geteuid() == 0:
            lines.insert(0, "user %s" % getpass.getuser())
        if tls:
            self.pki = Pki(self.folder / "pki")
            cert, key = self.pki.issue("localhost", server=True)
            lines += ["listener %d 127.0.0.1" % self.port, "cafile %s" % self.pki.cafile, "certfile %s" % cert,
                      "keyfile %s" % key, "require_certificate true", "use_identity_as_username true"]
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n" + extra_conf)
        self.proc = None

    def client_files(self, cn):
        """{cafile, certfile, keyfile} for a client whose certificate CN is cn."""
        cert, key = self.pki.issue(cn)
        return {"cafile": self.pki.cafile, "certfile": cert, "keyfile": key}

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "stderr", "ab"))
        for port in {self.port, self.plain_port}:
            if not _wait_port(port):
                self.stop()
                raise RuntimeError("mosquitto did not listen on %d: %s" % (port, self.log()))
        return self

    def log(self):
        out = ""
        for name in ("stderr", "log"):
            p = self.folder / name
            if p.exists():
                out += p.read_text(errors="replace")[-3000:]
        return out

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """Abrupt end (SIGKILL): no clean goodbyes to clients."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL ends a paused (SIGSTOP) process too, without running it
            self.proc.wait(5)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self):
        self.kill()
        return self.start()

    @property
    def url(self):
        return "%s://%s:%d" % ("mqtts" if self.tls else "mqtt", self.host, self.port)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
