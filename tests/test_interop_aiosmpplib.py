"""The fake SMSC against aiosmpplib 0.7.4, an asyncio ESME nobody here wrote.

Our codec checked only against itself proves nothing: here a third-party client encodes
what the SMSC decodes, and decodes (and correlates, and reassembles) what it sends. The
SMSC runs in the test's own loop; each ESME runs ``start()`` as a task and reports every
PDU it receives through its ``received`` hook (awaited inline, so it only appends).

Client quirks worked around (see ../shared/FINDINGS.md):
- ``SimpleCorrelator`` rescans every entry on each call and is private to one ESME, so a
  receipt for a submit made on a transmitter bind cannot be matched on the receiver bind:
  ``DictCorrelator`` below is O(1) and can share its submit->receipt map between binds.
- SAR segmentation with ``auto_message_payload=False`` raises ``UnboundLocalError``
  (``encoding`` unset in ``ESME._dequeue_messages``): long text goes with its UDH split.
- A failed bind inside ``start()`` is retried forever with back-off, so the wrong
  password is checked with ``connect()``, which raises the ``SmppError`` it received.
- ``BindMode.RECEIVER.session_state`` is BOUND_TX (sic): compare with the ESME's own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
from aiosmpplib import (
    ESME,
    NPI,
    TON,
    AbstractCorrelator,
    AbstractHook,
    BindMode,
    BindReceiverResp,
    BindTransceiverResp,
    BindTransmitterResp,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    OptionalParam,
    PhoneNumber,
    SmppCommand,
    SmppCommandStatus,
    SmppError,
    SmppMessage,
    SubmitSm,
    SubmitSmResp,
    UnbindResp,
)
from aiosmpplib.correlator import (
    STATUS_FAILED,
    STATUS_SENDING,
    STATUS_SENT,
    SegmentStatus,
)
from aiosmpplib.state import (
    DLR_ERROR_OTHER_ERROR,
    SAR_MSG_REF_NUM,
    SAR_SEGMENT_SEQNUM,
    SAR_TOTAL_SEGMENTS,
)

from simulator.config import ReceiptConfig
from simulator.smpp.times import parse_smpp_time
from simulator.smsc.server import SmscServer
from tests.support.peers import (
    GSM_TEXT,
    HANDSET,
    MO_ARABIC_ONE,
    MO_FEEDBACK,
    MO_FRANCO,
    MO_YES,
    OTHER_HANDSET,
    PASSWORD,
    QUIZ_QUESTION,
    SHORT_CODE,
    SYSTEM_ID,
    smsc_config,
)

pytestmark = pytest.mark.timeout(60)

RESP_CLASS = {
    BindMode.TRANSMITTER: BindTransmitterResp,
    BindMode.RECEIVER: BindReceiverResp,
    BindMode.TRANSCEIVER: BindTransceiverResp,
}


# --- client-side plumbing ----------------------------------------------------------------


class DictCorrelator(AbstractCorrelator):
    """aiosmpplib's correlator contract on plain dicts: O(1), nothing expires.

    ``deliveries`` (SMSC message id -> SubmitSm) may be shared by the ESMEs of one account,
    the way a gateway matches a receipt that arrives on another bind than its submit.
    Segment bookkeeping follows SimpleCorrelator's, so ESME's segment logic works as shipped.
    """

    def __init__(self, deliveries: dict[str, SubmitSm] | None = None) -> None:
        self._requests: dict[int, SmppMessage] = {}
        self._deliveries: dict[str, SubmitSm] = {} if deliveries is None else deliveries
        self._segment_of: dict[int, tuple[int, int]] = {}  # submit seq -> (ref, part)
        self._segments: dict[int, SegmentStatus] = {}  # ref -> status of its parts
        self._mo_parts: dict[tuple[str, int], dict[int, str]] = {}

    def get_cumulated_status(self, ref_num: int) -> int:
        status = self._segments[ref_num]
        if not status.status:
            return STATUS_SENDING
        code = max(status.status.values())
        if code not in (STATUS_SENDING, STATUS_SENT):
            del self._segments[ref_num]  # every part failed or got its receipt
        return code

    async def expired(self, smpp_message: SmppMessage) -> None:
        return None

    async def put(self, smpp_message: SmppMessage) -> None:
        self._requests[smpp_message.sequence_num] = smpp_message
        if isinstance(smpp_message, SubmitSm):
            ref, part, total = smpp_message.get_segmentation_data()
            if total > 0:
                self._segment_of[smpp_message.sequence_num] = (ref, part)
                status = self._segments.setdefault(ref, SegmentStatus({}, smpp_message))
                status.status[str(part)] = STATUS_SENDING

    async def put_delivery(self, smsc_message_id: str, submit_sm: SubmitSm) -> None:
        self._deliveries[smsc_message_id] = submit_sm

    async def put_delivery_segmented(self, deliver_sm: DeliverSm) -> DeliverSm | None:
        ref, part, total = deliver_sm.get_segmentation_data()
        key = (deliver_sm.source.number, ref)
        parts = self._mo_parts.setdefault(key, {})
        parts[part] = deliver_sm.short_message or deliver_sm.message_payload
        if len(parts) < total:
            return None
        del self._mo_parts[key]
        text = "".join(parts[i] for i in sorted(parts))
        if deliver_sm.short_message:
            deliver_sm.short_message = text
        else:
            deliver_sm.message_payload = text
        return deliver_sm

    async def get(self, response: SmppMessage) -> SmppMessage | None:
        request = self._requests.pop(response.sequence_num, None)
        where = self._segment_of.get(response.sequence_num)
        if isinstance(request, SubmitSm) and where is not None:
            status = self._segments.get(where[0])
            if status is not None:
                ok = (
                    response.smpp_command != SmppCommand.GENERIC_NACK
                    and response.command_status == SmppCommandStatus.ESME_ROK
                )
                status.status[str(where[1])] = STATUS_SENT if ok else STATUS_FAILED
                if not ok or status.last_response is None:
                    status.last_response = response
        return request

    async def get_segmented(
        self, smpp_seq_num: int, remove: bool = False
    ) -> tuple[SegmentStatus | None, int]:
        where = (self._segment_of.pop if remove else self._segment_of.get)(smpp_seq_num, None)
        if where is None or where[0] not in self._segments:
            return None, 0
        return self._segments[where[0]], self.get_cumulated_status(where[0])

    async def get_delivery(self, receipt: DeliverSm) -> SubmitSm | None:
        parsed = receipt.parse_receipt()
        submit = self._deliveries.pop(cast(str, parsed.get("id", "")), None)
        where = self._segment_of.get(submit.sequence_num) if submit is not None else None
        if where is not None and where[0] in self._segments:
            err = cast(int, parsed.get("err", DLR_ERROR_OTHER_ERROR))
            status = self._segments[where[0]]
            status.status[str(where[1])] = err
            if err > 0 or status.last_receipt is None:
                status.last_receipt = receipt
        return submit


class Recorder(AbstractHook):
    """Keeps what the ESME reports: every parsed PDU received, every one sent, every error."""

    def __init__(self) -> None:
        self.received_msgs: list[SmppMessage] = []
        self.unparsed: list[bytes] = []  # segment placeholders and PDUs it could not parse
        self.sent: list[SmppMessage] = []
        self.errors: list[tuple[SmppMessage, Exception]] = []

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        self.sent.append(smpp_message)

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        if smpp_message is None:
            self.unparsed.append(pdu)
        else:
            self.received_msgs.append(smpp_message)

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        self.errors.append((smpp_message, error))

    def of(self, cls: type[SmppMessage]) -> list[Any]:
        return [m for m in self.received_msgs if type(m) is cls]

    def submit_resp(self, log_id: str) -> SubmitSmResp | None:
        return next((r for r in self.of(SubmitSmResp) if r.log_id == log_id), None)

    def receipts(self) -> list[DeliverSm]:
        return [m for m in self.of(DeliverSm) if m.is_receipt()]

    def mo(self) -> list[DeliverSm]:
        return [m for m in self.of(DeliverSm) if not m.is_receipt()]


async def until(pred: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def new_esme(port: int, mode: BindMode, password: str = PASSWORD, **kw: Any) -> ESME:
    kw.setdefault("hook", Recorder())
    kw.setdefault("correlator", DictCorrelator())
    # Short keep-alive: stop() waits for the keeper's sleep to end (at most 0.5 s).
    kw.setdefault("enquire_link_interval", 0.25)
    return ESME(
        smsc_host="127.0.0.1",
        smsc_port=port,
        system_id=SYSTEM_ID,
        password=password,
        bind_mode=mode,
        log_level="WARNING",
        socket_timeout=5.0,
        **kw,
    )


async def stop(esme: ESME, task: asyncio.Task[None]) -> bool:
    """Stop the ESME; False if it did not stop cleanly (then its task is cancelled).

    A deliver_sm arriving after stop() sent unbind makes aiosmpplib answer on a writer it
    has already dropped: AssertionError in the receiver, and stop() waits forever. Tests
    wait for every PDU they expect before leaving bound(), so only a failing test hits
    this, and its own assertion must not be hidden behind a hang.
    """
    try:
        await asyncio.wait_for(esme.stop(), 5)
        await asyncio.wait_for(task, 5)
        return True
    except Exception:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return False


@contextlib.asynccontextmanager
async def bound(
    smsc: SmscServer, mode: BindMode, **kw: Any
) -> AsyncIterator[tuple[ESME, Recorder]]:
    """An ESME bound in ``mode``, its ``start()`` running as a task; stopped on exit."""
    esme = new_esme(smsc.port, mode, **kw)
    hook = cast(Recorder, esme.hook)
    task = asyncio.create_task(esme.start())
    try:
        await until(lambda: task.done() or esme.session_state == mode.session_state)
        assert not task.done(), task
        (resp,) = hook.of(RESP_CLASS[mode])
        assert resp.command_status == SmppCommandStatus.ESME_ROK
        yield esme, hook
        assert not task.done(), "the ESME's session died during the test"
    finally:
        # stop() drops its only StreamWriter reference right after sending unbind, and
        # CPython >= 3.11.5 closes the socket in StreamWriter.__del__: unbind_resp would
        # never be read. Holding the writer lets the client finish the unbind.
        writer = esme._writer
        stopped = await stop(esme, task)
        if writer is not None:
            writer.close()
    # Reached only when the test body passed: every session ends in a clean unbind.
    assert stopped, "esme.stop() did not finish cleanly"
    (unbind_resp,) = hook.of(UnbindResp)
    assert unbind_resp.command_status == SmppCommandStatus.ESME_ROK
    assert hook.of(GenericNack) == [] and hook.errors == []


def submit(text: str, log_id: str, destination: str = HANDSET, **kw: Any) -> SubmitSm:
    return SubmitSm(
        short_message=text,
        source=PhoneNumber(SHORT_CODE, TON.NETWORK_SPECIFIC, NPI.UNKNOWN),
        destination=PhoneNumber(destination, TON.INTERNATIONAL, NPI.ISDN),
        registered_delivery=1,
        log_id=log_id,
        **kw,
    )


def assert_clean(smsc: SmscServer) -> None:
    """The SMSC saw no malformed PDU, and the client refused or nacked none of its own."""
    stats = smsc.stats()
    assert (stats.protocol_errors, stats.deliver_refused, stats.deliver_retries) == (0, 0, 0)
    assert stats.rejected == 0, stats.rejected_by_status


# --- 1. binds ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(BindMode), ids=lambda m: m.name.lower())
async def test_bind_in_each_mode_and_wrong_password_is_rinvpaswd(mode: BindMode) -> None:
    async with SmscServer(smsc_config()) as smsc:
        async with bound(smsc, mode) as (esme, hook):
            (resp,) = hook.of(RESP_CLASS[mode])
            assert resp.system_id == smsc.config.operators[0].smsc_system_id
            assert esme.session_state == mode.session_state
            assert len(smsc.operator().accounts[SYSTEM_ID].binds) == 1
        # Refused: connect() raises what the bind response said.
        wrong = new_esme(smsc.port, mode, password="wrong")
        with pytest.raises(SmppError) as err:
            await wrong.connect()
        assert err.value.command_status == SmppCommandStatus.ESME_RINVPASWD == 0x0E
        assert err.value.smpp_command == SmppCommand(mode.smpp_command | 0x80000000)
        assert wrong._writer is not None
        wrong._writer.close()  # connect() leaves the socket open after a refusal
        assert smsc.stats().bind_failures == 1 and smsc.stats().binds == 1
        assert_clean(smsc)


# --- 2. GSM 7-bit submit and its receipt -------------------------------------------------


async def test_gsm_submit_on_transceiver_gets_id_and_matching_receipt() -> None:
    async with SmscServer(smsc_config()) as smsc, bound(smsc, BindMode.TRANSCEIVER) as (esme, hook):
        await esme.broker.enqueue(submit(GSM_TEXT, "reminder-1"))
        await until(lambda: hook.submit_resp("reminder-1"))
        resp = hook.submit_resp("reminder-1")
        assert resp is not None and resp.command_status == SmppCommandStatus.ESME_ROK
        assert resp.message_id
        await until(hook.receipts)
        (receipt,) = hook.receipts()
        # aiosmpplib parsed the receipt and found our submit by its id.
        assert receipt.log_id == "reminder-1"
        parsed = receipt.parse_receipt()
        assert parsed["id"] == resp.message_id
        assert (parsed["stat"], parsed["err"], parsed["sub"], parsed["dlvrd"]) == (
            "DELIVRD",
            0,
            1,
            1,
        )
        assert receipt.source.number == HANDSET and receipt.destination.number == SHORT_CODE
        # The SMSC decoded the client's GSM 7-bit exactly.
        (mt,) = smsc.recorder.messages()
        assert mt.text == GSM_TEXT
        assert (mt.data_coding, mt.parts, mt.message_ids) == (0, 1, (resp.message_id,))
        assert mt.destination_addr == HANDSET
        assert_clean(smsc)


async def test_submit_on_transmitter_receipt_on_separate_receiver() -> None:
    deliveries: dict[str, SubmitSm] = {}  # shared: the receipt arrives on the other bind
    async with SmscServer(smsc_config()) as smsc:
        async with (
            bound(smsc, BindMode.RECEIVER, correlator=DictCorrelator(deliveries)) as (_rx, rx_hook),
            bound(smsc, BindMode.TRANSMITTER, correlator=DictCorrelator(deliveries)) as (
                tx,
                tx_hook,
            ),
        ):
            await tx.broker.enqueue(submit(GSM_TEXT, "tx-1"))
            await tx.broker.enqueue(submit("Wa'y health tip 4: wash hands", "tx-2", OTHER_HANDSET))
            await until(lambda: tx_hook.submit_resp("tx-1") and tx_hook.submit_resp("tx-2"))
            ids = {
                log_id: cast(SubmitSmResp, tx_hook.submit_resp(log_id)).message_id
                for log_id in ("tx-1", "tx-2")
            }
            assert ids["tx-1"] != ids["tx-2"]
            await until(lambda: len(rx_hook.receipts()) == 2)
            got = {r.log_id: r.parse_receipt()["id"] for r in rx_hook.receipts()}
            assert got == ids
            assert tx_hook.receipts() == []  # nothing goes to a transmitter
            assert smsc.stats().receipts_delivered == 2
        assert_clean(smsc)


# --- 3. a 3-part Arabic quiz question, segmented by the client -----------------------------


async def test_three_part_arabic_udh_submit_is_reassembled_exactly() -> None:
    async with SmscServer(smsc_config()) as smsc, bound(smsc, BindMode.TRANSCEIVER) as (esme, hook):
        # esm_class UDHI + auto_message_payload=False: aiosmpplib splits with its own UDH.
        await esme.broker.enqueue(
            submit(QUIZ_QUESTION, "quiz-3", esm_class=0x40, auto_message_payload=False)
        )
        await until(lambda: hook.submit_resp("quiz-3"))
        parts = [m for m in hook.sent if isinstance(m, SubmitSm)]
        assert len(parts) == 3 and all(p.encoding == "ucs2" and p.esm_class == 0x40 for p in parts)
        await until(lambda: smsc.recorder.messages())
        (mt,) = smsc.recorder.messages()
        assert mt.text == QUIZ_QUESTION
        assert (mt.parts, mt.data_coding, mt.destination_addr) == (3, 8, HANDSET)
        resp = hook.submit_resp("quiz-3")
        assert resp is not None and resp.message_id in mt.message_ids
        assert len(set(mt.message_ids)) == 3
        # Every part asked for a receipt; the client folds the three into one.
        await until(lambda: smsc.stats().receipts_delivered == 3)
        await until(hook.receipts)
        (receipt,) = hook.receipts()
        assert receipt.log_id == "quiz-3"
        assert receipt.parse_receipt()["id"] in mt.message_ids
        assert hook.errors == []
        assert_clean(smsc)


async def test_three_part_arabic_sar_submit_built_with_the_clients_tlvs() -> None:
    """SAR the way FINDINGS' defect 2 leaves possible: parts cut here, TLVs by aiosmpplib."""
    chunks = [QUIZ_QUESTION[i : i + 67] for i in range(0, len(QUIZ_QUESTION), 67)]
    assert len(chunks) == 3
    async with SmscServer(smsc_config()) as smsc, bound(smsc, BindMode.TRANSCEIVER) as (esme, hook):
        for seq, chunk in enumerate(chunks, start=1):
            sar = [
                OptionalParam(SAR_MSG_REF_NUM, 1442),
                OptionalParam(SAR_TOTAL_SEGMENTS, 3),
                OptionalParam(SAR_SEGMENT_SEQNUM, seq),
            ]
            await esme.broker.enqueue(
                submit(chunk, "quiz-sar", encoding="ucs2", optional_params=sar)
            )
        await until(lambda: smsc.recorder.messages())
        (mt,) = smsc.recorder.messages()
        assert mt.text == QUIZ_QUESTION
        assert (mt.parts, mt.data_coding, len(set(mt.message_ids))) == (3, 8, 3)
        await until(hook.receipts)  # the client folds the three receipts into one
        (receipt,) = hook.receipts()
        assert receipt.log_id == "quiz-sar" and receipt.parse_receipt()["id"] in mt.message_ids
        assert smsc.stats().receipts_delivered == 3
        assert_clean(smsc)


