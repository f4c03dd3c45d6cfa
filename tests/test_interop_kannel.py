"""Production topology in miniature: courier (HTTP) <-> real Kannel 1.4.5 <-> our fake SMSC.

RapidPro's courier talks HTTP to Kannel (GET /cgi-bin/sendsms, callbacks on its dlr-url,
MO posted to /c/kn/{channel}/receive); Kannel holds the SMPP transceiver bind to the
SMSC.  Here :class:`HttpRecorder` plays courier, ``KannelProcess`` runs bearerbox and
smsbox, and ``SmscServer`` runs in the test's own event loop (so every Kannel call goes
through the harness's ``async_*`` API, never blocking the loop).

What Kannel 1.4.5 does, as these tests pin it:

* courier's ``to=+201001234567`` leaves Kannel as destination_addr ``201001234567``
  (the '+' stripped) with TON 1 / NPI 1; the source is ``1442`` TON 3 / NPI 0.
* Long UCS-2 text is split in 67-character parts with a 6-octet UDH, esm_class 0x43,
  and only the first part asks for a receipt (registered_delivery 1, then 0, 0).
* The dlr-url is called with ``status=8`` when the SMSC acknowledges the submit, then
  with ``status=1`` (DELIVRD) or ``2`` (UNDELIV...) when the receipt arrives.
* Receipts are matched by the id of the submit_sm_resp, normalised per ``msg-id-type``.
* MO from TON 1 reaches courier with ``sender=+201001234567`` and ``to=1442``, the text
  recoded to UTF-8 (``mo-recode``) and concatenated parts joined into one POST.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.config import AccountConfig, OperatorConfig, ReceiptConfig, SmscConfig, TlsConfig
from simulator.smpp.constants import MessageState
from simulator.smsc.receipts import Outcome, ReceiptPolicy
from simulator.smsc.server import SmscServer
from simulator.smsc.store import Message
from simulator.smsc.tls import fingerprint, self_signed
from tests.support.certs import TestCa
from tests.support.kannel import (
    COURIER_DLR_MASK,
    HttpRecorder,
    KannelConfig,
    KannelProcess,
    RecordedRequest,
    kannel_required,
)

pytestmark = [pytest.mark.kannel, pytest.mark.timeout(60)]

CHANNEL = "8eb23e93-5ecb-45ba-b726-3b064e0c56ab"
HANDSET = "201001234567"
#: courier sends the URN path: E.164 with the '+'.
COURIER_TO = "+" + HANDSET
STATUS_PATH = f"/c/kn/{CHANNEL}/status"
RECEIVE_PATH = f"/c/kn/{CHANNEL}/receive"
#: courier's Kannel DLR statuses: 1 delivered, 2/16 errored, 4/8 sent.
FINAL_STATUSES = frozenset({"1", "2", "16"})
#: How long to keep listening after the last expected callback, to catch extra ones.
SETTLE = 0.4

#: A Takaful and Karama conditionality reminder: 192 characters, 3 UCS-2 parts of 67.
ARABIC = (
    "تذكير من وزارة التضامن الاجتماعي: يرجى التأكد من انتظام حضور أبنائكم في المدارس "
    "ومتابعة زيارات الوحدة الصحية حتى يستمر صرف دعم تكافل وكرامة. للاستفسار أرسل كلمة "
    "مساعدة إلى ١٤٤٢ مجانا. شكرا لكم"
)
#: GSM 03.38 text with '@' (0x00) and escaped characters ({ } [ ] € \\ ~ ^ |).
GSM_TEXT = "Takaful & Karama @1442: reply 1 {yes} or 2 [no]. Cost 0 €, é ~ ^ \\ |"
#: A quiz answer as the families type it, and a long free-text opinion (3 UCS-2 parts).
ARABIC_MO = "نعم ١"
ARABIC_LONG_MO = (
    "السلام عليكم، أنا أم لثلاثة أطفال من محافظة أسيوط، وصلني الدعم هذا الشهر متأخرا "
    "أسبوعين، وأرجو أن توضحوا لي موعد الصرف القادم وهل يلزم تحديث بيانات الكارت. "
    "وشكرا على برنامج وعي، الرسائل مفيدة"
)


@pytest.fixture(autouse=True)
def _require_kannel() -> None:
    kannel_required()


# -------------------------------------------------------------------------------- helpers


def smsc_config(**operator: object) -> SmscConfig:
    operator.setdefault("port", 0)
    operator.setdefault("receipt", ReceiptConfig(delay=0.2))
    return SmscConfig(operators=[OperatorConfig(**operator)])  # type: ignore[arg-type]


async def until(pred: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def is_status(
    msg_uuid: str, statuses: frozenset[str] | None = None
) -> Callable[[RecordedRequest], bool]:
    def match(r: RecordedRequest) -> bool:
        return (
            r.path == STATUS_PATH
            and r.query.get("uuid") == [msg_uuid]
            and (statuses is None or r.query.get("status", [""])[0] in statuses)
        )

    return match


@dataclass
class Topology:
    smsc: SmscServer
    kannel: KannelProcess
    courier: HttpRecorder

    def dlr_url(self, msg_uuid: str, extra: str = "") -> str:
        """The dlr-url exactly as courier builds it, plus optional extra Kannel escapes."""
        return self.courier.status_url(CHANNEL, msg_uuid) + extra

    async def send(self, text: str, msg_uuid: str, *, to: str = COURIER_TO, extra: str = "") -> str:
        return await self.kannel.async_sendsms(to, text, dlr_url=self.dlr_url(msg_uuid, extra))

    async def wait_request(
        self, pred: Callable[[RecordedRequest], bool], timeout: float = 10.0
    ) -> RecordedRequest:
        try:
            return await self.courier.async_wait_for(pred, timeout)
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{self.kannel.log_tail(25)}") from None

    async def final_status(self, msg_uuid: str, timeout: float = 10.0) -> RecordedRequest:
        return await self.wait_request(is_status(msg_uuid, FINAL_STATUSES), timeout)

    def callbacks(self, msg_uuid: str) -> list[RecordedRequest]:
        """Status callbacks for one message, in arrival order."""
        return [r for r in self.courier.requests if is_status(msg_uuid)(r)]

    def statuses(self, msg_uuid: str) -> list[str]:
        return [r.query["status"][0] for r in self.callbacks(msg_uuid)]

    async def wait_mt(self, count: int, timeout: float = 10.0) -> None:
        await until(
            lambda: len(self.smsc.recorder.messages()) >= count, timeout, f"{count} MT messages"
        )

    def part(self, message_id: str) -> Message:
        msg = self.smsc.operator().store.get(message_id)
        assert msg is not None, f"SMSC has no message {message_id}"
        return msg


@asynccontextmanager
async def topology(
    workdir: Path,
    config: SmscConfig | None = None,
    *,
    policy: ReceiptPolicy | None = None,
    **kannel: object,
) -> AsyncIterator[Topology]:
    """courier recorder + our SMSC (this loop) + Kannel bound to it; torn down in reverse
    (Kannel first, so its unbind is answered)."""
    with HttpRecorder() as courier:
        async with SmscServer(config or smsc_config(), policy=policy) as smsc:
            cfg = KannelConfig(
                smsc_port=smsc.port,
                mo_url=courier.receive_url(CHANNEL),
                **kannel,  # type: ignore[arg-type]
            )
            async with KannelProcess(cfg, workdir / "kannel") as proc:
                await proc.async_wait_smsc_online(timeout=10)
                yield Topology(smsc, proc, courier)


def udh(body: bytes) -> tuple[int, int, int] | None:
    """(ref, total, seq) of an 8-bit concatenation UDH (05 00 03 ref total seq)."""
    if body[:3] == b"\x05\x00\x03":
        return body[3], body[4], body[5]
    return None


# ---------------------------------------------------------------------------- 1. MT Arabic


async def test_arabic_sendsms_as_courier_sends_it_arrives_as_three_ucs2_parts(
    tmp_path: Path,
) -> None:
    assert 2 * 67 < len(ARABIC) <= 3 * 67  # needs exactly 3 concatenated UCS-2 parts
    async with topology(tmp_path) as t:
        url = t.kannel.sendsms_request_url(COURIER_TO, ARABIC, dlr_url=t.dlr_url("mt-ar-1"))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        assert query["coding"] == ["2"] and query["charset"] == ["utf8"]  # courier's Unicode
        assert query["dlr-mask"] == [str(COURIER_DLR_MASK)] == ["27"]
        assert query["to"] == ["+201001234567"] and query["from"] == ["1442"]
        assert query["dlr-url"] == [f"{t.courier.url}/c/kn/{CHANNEL}/status?uuid=mt-ar-1&status=%d"]

        answer = await t.send(ARABIC, "mt-ar-1")
        assert answer == "0: Accepted for delivery"
        await t.wait_mt(1)
        await asyncio.sleep(SETTLE)  # nothing else must arrive

        (mt,) = t.smsc.recorder.messages()
        assert mt.text == ARABIC
        assert mt.parts == 3 and len(mt.message_ids) == 3
        assert mt.data_coding == 8
        assert mt.source_addr == "1442"
        assert mt.destination_addr == HANDSET  # Kannel strips courier's '+'
        assert t.smsc.recorder.messages(destination=HANDSET) == [mt]

        parts = [t.part(mid) for mid in mt.message_ids]
        refs = {udh(p.short_message)[0] for p in parts}  # type: ignore[index]
        assert len(refs) == 1
        (ref,) = refs
        assert [udh(p.short_message) for p in parts] == [(ref, 3, 1), (ref, 3, 2), (ref, 3, 3)]
        assert [len(p.short_message) - 6 for p in parts] == [134, 134, 2 * (len(ARABIC) - 134)]
        for p in parts:
            assert (p.source_addr, p.source_ton, p.source_npi) == ("1442", 3, 0)
            assert (p.destination_addr, p.dest_ton, p.dest_npi) == (HANDSET, 1, 1)
            assert p.esm_class == 0x43 and p.data_coding == 8
        stats = t.smsc.stats()
        assert (stats.submits, stats.accepted, stats.rejected, stats.protocol_errors) == (
            3,
            3,
            0,
            0,
        )


# ------------------------------------------------------------------ 2. its receipt, once


async def test_arabic_receipt_reaches_courier_as_delivered_and_only_first_part_asks(
    tmp_path: Path,
) -> None:
    async with topology(tmp_path) as t:
        assert await t.send(ARABIC, "mt-ar-2") == "0: Accepted for delivery"
        final = await t.final_status("mt-ar-2")
        await until(lambda: t.smsc.stats().receipts_delivered >= 1, 5, "receipt answered")
        await asyncio.sleep(SETTLE)

        assert t.statuses("mt-ar-2") == ["8", "1"]  # sent to SMSC, then delivered
        assert final.method == "GET" and final.path == STATUS_PATH
        assert final.query == {"uuid": ["mt-ar-2"], "status": ["1"]}  # courier's contract

        (mt,) = t.smsc.recorder.messages()
        assert mt.parts == 3
        assert [t.part(mid).registered_delivery for mid in mt.message_ids] == [1, 0, 0]
        stats = t.smsc.stats()
        assert stats.accepted == 3
        assert stats.receipts_due == 1  # one receipt for the three parts
        assert stats.receipts_delivered == 1
        assert stats.deliver_refused == 0 and stats.deliver_retries == 0


# ------------------------------------------------------- 3. GSM 7-bit, failed outcome


async def test_gsm_text_with_undeliverable_receipt_is_errored_for_courier(
    tmp_path: Path,
) -> None:
    config = smsc_config(receipt=ReceiptConfig(delay=0.2, stat="UNDELIV", err=1))
    async with topology(tmp_path, config) as t:
        url = t.kannel.sendsms_request_url(COURIER_TO, GSM_TEXT, dlr_url=t.dlr_url("mt-gsm"))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        assert "coding" not in query and "charset" not in query  # courier: plain GSM7

        assert await t.send(GSM_TEXT, "mt-gsm") == "0: Accepted for delivery"
        final = await t.final_status("mt-gsm")
        await until(lambda: t.smsc.stats().receipts_delivered >= 1, 5, "receipt answered")
        await asyncio.sleep(SETTLE)

        assert t.statuses("mt-gsm") == ["8", "2"]  # 2 = errored: RapidPro retries
        assert final.query == {"uuid": ["mt-gsm"], "status": ["2"]}

        (mt,) = t.smsc.recorder.messages()
        assert mt.text == GSM_TEXT
        assert mt.parts == 1 and mt.data_coding == 0
        assert (mt.source_addr, mt.destination_addr) == ("1442", HANDSET)
        part = t.part(mt.message_ids[0])
        assert part.registered_delivery == 1 and part.esm_class == 0x03
        assert part.state == MessageState.UNDELIVERABLE and part.err == 1
        stats = t.smsc.stats()
        assert (stats.accepted, stats.receipts_due, stats.receipts_delivered) == (1, 1, 1)


# --------------------------------------------------------------------------- 4. Arabic MO


async def test_arabic_mo_short_and_concatenated_reach_courier_in_utf8(tmp_path: Path) -> None:
    long_sender = "201109876543"
    async with topology(tmp_path) as t:
        short = t.smsc.inject_mo(HANDSET, ARABIC_MO)
        assert 2 * 67 < len(ARABIC_LONG_MO) <= 3 * 67
        long = t.smsc.inject_mo(long_sender, ARABIC_LONG_MO)
        assert len(short) == 1 and short[0].data_coding == 8
        assert len(long) == 3 and all(p.data_coding == 8 for p in long)

        def mo_from(number: str) -> Callable[[RecordedRequest], bool]:
            return lambda r: r.path == RECEIVE_PATH and r.query.get("sender") == ["+" + number]

        got_short = await t.wait_request(mo_from(HANDSET))
        got_long = await t.wait_request(mo_from(long_sender))
        await until(lambda: t.smsc.stats().mo_delivered >= 4, 5, "4 deliver_sm answered")
        await asyncio.sleep(SETTLE)

        for got, number, text in (
            (got_short, HANDSET, ARABIC_MO),
            (got_long, long_sender, ARABIC_LONG_MO),
        ):
            assert got.method == "POST"
            assert got.get("message") == text  # mo-recode: UTF-8, not UTF-16BE
            assert got.get("sender") == "+" + number  # Kannel adds '+' for TON 1
            assert got.get("to") == "1442"
            assert got.get("backend") == "fake1442"
            assert re.fullmatch(r"[0-9a-f-]{36}", got.get("id") or "")
            assert abs(int(got.get("ts") or 0) - time.time()) < 60
            assert got.body == text.encode("utf-8")  # the text is also the POST body
        assert got_short.get("id") != got_long.get("id")
        mos = [r for r in t.courier.requests if r.path == RECEIVE_PATH]
        assert len(mos) == 2  # the 3 parts were joined into one POST
        stats = t.smsc.stats()
        assert (stats.mo_queued, stats.mo_delivered, stats.deliver_refused) == (4, 4, 0)


# ---------------------------------------------------------------- 5. message-id formats


class FirstFailsLate:
    """The message whose text starts with "first" is UNDELIV after 0.8 s, any other one
    DELIVRD after 0.05 s: receipts come back in the reverse order of the submits."""

    def outcome(self, msg: Message) -> Outcome:
        if msg.short_message.startswith(b"first"):
            return Outcome(MessageState.UNDELIVERABLE, 0.8, 1)
        return Outcome(MessageState.DELIVERED, 0.05)


def kannel_msg_id(smsc_id: str, msg_id_type: int | None) -> str:
    """The id Kannel 1.4.5 files a submit_sm_resp id under (smsc_smpp.c): the C string
    when msg-id-type is unset, else ``%llu`` of strtoll(id, 16) when bit 0x01 is set or
    the id is not all digits, else of strtoll(id, 10)."""
    if msg_id_type is None:
        return smsc_id
    if msg_id_type & 0x01 or not smsc_id.isdigit():
        digits = re.match(r"[0-9a-fA-F]*", smsc_id).group()  # type: ignore[union-attr]
        return str(int(digits or "0", 16))
    return str(int(smsc_id))


ID_FORMATS = [
    # message_id_format, receipt_id_format, Kannel msg-id-type
    pytest.param("hex", "decimal", 0x01, id="hex-resp-decimal-receipt-0x01"),
    pytest.param("hex", "same", 0x03, id="hex-resp-hex-receipt-0x03"),
    pytest.param("decimal", "hex", 0x02, id="decimal-resp-hex-receipt-0x02"),
    pytest.param("hex", "same", None, id="hex-both-as-strings"),
    pytest.param("uuid", "same", None, id="uuid-as-strings"),
]


@asynccontextmanager
async def two_messages(
    workdir: Path, id_format: str, receipt_format: str, msg_id_type: int | None
) -> AsyncIterator[tuple[Topology, dict[str, str]]]:
    """Send "first" (receipted late, UNDELIV) then "second" (receipted early, DELIVRD)
    to the same handset; yields the topology and {uuid: SMSC message id}."""
    config = smsc_config(message_id_format=id_format, receipt_id_format=receipt_format)
    async with topology(workdir, config, policy=FirstFailsLate(), msg_id_type=msg_id_type) as t:
        extra = "&smsc_id=%F"  # Kannel's copy of the SMSC's id, as it matched it
        assert await t.send("first: payment on Sunday", "first", extra=extra) == (
            "0: Accepted for delivery"
        )
        await t.wait_request(is_status("first", frozenset({"8"})))  # now in the DLR store
        assert await t.send("second: reply 1 or 2", "second", extra=extra) == (
            "0: Accepted for delivery"
        )
        await t.wait_mt(2)
        ids = {m.text.split(":")[0]: m.message_ids[0] for m in t.smsc.recorder.messages()}
        yield t, ids


@pytest.mark.parametrize(("id_format", "receipt_format", "msg_id_type"), ID_FORMATS)
async def test_receipts_match_by_id_for_each_id_format(
    tmp_path: Path, id_format: str, receipt_format: str, msg_id_type: int | None
) -> None:
    async with two_messages(tmp_path, id_format, receipt_format, msg_id_type) as (t, ids):
        first = await t.final_status("first")
        second = await t.final_status("second")
        await asyncio.sleep(SETTLE)
        assert first.received_at > second.received_at  # receipts came back reversed

        if id_format == "uuid":
            assert all(re.fullmatch(r"[0-9a-f-]{36}", i) for i in ids.values())
        elif id_format == "hex":
            assert all(re.fullmatch(r"[0-9a-f]+", i) for i in ids.values())
        # Kannel attributes each receipt to its own message, whatever the order:
        assert t.statuses("first") == ["8", "2"]
        assert t.statuses("second") == ["8", "1"]
        for name in ("first", "second"):
            expected = kannel_msg_id(ids[name], msg_id_type)
            assert [r.query["smsc_id"] for r in t.callbacks(name)] == [[expected]] * 2
        stats = t.smsc.stats()
        assert (stats.receipts_due, stats.receipts_delivered) == (2, 2)


async def test_hex_resp_with_decimal_receipt_needs_msg_id_type(tmp_path: Path) -> None:
    """Negative control: the same ids with msg-id-type unset never match, so courier
    would wait forever (the message stays "sent"); Kannel logs and drops the receipts."""
    async with two_messages(tmp_path, "hex", "decimal", None) as (t, _ids):
        await until(lambda: t.smsc.stats().receipts_delivered >= 2, 5, "2 receipts answered")
        await asyncio.sleep(SETTLE)
        assert t.statuses("first") == ["8"]
        assert t.statuses("second") == ["8"]
        log = (t.kannel.workdir / "bearerbox.log").read_text(errors="replace")
        assert log.count("got DLR but could not find message") == 2


async def test_uuid_ids_with_msg_id_type_set_mix_up_receipts(tmp_path: Path) -> None:
    """UUIDs cannot work with msg-id-type set: strtoll(uuid, 16) stops at the first '-'
    and our UUIDs start 00000000-, so every message is filed under id 0 and each receipt
    goes to the oldest waiting message.  Leave msg-id-type unset for UUID SMSCs."""
    async with two_messages(tmp_path, "uuid", "same", 0x00) as (t, ids):
        # precondition: our UUIDs are uuid.UUID(int=counter), so all start 00000000-
        assert kannel_msg_id(ids["first"], 0) == kannel_msg_id(ids["second"], 0) == "0", ids
        await t.final_status("first")
        await t.final_status("second")
        await asyncio.sleep(SETTLE)
        assert [r.query["smsc_id"] for r in t.callbacks("first")] == [["0"], ["0"]]
        # swapped: "second"'s DELIVRD went to "first", "first"'s UNDELIV to "second"
        assert t.statuses("first") == ["8", "1"]
        assert t.statuses("second") == ["8", "2"]


# ----------------------------------------------------------- 6. bind drops and comes back


@pytest.mark.parametrize("drain", [2.0, 0.0], ids=["unbind", "dropped"])
async def test_kannel_rebinds_to_a_new_smsc_on_the_same_port(tmp_path: Path, drain: float) -> None:
    with HttpRecorder() as courier:
        old = SmscServer(smsc_config())
        await old.start()
        port = old.port
        try:
            cfg = KannelConfig(smsc_port=port, mo_url=courier.receive_url(CHANNEL))
            async with KannelProcess(cfg, tmp_path / "kannel") as kannel:
                await kannel.async_wait_smsc_online(timeout=10)
                t = Topology(old, kannel, courier)
                assert await t.send("before the drop", "before") == "0: Accepted for delivery"
                assert (await t.final_status("before")).query["status"] == ["1"]

                # drain 2 s: the SMSC unbinds politely; drain 0: the TCP link just drops
                await old.stop(drain_timeout=drain)

                async def state() -> str:
                    return await asyncio.to_thread(lambda: kannel.smsc_state() or "")

                deadline = time.monotonic() + 10
                while (await state()).startswith("online"):
                    assert time.monotonic() < deadline, "Kannel never noticed the drop"
                    await asyncio.sleep(0.05)
                queued = await t.send("while the SMSC is down", "queued")
                assert queued.startswith("3: Queued")  # Kannel keeps it for later

                async with SmscServer(smsc_config(port=port)) as new:
                    t.smsc = new
                    await kannel.async_wait_smsc_online(timeout=10)  # reconnect-delay 1
                    assert await t.send("after the rebind", "after") == ("0: Accepted for delivery")
                    assert (await t.final_status("after")).query["status"] == ["1"]
                    assert (await t.final_status("queued")).query["status"] == ["1"]
                    await t.wait_mt(2)
                    texts = sorted(m.text for m in new.recorder.messages())
                    assert texts == ["after the rebind", "while the SMSC is down"]
                    assert new.stats().binds == 1 and new.stats().bind_failures == 0
                    assert t.statuses("before") == ["8", "1"]
                    assert t.statuses("queued") == ["8", "1"]
                    assert t.statuses("after") == ["8", "1"]
                    await kannel.async_stop()  # while the new SMSC still answers unbind
        finally:
            await old.stop(drain_timeout=0)
        assert [m.text for m in old.recorder.messages()] == ["before the drop"]


# ---------------------------------------------------------------------- regressions


async def test_receipt_text_of_a_concatenated_message_starts_after_the_udh(
    tmp_path: Path,
) -> None:
    text = "Wa'y awareness: " + "wash your hands with soap for 20 seconds. " * 5
    assert len(text) > 160  # two GSM 7-bit parts with UDH
    async with topology(tmp_path) as t:
        assert await t.send(text, "long-gsm", extra="&answer=%A") == "0: Accepted for delivery"
        final = await t.final_status("long-gsm")
        (mt,) = t.smsc.recorder.messages()
        assert mt.parts == 2 and mt.text == text
        answer = final.query["answer"][0]  # the receipt text, as Kannel hands it on
        assert " stat:DELIVRD err:000 text:" in answer
        assert answer.endswith("text:" + text[:20]), answer


# ------------------------------------------------------------------- 7. SMPP over TLS
#
# Debian's Kannel 1.4.5 is built with OpenSSL (bearerbox links libssl.so.3): the smsc
# group's ``use-ssl = true`` opens the SMPP connection with TLS, the core group's
# ``ssl-trusted-ca-file`` is what it checks the SMSC's certificate against and
# ``ssl-client-certkey-file`` (certificate and key in one PEM) is the client certificate
# it presents. Without ``ssl-trusted-ca-file`` it checks nothing (pinned below).


@asynccontextmanager
async def tls_topology(
    workdir: Path,
    tls: TlsConfig,
    *,
    accounts: list[AccountConfig] | None = None,
    core: dict[str, str] | None = None,
    online: bool = True,
) -> AsyncIterator[Topology]:
    """Like ``topology`` with Kannel bound to the SMSC's TLS listener (``use-ssl``);
    ``core`` adds Kannel's SSL settings (None: trust the SMSC's own certificate)."""
    extra = {"accounts": accounts} if accounts else {}
    config = smsc_config(tls=tls, **extra)
    with HttpRecorder() as courier:
        async with SmscServer(config) as smsc:
            _, port = smsc.tls_address()
            trusted = {"ssl-trusted-ca-file": str(smsc.tls_certs["egypt"])}
            cfg = KannelConfig(
                smsc_port=port,
                mo_url=courier.receive_url(CHANNEL),
                extra_smsc={"use-ssl": True},
                extra_core=trusted if core is None else core,
            )
            async with KannelProcess(cfg, workdir / "kannel") as proc:
                if online:
                    await proc.async_wait_smsc_online(timeout=15)
                yield Topology(smsc, proc, courier)


def tls_binds(smsc: SmscServer) -> list[object]:
    """The SSL objects of the SMSC's bound connections (None for a plain one)."""
    return [
        conn.transport.get_extra_info("ssl_object") if conn.transport else None
        for acct in smsc.operator().accounts.values()
        for conn in acct.binds
    ]


