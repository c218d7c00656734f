"""The city's provisioning CA: make it, unlock it, issue certificates and CRLs (CPython only).

A CA directory holds two files:
    ca.crt   the CA certificate (PEM); an intermediate may be followed by its chain
    ca.key   its private key sealed with scrypt and AES-256-GCM under a passphrase (pki/ca_key.py),
             mode 0600; a PKCS#8 PEM encrypted with a passphrase (an imported CA) is also read
The passphrase comes from CIVICMOTE_CA_PASSPHRASE (scripts), the file named by
CIVICMOTE_CA_PASSPHRASE_FILE (services: a systemd credential) or a prompt (people), never from
the command line, and the key is decrypted at most once per command. An empty or missing
passphrase never opens a key, and a key that is not encrypted is refused.
"""
import datetime
import hashlib
import os
import sys
from pathlib import Path

from provisioning.errors import EnvironmentProblem, StateError, UsageError

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
PASSPHRASE_ENV = "CIVICMOTE_CA_PASSPHRASE"
PASSPHRASE_FILE_ENV = "CIVICMOTE_CA_PASSPHRASE_FILE"
DEVICE_URI = "urn:civicmote:device:"  # the device_id also rides in the SAN as this URI
DEVICE_DAYS = 3650
CA_DAYS = 7300
MIN_PASSPHRASE = 8


class CAError(UsageError):
    """The CA cannot be used (missing, wrong passphrase, not a CA). Fatal for a whole batch."""


def fingerprint(cert_pem):
    """SHA-256 fingerprint of a certificate (PEM text or bytes) as lowercase hex."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if isinstance(cert_pem, str):
        cert_pem = cert_pem.encode()
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def passphrase_from_env_or_prompt(confirm=False, getpass=None):
    """The CA passphrase: CIVICMOTE_CA_PASSPHRASE if set, else the first line of the file named by
    CIVICMOTE_CA_PASSPHRASE_FILE, else a prompt on a terminal."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is not None:
        return value
    path = os.environ.get(PASSPHRASE_FILE_ENV)
    if path:
        try:
            with open(path) as f:
                return f.readline().rstrip("\r\n")
        except OSError as e:
            raise CAError("%s=%s: cannot read the passphrase file (%s)" % (PASSPHRASE_FILE_ENV, path, e.strerror))
    if not sys.stdin.isatty():
        raise CAError("no CA passphrase: set %s or run on a terminal to be prompted" % PASSPHRASE_ENV)
    if getpass is None:
        from getpass import getpass
    value = getpass("CA passphrase: ")
    if confirm and getpass("CA passphrase again: ") != value:
        raise CAError("the two passphrases differ; run the command again")
    return value


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _name(cn, org="civicmote"):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def init_ca(directory, passphrase, common_name="civicmote provisioning CA", now=None):
    """Create DIR/ca.key (encrypted) and DIR/ca.crt. Returns (CA, created); an existing CA is kept."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    d = Path(directory)
    key_path, cert_path = d / CA_KEY, d / CA_CERT
    if key_path.exists() and cert_path.exists():
        return load_ca(d, passphrase), False
    if key_path.exists() or cert_path.exists():
        raise StateError("%s: holds only one of %s and %s; restore the other from your backup or use an empty folder"
                         % (d, CA_KEY, CA_CERT))
    if len(passphrase) < MIN_PASSPHRASE:
        raise UsageError("CA passphrase: use at least %d characters" % MIN_PASSPHRASE)
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    from provisioning.files import make_dir, write_file
    from provisioning.pki.ca_key import seal

    try:
        if not d.exists():
            make_dir(d, 0o700)
        write_file(key_path, seal(key, passphrase), 0o600)
        write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as e:
        raise EnvironmentProblem("%s: cannot write the CA (%s)" % (d, e.strerror))
    return CA(cert, key, cert_path.read_bytes()), True


def read_ca_cert(directory):
    """(certificate, PEM bytes of ca.crt) without touching the key; CAError if missing."""
    from cryptography import x509

    path = Path(directory) / CA_CERT
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise CAError("%s: no CA here (missing %s); run 'civicmote ca init --dir %s' or point --ca at your CA"
                      % (directory, CA_CERT, directory))
    except OSError as e:
        raise EnvironmentProblem("%s: cannot read (%s)" % (path, e.strerror))
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise CAError("%s: not a PEM certificate" % path)
    return certs[0], pem


def load_ca(directory, passphrase):
    """Unlock the CA in directory. CAError naming what is wrong: missing files, wrong passphrase, not a CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert, pem = read_ca_cert(directory)
    key_path = Path(directory) / CA_KEY
    try:
        key_pem = key_path.read_bytes()
    except FileNotFoundError:
        raise CAError("%s: missing %s (the CA's private key); restore it from your backup" % (directory, CA_KEY))
    from provisioning.pki import ca_key

    if not passphrase:
        raise CAError("%s: empty CA passphrase; set %s (or %s) to the CA's passphrase"
                      % (key_path, PASSPHRASE_ENV, PASSPHRASE_FILE_ENV))
    if ca_key.is_sealed(key_pem):
        try:
            key = ca_key.unseal(key_pem, passphrase)
        except ca_key.KeyFileError as e:
            raise CAError("%s: %s; check %s and try again" % (key_path, e, PASSPHRASE_ENV))
    else:
        if b"ENCRYPTED" not in key_pem:
            raise CAError("%s: the CA key is not encrypted; encrypt it with a passphrase (see docs/provisioning.md)"
                          % key_path)
        try:
            key = serialization.load_pem_private_key(key_pem, passphrase.encode())
        except TypeError:
            raise CAError("%s: the CA key is not encrypted; encrypt it with a passphrase (see docs/provisioning.md)"
                          % key_path)
        except ValueError:
            raise CAError("%s: wrong CA passphrase (or not a PEM private key); check %s and try again"
                          % (key_path, PASSPHRASE_ENV))
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CAError("%s: %s and %s do not belong together" % (directory, CA_KEY, CA_CERT))
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CAError("%s: %s is not a CA certificate (basicConstraints CA:FALSE)" % (directory, CA_CERT))
    except x509.ExtensionNotFound:
        raise CAError("%s: %s has no basicConstraints; it is not a CA certificate" % (directory, CA_CERT))
    return CA(cert, key, pem)


