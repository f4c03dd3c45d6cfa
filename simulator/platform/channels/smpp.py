"""SMPP mode: the platform binds to the operators' SMSCs as an ESME, with aiosmpplib.

One transceiver bind per ``SmppBindConfig``; numbers are routed to binds by national
prefix (``route``). aiosmpplib 0.7.4 does the socket, the codec, the bind, enquire_link
and deliver_sm_resp; what it gets wrong is replaced here (see ../shared/FINDINGS.md):

- its ``SimpleCorrelator`` rescans every entry on each call: ``_Correlator`` is O(1)
  and keeps only request/response pairs; receipts are matched by the store's
  ``msg_by_external_id`` (the submit_sm_resp message_id, per bind: two SMSCs reuse ids);
- it has no window (it writes whatever is queued): ``SmppBind.send`` waits for one of
  ``window`` slots, freed by the submit_sm_resp, a generic_nack or a response timeout;
- its SAR path with ``auto_message_payload=False`` crashes: submits keep aiosmpplib's
  default (long text goes in ``message_payload``), so that path is never taken;
- its ``received`` hook is awaited inside the receive loop: ``_Hook`` does only
  dictionary work and calls the platform synchronously, never awaiting anything;
- its deliver_sm parsing refuses valid PDUs with generic_nack (an empty MO text, a
  TLV-only receipt, data_coding outside its enum) and raises out of the receive loop on
  a receipt with a 12-digit date: ``_Esme`` hands every deliver_sm to our own sans-IO
  codec (``simulator.smpp.pdu``) and ``Reassembler`` instead, and lets aiosmpplib send
  the deliver_sm_resp (this overrides its private ``_handle_request``: aiosmpplib is
  pinned at 0.7.4 for that reason);
- a command_status or command_id outside its enums (vendor statuses 0x400-0x4FF, vendor
  commands) raises in its header parser and drops the session: ``_Esme._get_pdu`` reads
  the header first, maps an unknown status to ESME_RUNKNOWNERR (the submit counts as
  refused, and is re-sent) and answers an unknown request with generic_nack
  ESME_RINVCMDID itself;
- it answers data_sm and alert_notification with a generic_nack of status 0: data_sm
  (MO or a receipt, as some SMSCs send them) is handled like deliver_sm and answered with
  data_sm_resp, alert_notification (which has no response) is ignored;
- a submit_sm_resp can be read before aiosmpplib records the request (it stores the
  correlation after ``drain()``): in-flight submits are tracked by sequence number in the
  ``sending`` hook, which runs before the write;
- its ``SimpleThrottleHandler`` stops all sending once more than 1 % of the responses
  of its 180 s window were ESME_RTHROTTLED, until that window ends: a 30 s throttling
  storm silenced the bind for minutes (found by the ``operator-faults`` scenario).
  ``_Backoff`` pauses the bind ``throttle_pause`` seconds after each throttled response
  instead, as Kannel's ``throttling-sleep-time`` does; the refused message is re-sent by
  the sender's retry policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiosmpplib import (
    ESME,
    NPI,
    TON,
    AbstractBroker,
    AbstractCorrelator,
    AbstractHook,
    AbstractThrottleHandler,
    BindMode,
    DeliverSm,
    GenericNack,
    PhoneNumber,
    SmppCommand,
    SmppCommandStatus,
    SmppMessage,
    SubmitSm,
    SubmitSmResp,
)
from aiosmpplib.protocol import DeliverSmResp

from simulator.config import PlatformConfig, SmppBindConfig
from simulator.platform.model import Msg, MsgStatus
from simulator.smpp.constants import EsmClass, Tag
from simulator.smpp.errors import SmppError
from simulator.smpp.pdu import DataSm as RawDataSm
from simulator.smpp.pdu import DeliverSm as RawDeliverSm
from simulator.smpp.pdu import SubmitSm as RawSubmitSm
from simulator.smpp.pdu import decode_pdu
from simulator.smpp.segmentation import Reassembler, SegmentError, UdhError, parse_udh
from simulator.smpp.text import decode_text

log = logging.getLogger("smsim.platform.smpp")

#: SMPP message_state (TLV 0x0427) -> what RapidPro calls it.
_STATE_STATUS = {
    1: MsgStatus.SENT,  # ENROUTE
    2: MsgStatus.DELIVERED,
    3: MsgStatus.ERRORED,  # EXPIRED
    4: MsgStatus.ERRORED,  # DELETED
    5: MsgStatus.ERRORED,  # UNDELIVERABLE
    6: MsgStatus.SENT,  # ACCEPTED
    7: MsgStatus.ERRORED,  # UNKNOWN
    8: MsgStatus.ERRORED,  # REJECTED
}
#: The receipt text's stat: -> status (when the TLV is absent).
_STAT_STATUS = {
    "DELIVRD": MsgStatus.DELIVERED,
    "ACCEPTD": MsgStatus.SENT,
    "ENROUTE": MsgStatus.SENT,
    "EXPIRED": MsgStatus.ERRORED,
    "DELETED": MsgStatus.ERRORED,
    "UNDELIV": MsgStatus.ERRORED,
    "UNKNOWN": MsgStatus.ERRORED,
    "REJECTD": MsgStatus.ERRORED,
}
#: Concatenated MO parts older than this are dropped (the rest never came).
_MO_PARTS_TTL = 300.0
_RECEIPT_ID = re.compile(rb"\bid:(\S+)")
_RECEIPT_STAT = re.compile(rb"\bstat:(\w+)")


class SmppEvents(Protocol):
    """Where a bind reports: the sender's outcome calls and the service's ``receive``."""

    def wired(self, msg: Msg, external_id: str) -> None: ...
    def failed_submit(self, msg: Msg, reason: str) -> None: ...
    def status(self, msg: Msg, status: MsgStatus) -> None: ...


@dataclass(slots=True)
class BindStats:
    submits: int = 0
    accepted: int = 0
    refused: int = 0
    timeouts: int = 0
    receipts: int = 0
    receipts_unmatched: int = 0
    mo: int = 0
    mo_parts: int = 0
    #: PDUs aiosmpplib could not have parsed (see _Esme._get_pdu).
    unknown_statuses: int = 0
    unknown_commands: int = 0
    #: Times aiosmpplib's connect loop died and was started again (``_esme_ended``).
    restarts: int = 0


def national(msisdn: str, country_code: str = "20") -> str:
    """``201001234567`` -> ``01001234567`` (what operator prefixes are written in)."""
    digits = msisdn.removeprefix("tel:").removeprefix("+")
    if digits.startswith(country_code):
        return "0" + digits[len(country_code) :]
    return digits


def make_router(binds: Sequence[SmppBindConfig], names: Sequence[str]) -> Callable[[Msg], str]:
    """A message -> the bind it goes through: the longest matching prefix, else the first
    bind without prefixes, else the first bind."""
    table = sorted(
        ((p, name) for cfg, name in zip(binds, names, strict=True) for p in cfg.prefixes),
        key=lambda item: -len(item[0]),
    )
    default = next(
        (name for cfg, name in zip(binds, names, strict=True) if not cfg.prefixes), names[0]
    )
    if not table:
        return lambda msg: default

    def route(msg: Msg) -> str:
        number = national(msg.urn)
        for prefix, name in table:
            if number.startswith(prefix):
                return name
        return default

    return route


class _Broker(AbstractBroker):  # type: ignore[misc]
    """aiosmpplib's outgoing queue, unbounded: the window is enforced before it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SmppMessage] = asyncio.Queue()

    async def enqueue(self, message: SmppMessage) -> None:
        self.queue.put_nowait(message)

    async def dequeue(self) -> SmppMessage:
        return await self.queue.get()


