"""Mutual TLS on the SMPP TLS listener, per-account client-certificate pins, and the TLS
handshake counters in /metrics.

The clients are smpplib and Python's ``ssl`` (neither written here) presenting a client
certificate, another CA's, or none; the certificates come from a throwaway CA
(``tests/support/certs.py``). Every metric is read over HTTP from the control API, as
Prometheus would.
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import smpplib.client
import smpplib.consts as c
from prometheus_client.parser import text_string_to_metric_families

from simulator.config import (
    AccountConfig,
    ControlConfig,
    OperatorConfig,
    ReceiptConfig,
    SmscConfig,
    TlsConfig,
)
from simulator.esme.client import EsmeClient, SmppClientError
from simulator.smpp.constants import Status
from simulator.smpp.pdu import BindTransceiver, SubmitSm
from simulator.smsc.server import SmscServer, SmscThread
from simulator.smsc.tls import CERT_NAME, failure_reason
from tests.support.certs import Issued, TestCa
from tests.support.peers import HANDSET, PASSWORD, SHORT_CODE, SYSTEM_ID
from tests.support.smpplib_peer import Peer

pytestmark = pytest.mark.timeout(30)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted({"operator": "egypt", **labels}.items()))), 0.0)


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until ``pred()``; the server counts a failed handshake after the client has
    already seen it fail, so tests wait for the count, never for a duration."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def client_context(server_cert: Path, client: Issued | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(server_cert))
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    return ctx


class _Hostname:
    """What smpplib calls ``wrap_socket(sock)`` on: the context plus the host name."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx

    def wrap_socket(self, sock: socket.socket) -> ssl.SSLSocket:
        return self.ctx.wrap_socket(sock, server_hostname="localhost")


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


def mtls_config(tmp_path: Path, ca: TestCa, *, required: bool, **op: Any) -> SmscConfig:
    tls = TlsConfig(
        port=0,
        state_dir=str(tmp_path / "server"),
        client_ca_file=str(ca.pem),
        require_client_cert=required,
    )
    return SmscConfig(
        operators=[OperatorConfig(port=0, receipt=ReceiptConfig(delay=0.01), tls=tls, **op)],
        control=ControlConfig(enabled=True, port=0),
    )


@pytest.fixture
def required_smsc(tmp_path: Path, ca: TestCa) -> Iterator[SmscThread]:
    with SmscThread(mtls_config(tmp_path, ca, required=True)) as thread:
        yield thread


def tls_port(smsc: SmscThread) -> int:
    assert smsc.server is not None
    return int(smsc.call(smsc.server.tls_address)[1])


def control_url(smsc: SmscThread) -> str:
    assert smsc.server is not None and smsc.server.control is not None
    return smsc.server.control.url


def smpplib_bind(port: int, ctx: ssl.SSLContext) -> Peer:
    peer = Peer(port, _Hostname(ctx))
    peer.client.connect()
    try:
        resp = peer.client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
    except Exception:
        peer.client.disconnect()
        raise
    assert (resp.command, resp.status) == ("bind_transceiver_resp", c.SMPP_ESME_ROK)
    return peer


# --- client certificate required --------------------------------------------------------------


def test_required_client_certificate_smpplib_with_one_binds_and_gets_its_receipt(
    required_smsc: SmscThread, tmp_path: Path, ca: TestCa
) -> None:
    server_cert = tmp_path / "server" / CERT_NAME
    gateway = ca.issue("gateway")
    peer = smpplib_bind(tls_port(required_smsc), client_context(server_cert, gateway))
    try:
        peer.submit(b"hello over mutual tls", data_coding=0, esm_class=0)
        peer.read_until(peer.receipts, timeout=10)
        assert b"stat:DELIVRD" in peer.receipts()[0].short_message
        assert peer.client.unbind().status == c.SMPP_ESME_ROK
    finally:
        peer.client.disconnect()
    samples = scrape(control_url(required_smsc))
    assert metric(samples, "smsim_tls_handshakes_total") == 1
    assert metric(samples, "smsim_tls_handshakes_in_progress") == 0


def test_required_client_certificate_refuses_none_and_another_cas(
    required_smsc: SmscThread, tmp_path: Path, ca: TestCa
) -> None:
    port = tls_port(required_smsc)
    url = control_url(required_smsc)
    server_cert = tmp_path / "server" / CERT_NAME
    rogue = TestCa(tmp_path / "rogue", "someone else's CA").issue("gateway")
    for presented in (None, rogue):
        # TLS 1.3: the client's side of the handshake ends before the server has judged
        # its certificate, so the refusal shows on the bind: an alert, or EOF.
        with pytest.raises((OSError, smpplib.exceptions.ConnectionError)):
            smpplib_bind(port, client_context(server_cert, presented)).client.disconnect()
    # Plain SMPP on the TLS port: not a TLS record at all.
    with socket.create_connection(("127.0.0.1", port), 3) as plain:
        plain.sendall(BindTransceiver(system_id=SYSTEM_ID, password=PASSWORD).encode())
        plain.settimeout(3)
        assert not plain.recv(64).startswith(b"\x00\x00\x00")

    def failures() -> dict[str, float]:
        return {
            dict(labels)["reason"]: v
            for (name, labels), v in scrape(url).items()
            if name == "smsim_tls_handshake_failures_total"
        }

    wait_for(lambda: sum(failures().values()) == 3)
    assert failures() == {
        "peer_did_not_return_a_certificate": 1,
        "certificate_verify_failed": 1,
        "wrong_version_number": 1,
    }
    samples = scrape(url)
    assert metric(samples, "smsim_tls_handshakes_total") == 0
    assert required_smsc.server is not None
    assert required_smsc.call(required_smsc.server.stats).binds == 0


