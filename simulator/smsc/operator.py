"""One operator's SMSC (Vodafone, Orange, ...): what each request means.

Binds are authenticated against the operator's accounts; submits are validated,
throttled, answered with a message id and handed to the handset side and the receipt
policy; query/cancel/replace act on pending messages; receipts and MO are queued per
account and pumped to its receivers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import itertools
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.clock import SimClock
from simulator.config import FaultKind, OperatorConfig
from simulator.smpp.constants import (
    CommandId,
    EsmClass,
    MessageState,
    Status,
    Tag,
    status_name,
)
from simulator.smpp.pdu import (
    BIND_CLASSES,
    AlertNotification,
    Bind,
    CancelSm,
    DataSm,
    DeliverSm,
    MultiDest,
    Outbind,
    Pdu,
    QuerySm,
    ReplaceSm,
    SubmitMulti,
    SubmitSm,
    Unbind,
    UnsuccessSme,
)
from simulator.smpp.segmentation import Concat, split_message
from simulator.smpp.session import (
    Event,
    LinkDead,
    PduReceived,
    ProtocolError,
    RequestRejected,
    ResponseReceived,
    ResponseTimeout,
    SessionStateError,
    Unbound,
)
from simulator.smpp.text import alphabet_of, choose_coding, encode_text
from simulator.smpp.times import SmppTimeError, format_smpp_time, parse_smpp_time

from .accounts import Account
from .faults import Fault, FaultPlan, malformed_pdu
from .guard import BindGuard, Lock
from .ids import MessageIds
from .receipts import RECEIPT_STAT_TEXT, FixedPolicy, ReceiptBuilder, ReceiptPolicy
from .stats import LatencyHistogram, SmscStats
from .store import Message, MessageStore
from .tls import pin_refusal

if TYPE_CHECKING:
    from simulator.ussd.network import UssdNetwork

    from .connection import SmppConnection
    from .handsets import MtSink
    from .journal import OperatorJournal
    from .scheduler import TimerQueue

log = logging.getLogger("smsim.smsc")

#: deliver_sm answers after which the SMSC tries again later (the client was busy).
_TEMPORARY = frozenset(
    {
        Status.ESME_RX_T_APPN,
        Status.ESME_RTHROTTLED,
        Status.ESME_RMSGQFUL,
        Status.ESME_RSYSERR,
        Status.ESME_RUNKNOWNERR,
    }
)
#: Final states that mean the handset could not be reached: a set_dpf=1 message that
#: ends in one of these sets a delivery pending flag (alert_notification later).
_ABSENT = frozenset({int(MessageState.EXPIRED), int(MessageState.UNDELIVERABLE)})
#: The longest address a deliver_sm (a receipt) can carry: 21 octets with the NUL.
_DELIVER_ADDR_MAX = 20
_CONCAT = {"udh8": Concat.UDH8, "udh16": Concat.UDH16, "sar": Concat.SAR, "payload": Concat.PAYLOAD}


def _bad_time(value: str) -> bool:
    """SMPP time fields are empty or ``YYMMDDhhmmsstnn±`` / ``...R`` with fields in range."""
    if not value:
        return False
    try:
        parse_smpp_time(value, 0.0)
    except SmppTimeError:
        return True
    return False


class OperatorSmsc:
    def __init__(
        self,
        config: OperatorConfig,
        *,
        scheduler: TimerQueue,
        schedule: Callable[[float, Callable[[Any], None], Any], None],
        clock: SimClock,
        sink: MtSink,
        policy: ReceiptPolicy | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.accounts = {a.system_id: Account(a) for a in config.accounts}
        #: Bind lock-out and connections per client IP (``config.security``).
        self.guard = BindGuard(config.security)
        self._allowed_nets = {
            a.system_id: [ipaddress.ip_network(n, strict=False) for n in a.allowed_ips]
            for a in config.accounts
        }
        self.connections: set[SmppConnection] = set()
        self.ids = MessageIds(config.message_id_format)
        self.store = MessageStore()
        self.receipts = ReceiptBuilder(config)
        a = config.addressing
        rules = (
            frozenset(a.submit_source_ton),
            frozenset(a.submit_source_npi),
            frozenset(a.submit_dest_ton),
            frozenset(a.submit_dest_npi),
        )
        #: (source TON, source NPI, dest TON, dest NPI) allowed; None: no expectations.
        self._addr_rules = rules if any(rules) else None
        self.policy: ReceiptPolicy = policy or FixedPolicy(
            config.receipt.stat, config.receipt.delay, config.receipt.err
        )
        self.stats = SmscStats()
        #: PDUs by ``command_id | command_status << 32``, received and sent: one dict
        #: increment per PDU, names resolved at scrape time (``metrics.py``).
        self.pdus_in: dict[int, int] = {}
        self.pdus_out: dict[int, int] = {}
        #: Seconds from each deliver_sm/data_sm to the client's answer.
        self.delivery_rtt = LatencyHistogram()
        #: While set, receipts come due as usual but wait in ``held_receipts``.
        self.receipts_paused = False
        self.held_receipts: list[tuple[Account, Pdu]] = []
        self.clock = clock
        self.sink = sink
        self._scheduler = scheduler
        self._schedule = schedule
        self._mo_ref = itertools.count(1)
        self._loop = asyncio.get_running_loop()
        #: Delivery pending flags (SMPP 3.4 set_dpf): handset -> account -> the ESME
        #: address (source_addr, TON, NPI) to alert when the handset is reachable again.
        self._dpf: dict[str, dict[str, tuple[str, int, int]]] = {}
        #: Accounts with an outbind under way (connecting, or waiting for the bind).
        self._outbinding: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: USSD sessions (``simulator.ussd``), set by the server when ``config.ussd`` is on.
        self.ussd: UssdNetwork | None = None
        #: The message journal's hooks (``journal.py``), set by the server when it is on.
        self.journal: OperatorJournal | None = None
        #: Fault injection (``faults.py``): the server shares one plan between operators.
        self.faults = FaultPlan()
        #: Called with each receipt the platform accepted (the server's observers that
        #: want it, ``server.ReceiptObserver``); None: nobody, nothing more per receipt.
        self.on_receipt: Callable[[DeliverSm], None] | None = None
        for acct in self.accounts.values():
            if acct.config.outbind:
                acct.wants_receiver = self._want_receiver
        self._handlers: dict[int, Callable[[SmppConnection, Any], None]] = {
            CommandId.SUBMIT_SM: self._on_submit_sm,
            CommandId.BIND_TRANSCEIVER: self._on_bind,
            CommandId.BIND_TRANSMITTER: self._on_bind,
            CommandId.BIND_RECEIVER: self._on_bind,
            CommandId.SUBMIT_MULTI: self._on_submit_multi,
            CommandId.DATA_SM: self._on_data_sm,
            CommandId.QUERY_SM: self._on_query_sm,
            CommandId.CANCEL_SM: self._on_cancel_sm,
            CommandId.REPLACE_SM: self._on_replace_sm,
            # Reaches here because the SMSC's sessions leave enquire_link to the operator
            # (``answer_enquire_link``): a fault may answer it late or never.
            CommandId.ENQUIRE_LINK: self._on_enquire_link,
        }

    # --- connection lifecycle -------------------------------------------------------------

    def refuses(self, ip: str) -> bool:
        """Whether a connection from ``ip``, just accepted, is to be closed at once: its IP
        is locked out. Counted, not logged (the lock's beginning and end are)."""
        if self.guard.refuses(ip, self._loop.time()):
            self.stats.connections_refused += 1
            self.stats.connection_refusals["locked_out"] += 1
            return True
        return False

    def _lock_began(self, lock: Lock, conn: SmppConnection, count: int) -> None:
        """One line for a lock-out, and its end planned (``_lock_over``)."""
        sec = self.config.security
        self.stats.lockouts[lock.key.partition(":")[0]] += 1
        log.warning(
            "bind_lockout operator=%s key=%s peer=%s reason=%s count=%d window=%gs for=%gs",
            self.name,
            lock.key,
            conn.peer,
            lock.reason,
            count,
            sec.bind_failure_window,
            sec.lockout,
        )
        # A loop timer, not the SMSC's queue: a lock still on at shutdown is nothing pending.
        self._loop.call_at(lock.until, self._lock_over, lock.key)

    def _lock_over(self, key: str) -> None:
        lock = self.guard.ended(key, self._loop.time())
        if lock is None:
            until = self.guard.until(key)
            if until is not None:  # renewed meanwhile
                self._loop.call_at(until, self._lock_over, key)
            return
        log.warning(
            "bind_lockout_ended operator=%s key=%s reason=%s refused=%d",
            self.name,
            key,
            lock.reason,
            lock.refused,
        )

    def _junk(self, conn: SmppConnection) -> None:
        """A connection that never bound is being closed for junk: a strike on its IP."""
        if not conn.accepted:
            return
        lock = self.guard.junk(conn.ip, self._loop.time())
        if lock is not None:
            self._lock_began(lock, conn, self.config.security.junk_connections)

    def connection_opened(self, conn: SmppConnection) -> None:
        if conn.accepted and self.faults.active and self.faults.has(FaultKind.OUTAGE):
            outage = self.faults.down(self._loop.time(), self.name)
            if outage is not None:
                # Down: the connection is cut as it comes (one line when the outage began).
                outage.hits += 1
                self.stats.connections_refused += 1
                self.stats.connection_refusals["outage"] += 1
                conn.abort()
                return
        if conn.accepted:
            if not self.guard.open(conn.ip):
                self.stats.connections_refused += 1
                self.stats.connection_refusals["max_connections_per_ip"] += 1
                log.warning(
                    "connection_refused operator=%s peer=%s reason=max_connections_per_ip limit=%d",
                    self.name,
                    conn.peer,
                    self.config.security.max_connections_per_ip,
                )
                conn.abort()
                return
            conn.admitted = True
        self.connections.add(conn)
        self.stats.connections += 1
        log.debug("connect operator=%s peer=%s", self.name, conn.peer)

    def connection_closed(self, conn: SmppConnection, exc: Exception | None) -> None:
        if conn.admitted:
            conn.admitted = False
            self.guard.close(conn.ip)
        self.connections.discard(conn)
        acct = conn.account
        if conn.outbind_for is not None and acct is None:
            # The ESME took the outbind connection but never bound on it: try again later.
            log.warning(
                "outbind_unanswered operator=%s account=%s peer=%s",
                self.name,
                conn.outbind_for,
                conn.peer,
            )
            self._outbind_later(self.accounts[conn.outbind_for])
        if acct is None:
            return
        undelivered = acct.detach(conn)
        if undelivered:
            acct.requeue_front(undelivered)
            self.stats.deliver_retries += len(undelivered)
        log.info(
            "unbind operator=%s account=%s peer=%s requeued=%d reason=%s",
            self.name,
            acct.system_id,
            conn.peer,
            len(undelivered),
            exc or "closed",
        )
        acct.pump()

    def close_unbound(self) -> None:
        """Drop accepted connections that never bound within ``security.bind_timeout``
        (a connection that only holds a slot, or only sends junk)."""
        limit = self.config.security.bind_timeout
        if not limit:
            return
        oldest = self._loop.time() - limit
        for conn in [c for c in self.connections if c.account is None and c.accepted]:
            if conn.opened_at <= oldest and not conn.session.closed:
                self.stats.bind_timeouts += 1
                log.warning(
                    "connection_closed operator=%s peer=%s reason=bind_timeout after=%gs",
                    self.name,
                    conn.peer,
                    limit,
                )
                conn.abort()

    def connection_writable(self, conn: SmppConnection) -> None:
        if conn.account is not None:
            conn.account.pump()

    # --- events ---------------------------------------------------------------------------

    def handle_events(self, conn: SmppConnection, events: list[Event]) -> None:
        handlers = self._handlers
        latency = self.config.response_latency
        faults = self.faults
        counts = self.pdus_in
        for ev in events:
            # A fault in our own handling of one PDU (a bug, an observer that raised) must
            # not take the bind down nor the rest of the batch and its responses with it.
            try:
                if type(ev) is PduReceived:
                    pdu = ev.pdu
                    cid = pdu.command_id
                    counts[cid] = counts.get(cid, 0) + 1
                    handler = handlers.get(cid)
                    if handler is None:
                        # alert_notification/outbind never reach here (bind-state table);
                        # the rest have no meaning from an ESME: refuse politely.
                        if pdu.response_class is not None:
                            conn.send(pdu.response(Status.ESME_RINVCMDID))
                    elif (
                        latency or (faults.active and faults.has(FaultKind.RESPONSE_DELAY))
                    ) and cid not in _AT_ONCE:
                        delay = latency + faults.response_delay(
                            self._loop.time(),
                            self.name,
                            conn.account.system_id if conn.account else None,
                        )
                        if delay:
                            self._loop.call_later(delay, self._delayed, handler, conn, pdu)
                        else:
                            handler(conn, pdu)
                    else:
                        handler(conn, pdu)
                elif type(ev) is ResponseReceived:
                    self._on_response(conn, ev)
                else:
                    self._on_other(conn, ev)
            except Exception as exc:
                self._handler_failed(conn, ev, exc)

    def _handler_failed(self, conn: SmppConnection, ev: Event, exc: Exception) -> None:
        """One line naming the PDU, the error and where it was raised; the bind goes on."""
        self.stats.handler_errors += 1
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "-"
        pdu = getattr(ev, "pdu", None)
        log.error(
            "handler_error operator=%s peer=%s event=%s command=%s seq=%s error=%r at=%s",
            self.name,
            conn.peer,
            type(ev).__name__,
            pdu.name if pdu is not None else "-",
            pdu.sequence_number if pdu is not None else "-",
            exc,
            where,
        )

    def _delayed(self, handler: Callable[[SmppConnection, Any], None], conn: Any, pdu: Any) -> None:
        if not conn.session.closed:
            try:
                handler(conn, pdu)
            except Exception as exc:
                self._handler_failed(conn, PduReceived(pdu), exc)
            conn.flush()

    def _unbound_error(self, conn: SmppConnection) -> bool:
        """Count an error of a connection that has not bound; True when it is already
        closing or this one uses up ``security.errors_before_bind`` (then it is closed):
        junk must not cost a log line per PDU."""
        transport = conn.transport
        if transport is None or transport.is_closing():
            return True
        conn.errors += 1
        limit = self.config.security.errors_before_bind
        if not limit or conn.errors < limit:
            return False
        self.stats.junk_closed += 1
        log.warning(
            "connection_closed operator=%s peer=%s reason=errors_before_bind errors=%d",
            self.name,
            conn.peer,
            conn.errors,
        )
        self._junk(conn)
        conn.close()
        return True

    def _on_other(self, conn: SmppConnection, ev: Event) -> None:
        if (
            isinstance(ev, ProtocolError | RequestRejected)
            and conn.account is None
            and self._unbound_error(conn)
        ):
            if isinstance(ev, ProtocolError):
                self.stats.protocol_errors += 1
            else:
                self.stats.rejected += 1
            return
        if isinstance(ev, ProtocolError):
            self.stats.protocol_errors += 1
            log.warning(
                "protocol_error operator=%s peer=%s fatal=%s status=%s error=%r",
                self.name,
                conn.peer,
                ev.fatal,
                status_name(ev.error.status),
                ev.error.args[0],
            )
            if ev.fatal and conn.account is None:
                self._junk(conn)  # a frame no SMPP peer sends (command_length out of range)
        elif isinstance(ev, RequestRejected):
            if ev.status == Status.ESME_RMSGQFUL:
                self.stats.queue_full += 1
            else:
                self.stats.rejected += 1
                self.stats.rejected_by_status[status_name(ev.status)] += 1
            log.info(
                "rejected operator=%s peer=%s command=%s status=%s",
                self.name,
                conn.peer,
                ev.pdu.name,
                status_name(ev.status),
            )
        elif isinstance(ev, Unbound):
            conn.close()
        elif isinstance(ev, ResponseTimeout):
            self._redeliver(conn, ev.request, "timeout")
        elif isinstance(ev, LinkDead):
            log.warning("link_dead operator=%s peer=%s reason=%s", self.name, conn.peer, ev.reason)
            conn.abort()

    def _on_response(self, conn: SmppConnection, ev: ResponseReceived) -> None:
        request = ev.request
        status = ev.pdu.command_status
        key = ev.pdu.command_id | status << 32
        self.pdus_in[key] = self.pdus_in.get(key, 0) + 1
        if request.command_id not in (CommandId.DELIVER_SM, CommandId.DATA_SM):
            return
        self.delivery_rtt.observe(ev.rtt)
        acct = conn.account
        nack = ev.pdu.command_id == CommandId.GENERIC_NACK
        if status == 0 and not nack:
            if self.journal is not None:
                self.journal.delivered(request)
            if isinstance(request, DeliverSm) and request.esm_class & EsmClass.DELIVERY_RECEIPT:
                self.stats.receipts_delivered += 1
                if self.on_receipt is not None:
                    self.on_receipt(request)
            else:
                self.stats.mo_delivered += 1
        elif nack or status in _TEMPORARY:
            # generic_nack, even with status 0 (a contradiction): the PDU was not taken.
            self._redeliver(conn, request, status_name(status))
        else:
            self.stats.deliver_refused += 1
            log.warning(
                "deliver_refused operator=%s account=%s peer=%s status=%s",
                self.name,
                acct.system_id if acct else "-",
                conn.peer,
                status_name(status),
            )
        if acct is not None:
            acct.pump()

    def _redeliver(self, conn: SmppConnection, pdu: Pdu, why: str) -> None:
        acct = conn.account
        if acct is None or pdu.command_id not in (CommandId.DELIVER_SM, CommandId.DATA_SM):
            return
        self.stats.deliver_retries += 1
        log.info("redeliver operator=%s peer=%s reason=%s", self.name, conn.peer, why)
        due = self._loop.time() + self.config.redelivery_delay
        self._schedule(due, self._requeue, (acct, pdu))

    @staticmethod
    def _requeue(item: tuple[Account, Pdu]) -> None:
        acct, pdu = item
        acct.requeue_front([pdu])
        acct.pump()

    # --- binds ----------------------------------------------------------------------------

    def _on_bind(self, conn: SmppConnection, pdu: Bind) -> None:
        acct = self.accounts.get(pdu.system_id)
        status = Status.ESME_ROK
        now = self._loop.time()
        locked = self.guard.locked(conn.ip, pdu.system_id, now)
        if locked is not None:
            # Locked out: the password is not even looked at, so guessing goes nowhere.
            self.stats.bind_failures += 1
            self.stats.binds_locked_out += 1
            self.stats.bind_refusals["locked_out"] += 1
            log.warning(
                "bind_refused operator=%s system_id=%r peer=%s status=ESME_RBINDFAIL "
                "reason=locked_out key=%s",
                self.name,
                pdu.system_id,
                conn.peer,
                locked,
            )
            conn.send(pdu.response(Status.ESME_RBINDFAIL))
            return
        refusal = self.faults.bind_refusal(now, self.name, pdu.system_id)
        if refusal:
            self.stats.bind_failures += 1
            self.stats.bind_refusals["fault"] += 1
            log.warning(
                "bind_refused operator=%s system_id=%r peer=%s status=%s reason=fault",
                self.name,
                pdu.system_id,
                conn.peer,
                status_name(refusal),
            )
            conn.send(pdu.response(refusal))
            return
        reason = ""
        if acct is None:
            status, reason = Status.ESME_RINVSYSID, "unknown_system_id"
        elif pdu.password != acct.config.password:
            status, reason = Status.ESME_RINVPASWD, "bad_password"
        elif not self._ip_allowed(acct, conn):
            status, reason = Status.ESME_RBINDFAIL, "ip_not_allowed"
        elif pinned := pin_refusal(acct.config.tls_client_cert_sha256, conn.transport):
            status, reason = Status.ESME_RBINDFAIL, pinned
        elif len(acct.binds) >= acct.config.max_binds:
            status, reason = Status.ESME_RBINDFAIL, "max_binds"
        if status in (Status.ESME_RINVSYSID, Status.ESME_RINVPASWD):
            for lock in self.guard.failed(conn.ip, pdu.system_id if acct else None, now):
                self._lock_began(lock, conn, self.config.security.bind_failures)
        elif not status:
            self.guard.succeeded(conn.ip, pdu.system_id)
        if status:
            self.stats.bind_failures += 1
            self.stats.bind_refusals[reason] += 1
            log.warning(
                "bind_refused operator=%s system_id=%r peer=%s status=%s reason=%s",
                self.name,
                pdu.system_id,
                conn.peer,
                status_name(status),
                reason,
            )
            conn.send(pdu.response(status))
            return
        assert acct is not None
        tlvs: dict[int, int | str | bytes] = {}
        if pdu.interface_version >= 0x34:
            tlvs[Tag.SC_INTERFACE_VERSION] = 0x34
        conn.send(pdu.response(system_id=self.config.smsc_system_id, tlvs=tlvs))
        conn.account = acct
        conn.session.inbound_window = acct.config.window
        acct.attach(conn)
        if conn.session.can_receive:
            self._outbinding.discard(acct.system_id)
        elif conn.outbind_for is not None:
            self._outbind_later(acct)  # bound on our outbind, but as a transmitter only
        self.stats.binds += 1
        log.info(
            "bind operator=%s account=%s peer=%s mode=%s",
            self.name,
            acct.system_id,
            conn.peer,
            conn.session.state.value,
        )
        acct.pump()

    def _ip_allowed(self, acct: Account, conn: SmppConnection) -> bool:
        nets = self._allowed_nets[acct.system_id]
        if not nets:
            return True
        host = conn.peer.rsplit(":", 1)[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in nets)

    # --- submits --------------------------------------------------------------------------

    def _admit(self, conn: SmppConnection, pdu: Pdu) -> bool:
        """TPS check shared by every submitting command; answers when it refuses."""
        self.stats.submits += 1
        acct = conn.account
        if acct is None:
            return True
        acct.stats.submits += 1
        if acct.bucket is not None and not acct.bucket.take(self._loop.time()):
            self.stats.throttled += 1
            acct.stats.throttled += 1
            conn.send(pdu.response(Status.ESME_RTHROTTLED))
            return False
        if self.faults.active and self.faults.has(FaultKind.SUBMIT_ERROR):
            status = self.faults.submit_error(
                self._loop.time(), self.name, acct.system_id, getattr(pdu, "destination_addr", "")
            )
            if status:
                # Counted like the real refusal it imitates; one line per rule, not per PDU.
                if status == Status.ESME_RTHROTTLED:
                    self.stats.throttled += 1
                    acct.stats.throttled += 1
                elif status == Status.ESME_RMSGQFUL:
                    self.stats.queue_full += 1
                else:
                    self.stats.rejected += 1
                    self.stats.rejected_by_status[status_name(status)] += 1
                conn.send(pdu.response(status))
                return False
        return True

    def _refuse(self, conn: SmppConnection, pdu: Pdu, status: int, why: str) -> None:
        self.stats.rejected += 1
        self.stats.rejected_by_status[status_name(status)] += 1
        log.info(
            "submit_refused operator=%s peer=%s command=%s status=%s why=%s",
            self.name,
            conn.peer,
            pdu.name,
            status_name(status),
            why,
        )
        conn.send(pdu.response(status))

    def _on_submit_sm(self, conn: SmppConnection, pdu: SubmitSm) -> None:
        if not self._admit(conn, pdu):
            return
        if self.ussd is not None and pdu.tlvs and Tag.USSD_SERVICE_OP in pdu.tlvs:
            self.ussd.on_submit(conn, pdu)  # a USSD screen, not an SMS
            return
        status, why = self._check_submit(pdu)
        if status:
            self._refuse(conn, pdu, status, why)
            return
        message_id = self.ids.next()
        conn.send(pdu.response(message_id=message_id))
        self._accept(
            conn, message_id, pdu, pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi
        )

    def _check_dest(self, addr: str, ton: int, npi: int) -> tuple[int, str]:
        if not addr:
            return Status.ESME_RINVDSTADR, "empty destination_addr"
        rules = self._addr_rules
        if rules is not None:
            if rules[2] and ton not in rules[2]:
                return Status.ESME_RINVDSTTON, f"dest_addr_ton {ton}"
            if rules[3] and npi not in rules[3]:
                return Status.ESME_RINVDSTNPI, f"dest_addr_npi {npi}"
        return 0, ""

    def _check_common(self, pdu: SubmitSm | SubmitMulti | DataSm) -> tuple[int, str]:
        """What every submitting command must get right: source TON/NPI, esm_class,
        registered_delivery."""
        rules = self._addr_rules
        if rules is not None:
            if rules[0] and pdu.source_addr_ton not in rules[0]:
                return Status.ESME_RINVSRCTON, f"source_addr_ton {pdu.source_addr_ton}"
            if rules[1] and pdu.source_addr_npi not in rules[1]:
                return Status.ESME_RINVSRCNPI, f"source_addr_npi {pdu.source_addr_npi}"
        if pdu.esm_class & 0x3C in (0x04, 0x10, 0x20, 0x18):
            return Status.ESME_RINVESMCLASS, f"esm_class 0x{pdu.esm_class:02X} is not for submits"
        if pdu.registered_delivery & 0xE0:
            return Status.ESME_RINVREGDLVFLG, f"registered_delivery 0x{pdu.registered_delivery:02X}"
        return 0, ""

    def _check_submit(self, pdu: SubmitSm | SubmitMulti) -> tuple[int, str]:
        # The common case (no TON/NPI expectations, plain esm_class and registered_delivery)
        # costs no extra call: this runs for every submit.
        if type(pdu) is SubmitSm and (not pdu.destination_addr or self._addr_rules is not None):
            status, why = self._check_dest(
                pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi
            )
            if status:
                return status, why
        if (
            self._addr_rules is not None
            or pdu.esm_class & 0x3C in (0x04, 0x10, 0x20, 0x18)
            or pdu.registered_delivery & 0xE0
        ):
            status, why = self._check_common(pdu)
            if status:
                return status, why
        if _bad_time(pdu.schedule_delivery_time):
            return Status.ESME_RINVSCHED, f"schedule_delivery_time {pdu.schedule_delivery_time!r}"
        if _bad_time(pdu.validity_period):
            return Status.ESME_RINVEXPIRY, f"validity_period {pdu.validity_period!r}"
        if pdu.short_message and pdu.tlvs and Tag.MESSAGE_PAYLOAD in pdu.tlvs:
            return Status.ESME_RINVMSGLEN, "both short_message and message_payload"
        return 0, ""

    def _accept(
        self,
        conn: SmppConnection,
        message_id: str,
        pdu: SubmitSm | SubmitMulti | DataSm,
        dest: str,
        ton: int,
        npi: int,
        group: list[Message] | None = None,
    ) -> None:
        """Store, plan and hand over one accepted message; ``group``: submit_multi's list
        of the destinations accepted so far (the first is the one stored by id)."""
        self.stats.accepted += 1
        if conn.account is not None:
            conn.account.stats.accepted += 1
        short = pdu.short_message if not isinstance(pdu, DataSm) else b""
        msg = Message(
            message_id,
            conn.account.system_id if conn.account else "",
            pdu.source_addr,
            pdu.source_addr_ton,
            pdu.source_addr_npi,
            dest,
            ton,
            npi,
            pdu.esm_class,
            pdu.data_coding,
            short,
            pdu.registered_delivery,
            self.clock.now(),
            pdu.tlvs,
        )
        if not isinstance(pdu, DataSm):
            msg.validity_period = pdu.validity_period
        if group is None:
            self.store.add(msg)
        else:
            if not group:
                self.store.add(msg)
            group.append(msg)
            msg.group = group
        self._schedule_outcome(msg)
        if self.journal is not None:
            self.journal.accepted(msg)
        self.sink.on_mt(msg)

    def _schedule_outcome(self, msg: Message) -> None:
        outcome = self.policy.outcome(msg)
        state: int = outcome.state
        err = outcome.err
        if self.faults.active and self.faults.has(FaultKind.RECEIPT_FAIL):
            failed = self.faults.receipt_failure(
                self._loop.time(), self.name, msg.account, msg.destination_addr
            )
            if failed is not None:
                state, err = failed
        msg.planned_state = state
        msg.planned_err = err
        msg.planned_time = msg.submit_time + outcome.delay
        due = self._loop.time() + self.clock.to_real(outcome.delay)
        self._schedule(due, self._finish, (msg, msg.version, state, err))

    def _finish(self, item: tuple[Message, int, int, int]) -> None:
        msg, version, state, err = item
        if msg.version != version or msg.final:
            return  # replaced or cancelled since this outcome was scheduled
        msg.state = state
        msg.err = err
        msg.done_time = self.clock.now()
        if msg.group is None:
            self.store.finish(msg)
        else:
            self._settle(msg)
        if state in _ABSENT and msg.tlvs and msg.tlvs.get(Tag.SET_DPF) == 1:
            self._dpf.setdefault(msg.destination_addr, {})[msg.account] = (
                msg.source_addr,
                msg.source_ton,
                msg.source_npi,
            )
        if not msg.wants_receipt():
            return  # the journal's plan (accept, replanned) says it ended quietly
        acct = self.accounts.get(msg.account)
        if acct is None:
            return
        self.stats.receipts_due += 1
        acct.stats.receipts_due += 1
        self.stats.receipts_by_stat[RECEIPT_STAT_TEXT[state]] += 1
        receipt = self.receipts.build(msg)
        if self.journal is not None:
            self.journal.receipt_queued(msg, receipt)
        if self.receipts_paused:
            self.held_receipts.append((acct, receipt))
            return
        faults = self.faults
        if faults.active and (
            faults.has(FaultKind.RECEIPT_DELAY) or faults.has(FaultKind.RECEIPT_DUPLICATE)
        ):
            self._faulty_receipt(acct, receipt)
            return
        acct.outbox.append(receipt)
        acct.pump()

    def _faulty_receipt(self, acct: Account, receipt: DeliverSm) -> None:
        now = self._loop.time()
        receipts = [receipt]
        if self.faults.receipt_duplicate(now, self.name, acct.system_id):
            receipts.append(dataclasses.replace(receipt))
            self.stats.receipts_duplicated += 1
        delay = self.faults.receipt_delay(now, self.name, acct.system_id)
        if delay:
            self._schedule(now + delay, self._queue_receipts, (acct, receipts))
        else:
            self._queue_receipts((acct, receipts))

    @staticmethod
    def _queue_receipts(item: tuple[Account, list[DeliverSm]]) -> None:
        acct, receipts = item
        acct.outbox.extend(receipts)
        acct.pump()

    def _on_enquire_link(self, conn: SmppConnection, pdu: Pdu) -> None:
        delay: float | None = 0.0
        if self.faults.has(FaultKind.ENQUIRE_LINK):
            account = conn.account.system_id if conn.account else None
            delay = self.faults.enquire_link(self._loop.time(), self.name, account)
        if delay is None:
            return  # a fault: never answered
        if delay:
            self._loop.call_later(delay, self._answer_late, conn, pdu)
        else:
            conn.send(pdu.response())

    @staticmethod
    def _answer_late(conn: SmppConnection, pdu: Pdu) -> None:
        if not conn.session.closed:
            conn.send(pdu.response())

    # --- faults (one-shot kinds, run by the server's schedule) --------------------------------

    def fault_action(self, fault: Fault) -> int:
        """Carry out a bind_drop, outage or malformed fault on this operator's binds now;
        returns how many binds it touched."""
        rule = fault.rule
        if rule.kind is FaultKind.BIND_DROP:
            return self.drop_binds(rule.account, unbind=rule.unbind)
        if rule.kind is FaultKind.OUTAGE:
            cut = list(self.connections)
            for conn in cut:
                conn.abort()  # unanswered deliveries go back to the queue, as on any drop
            return len(cut)
        touched = 0
        for conn in list(self.connections):
            acct = conn.account
            if acct is None or (rule.account is not None and acct.system_id != rule.account):
                continue
            if not conn.session.can_receive:
                continue  # a transmitter is sent nothing but answers
            touched += 1
            for _ in range(rule.count):
                conn.send_raw(malformed_pdu(rule.form, 0x7F00_0000 + fault.hits))
                fault.hits += 1
            log.info(
                "fault_malformed operator=%s account=%s peer=%s form=%s count=%d",
                self.name,
                acct.system_id,
                conn.peer,
                rule.form,
                rule.count,
            )
            if rule.form == "truncated":
                conn.close()  # the link dies mid-PDU
        return touched

    # --- steering (the control API) ---------------------------------------------------------

    def plan_again(self, msg: Message) -> None:
        """A message accepted by an earlier run whose outcome had not come
        (``recovery.py``): pending again for query/cancel/replace, its outcome planned
        anew by this run's policy (and journalled), the handset side told, as at its
        accept."""
        self.store.add(msg)
        self._schedule_outcome(msg)
        if self.journal is not None:
            self.journal.replanned(msg)
        self.sink.on_mt(msg)

    def refuse_submits(self) -> bool:
        """From now on submit_sm, submit_multi and data_sm are answered ESME_RSYSERR (a
        temporary error: gateways retry elsewhere or later), for a graceful stop;
        deliveries go on. False when it already was so."""
        handlers = self._handlers
        if handlers[CommandId.SUBMIT_SM] == self._refuse_stopping:
            return False
        for cid in (CommandId.SUBMIT_SM, CommandId.SUBMIT_MULTI, CommandId.DATA_SM):
            handlers[cid] = self._refuse_stopping
        log.info("submits_refused operator=%s reason=stopping", self.name)
        return True

    def _refuse_stopping(self, conn: SmppConnection, pdu: Pdu) -> None:
        self.stats.rejected += 1
        self.stats.rejected_by_status["ESME_RSYSERR"] += 1
        conn.send(pdu.response(Status.ESME_RSYSERR))

    def pause_receipts(self) -> None:
        """Receipts that come due wait (in order) until ``resume_receipts``; MO still flows."""
        if not self.receipts_paused:
            log.info("receipts_paused operator=%s", self.name)
        self.receipts_paused = True

    def resume_receipts(self) -> int:
        """Queue the held receipts, oldest first, and deliver again; returns how many."""
        held, self.held_receipts = self.held_receipts, []
        was_paused, self.receipts_paused = self.receipts_paused, False
        for acct, pdu in held:
            acct.outbox.append(pdu)
        for acct in {id(a): a for a, _ in held}.values():
            acct.pump()
        if was_paused:
            log.info("receipts_resumed operator=%s released=%d", self.name, len(held))
        return len(held)

    def set_tps(self, system_id: str, tps: float) -> None:
        """Change an account's TPS limit now (0: unlimited); raises KeyError."""
        self.accounts[system_id].set_tps(tps, self._loop.time())
        log.info("tps_changed operator=%s account=%s tps=%g", self.name, system_id, tps)

    def drop_binds(
        self, account: str | None = None, peer: str | None = None, *, unbind: bool = False
    ) -> int:
        """Drop the bound connections of ``account`` and/or from ``peer`` (all when
        neither): aborted like a network failure, or ended with an unbind. Their
        unanswered deliveries go back to the queue as on any drop. Returns how many."""
        chosen = [
            c
            for c in self.connections
            if c.account is not None
            and (account is None or c.account.system_id == account)
            and (peer is None or c.peer == peer)
        ]
        for conn in chosen:
            log.info(
                "bind_drop operator=%s account=%s peer=%s unbind=%s",
                self.name,
                conn.account.system_id if conn.account else "-",
                conn.peer,
                unbind,
            )
            if unbind and conn.session.is_bound:
                try:
                    conn.send_request(Unbind())
                except SessionStateError:
                    conn.abort()
            else:
                conn.abort()
        return len(chosen)

    def _settle(self, msg: Message) -> None:
        """A message reached a final state: out of the pending set (a submit_multi leaves
        it when its last destination does, so query/cancel/replace still find the rest)."""
        group = msg.group
        if group is None:
            self.store.finish(msg)
        elif all(m.final for m in group):
            self.store.finish(group[0])

    def _on_submit_multi(self, conn: SmppConnection, pdu: SubmitMulti) -> None:
        if not self._admit(conn, pdu):
            return
        if not pdu.dests or len(pdu.dests) > 254:
            self._refuse(conn, pdu, Status.ESME_RINVNUMDESTS, f"{len(pdu.dests)} destinations")
            return
        status, why = self._check_submit(pdu)
        if status:
            self._refuse(conn, pdu, status, why)
            return
        failed: list[UnsuccessSme] = []
        good: list[MultiDest] = []
        for d in pdu.dests:
            if d.dl_name is not None:
                # No distribution lists are provisioned on this SMSC.
                failed.append(UnsuccessSme(d.dl_name, 0, 0, Status.ESME_RINVDLNAME))
                continue
            status, _why = self._check_dest(d.addr, d.ton, d.npi)
            if status:
                failed.append(UnsuccessSme(d.addr, d.ton, d.npi, status))
            else:
                good.append(d)
        if not good:
            # Nothing accepted: the whole request fails, still naming each destination.
            self.stats.rejected += 1
            self.stats.rejected_by_status[status_name(Status.ESME_RINVDSTADR)] += 1
            conn.send(pdu.response(Status.ESME_RINVDSTADR, unsuccess_smes=failed))
            return
        # One message_id for the request: every destination's receipt carries it (the
        # receipt's source_addr tells them apart), and query/cancel/replace take it.
        message_id = self.ids.next()
        conn.send(pdu.response(message_id=message_id, unsuccess_smes=failed))
        group: list[Message] = []
        for d in good:
            self._accept(conn, message_id, pdu, d.addr, d.ton, d.npi, group)

    def _on_data_sm(self, conn: SmppConnection, pdu: DataSm) -> None:
        if not self._admit(conn, pdu):
            return
        status, why = self._check_dest(pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi)
        if not status:
            status, why = self._check_common(pdu)
        # data_sm carries 64-octet addresses, a receipt's deliver_sm only 20: an address
        # that could never be receipted (nor be a handset's) is refused, not accepted.
        if not status and len(pdu.destination_addr) > _DELIVER_ADDR_MAX:
            status, why = Status.ESME_RINVDSTADR, "destination_addr longer than 20"
        if not status and len(pdu.source_addr) > _DELIVER_ADDR_MAX:
            status, why = Status.ESME_RINVSRCADR, "source_addr longer than 20"
        if status:
            self._refuse(conn, pdu, status, why)
            return
        message_id = self.ids.next()
        conn.send(pdu.response(message_id=message_id))
        self._accept(
            conn, message_id, pdu, pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi
        )

    # --- query / cancel / replace ---------------------------------------------------------

    def _owned(self, conn: SmppConnection, message_id: str, source: str) -> Message | None:
        msg = self.store.get(message_id)
        if msg is None or (conn.account and msg.account != conn.account.system_id):
            return None
        if source and msg.source_addr and source != msg.source_addr:
            return None
        return msg

    def _on_query_sm(self, conn: SmppConnection, pdu: QuerySm) -> None:
        self.stats.queries += 1
        msg = self._owned(conn, pdu.message_id, pdu.source_addr)
        if msg is None:
            conn.send(pdu.response(Status.ESME_RQUERYFAIL, message_id=pdu.message_id))
            return
        final_date = ""
        if msg.final:
            done = msg.done_time
            final_date = format_smpp_time(done, self.receipts.utc_offset_quarters(done))
        conn.send(
            pdu.response(
                message_id=msg.message_id,
                final_date=final_date,
                message_state=msg.state,
                error_code=msg.err & 0xFF,
            )
        )

    def _on_cancel_sm(self, conn: SmppConnection, pdu: CancelSm) -> None:
        """SMPP 3.4 4.9: by message_id (every pending destination of a submit_multi, or
        only ``destination_addr``'s when given), or with no message_id every pending
        message of this account from source_addr to destination_addr."""
        self.stats.cancels += 1
        dest = pdu.destination_addr
        if pdu.message_id:
            msg = self.store.pending(pdu.message_id)
            if msg is None or self._owned(conn, msg.message_id, pdu.source_addr) is None:
                conn.send(pdu.response(Status.ESME_RCANCELFAIL))
                return
            targets = [
                m
                for m in (msg.group or [msg])
                if not m.final and (not dest or m.destination_addr == dest)
            ]
        elif pdu.source_addr and dest:
            account = conn.account.system_id if conn.account else ""
            targets = [
                m
                for lead in self.store.pending_messages()
                for m in (lead.group or [lead])
                if not m.final
                and m.account == account
                and m.source_addr == pdu.source_addr
                and m.destination_addr == dest
            ]
        else:
            targets = []
        if not targets:
            conn.send(pdu.response(Status.ESME_RCANCELFAIL))
            return
        now = self.clock.now()
        for m in targets:
            m.version += 1  # the scheduled outcome is now stale: no receipt, no delivery
            m.state = MessageState.DELETED
            m.done_time = now
            self._settle(m)
            if self.journal is not None:
                self.journal.finished(m)  # no receipt is coming: not lost, not to recover
            cancelled = getattr(self.sink, "on_cancel", None)
            if cancelled is not None:
                cancelled(m)
        conn.send(pdu.response())

    def _on_replace_sm(self, conn: SmppConnection, pdu: ReplaceSm) -> None:
        """SMPP 3.4 4.10: new text, registered_delivery and (when given) schedule and
        validity for a pending message; its outcome is planned again."""
        self.stats.replaces += 1
        msg = self.store.pending(pdu.message_id)
        if msg is None or self._owned(conn, msg.message_id, pdu.source_addr) is None:
            conn.send(pdu.response(Status.ESME_RREPLACEFAIL))
            return
        if _bad_time(pdu.schedule_delivery_time):
            conn.send(pdu.response(Status.ESME_RINVSCHED))
            return
        if _bad_time(pdu.validity_period):
            conn.send(pdu.response(Status.ESME_RINVEXPIRY))
            return
        if pdu.registered_delivery & 0xE0:
            conn.send(pdu.response(Status.ESME_RINVREGDLVFLG))
            return
        conn.send(pdu.response())
        replaced = getattr(self.sink, "on_replace", None)
        for m in msg.group or [msg]:
            if m.final:
                continue
            m.short_message = pdu.short_message
            m.registered_delivery = pdu.registered_delivery
            if pdu.validity_period:
                m.validity_period = pdu.validity_period
            m.version += 1
            self._schedule_outcome(m)
            if self.journal is not None:
                self.journal.replanned(m)  # new text, registered_delivery and outcome
            if replaced is not None:
                replaced(m)

    # --- MO --------------------------------------------------------------------------------

    def route_mo(self, destination: str, account: str | None = None) -> Account:
        if account is not None:
            try:
                return self.accounts[account]
            except KeyError:
                raise KeyError(f"operator {self.name} has no account {account!r}") from None
        for acct in self.accounts.values():
            if destination in acct.config.short_codes:
                return acct
        return next(iter(self.accounts.values()))

    def inject_mo(
        self,
        source: str,
        text: str | bytes,
        *,
        destination: str = "1442",
        account: str | None = None,
        data_coding: int | None = None,
        concat: str | None = None,
        tlvs: dict[int, int | str | bytes] | None = None,
    ) -> list[DeliverSm]:
        """Queue a mobile-originated message for the account's receivers.

        ``text`` as str is encoded (GSM 7-bit when it can be, UCS-2 otherwise, or the
        given ``data_coding``); bytes go as they are with ``data_coding`` (default 0).
        Long messages are split per ``concat`` (the operator's ``mo_concat`` by default).
        Returns the deliver_sm PDUs queued, in order.
        """
        acct = self.route_mo(destination, account)
        if isinstance(text, str):
            if data_coding is None:
                data_coding, payload = choose_coding(text)
            else:
                payload = encode_text(text, data_coding)
        else:
            payload = text
            data_coding = data_coding or 0
        method = _CONCAT[concat or self.config.mo_concat]
        ref = next(self._mo_ref) & (0xFFFF if method is Concat.UDH16 else 0xFF)
        parts = split_message(payload, alphabet_of(data_coding), method, ref)
        addr = self.config.addressing
        pdus = []
        for part in parts:
            part_tlvs: dict[int, int | str | bytes] = dict(tlvs or {})
            body = part.body
            if method is Concat.SAR and part.total > 1:
                part_tlvs[Tag.SAR_MSG_REF_NUM] = part.ref
                part_tlvs[Tag.SAR_TOTAL_SEGMENTS] = part.total
                part_tlvs[Tag.SAR_SEGMENT_SEQNUM] = part.seq
            elif method is Concat.PAYLOAD and len(body) > 254:
                part_tlvs[Tag.MESSAGE_PAYLOAD] = body
                body = b""
            pdus.append(
                DeliverSm(
                    tlvs=part_tlvs,
                    source_addr_ton=addr.handset_ton,
                    source_addr_npi=addr.handset_npi,
                    source_addr=source,
                    dest_addr_ton=addr.short_code_ton,
                    dest_addr_npi=addr.short_code_npi,
                    destination_addr=destination,
                    esm_class=EsmClass.UDHI if part.udhi else 0,
                    data_coding=data_coding,
                    short_message=body,
                )
            )
        acct.outbox.extend(pdus)
        self.stats.mo_queued += len(pdus)
        acct.stats.mo_queued += len(pdus)
        acct.pump()
        return pdus

    # --- alert_notification --------------------------------------------------------------

    def handset_available(self, number: str, availability: int = 0) -> list[AlertNotification]:
        """The handset ``number`` is reachable again: every account that submitted to it
        with set_dpf=1 a message that failed for want of the handset gets one
        alert_notification (SMPP 3.4 4.12) through its receivers, queued like receipts.
        ``availability``: the ms_availability_status TLV (0 available, 1 denied, 2
        unavailable). Returns the alerts queued."""
        flags = self._dpf.pop(number, None)
        if not flags:
            return []
        addr = self.config.addressing
        alerts = []
        for account, (esme_addr, ton, npi) in flags.items():
            acct = self.accounts.get(account)
            if acct is None:
                continue
            alert = AlertNotification(
                source_addr_ton=addr.handset_ton,
                source_addr_npi=addr.handset_npi,
                source_addr=number,
                esme_addr_ton=ton,
                esme_addr_npi=npi,
                esme_addr=esme_addr,
                tlvs={Tag.MS_AVAILABILITY_STATUS: availability},
            )
            acct.outbox.append(alert)
            alerts.append(alert)
            self.stats.alerts += 1
            log.info("alert operator=%s account=%s handset=%s", self.name, account, number)
            acct.pump()
        return alerts

    def delivery_pending_flags(self) -> dict[str, list[str]]:
        """Handset -> accounts waiting for an alert_notification about it."""
        return {number: list(flags) for number, flags in self._dpf.items()}

    # --- outbind ---------------------------------------------------------------------------

    def _want_receiver(self, acct: Account) -> None:
        """Deliveries wait and nobody receives them: ask the ESME to bind (once at a time)."""
        if acct.system_id in self._outbinding:
            return
        self._outbinding.add(acct.system_id)
        task = self._loop.create_task(self._outbind_task(acct))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _outbind_task(self, acct: Account) -> None:
        try:
            await self.outbind(acct.system_id)
        except OSError as exc:
            log.warning(
                "outbind_failed operator=%s account=%s address=%s error=%s",
                self.name,
                acct.system_id,
                acct.config.outbind,
                exc,
            )
            self._outbind_later(acct)

    def _outbind_later(self, acct: Account) -> None:
        self._schedule(self._loop.time() + acct.config.outbind_retry, self._outbind_again, acct)

    def _outbind_again(self, acct: Account) -> None:
        self._outbinding.discard(acct.system_id)
        acct.pump()  # outbinds again if deliveries still wait for a receiver

    def _outbind_deadline(self, conn: SmppConnection) -> None:
        if conn.account is None and not conn.session.closed:
            conn.abort()  # connection_closed schedules the next attempt

    async def outbind(
        self, system_id: str, address: tuple[str, int] | None = None
    ) -> SmppConnection:
        """Connect to the account's ESME (``address`` or its configured ``outbind``) and
        send outbind; the ESME's bind_receiver on that connection is served as any bind."""
        from .connection import SmppConnection

        acct = self.accounts[system_id]
        address = address or acct.config.outbind_address
        if address is None:
            raise ValueError(f"account {system_id!r} has no outbind address")
        _, conn = await self._loop.create_connection(
            lambda: SmppConnection(self, accepted=False), *address
        )
        conn.outbind_for = system_id
        conn.send_request(
            Outbind(system_id=self.config.smsc_system_id, password=acct.config.password)
        )
        log.info(
            "outbind operator=%s account=%s address=%s:%d",
            self.name,
            system_id,
            *address,
        )
        due = self._loop.time() + self.config.response_timeout
        self._schedule(due, self._outbind_deadline, conn)
        return conn

    # --- shutdown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop starting outbinds (the server is stopping)."""
        for acct in self.accounts.values():
            acct.wants_receiver = None
        for task in self._tasks:
            task.cancel()

    def pending_deliveries(self) -> int:
        """deliver_sm queued (or held while receipts are paused) or in flight."""
        queued = sum(len(a.outbox) for a in self.accounts.values()) + len(self.held_receipts)
        return queued + sum(self.on_the_wire())

    def on_the_wire(self) -> tuple[int, int]:
        """(receipts, MO parts) sent to a client and not yet answered: neither delivered
        nor lost, whatever a count taken now says."""
        receipts = mo = 0
        for c in self.connections:
            for p in c.session.outstanding:
                if isinstance(p, DeliverSm) and p.esm_class & EsmClass.DELIVERY_RECEIPT:
                    receipts += 1
                elif p.command_id in (CommandId.DELIVER_SM, CommandId.DATA_SM):
                    mo += 1
        return receipts, mo


BIND_IDS = frozenset(cls.command_id for cls in BIND_CLASSES)
#: Answered when they come, whatever the response latency (binds, keep-alive).
_AT_ONCE = BIND_IDS | {CommandId.ENQUIRE_LINK}