class _Correlator(AbstractCorrelator):  # type: ignore[misc]
    """O(1) request/response correlation (entries older than ``ttl`` are dropped)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._requests: OrderedDict[int, tuple[float, SmppMessage]] = OrderedDict()
        self.on_nack: Callable[[int], None] | None = None

    def get_cumulated_status(self, ref_num: int) -> int:
        return 0

    async def expired(self, smpp_message: SmppMessage) -> None:
        return None

    async def put(self, smpp_message: SmppMessage) -> None:
        now = time.monotonic()
        requests = self._requests
        requests[smpp_message.sequence_num] = (now, smpp_message)
        while requests:  # oldest first: stop at the first live one
            first = next(iter(requests.values()))
            if now - first[0] <= self.ttl:
                break
            requests.popitem(last=False)

    async def put_delivery(self, smsc_message_id: str, submit_sm: SubmitSm) -> None:
        return None  # receipts are matched by the platform's store

    async def put_delivery_segmented(self, deliver_sm: DeliverSm) -> DeliverSm | None:
        return deliver_sm  # never called: _Esme decodes deliver_sm itself

    async def get(self, response: SmppMessage) -> SmppMessage | None:
        item = self._requests.pop(response.sequence_num, None)
        return item[1] if item is not None else None

    async def get_segmented(self, smpp_seq_num: int, remove: bool = False) -> tuple[Any, int]:
        return None, 0

    async def get_delivery(self, receipt: DeliverSm) -> SubmitSm | None:
        return None


class _Backoff(AbstractThrottleHandler):  # type: ignore[misc]
    """After an ESME_RTHROTTLED, send nothing on this bind for ``pause`` seconds."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.until = 0.0
        self.throttles = 0

    async def throttled(self) -> None:
        self.throttles += 1
        self.until = time.monotonic() + self.pause

    async def not_throttled(self) -> None:
        return None

    async def allow_request(self) -> bool:
        return time.monotonic() >= self.until

    async def throttle_delay(self) -> float:
        return max(0.001, self.until - time.monotonic())