class CA:
    """An unlocked CA: issues leaf certificates and CRLs. pem is ca.crt as given (chain included)."""

    def __init__(self, cert, key, pem):
        self.cert = cert
        self.key = key
        self.pem = pem

    def _hash(self):
        from cryptography.hazmat.primitives import hashes

        return hashes.SHA256()  # for EC and RSA CA keys alike

    def issue(self, public_key, common_name, purpose, sans=(), now=None, days=DEVICE_DAYS):
        """A PEM certificate for public_key (a cryptography public key); purpose 'client' or 'server'."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import ExtendedKeyUsageOID

        now = now or _now()
        eku = ExtendedKeyUsageOID.CLIENT_AUTH if purpose == "client" else ExtendedKeyUsageOID.SERVER_AUTH
        b = (x509.CertificateBuilder()
             .subject_name(_name(common_name)).issuer_name(self.cert.subject)
             .public_key(public_key).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(min(now + datetime.timedelta(days=days), self.cert.not_valid_after_utc))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return b.sign(self.key, self._hash()).public_bytes(serialization.Encoding.PEM).decode()

    def issue_device(self, public_sec1, device_id, now=None):
        """The device certificate: CN = device_id, SAN URI urn:civicmote:device:<id>, clientAuth."""
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(public_sec1))
        return self.issue(pub, device_id, "client", [x509.UniformResourceIdentifier(DEVICE_URI + device_id)], now)

    def crl(self, entries, now=None, days=30):
        """A PEM CRL. entries: [(serial int, revoked_at datetime, hold bool)]; hold marks a reversible disable."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        now = now or _now()
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
             .last_update(now - datetime.timedelta(minutes=5)).next_update(now + datetime.timedelta(days=days)))
        for serial, when, hold in entries:
            r = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when or now)
            reason = x509.ReasonFlags.certificate_hold if hold else x509.ReasonFlags.cessation_of_operation
            r = r.add_extension(x509.CRLReason(reason), critical=False)
            b = b.add_revoked_certificate(r.build())
        return b.sign(self.key, self._hash()).public_bytes(serialization.Encoding.PEM)

    def issued_this(self, cert_pem):
        """True if cert_pem (a leaf) was signed by this CA's key."""
        from cryptography import x509

        try:
            leaf = x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
            leaf.verify_directly_issued_by(self.cert)
            return True
        except Exception:
            return False


def cert_serial(cert_pem):
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem).serial_number


class LazyCA:
    """Unlocks the CA on first use and then keeps it, so a batch asks for the passphrase once."""

    def __init__(self, directory, passphrase_source=passphrase_from_env_or_prompt):
        self.directory = directory
        self._source = passphrase_source
        self._ca = None

    def get(self):
        if self._ca is None:
            read_ca_cert(self.directory)  # a missing CA is reported before asking for a passphrase
            self._ca = load_ca(self.directory, self._source())
        return self._ca

    def cert_pem(self):
        return read_ca_cert(self.directory)[1]
