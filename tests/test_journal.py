"""The message journal and ``smsim audit``: the writer (batches, rotation, what a crash
loses, the binary frames and the JSON lines of earlier versions), the reconciliation, and
a real ``kill -9`` of an ``smsim smsc --journal``."""

from __future__ import annotations

import asyncio
import json
import marshal
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.config import JournalConfig
from simulator.esme.client import EsmeClient
from simulator.smpp.constants import Status
from simulator.smpp.pdu import DeliverSm, SubmitSm
from simulator.smsc.audit import audit, history
from simulator.smsc.journal import Journal
from simulator.smsc.journal_files import (
    FIELDS,
    FRAME,
    MAGIC,
    MAGIC_J2,
    count_records,
    frame,
    frame_head,
    journal_files,
    read_journal,
    write_records,
)
from simulator.smsc.recovery import read_plan
from simulator.smsc.store import Message
from tests.support.journal import each_record_buffer  # noqa: F401 (the fixture)
from tests.support.ports import free_port

#: Every test here runs with each record buffer: the Python one and the C one.
pytestmark = pytest.mark.usefixtures("each_record_buffer")

ROOT = Path(__file__).resolve().parent.parent


def _msg(mid: str, dst: str = "201001234567", rd: int = 1) -> Message:
    return Message(mid, "rapidpro", "1442", 3, 0, dst, 1, 1, 0, 0, b"hi", rd, 1000.0)


def test_batches_are_written_by_flush_and_read_back_in_order(tmp_path: Path) -> None:
    j = Journal(JournalConfig(enabled=True, path=tmp_path), thread=False)
    j.start()
    hooks = j.operator("egypt")
    for i in range(5):
        msg = _msg(str(i))
        msg.planned_state, msg.planned_err, msg.planned_time = 5, 1, 1002.5  # UNDELIV
        hooks.accepted(msg)
    assert j.pending() == 5
    assert list(read_journal(tmp_path)[0]) == []  # nothing written until the batch
    assert j.flush() == 5
    assert j.batches_sent == 1
    records, torn = read_journal(tmp_path)
    assert torn == 0
    assert [r["id"] for r in records] == ["0", "1", "2", "3", "4"]
    assert records[0] == {
        "e": "accept",
        "op": "egypt",
        "id": "0",
        "account": "rapidpro",
        "src": "1442",
        "dst": "201001234567",
        "rd": 1,
        "submit": 1000.0,
        "t": records[0]["t"],
        **{"src_ton": 3, "src_npi": 0, "dst_ton": 1, "dst_npi": 1, "esm": 0, "dcs": 0},
        "sm": b"hi",
        **{"pstate": 5, "perr": 1, "pdone": 1002.5},  # the plan: its receipt needs no record
    }
    j.stop()


def test_rotation_by_size_keeps_every_record_in_order(tmp_path: Path) -> None:
    j = Journal(JournalConfig(enabled=True, path=tmp_path, rotate_bytes=4096), thread=False)
    j.start()
    hooks = j.operator("egypt")
    for i in range(300):
        hooks.accepted(_msg(str(i)))
        if i % 20 == 19:
            j.flush()
    j.stop()
    files = journal_files(tmp_path)
    assert len(files) >= 4
    assert all(f.stat().st_size < 4096 + 20 * 200 for f in files)
    records, _ = read_journal(tmp_path)
    assert [r["id"] for r in records] == [str(i) for i in range(300)]


def test_a_crash_between_batches_loses_only_the_unwritten_batch(tmp_path: Path) -> None:
    j = Journal(JournalConfig(enabled=True, path=tmp_path), thread=False)
    j.start()
    hooks = j.operator("egypt")
    hooks.accepted(_msg("written"))
    j.flush()
    hooks.accepted(_msg("buffered"))  # the process dies here: never flushed
    # A frame torn mid-write by the crash is skipped, counted, and the rest still read.
    whole = frame([("accept", "eg", "torn", "a", "1", "2", 1, 1.0, 1.0)])
    with open(journal_files(tmp_path)[-1], "ab") as f:
        f.write(whole[:-3])
    records, torn = read_journal(tmp_path)
    assert [r["id"] for r in records] == ["written"]
    assert torn == 1
    # A frame whose bytes changed fails its checksum: not unmarshalled, counted.
    bad = bytearray(whole)
    bad[FRAME.size + 5] ^= 0xFF
    (tmp_path / "journal-29990101T000000.000000-1-000001.smj").write_bytes(MAGIC + bytes(bad))
    records, torn = read_journal(tmp_path)
    assert [r["id"] for r in records] == ["written"]
    assert torn == 2