class _Hook(AbstractHook):  # type: ignore[misc]
    """aiosmpplib's hook: synchronous bookkeeping only (it is awaited inline)."""

    def __init__(self, bind: SmppBind) -> None:
        self.bind = bind

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSm) and not isinstance(smpp_message, DeliverSm):
            self.bind._on_sending(smpp_message)

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        if smpp_message is None:
            return
        # not isinstance: aiosmpplib's DeliverSmResp is a SubmitSmResp subclass (and ours
        # from _Esme._handle_request comes through here, numbered in the SMSC's sequence)
        if type(smpp_message) is SubmitSmResp:
            self.bind._on_submit_resp(smpp_message)
        elif isinstance(smpp_message, GenericNack):
            self.bind._on_nack(smpp_message.sequence_num)

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSm):
            self.bind._on_send_error(smpp_message, error)


_KNOWN_STATUSES = frozenset(int(s) for s in SmppCommandStatus)
_KNOWN_COMMANDS = frozenset(int(c) for c in SmppCommand)
_UNKNOWN_ERROR = struct.pack("!I", int(SmppCommandStatus.ESME_RUNKNOWNERR))
_DATA_SM_RESP = 0x80000103
_ESME_RINVCMDID = 0x00000003


class _Esme(ESME):  # type: ignore[misc]
    """aiosmpplib's ESME with deliver_sm decoded by our codec and a header reader that
    survives what its parser can't take (see the module docstring)."""

    bind: SmppBind

    async def _get_pdu(self) -> tuple[bytes, Any]:
        reader = self._reader
        while True:
            header = await reader.readexactly(16)
            length, command_id, status, seq = struct.unpack("!IIII", header)
            if length < 16:
                raise ValueError(f"command_length {length}")
            if command_id not in _KNOWN_COMMANDS:
                await reader.readexactly(length - 16)
                self.bind.stats.unknown_commands += 1
                log.warning("unknown_command channel=%s id=0x%08x", self.bind.name, command_id)
                if not command_id & 0x80000000:
                    nack = struct.pack("!IIII", 16, 0x80000000, _ESME_RINVCMDID, seq)
                    self._writer.write(nack)
                continue
            if status not in _KNOWN_STATUSES:
                self.bind.stats.unknown_statuses += 1
                log.warning("unknown_status channel=%s status=0x%08x", self.bind.name, status)
                header = header[:8] + _UNKNOWN_ERROR + header[12:]
            parsed = SmppMessage.parse_header(header)
            body = await reader.readexactly(length - 16)
            return header + body, parsed

    async def _handle_request(self, pdu: bytes, header: Any) -> Any:
        command = header.smpp_command
        if command == SmppCommand.DELIVER_SM or command == SmppCommand.DATA_SM:
            try:
                self.bind._on_deliver_bytes(pdu)
            except Exception:  # never let one PDU break the session
                log.exception("deliver_failed channel=%s pdu=%s", self.bind.name, pdu.hex())
            if command == SmppCommand.DATA_SM:  # aiosmpplib has no data_sm_resp class
                resp = struct.pack("!IIII", 17, _DATA_SM_RESP, 0, header.sequence_num)
                self._writer.write(resp + b"\x00")
                return None
            # any message object: the caller answers the request with deliver_sm_resp
            return DeliverSmResp(header.sequence_num)
        if command == SmppCommand.ALERT_NOTIFICATION:
            return None  # no response exists
        return await super()._handle_request(pdu, header)


