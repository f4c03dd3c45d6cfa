"""TLS for the SMPP listeners: the configured certificate, or a self-signed one; client
certificates (mutual TLS); the handshake done here so its failures are counted.

A gateway's TLS settings (certificate checks, ciphers, its client certificate) must be
exercised before it meets an operator's TLS endpoint; locally nobody has a CA-signed
certificate for 127.0.0.1, so one is generated once and kept in the state directory for
clients to trust.

Why the listener accepts plain TCP and upgrades each connection itself
(``TlsHandshake``, ``loop.start_tls``) rather than ``create_server(ssl=...)``: there, a
failed handshake is dropped inside the event loop without a word (asyncio reports it
only in debug mode, uvloop not at all), so a gateway with the wrong CA, no client
certificate or a plain-TCP bind on the TLS port would be invisible in the metrics.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import logging
import os
import re
import ssl
from collections import Counter
from collections.abc import Callable
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
        reason = (exc.reason or "").lower()
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
    """Handshakes on one operator's TLS listener: completed, and failed by reason."""

    __slots__ = ("failures", "handshakes", "in_progress")

    def __init__(self) -> None:
        self.handshakes = 0
        self.in_progress = 0
        self.failures: Counter[str] = Counter()


class _Buffered(asyncio.Protocol):
    """Stands in for the SMPP protocol while the handshake runs: ``start_tls`` may hand
    it data (a bind sent with the client's Finished) before the upgrade has returned."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = (exc,)


class TlsHandshake(asyncio.Protocol):
    """The TLS listener's protocol: takes the TCP connection, runs the server handshake
    (``loop.start_tls``, within ``timeout``), then hands the TLS transport to a new
    ``protocol_factory()``; a failed handshake is counted by reason, logged at debug
    level (junk costs no log line each) and the socket aborted."""

    def __init__(
        self,
        context: ssl.SSLContext,
        timeout: float,
        protocol_factory: Callable[[], asyncio.Protocol],
        counters: TlsCounters,
        operator: str,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self._context = context
        self._timeout = timeout
        self._factory = protocol_factory
        self._counters = counters
        self._operator = operator
        self._tasks = tasks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp: asyncio.Transport = transport  # type: ignore[assignment]
        tcp.pause_reading()  # nothing read until start_tls owns the socket
        task = asyncio.get_running_loop().create_task(self._upgrade(tcp))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _upgrade(self, tcp: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        counters = self._counters
        buffered = _Buffered()
        counters.in_progress += 1
        try:
            tls = await loop.start_tls(
                tcp,
                buffered,
                self._context,
                server_side=True,
                ssl_handshake_timeout=self._timeout,
            )
        except (OSError, EOFError, ssl.SSLError, TimeoutError, ValueError) as exc:
            reason = failure_reason(exc)
            counters.failures[reason] += 1
            log.debug(
                "tls_handshake_failed operator=%s peer=%s reason=%s error=%s",
                self._operator,
                tcp.get_extra_info("peername"),
                reason,
                exc,
            )
            tcp.abort()
            return
        except asyncio.CancelledError:
            tcp.abort()
            raise
        finally:
            counters.in_progress -= 1
        if tls is None:  # the peer went away as the handshake ended
            counters.failures["closed"] += 1
            tcp.abort()
            return
        counters.handshakes += 1
        protocol = self._factory()
        protocol.connection_made(tls)
        tls.set_protocol(protocol)
        for chunk in buffered.data:
            protocol.data_received(chunk)
        if buffered.lost is not None:
            protocol.connection_lost(buffered.lost[0])
        elif buffered.eof and not protocol.eof_received():
            tls.close()