async def test_long_arabic_in_message_payload_is_one_whole_message() -> None:
    async with SmscServer(smsc_config()) as smsc, bound(smsc, BindMode.TRANSCEIVER) as (esme, hook):
        # aiosmpplib's default: over 254 octets goes in the message_payload TLV.
        await esme.broker.enqueue(submit(QUIZ_QUESTION, "quiz-payload"))
        await until(lambda: hook.submit_resp("quiz-payload") and hook.receipts())
        resp = cast(SubmitSmResp, hook.submit_resp("quiz-payload"))
        (mt,) = smsc.recorder.messages()
        assert mt.text == QUIZ_QUESTION
        assert (mt.parts, mt.data_coding, mt.message_ids) == (1, 8, (resp.message_id,))
        assert hook.receipts()[0].parse_receipt()["id"] == resp.message_id
        assert_clean(smsc)


# --- 4. MO: Arabic replies to 1442 ---------------------------------------------------------


@pytest.mark.parametrize("mode", [BindMode.RECEIVER, BindMode.TRANSCEIVER], ids=["rx", "trx"])
async def test_short_arabic_mo_arabic_indic_digit_and_franco(mode: BindMode) -> None:
    async with SmscServer(smsc_config()) as smsc, bound(smsc, mode) as (_esme, hook):
        smsc.inject_mo(HANDSET, MO_YES)
        smsc.inject_mo(OTHER_HANDSET, MO_ARABIC_ONE)
        smsc.inject_mo(HANDSET, MO_FRANCO)  # GSM 7-bit, decoded by aiosmpplib's gsm0338
        await until(lambda: len(hook.mo()) == 3)
        got = [(m.source.number, m.encoding, m.short_message) for m in hook.mo()]
        assert got == [
            (HANDSET, "ucs2", MO_YES),
            (OTHER_HANDSET, "ucs2", MO_ARABIC_ONE),
            (HANDSET, None, MO_FRANCO),  # None: data_coding 0, the SMSC default alphabet
        ]
        for mo in hook.mo():
            assert mo.destination.number == SHORT_CODE
            assert mo.source.ton == TON.INTERNATIONAL and mo.source.npi == NPI.ISDN
        await until(lambda: smsc.stats().mo_delivered == 3)
        assert_clean(smsc)