def test_the_thread_writes_within_a_flush_interval(tmp_path: Path) -> None:
    j = Journal(JournalConfig(enabled=True, path=tmp_path, flush_interval=0.02))
    j.start()
    j.operator("egypt").accepted(_msg("1"))
    deadline = time.monotonic() + 2
    while not read_journal(tmp_path)[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r["id"] for r in read_journal(tmp_path)[0]] == ["1"]
    j.stop()


def test_deliveries_match_the_pdu_once(tmp_path: Path) -> None:
    j = Journal(JournalConfig(enabled=True, path=tmp_path), thread=False)
    j.start()
    hooks = j.operator("egypt")
    msg = _msg("7")
    msg.state = 2  # DELIVERED
    receipt = DeliverSm(esm_class=4)
    hooks.receipt_queued(msg, receipt)
    parts = [DeliverSm(), DeliverSm()]
    hooks.mo_injected("201001234567", "1442", parts)
    hooks.delivered(receipt)
    hooks.delivered(receipt)  # a duplicate response: still one delivery
    hooks.delivered(parts[1])
    hooks.delivered(DeliverSm())  # not journalled: ignored
    j.stop()
    records = read_journal(tmp_path)[0]
    kinds = [(r["e"], r.get("id", r.get("mo"))) for r in records]
    mo = kinds[0][1]
    assert kinds == [  # a queued receipt has no record: its accept's plan says it all
        ("mo_injected", mo),
        ("receipt_delivered", "7"),
        ("mo_delivered", mo),
    ]
    assert records[1]["stat"] == "DELIVRD" and records[1]["dst"] == "201001234567"
    assert hooks.inflight() == 1  # the MO's first part, never answered


def _rec(e: str, **kw: object) -> dict[str, object]:
    return {"e": e, "op": "egypt", "t": 1.0, **kw}


def _acc(mid: str, rd: int, dst: str = "201001234567", acct: str = "rapidpro") -> dict[str, object]:
    return _rec("accept", id=mid, account=acct, src="1442", dst=dst, rd=rd, submit=1.0)


RECORDS = [
    _acc("1", 1),
    _acc("2", 1, dst="201119999999"),
    _acc("3", 0),
    _acc("4", 2),  # failure-only receipts: delivered, so none expected
    _acc("5", 2, acct="other"),  # failed: queued, never delivered
    _rec("receipt_queued", id="1", dst="201001234567", stat="DELIVRD"),
    _rec("receipt_delivered", id="1", dst="201001234567", stat="DELIVRD"),
    _rec("receipt_queued", id="5", dst="201001234567", stat="UNDELIV"),
    _rec("mo_injected", mo="m1", src="201001234567", dst="1442", parts=2),
    _rec("mo_delivered", mo="m1", part=0),
    _rec("mo_delivered", mo="m1", part=1),
    _rec("mo_injected", mo="m2", src="201119999999", dst="1442", parts=2),
    _rec("mo_delivered", mo="m2", part=1),
]


def test_audit_finds_each_lost_receipt_and_mo() -> None:
    result = audit(list(RECORDS))
    assert result.accepted == 5
    assert result.receipts_expected == 3
    assert result.receipts_delivered == 1
    assert sorted(result.lost_receipts) == [
        ("egypt", "2", "201119999999"),
        ("egypt", "5", "201001234567"),
    ]
    assert result.lost_mo == [("egypt", "m2")]
    assert result.mo_injected == 2 and result.mo_delivered == 1
    assert result.by_account["rapidpro"] == {"accepted": 4, "receipted": 1, "lost": 1}
    assert result.by_account["other"] == {"accepted": 1, "lost": 1}
    assert result.stats_queued == {"DELIVRD": 1, "UNDELIV": 1}
    assert result.stats_delivered == {"DELIVRD": 1}
    assert audit(RECORDS[:1] + RECORDS[5:7]).lost == 0