def test_client_rejecting_the_servers_certificate_is_counted(
    required_smsc: SmscThread, tmp_path: Path, ca: TestCa
) -> None:
    other = TestCa(tmp_path / "other", "not the SMSC's issuer")
    ctx = ssl.create_default_context(cafile=str(other.pem))
    with pytest.raises(ssl.SSLCertVerificationError):  # noqa: SIM117
        with socket.create_connection(("127.0.0.1", tls_port(required_smsc)), 3) as sock:
            ctx.wrap_socket(sock, server_hostname="localhost")
    url = control_url(required_smsc)

    def unknown_ca() -> float:
        return metric(
            scrape(url), "smsim_tls_handshake_failures_total", reason="tlsv1_alert_unknown_ca"
        )

    wait_for(lambda: unknown_ca() == 1)


# --- optional client certificate, pinned per account ------------------------------------------


async def test_pinned_account_binds_only_with_its_certificate_others_do_not_need_one(
    tmp_path: Path, ca: TestCa
) -> None:
    platform, colleague = ca.issue("platform"), ca.issue("colleague")
    accounts = [
        AccountConfig(
            system_id=SYSTEM_ID, password=PASSWORD, tls_client_cert_sha256=[platform.sha256]
        ),
        AccountConfig(system_id="ops", password="ops"),
    ]
    cfg = mtls_config(tmp_path, ca, required=False, accounts=accounts)
    server_cert = tmp_path / "server" / CERT_NAME
    async with SmscServer(cfg) as smsc:
        host, port = smsc.tls_address()

        async def bind(who: Issued | None, system_id: str = SYSTEM_ID, pw: str = PASSWORD) -> int:
            try:
                client = await EsmeClient.connect(
                    host,
                    port,
                    system_id,
                    pw,
                    ssl=client_context(server_cert, who),
                    server_hostname="localhost",
                )
            except SmppClientError as exc:
                return exc.status
            resp = await client.request(
                SubmitSm(
                    source_addr=SHORT_CODE,
                    source_addr_ton=3,
                    destination_addr=HANDSET,
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    short_message=b"pinned",
                )
            )
            await client.unbind()
            return int(resp.command_status)

        assert await bind(platform) == 0
        assert await bind(colleague) == Status.ESME_RBINDFAIL  # the CA's, not pinned
        assert await bind(None) == Status.ESME_RBINDFAIL
        assert await bind(None, "ops", "ops") == 0  # no pins: no certificate needed
        assert await bind(colleague, "ops", "ops") == 0
        try:  # the pinned account over the plain listener
            plain = await EsmeClient.connect("127.0.0.1", smsc.port, SYSTEM_ID, PASSWORD)
        except SmppClientError as exc:
            assert exc.status == Status.ESME_RBINDFAIL
        else:
            await plain.unbind()
            raise AssertionError("a pinned account bound without TLS")
        assert smsc.control is not None
        samples = await _scrape_async(smsc.control.url)
    for reason in ("client_certificate_not_pinned", "no_client_certificate", "not_tls"):
        assert metric(samples, "smsim_bind_refusals_total", reason=reason) == 1, reason
    assert metric(samples, "smsim_tls_handshakes_total") == 5
    assert smsc.stats().binds == 3


async def _scrape_async(url: str) -> Samples:
    import asyncio

    return await asyncio.to_thread(scrape, url)


# --- configuration and labels -----------------------------------------------------------------


def test_mtls_configuration_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="require_client_cert needs client_ca_file"):
        TlsConfig(port=0, require_client_cert=True)
    with pytest.raises(ValueError, match="not a SHA-256"):
        AccountConfig(tls_client_cert_sha256=["abc"])
    pin = AccountConfig(tls_client_cert_sha256=["AB:" * 31 + "AB"]).tls_client_cert_sha256
    assert pin == ["ab" * 32]  # openssl's colon form, any case


def test_failure_reasons_are_short_labels() -> None:
    err = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    err.reason = "WRONG_VERSION_NUMBER"
    assert failure_reason(err) == "wrong_version_number"
    assert failure_reason(TimeoutError()) == "timeout"
    assert failure_reason(ConnectionResetError()) == "closed"
    assert failure_reason(ssl.SSLEOFError()) == "closed"
    assert failure_reason(RuntimeError()) == "error"