class SmppBind:
    """One bind to one SMSC: a channel the sender hands messages to."""

    def __init__(
        self,
        name: str,
        cfg: SmppBindConfig,
        platform: PlatformConfig,
        events: SmppEvents,
        receive: Callable[[str, str, str], object],
        lookup: Callable[[str, str], Msg | None],
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.events = events
        self.receive = receive
        self.lookup = lookup
        self.stats = BindStats()
        self._source = PhoneNumber(
            platform.short_code, TON(cfg.short_code_ton), NPI(cfg.short_code_npi)
        )
        self._ton, self._npi = TON(cfg.handset_ton), NPI(cfg.handset_npi)
        self._slots = asyncio.Semaphore(cfg.window)
        self._queued: dict[str, Msg] = {}  # log_id -> msg, in aiosmpplib's broker
        # sequence number -> (time sent, msg), oldest first (for the response timeout)
        self._inflight: OrderedDict[int, tuple[float, Msg]] = OrderedDict()
        self._broker = _Broker()
        self._correlator = _Correlator(cfg.response_timeout)
        self._parts = Reassembler(_MO_PARTS_TTL)
        self.esme = _Esme(
            smsc_host=cfg.host,
            smsc_port=cfg.port,
            system_id=cfg.system_id,
            password=cfg.password,
            bind_mode=BindMode.TRANSCEIVER,
            enquire_link_interval=float(cfg.enquire_link_interval),
            log_level=logging.CRITICAL,
            hook=_Hook(self),
            broker=self._broker,
            correlator=self._correlator,
            socket_timeout=float(cfg.response_timeout),
            throttle_handler=_Backoff(cfg.throttle_pause),
        )
        self.esme.bind = self
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._sweeper: asyncio.Task[None] | None = None
        #: Where deliver_sm carrying ussd_service_op go (``platform.ussd.UssdApp``).
        self.ussd: Callable[[SmppBind, RawDeliverSm | RawDataSm], None] | None = None
        #: Sequence numbers of our own PDUs (``send_raw``), far from aiosmpplib's.
        self._raw_seq = itertools.count(0x70000000)

    # ------------------------------------------------------------------ lifecycle

    @property
    def bound(self) -> bool:
        return bool(self.esme.session_state == BindMode.TRANSCEIVER.session_state)

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and bind (aiosmpplib reconnects by itself after a drop; when its
        connect loop itself dies, ``_esme_ended`` starts it again)."""
        self._stopping = False
        self._task = asyncio.create_task(self.esme.start(), name=f"smpp-{self.name}")
        self._task.add_done_callback(self._esme_ended)
        self._sweeper = asyncio.create_task(self._sweep(), name=f"smpp-sweep-{self.name}")
        deadline = time.monotonic() + timeout
        while not self.bound:
            if self._task.done():
                self._task.result()
                raise ConnectionError(f"bind {self.name}: ESME stopped")
            if time.monotonic() > deadline:
                raise TimeoutError(f"bind {self.name} to {self.cfg.host}:{self.cfg.port}")
            await asyncio.sleep(0.02)
        log.info("bound channel=%s smsc=%s:%d", self.name, self.cfg.host, self.cfg.port)

    def _esme_ended(self, task: asyncio.Task[None]) -> None:
        """aiosmpplib's connect loop ends only on stop(), unless an error it does not
        expect escapes it: then the bind would stay down for good. Say so, start again."""
        if self._stopping or task.cancelled():
            return
        exc = task.exception()
        self.stats.restarts += 1
        log.error("esme_ended channel=%s error=%r: reconnecting", self.name, exc)
        self.esme._is_shutting_down = False
        self._task = asyncio.get_running_loop().create_task(
            self._start_again(), name=f"smpp-{self.name}"
        )
        self._task.add_done_callback(self._esme_ended)

    async def _start_again(self) -> None:
        await asyncio.sleep(1.0)
        await self.esme.start()

    async def stop(self) -> None:
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.esme.stop(), 5.0)
            await asyncio.wait_for(self._task, 5.0)
        except (TimeoutError, asyncio.CancelledError, Exception):
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    # ------------------------------------------------------------------ MT

    async def send(self, msg: Msg) -> None:
        await self._slots.acquire()
        log_id = str(msg.id)
        self._queued[log_id] = msg
        self.stats.submits += 1
        try:
            submit = SubmitSm(
                short_message=msg.text,
                source=self._source,
                destination=PhoneNumber(msg.urn.removeprefix("tel:+"), self._ton, self._npi),
                registered_delivery=1,
                log_id=log_id,
            )
        except ValueError:
            del self._queued[log_id]
            self._slots.release()
            raise
        await self._broker.enqueue(submit)

    def _on_sending(self, submit: SubmitSm) -> None:
        msg = self._queued.pop(submit.log_id, None)
        if msg is not None:
            self._inflight[submit.sequence_num] = (time.monotonic(), msg)

    def _done(self, seq: int) -> Msg | None:
        item = self._inflight.pop(seq, None)
        if item is None:
            return None
        self._slots.release()
        return item[1]

    def _on_submit_resp(self, resp: SubmitSmResp) -> None:
        msg = self._done(resp.sequence_num)
        if msg is None:
            return
        if resp.command_status == SmppCommandStatus.ESME_ROK and resp.message_id:
            self.stats.accepted += 1
            self.events.wired(msg, resp.message_id)
        else:
            self.stats.refused += 1
            log.info(
                "submit_refused channel=%s msg=%d status=%s",
                self.name,
                msg.id,
                resp.command_status.name,
            )
            self.events.failed_submit(msg, f"submit_sm_resp {resp.command_status.name}")

    def _on_nack(self, seq: int) -> None:
        msg = self._done(seq)
        if msg is not None:
            self.stats.refused += 1
            self.events.failed_submit(msg, "generic_nack")

    def _on_send_error(self, submit: SubmitSm, error: Exception) -> None:
        msg = self._queued.pop(submit.log_id, None)
        if msg is not None:  # never written: its slot is still held
            self._slots.release()
        else:
            msg = self._done(submit.sequence_num)
        if msg is not None:
            self.events.failed_submit(msg, repr(error))

    async def _sweep(self) -> None:
        """Submits unanswered for ``response_timeout`` fail (and free their slot)."""
        ttl = self.cfg.response_timeout
        inflight = self._inflight
        while True:
            await asyncio.sleep(min(1.0, ttl / 2))
            now = time.monotonic()
            while inflight:
                seq, (sent, _) = next(iter(inflight.items()))
                if now - sent <= ttl:
                    break
                msg = self._done(seq)
                if msg is not None:
                    self.stats.timeouts += 1
                    self.events.failed_submit(msg, "response timeout")

    def send_raw(self, pdu: RawSubmitSm) -> bool:
        """Write a submit_sm encoded by our codec (USSD: aiosmpplib 0.7.4 encodes
        ussd_service_op with length 0); False when not connected. Its submit_sm_resp is
        not correlated: the SMSC's session timers are the USSD outcome."""
        writer = self.esme._writer
        if writer is None or writer.is_closing():
            return False
        pdu.sequence_number = next(self._raw_seq) & 0x7FFFFFFF
        writer.write(pdu.encode())
        return True

    # ------------------------------------------------------------------ deliver_sm

    def _on_deliver_bytes(self, data: bytes) -> None:
        try:
            pdu = decode_pdu(data)
        except SmppError as exc:
            log.warning("deliver_sm_undecodable channel=%s error=%s", self.name, exc)
            return
        if not isinstance(pdu, RawDeliverSm | RawDataSm):
            return
        if self.ussd is not None and Tag.USSD_SERVICE_OP in pdu.tlvs:
            self.ussd(self, pdu)
            return
        short_message = pdu.short_message if isinstance(pdu, RawDeliverSm) else b""
        if pdu.esm_class & EsmClass.DELIVERY_RECEIPT:
            self._on_receipt(pdu, short_message)
            return
        payload = pdu.tlv_bytes(Tag.MESSAGE_PAYLOAD) or short_message
        source = pdu.source_addr
        concat: tuple[int, int, int] | None = None
        try:
            if pdu.esm_class & 0x40:  # UDHI
                info, _, payload = parse_udh(payload)
                if info is not None:
                    concat = (info.ref, info.total, info.seq)
            else:
                ref = pdu.tlv_int(Tag.SAR_MSG_REF_NUM)
                total = pdu.tlv_int(Tag.SAR_TOTAL_SEGMENTS)
                seq = pdu.tlv_int(Tag.SAR_SEGMENT_SEQNUM)
                if ref is not None and total is not None and seq is not None:
                    concat = (ref, total, seq)
            if concat is not None and concat[1] > 1:
                self.stats.mo_parts += 1
                whole = self._parts.add(source, *concat, payload, time.monotonic())
                self._parts.expire(time.monotonic())
                if whole is None:
                    return
                payload = whole
        except (UdhError, SegmentError) as exc:
            log.warning("mo_bad_concat channel=%s source=%s error=%s", self.name, source, exc)
        text = decode_text(payload, pdu.data_coding)
        self.stats.mo += 1
        self.receive(source, text, self.name)

    def _on_receipt(self, pdu: RawDeliverSm | RawDataSm, text: bytes) -> None:
        self.stats.receipts += 1
        msg_id = pdu.tlv_str(Tag.RECEIPTED_MESSAGE_ID)
        state = pdu.tlv_int(Tag.MESSAGE_STATE)
        status = _STATE_STATUS.get(state) if state is not None else None
        if msg_id is None:
            m = _RECEIPT_ID.search(text)
            msg_id = m.group(1).decode("ascii", "replace") if m else None
        if status is None:
            m = _RECEIPT_STAT.search(text)
            status = _STAT_STATUS.get(m.group(1).decode("ascii", "replace").upper()) if m else None
        msg = self.lookup(msg_id, self.name) if msg_id else None
        if msg is None or status is None:
            self.stats.receipts_unmatched += 1
            log.info("receipt_unmatched channel=%s id=%s", self.name, msg_id)
            return
        self.events.status(msg, status)


def bind_names(binds: Sequence[SmppBindConfig]) -> list[str]:
    """Channel names: the operator, numbered when an operator has several binds."""
    seen: dict[str, int] = {}
    names = []
    for cfg in binds:
        n = seen[cfg.operator] = seen.get(cfg.operator, 0) + 1
        names.append(cfg.operator if n == 1 else f"{cfg.operator}-{n}")
    return names
