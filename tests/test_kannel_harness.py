"""Tests of the real-Kannel harness in tests/support/kannel.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import struct
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.kannel import (
    HttpRecorder,
    KannelConfig,
    KannelError,
    KannelPorts,
    KannelProcess,
    courier_sendsms_params,
    courier_sendsms_query,
    kannel_required,
    render_kannel_conf,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(30)

BIND_TRX, BIND_TRX_RESP = 0x00000009, 0x80000009
SUBMIT_SM, SUBMIT_SM_RESP = 0x00000004, 0x80000004
DELIVER_SM, DELIVER_SM_RESP = 0x00000005, 0x80000005
UNBIND, UNBIND_RESP = 0x00000006, 0x80000006
CHANNEL = "8eb23e93-5ecb-45ba-b726-3b064e0c56ab"
MSG_UUID = "0191e180-7d60-7000-aded-7d8b151cbd5b"


@pytest.fixture(autouse=True)
def _require_kannel(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("kannel"):
        kannel_required()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (pid reuse)
        return True
    return True


def pdu(command_id: int, seq: int, body: bytes = b"", status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


class BindOnlySmsc:
    """Threaded fake: accepts TCP, answers bind_transceiver, records every PDU."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.pdus: list[tuple[int, bytes]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn, conn.makefile("rb") as f:
                while len(hdr := f.read(16)) == 16:
                    length, cid, _status, seq = struct.unpack(">IIII", hdr)
                    self.pdus.append((cid, f.read(length - 16)))
                    if cid == BIND_TRX:
                        conn.sendall(pdu(BIND_TRX_RESP, seq, b"fakesmsc\0"))
                    elif cid == UNBIND:  # else Kannel's shutdown waits for it (SIGKILL)
                        conn.sendall(pdu(UNBIND_RESP, seq))

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def bind_only_smsc() -> Iterator[BindOnlySmsc]:
    smsc = BindOnlySmsc()
    yield smsc
    smsc.close()


# -------------------------------------------------------------------------------- no Kannel


def test_rendered_conf_stays_in_workdir_and_on_loopback(tmp_path: Path) -> None:
    ports = KannelPorts(admin=20001, smsbox=20002, sendsms=20003)
    conf = render_kannel_conf(KannelConfig(smsc_port=2775), ports, tmp_path).read_text()
    assert "admin-port = 20001" in conf
    assert "smsbox-port = 20002" in conf and "bearerbox-port = 20002" in conf
    assert "sendsms-port = 20003" in conf
    assert "mo-recode = true" in conf and 'dlr-storage = "internal"' in conf
    assert "msg-id-type" not in conf  # omitted when None
    assert "store-type" not in conf  # no store at all: nothing under /var/spool/kannel
    for path in re.findall(r'"(/[^"]*)"', conf):
        assert Path(path).is_relative_to(tmp_path.resolve()), path
    ips = set(re.findall(r"\b\d+\.\d+\.\d+\.\d+\b", conf))
    assert ips == {"127.0.0.1"}

    conf = render_kannel_conf(
        KannelConfig(smsc_port=2775, msg_id_type=1, throughput=None, store="spool"),
        ports,
        tmp_path,
    ).read_text()
    assert "msg-id-type = 1" in conf and "throughput" not in conf
    assert f'store-location = "{tmp_path.resolve() / "spool"}"' in conf


def test_courier_sendsms_params() -> None:
    base = {"username": "u", "password": "p", "from_": "1442", "to": "201001234567"}
    plain = courier_sendsms_params(text="Hi ‘there’", dlr_url="http://x/s?status=%d", **base)
    assert list(plain) == sorted(plain)  # Go's url.Values.Encode sorts keys
    assert plain["text"] == "Hi 'there'"  # courier's GSM7 substitutions
    assert "coding" not in plain and plain["dlr-mask"] == "27"
    arabic = courier_sendsms_params(text="مرحبا", **base)
    assert arabic["text"] == "مرحبا" and arabic["coding"] == "2" and arabic["charset"] == "utf8"
    assert courier_sendsms_query(text="a b&c", dlr_mask=None, **base) == (
        "from=1442&password=p&text=a+b%26c&to=201001234567&username=u"
    )


