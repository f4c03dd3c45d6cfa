"""``smsim audit DIR``: reconcile a message journal (``journal.py``) and say what was lost.

Why: after a load test, or an SMSC killed mid-run, "every accepted message asking for a
receipt got one delivered, every injected MO reached the platform" is checked from the
durable record, not from counters that died with the process. Exit 1 when anything is
lost, so CI can gate on it.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

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
    read_journal,
)
from .receipts import RECEIPT_STAT_TEXT

#: (operator, message_id, destination): one destination of one accepted message.
Key = tuple[str, str, str]


@dataclass
class Audit:
    """What the journal says: totals, and the keys of what never arrived."""

    accepted: int = 0
    receipts_expected: int = 0
    receipts_queued: int = 0
    receipts_delivered: int = 0
    mo_injected: int = 0
    mo_delivered: int = 0
    torn_lines: int = 0
    lost_receipts: list[Key] = field(default_factory=list)
    lost_mo: list[tuple[str, str]] = field(default_factory=list)
    by_account: dict[str, Counter[str]] = field(default_factory=dict)
    stats_queued: Counter[str] = field(default_factory=Counter)
    stats_delivered: Counter[str] = field(default_factory=Counter)

    @property
    def lost(self) -> int:
        return len(self.lost_receipts) + len(self.lost_mo)


def audit(records: Iterable[dict[str, Any]], torn: int = 0) -> Audit:
    """Reconcile records (in journal order), in one pass.

    A receipt is expected when registered_delivery asks for one on every outcome (bits
    1-0 = 1), or on failure (2) when the accept's plan is a failure (format 3) or a
    receipt was queued (format 2); it is lost when expected and never delivered. A
    ``replanned`` record replaces the accept's ask and plan; ``finished`` (cancel_sm)
    closes it. Queued: in format 3 (no such records) a receipt delivered, or one whose
    planned time the journal's clock (its latest submit time) has passed.
    An MO is lost when a part of it was never delivered.

    Memory follows what is still open, not the journal's length: a message is forgotten
    once its receipt is delivered (or at once when it asked for none), an MO once every
    part is. An hour at 5,000 submit_sm/s is 54 M records; holding them all (as the
    first version did) took tens of GB.
    """
    result = Audit(torn_lines=torn)
    by_account = result.by_account
    #: Expected receipts not yet delivered: key -> (account, the planned stat, its
    #: simulated time); no stat in format 2 (its receipt_queued records count).
    pending: dict[Key, tuple[str, str, float]] = {}
    #: Failure-only (bits 1-0 = 2) messages of format 2: expected once a receipt is
    #: queued.
    on_failure: dict[Key, str] = {}
    mo_parts: dict[tuple[str, str], int] = {}
    mo_done: dict[tuple[str, str], set[int]] = {}
    sim_now = float("-inf")

    def expect(key: Key, account: str, rec: dict[str, Any]) -> None:
        """The receipt an accept's (or a replan's) ask and plan make due, if any."""
        ask = rec["rd"] & 0x03
        if "pstate" not in rec:  # format 2
            if ask == 1:
                result.receipts_expected += 1
                pending[key] = (account, "", 0.0)
            elif ask == 2:
                on_failure[key] = account
            return
        if plan_wants_receipt(rec):
            result.receipts_expected += 1
            stat = RECEIPT_STAT_TEXT.get(rec["pstate"], "UNKNOWN")
            pending[key] = (account, stat, rec["pdone"])

    for rec in records:
        kind = rec["e"]
        op = rec["op"]
        if kind == ACCEPT:
            key = (op, rec["id"], rec["dst"])
            account = rec["account"]
            result.accepted += 1
            if rec["submit"] > sim_now:
                sim_now = rec["submit"]
            counts = by_account.get(account)
            if counts is None:
                counts = by_account[account] = Counter()
            counts["accepted"] += 1
            if rec["rd"] & 0x03:
                expect(key, account, rec)
        elif kind == REPLANNED:
            key = (op, rec["id"], rec["dst"])
            on_failure.pop(key, None)
            if pending.pop(key, None) is not None:
                result.receipts_expected -= 1
            expect(key, rec["account"], rec)
        elif kind == RECEIPT_QUEUED:  # format 2
            key = (op, rec["id"], rec["dst"])
            result.receipts_queued += 1
            result.stats_queued[rec["stat"]] += 1
            account = on_failure.pop(key, None)
            if account is not None:
                result.receipts_expected += 1
                pending[key] = (account, "", 0.0)
        elif kind == RECEIPT_DELIVERED:
            key = (op, rec["id"], rec["dst"])
            item = pending.pop(key, None)
            account = item[0] if item is not None else on_failure.pop(key, None)
            if item is not None and item[1]:  # planned (format 3): queued, and delivered
                result.receipts_queued += 1
                result.stats_queued[rec["stat"]] += 1
            if account is not None:
                by_account[account]["receipted"] += 1
            # A delivery of an unknown key (its accept in no file here) still counts;
            # the journal records one delivery per receipt, whatever the redeliveries.
            result.receipts_delivered += 1
            result.stats_delivered[rec["stat"]] += 1
        elif kind == FINISHED:
            key = (op, rec["id"], rec["dst"])
            on_failure.pop(key, None)
            if pending.pop(key, None) is not None:
                result.receipts_expected -= 1  # cancelled: no receipt is due
        elif kind == MO_INJECTED:
            mo_parts[(op, rec["mo"])] = rec["parts"]
            result.mo_injected += 1
        elif kind == MO_DELIVERED:
            mo = (op, rec["mo"])
            done = mo_done.setdefault(mo, set())
            done.add(rec["part"])
            parts = mo_parts.get(mo)
            if parts is not None and len(done) >= parts:
                result.mo_delivered += 1
                del mo_parts[mo], mo_done[mo]
    for key, (account, stat, due) in pending.items():
        if stat and due <= sim_now:  # planned, and due by the journal's clock
            result.receipts_queued += 1
            result.stats_queued[stat] += 1
        result.lost_receipts.append(key)
        by_account[account]["lost"] += 1
    for mo in mo_parts:
        result.lost_mo.append(mo)
    return result


def history(
    records: list[dict[str, Any]], message_id: str | None, number: str | None
) -> list[dict[str, Any]]:
    """Records about one message id (or MO id), or to/from one number, in order."""
    mos: set[str] = set()
    out = []
    for rec in records:
        if message_id is not None and message_id in (rec.get("id"), rec.get("mo")):
            out.append(rec)
        elif number is not None and number in (rec.get("src"), rec.get("dst")):
            out.append(rec)
            if rec["e"] == MO_INJECTED:
                mos.add(rec["mo"])
        elif rec.get("mo") in mos:
            out.append(rec)
    if number is not None:
        # Receipts and deliveries name the destination only: add those of its messages.
        ids = {(r["op"], r["id"]) for r in out if r["e"] == ACCEPT}
        chosen = {id(r) for r in out}
        out = [
            r
            for r in records
            if id(r) in chosen or (r["e"].startswith("receipt") and (r["op"], r["id"]) in ids)
        ]
    return out


def _summary(result: Audit, console: Console) -> None:
    table = Table(title="journal")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in (
        ("accepted", result.accepted),
        ("receipts expected", result.receipts_expected),
        ("receipts queued", result.receipts_queued),
        ("receipts delivered", result.receipts_delivered),
        ("receipts lost", len(result.lost_receipts)),
        ("MO injected", result.mo_injected),
        ("MO delivered", result.mo_delivered),
        ("MO lost", len(result.lost_mo)),
        ("torn lines", result.torn_lines),
    ):
        table.add_row(name, str(value), style="red" if "lost" in name and value else None)
    console.print(table)
    if result.by_account:
        acct = Table(title="by account")
        for col in ("account", "accepted", "receipted", "lost"):
            acct.add_column(col, justify="right" if col != "account" else "left")
        for name, c in sorted(result.by_account.items()):
            acct.add_row(name, str(c["accepted"]), str(c["receipted"]), str(c["lost"]))
        console.print(acct)
    if result.stats_queued:
        stats = Table(title="receipts by stat")
        for col in ("stat", "queued", "delivered"):
            stats.add_column(col, justify="right" if col != "stat" else "left")
        for stat in sorted(result.stats_queued):
            stats.add_row(stat, str(result.stats_queued[stat]), str(result.stats_delivered[stat]))
        console.print(stats)
    for op, mid, dst in result.lost_receipts[:20]:
        console.print(f"[red]lost receipt[/] operator={op} id={mid} destination={dst}")
    for op, mo in result.lost_mo[:20]:
        console.print(f"[red]lost MO[/] operator={op} mo={mo}")
    more = result.lost - min(20, len(result.lost_receipts)) - min(20, len(result.lost_mo))
    if more > 0:
        console.print(f"... and {more} more lost")


def cmd_audit(args: argparse.Namespace) -> int:
    console = Console()
    path = Path(args.dir)
    if not journal_files(path):
        Console(stderr=True).print(f"smsim audit: no journal files in {path}")
        return 2
    if args.id is not None or args.number is not None:
        records, _torn = read_journal(path)
        rows = history(records, args.id, args.number)
        table = Table(title=f"history of {args.id or args.number}")
        for col in ("t", "event", "operator", "details"):
            table.add_column(col)
        for rec in rows:
            details = " ".join(f"{k}={v}" for k, v in rec.items() if k not in ("e", "op", "t"))
            table.add_row(f"{rec['t']:.3f}", rec["e"], rec["op"], details)
        console.print(table)
        if not rows:
            console.print("nothing in the journal")
            return 1
        return 0
    reader = JournalReader(path)
    result = audit(reader)
    result.torn_lines = reader.torn
    _summary(result, console)
    if result.lost:
        console.print(f"[red]LOST: {result.lost}[/]")
        return 1
    console.print("[green]reconciled: nothing lost[/]")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="reconcile a message journal (exit 1 when anything is lost)")
    p.add_argument("dir", help="the journal directory (smsim smsc --journal DIR)")
    p.add_argument("--id", help="one message's (or MO's) full history")
    p.add_argument("--number", help="one MSISDN's full history")
    p.set_defaults(func=cmd_audit)
