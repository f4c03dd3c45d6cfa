"""Lock-out of a misbehaving IP (issue 8): connections closed for junk lock it as wrong
passwords do, its new connections are then closed as they are accepted (no session, no
log line of their own), the lock ends after ``security.lockout`` seconds, and nothing a
well-behaved client does (binds, reconnects, abrupt hang-ups, refused binds for a full
account, connections that send nothing) counts towards it.

Clients: smpplib (a client nobody here wrote) for the well-behaved side, the project's
EsmeClient from chosen loopback addresses (127.0.0.x, each its own client IP), raw
sockets for the junk.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts as c
import smpplib.exceptions

from simulator.config import AccountConfig, SecurityConfig, TlsConfig
from simulator.esme.client import EsmeClient, SmppClientError
from simulator.smsc.guard import BindGuard
from simulator.smsc.server import SmscServer, SmscThread
from simulator.smsc.tls import CERT_NAME
from tests.support.peers import PASSWORD, SYSTEM_ID
from tests.support.smsc import config, sm, until

pytestmark = pytest.mark.timeout(30)

#: Three kinds of junk, each closing the connection before a bind: a command_length of
#: 4 GiB, one below the 16-octet header, and unknown command ids (errors_before_bind).
JUNK = [
    struct.pack(">IIII", 0xFFFFFFF0, 0x7F00, 0, 1),
    struct.pack(">IIII", 8, 0x7F00, 0, 1),
    b"".join(struct.pack(">IIII", 16, 0x7F00 + i, 0, i + 1) for i in range(5)),
]


async def send_junk(port: int, ip: str, junk: bytes) -> bytes:
    """Connect from ``ip``, send ``junk``, read until the SMSC closes; what came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ip, 0))
    try:
        writer.write(junk)
        return await asyncio.wait_for(reader.read(), 5)  # read() to EOF: closed
    finally:
        writer.close()


async def refused(port: int, ip: str) -> bool:
    """Whether a well-formed bind with the right password from ``ip`` is cut off before
    any answer (True), or binds (False; it unbinds again)."""
    try:
        client = await EsmeClient.connect("127.0.0.1", port, local_addr=(ip, 0))
    except SmppClientError as exc:
        assert "connection lost" in str(exc), exc
        return True
    except ConnectionError:  # reset: seen at connect already
        return True
    await client.unbind()
    return False


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


async def test_junk_locks_the_ip_and_its_connections_are_refused_unread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="smsim")
    security = SecurityConfig(junk_connections=3, lockout=30, errors_before_bind=3)
    async with SmscServer(config(security=security)) as smsc:
        port = smsc.port
        good = await EsmeClient.connect("127.0.0.1", port)
        for junk in JUNK:
            answer = await send_junk(port, "127.0.0.40", junk)
            assert answer[4:8] == b"\x80\x00\x00\x00"  # generic_nack, then the close
        assert smsc.operator().guard.until("ip:127.0.0.40") is not None
        assert await refused(port, "127.0.0.40")
        assert await refused(port, "127.0.0.40")
        # Other IPs are not locked, and the client bound before keeps working.
        assert not await refused(port, "127.0.0.41")
        assert (await good.request(sm())).command_status == 0
        stats = smsc.stats()
        assert stats.connection_refusals == {"locked_out": 2}
        assert stats.lockouts == {"ip": 1}
        await good.unbind()
    lines = messages(caplog)
    locks = [line for line in lines if line.startswith("bind_lockout ")]
    assert len(locks) == 1, locks
    assert "key=ip:127.0.0.40" in locks[0] and "reason=junk count=3" in locks[0]
    # The refused connections never reached the operator: three connects from the IP
    # (the junk), and not a line for the two refused ones.
    from_ip = [line for line in lines if "peer=127.0.0.40:" in line]
    assert sum(line.startswith("connect ") for line in from_ip) == 3
    assert not [line for line in lines if "locked_out" in line or "connection_refused" in line]


async def test_the_lock_ends_after_lockout_seconds_and_the_ip_binds_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="smsim")
    security = SecurityConfig(junk_connections=2, lockout=0.5)
    async with SmscServer(config(security=security)) as smsc:
        port = smsc.port
        loop = asyncio.get_running_loop()
        await send_junk(port, "127.0.0.42", JUNK[0])
        await send_junk(port, "127.0.0.42", JUNK[1])
        locked_at = loop.time()
        assert await refused(port, "127.0.0.42")
        guard = smsc.operator().guard
        await until(lambda: guard.until("ip:127.0.0.42") is None)
        assert loop.time() >= locked_at + 0.5
        assert not await refused(port, "127.0.0.42")
    lines = messages(caplog)
    ended = [line for line in lines if line.startswith("bind_lockout_ended")]
    assert len(ended) == 1, lines
    assert "key=ip:127.0.0.42" in ended[0] and "reason=junk" in ended[0]
    assert "refused=1" in ended[0]


async def test_a_good_bind_forgets_the_junk_of_its_ip() -> None:
    security = SecurityConfig(junk_connections=2, lockout=30)
    async with SmscServer(config(security=security)) as smsc:
        port = smsc.port
        await send_junk(port, "127.0.0.43", JUNK[2])
        assert not await refused(port, "127.0.0.43")  # bound: the count starts again
        await send_junk(port, "127.0.0.43", JUNK[2])
        assert not await refused(port, "127.0.0.43")
        await send_junk(port, "127.0.0.43", JUNK[2])
        await send_junk(port, "127.0.0.43", JUNK[2])
        assert await refused(port, "127.0.0.43")