def test_kannel_required_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = ["/nonexistent/bearerbox"]
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        kannel_required(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        kannel_required(missing)
    kannel_required(["/bin/sh"])  # present: no-op even in CI


def test_http_recorder_records_post_form() -> None:
    with HttpRecorder() as rec:
        assert rec.url.startswith("http://127.0.0.1:")
        data = urllib.parse.urlencode({"id": "42", "message": "مرحبا"}).encode()
        req = urllib.request.Request(f"{rec.receive_url(CHANNEL)}&x=1", data=data, method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=5) as resp:
            assert (resp.status, resp.read()) == (200, b"OK")
        got = rec.wait_for(lambda r: r.method == "POST", timeout=5)
        assert got.path == f"/c/kn/{CHANNEL}/receive"
        assert got.form == {"id": ["42"], "message": ["مرحبا"]}
        assert got.query["sender"] == ["%p"] and got.query["x"] == ["1"]
        assert got.get("message") == "مرحبا" and got.body == data
        assert got.headers["content-type"] == "application/x-www-form-urlencoded"
        assert len(rec.requests) == 1
        with pytest.raises(TimeoutError):
            rec.wait_for(lambda r: r.method == "GET", timeout=0.1)


# ------------------------------------------------------------------------------ real Kannel


@pytest.mark.kannel
def test_kannel_starts_and_answers_status_on_our_admin_port(tmp_path: Path) -> None:
    with KannelProcess(KannelConfig(smsc_port=free_port()), tmp_path) as kannel:
        assert kannel.running()
        status = kannel.status()
        assert status.startswith("Kannel bearerbox version")
        assert "Status: running" in status
        assert "store size -1" in status  # no message store configured
        assert "smsbox:" in status  # smsbox is connected
        assert f"127.0.0.1:{kannel.ports.admin}" in kannel.admin_url
        assert (tmp_path / "bearerbox.log").stat().st_size > 0
        assert (tmp_path / "smsbox.log").stat().st_size > 0
        assert "bearerbox.log" in kannel.log_tail(5)


@pytest.mark.kannel
def test_start_failure_raises_with_log_tail_and_cleans_up(tmp_path: Path) -> None:
    cfg = KannelConfig(smsc_port=free_port(), extra_smsc={"no-such-field": 1})
    kannel = KannelProcess(cfg, tmp_path)
    with pytest.raises(KannelError, match=r"(?s)exited with status.*no-such-field"):
        kannel.start()
    assert not kannel.running() and not [p for p in kannel.pids if _pid_alive(p)]


class _Boom(Exception):
    pass


@pytest.mark.kannel
def test_no_smsc_listening_is_not_online_and_stop_leaves_no_process(tmp_path: Path) -> None:
    cfg = KannelConfig(smsc_port=free_port())  # nothing listens there
    with pytest.raises(_Boom), KannelProcess(cfg, tmp_path) as kannel:
        pids = kannel.pids
        assert len(pids) == 2 and all(_pid_alive(p) for p in pids)
        states = set()
        for _ in range(8):  # ~1.5 s: more than one reconnect-delay
            states.add(kannel.smsc_state())
            assert not kannel.smsc_online()
            time.sleep(0.2)
        assert states <= {"connecting", "re-connecting", "disconnected"}, states
        assert kannel.sendsms("201001234567", "hello").startswith("3: Queued")
        raise _Boom  # a failing test body must still stop Kannel
    assert not kannel.running()
    assert not [p for p in pids if _pid_alive(p)]


@pytest.mark.kannel
def test_bind_goes_online_and_sendsms_is_accepted(
    tmp_path: Path, bind_only_smsc: BindOnlySmsc
) -> None:
    cfg = KannelConfig(smsc_port=bind_only_smsc.port)
    with KannelProcess(cfg, tmp_path) as kannel:
        kannel.wait_smsc_online(timeout=10)
        assert (kannel.smsc_state() or "").startswith("online")  # e.g. "online 1s"
        assert kannel.smsc_online()
        bind_body = next(body for cid, body in bind_only_smsc.pdus if cid == BIND_TRX)
        assert bind_body.startswith(b"rapidpro\0secret\0")
        assert kannel.sendsms("201001234567", "hello").startswith("0: Accepted")
        pids = kannel.pids
    assert not [p for p in pids if _pid_alive(p)]


# ------------------------------------------------- async: SMSC in the test's event loop


def _cstr(buf: bytes, pos: int) -> tuple[bytes, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end], end + 1


def parse_submit_sm(body: bytes) -> dict[str, object]:
    _service_type, pos = _cstr(body, 0)
    source_ton_npi = body[pos], body[pos + 1]
    source, pos = _cstr(body, pos + 2)
    dest_ton_npi = body[pos], body[pos + 1]
    dest, pos = _cstr(body, pos + 2)
    esm_class = body[pos]
    _schedule, pos = _cstr(body, pos + 3)  # after esm_class, protocol_id, priority_flag
    _validity, pos = _cstr(body, pos)
    registered_delivery, _replace, data_coding, _default_id, length = body[pos : pos + 5]
    return {
        "source": (*source_ton_npi, source),
        "dest": (*dest_ton_npi, dest),
        "esm_class": esm_class,
        "registered_delivery": registered_delivery,
        "data_coding": data_coding,
        "short_message": body[pos + 5 : pos + 5 + length],
    }


def deliver_sm(seq: int, source: str, dest: str, text: str) -> bytes:
    sm = text.encode("utf-16-be")
    body = (
        b"\0"  # service_type
        + bytes([1, 1]) + source.encode() + b"\0"
        + bytes([3, 0]) + dest.encode() + b"\0"
        + bytes([0, 0, 0]) + b"\0\0"  # esm_class, protocol_id, priority; sched, validity
        + bytes([0, 0, 8, 0, len(sm)]) + sm  # reg_delivery, replace, data_coding=8, msg id
    )  # fmt: skip
    return pdu(DELIVER_SM, seq, body)


class AsyncSmsc:
    """asyncio fake: bind_transceiver_resp, submit_sm_resp "msg-<n>", can push deliver_sm."""

    def __init__(self) -> None:
        self.submits: asyncio.Queue[bytes] = asyncio.Queue()
        self.bound = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.server: asyncio.Server | None = None

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length, cid, _status, seq = struct.unpack(">IIII", await reader.readexactly(16))
                body = await reader.readexactly(length - 16)
                if cid == BIND_TRX:
                    writer.write(pdu(BIND_TRX_RESP, seq, b"fakesmsc\0"))
                    self.bound.set()
                elif cid == SUBMIT_SM:
                    writer.write(pdu(SUBMIT_SM_RESP, seq, f"msg-{seq}".encode() + b"\0"))
                    self.submits.put_nowait(body)
                elif cid == UNBIND:
                    writer.write(pdu(UNBIND_RESP, seq))

    async def __aenter__(self) -> AsyncSmsc:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        if self.writer:
            self.writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def async_smsc() -> AsyncIterator[AsyncSmsc]:
    async with AsyncSmsc() as smsc:
        yield smsc


@pytest.mark.kannel
async def test_async_courier_round_trip(tmp_path: Path, async_smsc: AsyncSmsc) -> None:
    """MT with DLR and Arabic MO through real Kannel, SMSC in this event loop."""
    with HttpRecorder() as courier:
        cfg = KannelConfig(smsc_port=async_smsc.port, mo_url=courier.receive_url(CHANNEL))
        async with KannelProcess(cfg, tmp_path) as kannel:
            await kannel.async_wait_smsc_online(timeout=10)
            answer = await kannel.async_sendsms(
                "201001234567", "مرحبا", dlr_url=courier.status_url(CHANNEL, MSG_UUID)
            )
            assert answer.startswith("0: Accepted")

            submit = parse_submit_sm(await asyncio.wait_for(async_smsc.submits.get(), 10))
            assert submit["source"] == (3, 0, b"1442")  # short code TON 3 / NPI 0
            assert submit["dest"] == (1, 1, b"201001234567")  # handset TON 1 / NPI 1
            assert submit["registered_delivery"] == 1  # dlr-mask 27 asks for a receipt
            assert submit["data_coding"] == 8  # coding=2 charset=utf8 -> UCS-2
            assert submit["short_message"] == "مرحبا".encode("utf-16-be")

            dlr = await courier.async_wait_for(lambda r: r.path.endswith("/status"), 10)
            assert dlr.method == "GET" and dlr.path == f"/c/kn/{CHANNEL}/status"
            assert dlr.query["uuid"] == [MSG_UUID] and dlr.query["status"] == ["8"]

            assert async_smsc.writer is not None
            async_smsc.writer.write(deliver_sm(1, "201001234567", "1442", "نعم ١"))
            mo = await courier.async_wait_for(lambda r: r.path.endswith("/receive"), 10)
            assert mo.method == "POST" and mo.path == f"/c/kn/{CHANNEL}/receive"
            assert mo.get("message") == "نعم ١"  # mo-recode: UTF-8, not UTF-16BE
            assert (mo.get("sender") or "").endswith("201001234567")
            assert mo.get("to") == "1442" and (mo.get("ts") or "").isdigit()
            assert mo.get("id")
