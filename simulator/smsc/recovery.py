"""Crash safety: what an earlier run accepted but never delivered, queued again at start;
and the graceful stop that delivers what is queued before it unbinds.

Why (issue 8): a gateway that got submit_sm_resp for a message waits for its receipt,
and a platform waits for the MO its subscribers sent. A ``kill -9`` or a restart of the
SMSC must not lose them. With ``--journal DIR`` on a directory an earlier run wrote,
``read_plan`` reads it (both formats) and finds, per operator:

* messages accepted with registered_delivery asking for a receipt on every outcome
  (bits 1-0 = 1) or on failure (2) whose receipt was never acknowledged
  (``receipt_delivered``). The accept (format 3) holds the outcome planned for it
  (state, error, simulated time; a later ``replanned`` record replaces it). When that
  time had passed on the journal's own clock (its latest submit time), the receipt was
  due before the crash: it is rebuilt from the plan by the operator's receipt builder,
  so it carries the original message id, submit date, done date and stat. A message
  whose outcome had not come is planned again (this run's receipt policy, from now),
  stored, and handed to the handset side, as at its accept. Journals of format 2 say
  which receipts were queued (``receipt_queued``), rebuilt from those records;
* MO injected whose parts were not all acknowledged: the missing parts, rebuilt from
  their deliver_sm fields, queued for the account they were queued for.

``apply`` queues them (in their original order) on the account queues, so the next
receiver bound gets them; each is journalled (``receipt_recovered``, ``mo_recovered``)
and its acknowledgement is journalled against the original key (message id and
destination; MO id and part). A second restart so finds it delivered and does not
deliver it again; a receipt acknowledged in the last ``flush_interval`` before a crash
may be delivered again (SMPP is at least once: gateways match receipts by id).

Not recovered: failure-only messages (bits 1-0 = 2) planned to be delivered, whose
time has passed (they ended quietly); in format 2, failure-only receipts whose outcome
had not come (that journal does not say whether a message ended quietly); receipts and
MO of operators or accounts the new configuration no longer has (counted as
``skipped``), MO from JSON-lines journals (they did not keep the parts), deliveries
waiting on the timer heap for a redelivery (they are recovered like the rest: not yet
acknowledged). Recovery with ``--processes`` > 1 is not for sharing one directory: each
process would queue everything again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.smpp.constants import STAT_STATE, CommandId, MessageState, Tag
from simulator.smpp.pdu import DeliverSm

from .audit import Key
from .journal_files import (
    ACCEPT,
    FINISHED,
    MO_DELIVERED,
    MO_INJECTED,
    RECEIPT_DELIVERED,
    RECEIPT_QUEUED,
    REPLANNED,
    JournalReader,
    journal_files,
    plan_wants_receipt,
)
from .receipts import RECEIPT_STAT_TEXT
from .store import Message

if TYPE_CHECKING:
    from .accounts import Account
    from .journal import OperatorJournal
    from .operator import OperatorSmsc

log = logging.getLogger("smsim.recovery")

_DELIVERIES = (CommandId.DELIVER_SM, CommandId.DATA_SM)


@dataclass
class Recovered:
    """What ``apply`` queued again for one operator."""

    receipts: int = 0
    replanned: int = 0
    mo: int = 0
    mo_parts: int = 0
    skipped: int = 0


@dataclass
class RecoveryPlan:
    """The undelivered work of a journal directory, per operator, in journal order:
    ("receipt", accept, its final state: stat, state, err, done), ("replan", accept,
    None), ("mo", mo_injected, sorted undelivered parts)."""

    items: dict[str, list[tuple[str, dict[str, Any], Any]]] = field(default_factory=dict)
    records: int = 0
    torn: int = 0
    #: Undelivered MO the journal cannot rebuild (JSON-lines journals).
    unrecoverable_mo: int = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self.items.values())

    def apply(self, op: OperatorSmsc, journal: OperatorJournal | None) -> Recovered:
        """Queue ``op``'s share on its accounts (pumped: a bound receiver gets it now)."""
        done = Recovered()
        touched: dict[str, Account] = {}
        for kind, rec, extra in self.items.get(op.name, ()):
            if kind == "mo":
                acct = _mo_account(op, rec)
                if acct is None:
                    done.skipped += 1
                    continue
                parts = {i: mo_pdu(rec["pdus"][i]) for i in extra}
                if journal is not None:
                    journal.mo_recovered(rec["mo"], parts)
                acct.outbox.extend(parts.values())
                op.stats.mo_queued += len(parts)
                acct.stats.mo_queued += len(parts)
                done.mo += 1
                done.mo_parts += len(parts)
                touched[acct.system_id] = acct
                continue
            acct = op.accounts.get(rec["account"])
            if acct is None:
                done.skipped += 1
                continue
            msg = _message(rec)
            if kind == "replan":
                # As at its accept: pending (query_sm, cancel_sm), an outcome planned, the
                # handset side told; the receipt is journalled when it comes due.
                op.plan_again(msg)
                done.replanned += 1
                continue
            stat = extra["stat"]
            msg.state = int(extra.get("state") or STAT_STATE.get(stat, MessageState.UNKNOWN))
            msg.err = int(extra.get("err") or 0)
            msg.done_time = float(extra.get("done") or rec["submit"])
            op.store.add(msg)
            op.store.finish(msg)  # query_sm answers its final state
            pdu = op.receipts.build(msg)
            if journal is not None:
                journal.receipt_recovered(msg.message_id, msg.destination_addr, stat, pdu)
            if op.receipts_paused:
                op.held_receipts.append((acct, pdu))
            else:
                acct.outbox.append(pdu)
            done.receipts += 1
            touched[acct.system_id] = acct
        if done.receipts or done.replanned or done.mo or done.skipped:
            log.info(
                "recovered operator=%s receipts=%d replanned=%d mo=%d mo_parts=%d skipped=%d",
                op.name,
                done.receipts,
                done.replanned,
                done.mo,
                done.mo_parts,
                done.skipped,
            )
        for acct in touched.values():
            acct.pump()
        return done