def _planned(mid: str, rd: int, state: int, done: float, submit: float = 1.0) -> dict[str, object]:
    """A format-3 accept: the outcome planned for it (state, err, simulated time)."""
    rec = _acc(mid, rd)
    return {**rec, "submit": submit, "pstate": state, "perr": 0, "pdone": done}


DELIVERED, UNDELIVERABLE = 2, 5
PLANNED = [
    _planned("1", 1, DELIVERED, 5.0),
    _planned("2", 1, UNDELIVERABLE, 6.0),  # due by the journal's clock, never delivered
    _planned("3", 2, DELIVERED, 5.0),  # failure-only, planned delivered: none expected
    _planned("4", 2, UNDELIVERABLE, 50.0),  # failure-only, fails later: expected, not due
    _planned("5", 1, DELIVERED, 5.0),
    _rec("finished", id="5", dst="201001234567", stat="DELETED"),  # cancel_sm
    _planned("6", 0, DELIVERED, 5.0),
    # replace_sm asks for a receipt now; and one that no longer asks for any.
    _rec("replanned", id="6", account="rapidpro", dst="201001234567", rd=1, sm=b"new")
    | {"pstate": DELIVERED, "perr": 0, "pdone": 7.0},
    _planned("7", 1, DELIVERED, 8.0, submit=10.0),
    _rec("replanned", id="7", account="rapidpro", dst="201001234567", rd=0, sm=b"")
    | {"pstate": DELIVERED, "perr": 0, "pdone": 8.0},
    _rec("receipt_delivered", id="1", dst="201001234567", stat="DELIVRD"),
    _rec("receipt_delivered", id="6", dst="201001234567", stat="DELIVRD"),
]


def test_audit_reads_the_plan_in_each_accept() -> None:
    """Format 3 has no receipt_queued records: what is expected and what was queued
    follow from each accept's plan, its replans and cancels."""
    result = audit(list(PLANNED))
    assert result.accepted == 7
    assert result.receipts_expected == 4  # 1, 2, 4, 6
    assert result.receipts_delivered == 2
    assert sorted(k[1] for k in result.lost_receipts) == ["2", "4"]
    # Queued: the two delivered, and 2 (due at 6.0; the journal's clock reached 10.0).
    assert result.receipts_queued == 3
    assert result.stats_queued == {"DELIVRD": 2, "UNDELIV": 1}
    assert result.by_account["rapidpro"] == {"accepted": 7, "receipted": 2, "lost": 2}


def test_recovery_rebuilds_due_receipts_from_the_plan(tmp_path: Path) -> None:
    """What a restart queues from a format-3 journal: a receipt due by the journal's
    clock is rebuilt from its plan (state, err, done time); one not yet due is planned
    again; a failure-only message planned delivered, a delivered or cancelled one,
    nothing."""
    base = {"src_ton": 0, "src_npi": 0, "dst_ton": 1, "dst_npi": 1, "esm": 0, "dcs": 0}
    base["sm"] = b"x"
    records = [tuple({**base, **r}[k] for k in FIELDS[str(r["e"])]) for r in PLANNED]
    write_records(tmp_path, records)
    plan = read_plan(tmp_path)
    items = [(kind, rec["id"], extra) for kind, rec, extra in plan.items["egypt"]]
    assert items == [
        ("receipt", "2", {"stat": "UNDELIV", "state": UNDELIVERABLE, "err": 0, "done": 6.0}),
        ("replan", "4", None),
    ]


