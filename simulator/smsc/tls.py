"""TLS for the SMPP listeners: the configured certificate, or a self-signed one.

A gateway's TLS settings (certificate checks, ciphers) must be exercised before it meets
an operator's TLS endpoint; locally nobody has a CA-signed certificate for 127.0.0.1,
so one is generated once and kept in the state directory for clients to trust.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from simulator.config import TlsConfig

log = logging.getLogger("smsim.smsc")

CERT_NAME = "smsim-selfsigned-cert.pem"
KEY_NAME = "smsim-selfsigned-key.pem"


def state_dir(config: TlsConfig) -> Path:
    """Where generated certificates live: ``config.state_dir`` or the XDG state dir."""
    if config.state_dir:
        return Path(config.state_dir).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "smsim" / "tls"


def _still_valid(cert_path: Path, hostnames: list[str]) -> bool:
    """A generated certificate is reused while it is valid for a day more and names the
    same hosts (a changed ``hostnames`` must not keep serving the old names)."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    if cert.not_valid_after_utc < soon:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return sorted(names) == sorted(str(_name(h)) for h in hostnames)


def _name(host: str) -> str | ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return host


def self_signed(directory: Path, hostnames: list[str]) -> tuple[Path, Path, bool]:
    """(certificate, key, generated now): a self-signed ECDSA P-256 certificate for
    ``hostnames`` in ``directory``, made when missing, expiring or for other names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
    if cert_path.exists() and key_path.exists() and _still_valid(cert_path, hostnames):
        return cert_path, key_path, False
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    alt: list[x509.GeneralName] = []
    for host in hostnames:
        name = _name(host)
        alt.append(x509.DNSName(name) if isinstance(name, str) else x509.IPAddress(name))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key is written readable by its owner only, before any byte of it lands.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, True


def server_context(config: TlsConfig, operator: str) -> tuple[ssl.SSLContext, Path]:
    """The listener's TLS context and the certificate it serves (generated when none is
    configured; the path is logged so clients can be told to trust it)."""
    if config.cert_file:
        cert, key = Path(config.cert_file), Path(config.key_file)
    else:
        cert, key, made = self_signed(state_dir(config), config.hostnames)
        log.log(
            logging.WARNING if made else logging.INFO,
            "tls_self_signed operator=%s cert=%s key=%s generated=%s (trust this cert file)",
            operator,
            cert,
            key,
            "yes" if made else "no (reused)",
        )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx, cert