@pytest.mark.parametrize("concat", ["udh8", "sar", "payload"])
async def test_long_arabic_mo_is_reassembled_by_the_client(concat: str) -> None:
    async with SmscServer(smsc_config()) as smsc, bound(smsc, BindMode.RECEIVER) as (_esme, hook):
        parts = smsc.inject_mo(HANDSET, MO_FEEDBACK, concat=concat)
        assert len(parts) == (1 if concat == "payload" else 3)
        await until(lambda: smsc.stats().mo_delivered == len(parts))
        await until(hook.mo)
        (mo,) = hook.mo()
        assert (mo.short_message or mo.message_payload) == MO_FEEDBACK
        assert mo.source.number == HANDSET and mo.encoding == "ucs2"
        assert_clean(smsc)


# --- 5. enquire_link and unbind ------------------------------------------------------------


async def test_enquire_link_is_answered_and_unbind_is_clean() -> None:
    async with SmscServer(smsc_config()) as smsc:
        async with bound(smsc, BindMode.TRANSCEIVER, enquire_link_interval=0.1) as (esme, hook):
            # A quiet session: the client's keeper sends enquire_link every 0.1 s.
            await until(lambda: len(hook.of(EnquireLinkResp)) >= 2)
            sent = [m.sequence_num for m in hook.sent if m.smpp_command == SmppCommand.ENQUIRE_LINK]
            answered = [r for r in hook.of(EnquireLinkResp)]
            assert all(r.command_status == SmppCommandStatus.ESME_ROK for r in answered)
            assert {r.sequence_num for r in answered} <= set(sent)
            assert esme.session_state == BindMode.TRANSCEIVER.session_state
        # bound() exited through esme.stop(): unbind sent, unbind_resp received.
        (unbind_resp,) = hook.of(UnbindResp)
        assert unbind_resp.command_status == SmppCommandStatus.ESME_ROK
        assert hook.of(GenericNack) == [] and hook.unparsed == []
        await until(lambda: not smsc.operator().accounts[SYSTEM_ID].binds)
        assert_clean(smsc)


