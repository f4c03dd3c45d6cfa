"""TLS for the SMPP listeners: the configured certificate, or a self-signed one; client
certificates (mutual TLS); handshakes counted, failures by reason.

A gateway's TLS settings (certificate checks, ciphers, its client certificate) must be
exercised before it meets an operator's TLS endpoint; locally nobody has a CA-signed
certificate for 127.0.0.1, so one is generated once and kept in the state directory for
clients to trust.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import re
import ssl
from collections import Counter
from pathlib import Path
from typing import Any

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
    if config.client_ca_file:
        # Mutual TLS: clients are asked for a certificate signed by these CAs; without
        # require_client_cert one may still come without (the account's pins decide).
        ctx.load_verify_locations(cafile=config.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED if config.require_client_cert else ssl.CERT_OPTIONAL
    return ctx, cert


# --- client certificates --------------------------------------------------------------


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex (what ``tls_client_cert_sha256`` holds;
    ``openssl x509 -noout -fingerprint -sha256`` prints it with colons)."""
    return hashlib.sha256(der).hexdigest()


def peer_fingerprint(transport: Any) -> str | None:
    """The SHA-256 of the client certificate the TLS peer presented (and the listener
    verified), None on a plain connection or when the client sent none."""
    if transport is None:
        return None
    obj = transport.get_extra_info("ssl_object")
    if obj is None:
        return None
    der = obj.getpeercert(binary_form=True)
    return fingerprint(der) if der else None


def pin_refusal(pins: list[str], transport: Any) -> str | None:
    """Why an account pinned to client certificates may not bind on this connection:
    ``not_tls``, ``no_client_certificate``, ``client_certificate_not_pinned``; None if it
    may (or the account has no pins)."""
    if not pins:
        return None
    if transport is None or transport.get_extra_info("ssl_object") is None:
        return "not_tls"
    seen = peer_fingerprint(transport)
    if seen is None:
        return "no_client_certificate"
    return None if seen in pins else "client_certificate_not_pinned"


# --- the handshake, counted -----------------------------------------------------------

_REASON = re.compile(r"[a-z0-9_]{1,64}")


def failure_reason(exc: BaseException) -> str:
    """A short, bounded label for a failed handshake: OpenSSL's reason in lower case
    (``peer_did_not_return_a_certificate``, ``certificate_verify_failed``,
    ``wrong_version_number``, ``http_request``, ``tlsv1_alert_unknown_ca`` when the client
    refused our certificate...), else ``timeout``, ``closed`` or ``error``."""
    if isinstance(exc, ssl.SSLError):
        reason = (getattr(exc, "reason", None) or "").lower()
        if _REASON.fullmatch(reason):
            return reason
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return "closed"
        return "error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError | EOFError):
        return "closed"
    return "error"


class TlsCounters:
    """Handshakes on one operator's TLS listener: begun, completed, failed by reason, and
    abandoned (the connection ended mid-handshake: the client hung up, or the
    listener's ``handshake_timeout`` dropped it)."""

    __slots__ = ("abandoned", "begun", "failures", "handshakes")

    def __init__(self) -> None:
        self.begun = 0
        self.handshakes = 0
        self.abandoned = 0
        self.failures: Counter[str] = Counter()

    @property
    def in_progress(self) -> int:
        return self.begun - self.handshakes - self.abandoned - sum(self.failures.values())


class _CountedSSLObject(ssl.SSLObject):
    """The TLS state of one connection, as the event loop's SSL protocol drives it
    (``SSLContext.sslobject_class``): its ``do_handshake`` outcome is counted. The
    subclass made per listener (``count_handshakes``) carries the counters."""

    counters: TlsCounters
    _outcome: bool

    def do_handshake(self) -> None:
        counters = self.counters
        if not hasattr(self, "_outcome"):
            self._outcome = False
            counters.begun += 1
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except (ssl.SSLError, OSError) as exc:
            if not self._outcome:
                self._outcome = True
                counters.failures[failure_reason(exc)] += 1
            raise
        if not self._outcome:
            self._outcome = True
            counters.handshakes += 1

    def __del__(self) -> None:
        if getattr(self, "_outcome", True) is False:
            self.counters.abandoned += 1


def count_handshakes(ctx: ssl.SSLContext) -> TlsCounters:
    """Count every server handshake made with ``ctx`` from now on; the counters.

    Why through the context: with ``create_server(ssl=ctx)`` a failed handshake is
    dropped inside the event loop without a word (asyncio reports it in debug mode only,
    uvloop not at all), so a gateway with the wrong CA, no client certificate, or plain
    SMPP sent to the TLS port would otherwise be invisible. Both loops build each
    connection's TLS state with ``ctx.wrap_bio``, which makes ``ctx.sslobject_class``.
    """
    counters = TlsCounters()
    ctx.sslobject_class = type(
        "CountedSSLObject", (_CountedSSLObject,), {"counters": counters, "__slots__": ()}
    )
    return counters