async def kannel_round_trip(t: Topology, msg_uuid: str) -> None:
    """An MT with its receipt, and an MO, through Kannel and the TLS bind."""
    assert await t.send("Takaful & Karama over TLS", msg_uuid) == "0: Accepted for delivery"
    assert (await t.final_status(msg_uuid)).query["status"] == ["1"]
    assert t.statuses(msg_uuid) == ["8", "1"]
    t.smsc.inject_mo(HANDSET, ARABIC_MO)
    got = await t.wait_request(
        lambda r: r.path == RECEIVE_PATH and r.query.get("sender") == ["+" + HANDSET]
    )
    assert got.get("message") == ARABIC_MO
    await until(lambda: t.smsc.stats().mo_delivered >= 1, 5, "MO answered")


async def test_kannel_binds_over_tls_and_sends_and_receives(tmp_path: Path) -> None:
    tls = TlsConfig(port=0, state_dir=str(tmp_path / "tls"))
    async with tls_topology(tmp_path, tls) as t:
        await kannel_round_trip(t, "mt-tls")
        (ssl_object,) = tls_binds(t.smsc)
        assert ssl_object is not None
        assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[attr-defined]
        counters = t.smsc.tls_counters["egypt"]
        assert counters.handshakes >= 1 and not counters.failures
        log = (t.kannel.workdir / "bearerbox.log").read_text(errors="replace")
        assert 'Accepting certificate for "/CN=localhost"' in log  # it checked ours