def test_files_of_format_2_are_read_with_its_fields(tmp_path: Path) -> None:
    """A journal written before the accept carried its plan: 16 values an accept, a
    receipt_queued record for each receipt; audit and recovery read it as then."""
    acc = ("accept", "eg", "1", "rapidpro", "1442", "2010", 1, 1.0, 1.0, 0, 0, 1, 1, 0, 0, b"x")
    queued = ("receipt_queued", "eg", "1", "2010", "UNDELIV", 2.0, 5, 11, 3.0)
    (tmp_path / "journal-20260101T000000.000000-1-000001.smj").write_bytes(
        MAGIC_J2 + frame([*acc, *queued, *acc[:2], "2", *acc[3:]])
    )
    records, torn = read_journal(tmp_path)
    assert torn == 0
    assert [(r["e"], r["id"]) for r in records] == [
        ("accept", "1"),
        ("receipt_queued", "1"),
        ("accept", "2"),
    ]
    assert "pstate" not in records[0] and records[0]["sm"] == b"x"
    result = audit(records)
    assert result.receipts_queued == 1 and sorted(k[1] for k in result.lost_receipts) == ["1", "2"]
    items = [(kind, rec["id"]) for kind, rec, _ in read_plan(tmp_path).items["eg"]]
    assert items == [("receipt", "1"), ("replan", "2")]


def test_history_by_id_and_by_number() -> None:
    assert [r["e"] for r in history(RECORDS, "1", None)] == [
        "accept",
        "receipt_queued",
        "receipt_delivered",
    ]
    by_number = history(RECORDS, None, "201119999999")
    assert [(r["e"], r.get("id", r.get("mo"))) for r in by_number] == [
        ("accept", "2"),
        ("mo_injected", "m2"),
        ("mo_delivered", "m2"),
    ]


def _write(path: Path, records: list[dict[str, object]]) -> None:
    path.mkdir(exist_ok=True)
    (path / "journal-20260101T000000-1-000001.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records)
    )


def test_audit_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "lossy", RECORDS)
    _write(tmp_path / "clean", RECORDS[:1] + RECORDS[5:7])
    assert main(["audit", str(tmp_path / "lossy")]) == 1
    out = capsys.readouterr().out
    assert "lost receipt" in out and "id=2" in out and "mo=m2" in out
    assert main(["audit", str(tmp_path / "clean")]) == 0
    assert main(["audit", str(tmp_path / "lossy"), "--id", "5"]) == 0
    assert "UNDELIV" in capsys.readouterr().out
    assert main(["audit", str(tmp_path / "nothing")]) == 2


# --- kill -9 of a real smsim smsc --journal --------------------------------------------------

FLUSH = 0.05


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"SMSC not listening on {port}")


async def _submit(port: int, n_receipted: int, n_pending: int) -> tuple[list[str], list[str]]:
    """Submit ``n_receipted`` messages and take their receipts, then ``n_pending`` more
    whose receipts the client answers ESME_RX_T_APPN (temporary: the SMSC keeps
    retrying) until the kill; returns both lists of ids."""
    receipts: list[str] = []
    got = asyncio.Event()
    refusing = False

    def on_deliver(pdu: DeliverSm) -> int:
        if refusing:
            return Status.ESME_RX_T_APPN
        receipts.append(pdu.short_message.split()[0].decode())
        if len(receipts) >= n_receipted:
            got.set()
        return 0

    client = await EsmeClient.connect("127.0.0.1", port, on_deliver=on_deliver)

    async def one(i: int) -> str:
        resp = await client.request(
            SubmitSm(
                source_addr="1442",
                destination_addr=f"2010{i:08d}",
                short_message=b"x",
                registered_delivery=1,
            )
        )
        assert resp.command_status == 0
        return str(resp.message_id)

    first = await asyncio.gather(*(one(i) for i in range(n_receipted)))
    await asyncio.wait_for(got.wait(), 10)
    await asyncio.sleep(0.3)  # our answers to the last receipts reach the SMSC
    refusing = True
    second = await asyncio.gather(*(one(10_000 + i) for i in range(n_pending)))
    client.close()
    return list(first), list(second)