async def test_the_tls_listener_refuses_a_locked_ip(tmp_path: Path) -> None:
    security = SecurityConfig(junk_connections=1, lockout=30)
    cfg = config(security=security, tls=TlsConfig(port=0, state_dir=str(tmp_path)))
    async with SmscServer(cfg) as smsc:
        host, tls_port = smsc.tls_address()
        ctx = ssl.create_default_context(cafile=str(tmp_path / CERT_NAME))
        ok = await EsmeClient.connect(host, tls_port, ssl=ctx, server_hostname="localhost")
        await ok.unbind()
        await send_junk(smsc.port, "127.0.0.1", JUNK[0])  # locks 127.0.0.1
        with pytest.raises((SmppClientError, OSError)):
            await EsmeClient.connect(host, tls_port, ssl=ctx, server_hostname="localhost")
        assert smsc.stats().connection_refusals == {"locked_out": 1}
        # Refused before its TLS handshake: the only handshake begun is the first client's.
        assert smsc.tls_counters["egypt"].begun == 1


def test_well_behaved_clients_never_trip_the_lock() -> None:
    """The most sensitive settings (one junk connection or one wrong password locks)
    against what gateways do: smpplib binding, submitting and unbinding again and
    again, hanging up without an unbind, binding to a full account (ESME_RBINDFAIL),
    connecting and closing without a byte (a health check), and timing out unbound."""
    security = SecurityConfig(junk_connections=1, bind_failures=1, lockout=30, bind_timeout=0.2)
    accounts = [AccountConfig(system_id=SYSTEM_ID, password=PASSWORD, max_binds=1)]
    with SmscThread(config(security=security, accounts=accounts)) as thread:
        assert thread.server is not None
        server = thread.server
        port = thread.port

        def client() -> smpplib.client.Client:
            return smpplib.client.Client(
                "127.0.0.1", port, timeout=5.0, allow_unknown_opt_params=True
            )

        for cycle in range(20):
            gw = client()
            gw.connect()
            resp = gw.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
            assert resp.status == c.SMPP_ESME_ROK, cycle
            if cycle % 2:
                full = client()  # the account's one bind is taken
                full.connect()
                with pytest.raises(smpplib.exceptions.PDUError):
                    full.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
                full.disconnect()
            gw.send_message(
                source_addr_ton=c.SMPP_TON_NWSPEC,
                source_addr="1442",
                dest_addr_ton=c.SMPP_TON_INTL,
                dest_addr_npi=c.SMPP_NPI_ISDN,
                destination_addr="201001234567",
                short_message=b"again",
            )
            gw.read_once(auto_send_enquire_link=False)  # submit_sm_resp
            if cycle % 3:
                gw.unbind()
            gw.disconnect()  # every third: hung up while bound
            with socket.create_connection(("127.0.0.1", port), 5):
                pass  # a health check: connect, close
        # A connection that never binds is closed by the bind timeout: not junk either.
        idle = socket.create_connection(("127.0.0.1", port), 5)
        idle.settimeout(5)
        assert idle.recv(16) == b""
        idle.close()
        gw = client()
        gw.connect()
        assert gw.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD).status == 0
        gw.unbind()
        gw.disconnect()
        stats = thread.call(server.stats)
        assert stats.lockouts == {} and stats.connection_refusals == {}
        assert stats.binds == 21 and stats.bind_timeouts == 1
        assert stats.bind_refusals == {"max_binds": 10}


# --- the rule itself, without a server ------------------------------------------------------


def test_guard_junk_counts_in_a_sliding_window_and_locks_for_lockout_seconds() -> None:
    guard = BindGuard(SecurityConfig(junk_connections=3, bind_failure_window=10, lockout=60))
    assert guard.junk("a", 0) is None and guard.junk("a", 5) is None
    assert guard.junk("a", 10.5) is None  # the one at 0 has left the window
    lock = guard.junk("a", 11)
    assert lock is not None and (lock.key, lock.until, lock.reason) == ("ip:a", 71, "junk")
    assert guard.refuses("a", 70.9) and not guard.refuses("b", 70.9)
    assert lock.refused == 1
    assert guard.locked("a", SYSTEM_ID, 70.9) == "ip:a"  # a bind on a connection from before
    assert guard.ended("ip:a", 70.9) is None  # still on
    assert not guard.refuses("a", 71)
    assert guard.ended("ip:a", 71) is lock and guard.until("ip:a") is None


def test_guard_a_failure_while_locked_renews_without_a_second_lock() -> None:
    guard = BindGuard(SecurityConfig(bind_failures=1, lockout=60))
    (lock,) = guard.failed("a", SYSTEM_ID, 0)
    assert guard.failed("a", SYSTEM_ID, 30) == []  # a connection from before the lock
    assert guard.until("ip:a") == 90 and lock.until == 90
    assert guard.ended("ip:a", 60) is None


@pytest.mark.parametrize(
    "security", [SecurityConfig(junk_connections=0), SecurityConfig(lockout=0)]
)
def test_guard_junk_never_locks_when_turned_off(security: SecurityConfig) -> None:
    guard = BindGuard(security)
    assert all(guard.junk("a", float(t)) is None for t in range(20))
    assert not guard.refuses("a", 20)