async def test_kannel_presents_its_client_certificate_to_a_pinned_account(
    tmp_path: Path,
) -> None:
    ca = TestCa(tmp_path / "ca")
    kannel_cert = ca.issue("kannel")
    tls = TlsConfig(
        port=0,
        state_dir=str(tmp_path / "tls"),
        client_ca_file=str(ca.pem),
        require_client_cert=True,
    )
    pinned = [
        AccountConfig(
            system_id="rapidpro", password="secret", tls_client_cert_sha256=[kannel_cert.sha256]
        )
    ]
    core = {"ssl-client-certkey-file": str(kannel_cert.certkey)}
    async with tls_topology(tmp_path, tls, accounts=pinned, core=core) as t:
        await kannel_round_trip(t, "mt-mtls")
        (ssl_object,) = tls_binds(t.smsc)
        der = ssl_object.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        assert fingerprint(der) == kannel_cert.sha256


async def test_kannel_without_a_client_certificate_is_refused_and_counted(
    tmp_path: Path,
) -> None:
    ca = TestCa(tmp_path / "ca")
    tls = TlsConfig(
        port=0,
        state_dir=str(tmp_path / "tls"),
        client_ca_file=str(ca.pem),
        require_client_cert=True,
    )
    async with tls_topology(tmp_path, tls, core={}, online=False) as t:
        counters = t.smsc.tls_counters["egypt"]
        await until(
            lambda: counters.failures["peer_did_not_return_a_certificate"] >= 2,
            15,
            "Kannel's handshakes refused (it retries every reconnect-delay)",
        )
        assert counters.handshakes == 0 and t.smsc.stats().binds == 0
        assert not (t.kannel.smsc_state() or "").startswith("online")