def _start_smsc(tmp_path: Path, flush: float = FLUSH) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    journal = tmp_path / "journal"
    conf = tmp_path / "smsc.toml"
    conf.write_text(
        "[[operators]]\n"
        f"port = {port}\n"
        "[operators.receipt]\ndelay = 0.0\n"
        "[population]\nenabled = false\n"
        f"[journal]\nflush_interval = {flush}\n"
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "simulator.cli", "smsc", "--config", str(conf)),
            *("--control-port", "0", "--journal", str(journal)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    return proc, port, journal


def test_sigterm_to_the_group_journals_everything(tmp_path: Path) -> None:
    """SIGTERM: the SMSC stops and writes its last records before it exits. The flush
    interval is longer than the test: every record is still in the buffer at the signal."""
    proc, port, journal = _start_smsc(tmp_path, flush=10.0)
    try:
        _wait_port(port, proc)
        receipted, _ = asyncio.run(_submit(port, 30, 0))
        os.killpg(proc.pid, signal.SIGTERM)  # the SMSC and its writer both get it
        proc.wait(15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    # No wait: the SMSC's stop wrote the rest before the process ended.
    records = read_journal(journal)[0]
    assert {r["id"] for r in records if r["e"] == "accept"} == set(receipted)
    result = audit(records)
    assert result.accepted == 30 and result.receipts_delivered == 30 and result.lost == 0
    assert main(["audit", str(journal)]) == 0
    assert main(["audit", str(journal), "--number", "201000000007"]) == 0


def test_kill_9_mid_run_then_audit_reconciles(tmp_path: Path) -> None:
    proc, port, journal = _start_smsc(tmp_path)
    try:
        _wait_port(port, proc)
        receipted, pending = asyncio.run(_submit(port, 40, 5))
        # The guarantee: a record reaches the file within a flush interval (and fsync).
        time.sleep(FLUSH * 4)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert proc.returncode == -signal.SIGKILL
    records, _torn = read_journal(journal)
    accepted = {r["id"] for r in records if r["e"] == "accept"}
    assert accepted == set(receipted) | set(pending)
    result = audit(records)
    assert result.accepted == 45
    assert result.receipts_delivered == 40
    assert sorted(k[1] for k in result.lost_receipts) == sorted(pending)
    out = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "audit", str(journal)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "LOST: 5" in out.stdout
    assert all(mid in out.stdout for mid in pending)


def test_every_kind_round_trips_with_awkward_text(tmp_path: Path) -> None:
    odd = 'a"b\\c\n\u0645'
    part = (0, 1, odd, 3, 0, "1442", 0x40, 8, b"\x05\x00\x03\x01\x02\x01x", {0x0424: b"y"})
    records = [
        ("accept", odd, "1", odd, odd, odd, 3, 1.5, 2.25, 1, 1, 1, 1, 0, 8, b"\x00\xff", 5, 1, 9.5),
        ("replanned", "eg", "1", odd, odd, 1, odd.encode(), 2, 0, 3.5, 3.0),
        ("finished", "eg", "1", odd, "DELETED", 4.0),
        ("receipt_delivered", "eg", "9", odd, "UNDELIV", 1.0),
        ("mo_injected", "eg", "m", odd, "1442", 1, 1.0, "rapidpro", (part,)),
        ("mo_delivered", "eg", "m", 1, 1.0),
        ("receipt_recovered", "eg", "9", odd, 2.0),
        ("mo_recovered", "eg", "m", (0,), 2.0),
    ]
    write_records(tmp_path, records)
    back, torn = read_journal(tmp_path)
    assert torn == 0
    assert [tuple(r.values()) for r in back] == records
    assert back[0]["op"] == odd and back[0]["sm"] == b"\x00\xff"
    assert back[4]["pdus"][0][-1] == {0x0424: b"y"}


def test_journals_of_both_formats_are_read_in_order(tmp_path: Path) -> None:
    """A directory an earlier version wrote JSON lines to, then this one frames."""
    _write(tmp_path, RECORDS[:1])
    write_records(tmp_path, [("receipt_delivered", "egypt", "1", "201001234567", "DELIVRD", 2.0)])
    records, torn = read_journal(tmp_path)
    assert torn == 0
    assert [r["e"] for r in records] == ["accept", "receipt_delivered"]
    assert audit(records).lost == 0


def test_batches_are_flat_and_files_of_the_tuple_layout_still_read(tmp_path: Path) -> None:
    # Today's batch: the records' values one after the other (no tuple per record for
    # the garbage collector to track); a value out of step ends the batch, counted torn.
    flat = [*("finished", "eg", "1", "201001234567", "DELIVRD", 1.0)]
    flat += [*("receipt_recovered", "eg", "2", "201001234568", 2.0), "not-a-kind", 3]
    # The layout before it: one tuple per record, same magic.
    old = [("receipt_recovered", "eg", "3", "201001234569", 4.0)]
    (tmp_path / "journal-20260101T000000.000000-1-000001.smj").write_bytes(
        MAGIC + frame(flat) + frame(old)
    )
    records, torn = read_journal(tmp_path)
    assert [(r["e"], r["id"]) for r in records] == [
        ("finished", "1"),
        ("receipt_recovered", "2"),
        ("receipt_recovered", "3"),
    ]
    assert records[0]["stat"] == "DELIVRD" and records[2]["t"] == 4.0
    assert torn == 1


def test_records_added_while_a_batch_is_written_go_in_the_next_one_whole(
    tmp_path: Path,
) -> None:
    """A hook adds a record in one call, atomic under the GIL; a batch taken meanwhile
    (the thread) holds the records before it, the next batch that one, whole."""
    j = Journal(JournalConfig(enabled=True, path=tmp_path), thread=False)
    j.start()
    hooks = j.operator("egypt")
    hooks.accepted(_msg("1"))
    taken = j._records.take()
    assert taken is not None and taken[1] == 1
    hooks.accepted(_msg("2"))
    assert j.pending() == 1
    j._files.write_frame(frame_head(taken[0]), taken[0])  # type: ignore[union-attr]
    assert j.flush() == 1
    assert j.pending() == 0 and j.flush() == 0
    j.stop()
    assert [r["id"] for r in read_journal(tmp_path)[0]] == ["1", "2"]


def test_fsync_interval_syncs_at_most_once_an_interval(tmp_path: Path) -> None:
    from simulator.smsc.journal_files import JournalFiles, flatten

    batch = frame(flatten([("receipt_recovered", "eg", "1", "201001234567", 1.0)]))
    often = JournalFiles(tmp_path / "often", 1 << 20, "interval", fsync_interval=1e-9)
    rarely = JournalFiles(tmp_path / "rarely", 1 << 20, "interval", fsync_interval=60)
    for _ in range(3):
        often.write_frame(batch)
        rarely.write_frame(batch)
    assert often.syncs == 3  # every write found the interval passed
    assert rarely.syncs == 0  # none did: the data is with the kernel, not yet forced
    often.close()
    rarely.close()
    assert [r["id"] for r in read_journal(tmp_path / "rarely")[0]] == ["1", "1", "1"]
    with pytest.raises(ValueError, match="fsync"):
        JournalFiles(tmp_path / "bad", 1 << 20, "sometimes")


@pytest.mark.parametrize("taken", [0, 3, 8, 13, None])
def test_a_frame_written_as_head_and_payload_survives_a_short_writev(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: int | None
) -> None:
    """The thread writes a frame's head and payload in one ``writev``; when the kernel
    takes less (a full disk, a signal), the rest follows and the file is the same."""
    from simulator.smsc import journal_files as jf

    records = [("receipt_recovered", "eg", str(i), "201001234567", 1.0) for i in range(3)]
    payload = jf.marshalled(jf.flatten(records))
    head = jf.frame_head(payload)
    assert head + payload == frame(jf.flatten(records))
    real_writev = os.writev

    def short_writev(fd: int, buffers: list[bytes]) -> int:
        data = b"".join(buffers)
        return os.write(fd, data[:taken]) if taken is not None else real_writev(fd, buffers)

    files = jf.JournalFiles(tmp_path, 1 << 20, "never")
    monkeypatch.setattr(jf.os, "writev", short_writev)
    files.write_frame(head, payload)
    files.close()
    (path,) = journal_files(tmp_path)
    assert path.read_bytes() == MAGIC + head + payload
    assert files._size == len(MAGIC + head + payload)
    assert [r["id"] for r in read_journal(tmp_path)[0]] == ["0", "1", "2"]


async def test_replace_and_cancel_are_journalled_so_nothing_looks_lost(tmp_path: Path) -> None:
    """replace_sm plans again (new text, a receipt withdrawn) and cancel_sm ends a
    message with no receipt: the journal says so, so audit finds nothing lost and a
    restart finds nothing to recover."""
    from simulator.config import ReceiptConfig
    from simulator.smpp.pdu import CancelSm, ReplaceSm
    from simulator.smsc.server import SmscServer
    from tests.support.smsc import config, sm, until

    cfg = config(receipt=ReceiptConfig(delay=0.3)).model_copy(
        update={"journal": JournalConfig(enabled=True, path=tmp_path, flush_interval=0.05)}
    )
    async with SmscServer(cfg) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        ids = [(await client.request(sm(short_message=b"v1"))).message_id for _ in range(4)]  # type: ignore[attr-defined]
        new_text = ReplaceSm(message_id=ids[0], source_addr="1442", short_message=b"v2")
        new_text.registered_delivery = 1
        assert (await client.request(new_text)).command_status == 0
        quiet = ReplaceSm(message_id=ids[1], source_addr="1442", short_message=b"quiet")
        assert (await client.request(quiet)).command_status == 0  # registered_delivery 0
        assert (
            await client.request(CancelSm(message_id=ids[2], source_addr="1442"))
        ).command_status == 0
        await until(lambda: len(client.delivered) == 2)
        await asyncio.sleep(0.1)  # our answers reach the SMSC
        await client.unbind()
    records, torn = read_journal(tmp_path)
    assert torn == 0
    kinds = [(r["e"], r["id"]) for r in records if r["e"] != "accept"]
    assert sorted(kinds) == sorted(
        [
            ("replanned", ids[0]),
            ("replanned", ids[1]),
            ("finished", ids[2]),
            ("receipt_delivered", ids[0]),
            ("receipt_delivered", ids[3]),
        ]
    )
    replan = next(r for r in records if r["e"] == "replanned" and r["id"] == ids[0])
    assert replan["sm"] == b"v2" and replan["rd"] == 1 and replan["pstate"] == 2
    result = audit(records)
    assert result.accepted == 4 and result.receipts_expected == 2
    assert result.receipts_delivered == 2 and result.lost == 0
    assert len(read_plan(tmp_path)) == 0


def test_hooks_add_plain_values_so_no_record_needs_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Policies plan states as ``MessageState`` members; marshal refuses enum members,
    and the fallback (``plain`` over the value) costs more than the journal's whole
    budget. Every value a hook adds must be a type the buffer writes as it is."""
    from simulator.smpp.constants import MessageState
    from simulator.smsc import journal_files, journal_records

    def refuse(values: object) -> object:
        raise AssertionError(f"a value needed plain(): {values!r}")

    monkeypatch.setattr(journal_files, "plain", refuse)
    monkeypatch.setattr(journal_records, "plain", refuse)
    j = Journal(JournalConfig(enabled=True, path=tmp_path), thread=False)
    hooks = j.operator("egypt")
    msg = _msg("1")
    msg.planned_state, msg.state = MessageState.UNDELIVERABLE, MessageState.UNDELIVERABLE
    hooks.accepted(msg)
    hooks.replanned(msg)
    hooks.finished(msg)
    receipt = DeliverSm(esm_class=4)
    hooks.receipt_queued(msg, receipt)
    hooks.delivered(receipt)
    taken = j._records.take()
    assert taken is not None and taken[1] == 4
    assert count_records(marshal.loads(taken[0])) == 4