async def test_smsc_enquire_link_is_answered_by_the_client() -> None:
    # The SMSC pings an idle bind (ticks are 1 s apart) and drops it if unanswered in 1 s.
    cfg = smsc_config(enquire_link_interval=0.5, response_timeout=1.0)
    async with (
        SmscServer(cfg) as smsc,
        bound(smsc, BindMode.RECEIVER, enquire_link_interval=30.0) as (esme, hook),
    ):
        await until(lambda: len(hook.of(EnquireLink)) >= 2, timeout=5)
        answered = [m.sequence_num for m in hook.sent if isinstance(m, EnquireLinkResp)]
        assert answered[:2] == [m.sequence_num for m in hook.of(EnquireLink)][:2]
        assert smsc.stats().connections == 1 and len(smsc.operator().accounts[SYSTEM_ID].binds) == 1
        assert esme.session_state == BindMode.RECEIVER.session_state
        assert_clean(smsc)


# --- time fields as aiosmpplib writes them -------------------------------------------------

CAIRO = timezone(timedelta(hours=2))


async def test_validity_period_absolute_in_cairo_and_relative_are_understood() -> None:
    absolute = datetime.now(CAIRO).replace(microsecond=0) + timedelta(hours=6)
    async with (
        SmscServer(smsc_config(receipt=ReceiptConfig(delay=30))) as smsc,
        bound(smsc, BindMode.TRANSMITTER) as (esme, hook),
    ):
        await esme.broker.enqueue(
            submit("Takaful: your visit is due", "abs", validity_period=absolute)
        )
        await esme.broker.enqueue(
            submit(
                "Takaful: your visit is due", "rel", validity_period=timedelta(hours=1, minutes=30)
            )
        )
        await until(lambda: hook.submit_resp("abs") and hook.submit_resp("rel"))
        store = smsc.operator().store
        abs_msg = store.get(cast(SubmitSmResp, hook.submit_resp("abs")).message_id)
        rel_msg = store.get(cast(SubmitSmResp, hook.submit_resp("rel")).message_id)
        assert abs_msg is not None and rel_msg is not None
        assert abs_msg.validity_period.endswith("08+")  # Cairo: 8 quarter hours east of UTC
        assert rel_msg.validity_period == "000000013000000R"
        # The instants our parser reads from aiosmpplib's encoding are the ones it meant.
        now = abs_msg.submit_time
        assert parse_smpp_time(abs_msg.validity_period, now) == pytest.approx(
            absolute.timestamp(), abs=0.2
        )
        assert parse_smpp_time(rel_msg.validity_period, now) == pytest.approx(now + 5400, abs=0.2)
        assert_clean(smsc)


async def test_validity_period_with_out_of_range_utc_offset_is_refused() -> None:
    west = timezone(timedelta(hours=-3))  # aiosmpplib: offset.seconds // 900 = 84 for -3 h
    validity = datetime.now(west) + timedelta(hours=6)
    assert SubmitSm.datetime_to_smpp_time(validity).endswith("84-")
    async with SmscServer(smsc_config()) as smsc, bound(smsc, BindMode.TRANSMITTER) as (esme, hook):
        reminder = submit("Takaful reminder", "west", validity_period=validity)
        reminder.registered_delivery = 0  # no receipt racing the unbind if it is accepted
        await esme.broker.enqueue(reminder)
        await until(lambda: hook.submit_resp("west"))
        resp = hook.submit_resp("west")
        assert resp is not None
        assert resp.command_status == SmppCommandStatus.ESME_RINVEXPIRY