def _message(rec: dict[str, Any]) -> Message:
    body = rec.get("sm") or b""
    tlvs: dict[int, int | str | bytes] = {}
    if len(body) > 254:  # it came as message_payload
        tlvs[Tag.MESSAGE_PAYLOAD] = body
        body = b""
    return Message(
        rec["id"],
        rec["account"],
        rec["src"],
        rec.get("src_ton", 0),
        rec.get("src_npi", 0),
        rec["dst"],
        rec.get("dst_ton", 0),
        rec.get("dst_npi", 0),
        rec.get("esm", 0),
        rec.get("dcs", 0),
        body,
        rec["rd"],
        rec["submit"],
        tlvs,
    )


def _mo_account(op: OperatorSmsc, rec: dict[str, Any]) -> Account | None:
    name = rec.get("account")
    if name is not None:
        return op.accounts.get(name)
    return op.route_mo(rec["dst"])


def mo_pdu(part: tuple[Any, ...] | list[Any]) -> DeliverSm:
    """An MO part's deliver_sm from its record (``journal.mo_part``)."""
    src_ton, src_npi, src, dst_ton, dst_npi, dst, esm, dcs, body, tlvs = part
    return DeliverSm(
        tlvs=dict(tlvs),
        source_addr_ton=src_ton,
        source_addr_npi=src_npi,
        source_addr=src,
        dest_addr_ton=dst_ton,
        dest_addr_npi=dst_npi,
        destination_addr=dst,
        esm_class=esm,
        data_coding=dcs,
        short_message=body,
    )