async def test_kannel_refuses_an_smsc_its_ca_file_does_not_vouch_for(tmp_path: Path) -> None:
    other, _, _ = self_signed(tmp_path / "other", ["localhost"])
    tls = TlsConfig(port=0, state_dir=str(tmp_path / "tls"))
    core = {"ssl-trusted-ca-file": str(other)}
    async with tls_topology(tmp_path, tls, core=core, online=False) as t:
        counters = t.smsc.tls_counters["egypt"]
        # Kannel sends its alert only after it gave up on our certificate; we count it.
        await until(lambda: sum(counters.failures.values()) >= 2, 15, "alerts from Kannel")
        assert set(counters.failures) == {"tlsv1_alert_unknown_ca"}
        assert t.smsc.stats().binds == 0
        log = (t.kannel.workdir / "bearerbox.log").read_text(errors="replace")
        assert 'Rejecting certificate for "/CN=localhost"' in log
        assert "certificate verify failed" in log


async def test_kannel_without_a_trusted_ca_file_binds_to_any_certificate(
    tmp_path: Path,
) -> None:
    """What a Kannel config must not forget: with ``use-ssl`` but no
    ``ssl-trusted-ca-file`` Kannel 1.4.5 checks no certificate at all (anyone on the
    path could play the SMSC); here a self-signed one it was never told about."""
    tls = TlsConfig(port=0, state_dir=str(tmp_path / "tls"))
    async with tls_topology(tmp_path, tls, core={}) as t:
        assert t.smsc.stats().binds == 1
        log = (t.kannel.workdir / "bearerbox.log").read_text(errors="replace")
        assert "Accepting certificate" not in log and "Rejecting certificate" not in log