def read_plan(path: Path) -> RecoveryPlan:
    """What the journal in ``path`` says was never delivered (empty when no journal).

    One pass; memory follows what is still open (a receipt is forgotten once delivered).
    """
    plan = RecoveryPlan()
    if not journal_files(path):
        return plan
    started = time.monotonic()
    #: Accepted, receipt wanted, not yet delivered: key -> (position, accept).
    open_: dict[Key, tuple[int, dict[str, Any]]] = {}
    #: Of those, the queued ones (format 2): key -> (position, receipt_queued).
    queued: dict[Key, tuple[int, dict[str, Any]]] = {}
    #: MO not wholly delivered: (op, mo) -> (position, mo_injected, parts left).
    mo_open: dict[tuple[str, str], tuple[int, dict[str, Any], set[int]]] = {}
    #: The journal's simulated clock: the latest submit time it holds.
    sim_now = float("-inf")
    reader = JournalReader(path)
    n = 0
    for n, rec in enumerate(reader, 1):
        kind = rec["e"]
        if kind == ACCEPT:
            if rec["submit"] > sim_now:
                sim_now = rec["submit"]
            if rec["rd"] & 0x03:
                open_[(rec["op"], rec["id"], rec["dst"])] = (n, rec)
        elif kind == REPLANNED:
            key = (rec["op"], rec["id"], rec["dst"])
            item = open_.get(key)
            if item is not None:
                acc = {**item[1], **{k: rec[k] for k in ("rd", "sm", "pstate", "perr", "pdone")}}
                if acc["rd"] & 0x03:
                    open_[key] = (item[0], acc)
                else:  # replace_sm asked for no receipt any more
                    del open_[key]
        elif kind == RECEIPT_QUEUED:
            key = (rec["op"], rec["id"], rec["dst"])
            if key in open_:
                queued[key] = (n, rec)
        elif kind in (RECEIPT_DELIVERED, FINISHED):
            key = (rec["op"], rec["id"], rec["dst"])
            open_.pop(key, None)
            queued.pop(key, None)
        elif kind == MO_INJECTED:
            mo_open[(rec["op"], rec["mo"])] = (n, rec, set(range(rec["parts"])))
        elif kind == MO_DELIVERED:
            item_mo = mo_open.get((rec["op"], rec["mo"]))
            if item_mo is not None:
                item_mo[2].discard(rec["part"])
                if not item_mo[2]:
                    del mo_open[(rec["op"], rec["mo"])]
    plan.records = n
    plan.torn = reader.torn
    found: list[tuple[int, str, str, dict[str, Any], Any]] = []
    for key, (pos, acc) in open_.items():
        q = queued.get(key)
        if q is not None:
            found.append((q[0], key[0], "receipt", acc, q[1]))
        elif "pstate" not in acc or acc["pdone"] > sim_now:  # its outcome had not come
            found.append((pos, key[0], "replan", acc, None))
        else:
            if not plan_wants_receipt(acc):
                continue  # failure-only, and it was delivered: no receipt
            state = int(acc["pstate"])
            final = {
                "stat": RECEIPT_STAT_TEXT.get(state, "UNKNOWN"),
                "state": state,
                "err": acc["perr"],
                "done": acc["pdone"],
            }
            found.append((pos, key[0], "receipt", acc, final))
    for (op, _), (pos, rec, left) in mo_open.items():
        if left and "pdus" in rec:
            found.append((pos, op, "mo", rec, sorted(left)))
        elif left:
            plan.unrecoverable_mo += 1
    found.sort(key=lambda item: item[0])
    for _, op, kind, rec, extra in found:
        plan.items.setdefault(op, []).append((kind, rec, extra))
    log.info(
        "recovery_read path=%s records=%d torn=%d receipts=%d replan=%d mo=%d "
        "unrecoverable_mo=%d seconds=%.2f",
        path,
        plan.records,
        plan.torn,
        sum(1 for f in found if f[2] == "receipt"),
        sum(1 for f in found if f[2] == "replan"),
        sum(1 for f in found if f[2] == "mo"),
        plan.unrecoverable_mo,
        time.monotonic() - started,
    )
    return plan


# --- the graceful stop -----------------------------------------------------------------------


def undelivered(op: OperatorSmsc) -> int:
    """Deliveries queued for an account with a receiver bound, or in flight: what a
    graceful stop can still hand over (held receipts and accounts nobody receives for
    wait for the journal and the next run)."""
    queued = sum(len(a.outbox) for a in op.accounts.values() if a.receivers)
    in_flight = sum(
        1
        for c in op.connections
        if not c.session.closed
        for p in c.session.outstanding
        if p.command_id in _DELIVERIES
    )
    return queued + in_flight


async def drain(ops: list[OperatorSmsc], timeout: float) -> int:
    """Wait (at most ``timeout`` s) until the bound receivers have taken and answered
    every queued receipt and MO; returns how many were left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    left = sum(undelivered(op) for op in ops)
    if left:
        log.info("draining deliveries=%d timeout=%gs", left, timeout)
    while left and loop.time() < deadline:
        for op in ops:
            for acct in op.accounts.values():
                acct.pump()
        await asyncio.sleep(0.02)
        left = sum(undelivered(op) for op in ops)
    if left:
        log.warning("drain_incomplete deliveries=%d after=%gs", left, timeout)
    return left
