"""The platform store: records live in memory and reach SQLite write-behind.

Pinned here: nothing is written before a flush and everything is after it, several
upserts of a record write it once, a failed flush loses nothing, the background flusher
keeps up with a writer on another thread, a reopened database brings back what is live,
``reset`` starts clean, final records leave memory, and the database is in WAL mode.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from simulator.platform.model import FlowRun, MsgDirection, MsgStatus
from simulator.platform.store import Cursor, PlatformStore, to_us

pytestmark = pytest.mark.timeout(30)

T0 = 1_700_000_000.123456


def rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read with a connection of our own, as someone inspecting a run would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "platform.sqlite3"


@pytest.fixture
def store(db: Path):  # type: ignore[no-untyped-def]
    s = PlatformStore(db, autoflush=False)
    yield s
    s.close()


def test_wal_mode_and_schema(store: PlatformStore, db: Path) -> None:
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    tables = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"contacts", "msgs", "broadcasts", "flow_runs", "flow_starts"} <= tables
    indexes = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"msgs_created", "msgs_contact", "flow_runs_flow", "contacts_modified"} <= indexes


def test_nothing_written_before_flush_everything_after(store: PlatformStore, db: Path) -> None:
    c = store.new_contact("tel:+201001234567", T0, name="Amal")
    m = store.new_msg(c, MsgDirection.IN, "١", T0 + 1)
    b = store.new_broadcast("مرحبا", [c.id], ["tel:+201001234567"], T0 + 2)
    r = store.new_run("flow-1", c, T0 + 3, start_uuid="start-1")
    s = store.new_flow_start("flow-1", [c.id], [], T0 + 4, restart_participants=False)

    assert rows(db, "SELECT count(*) FROM contacts") == [(0,)]
    assert rows(db, "SELECT count(*) FROM msgs") == [(0,)]
    assert store.dirty_count == 5

    assert store.flush() == 5
    assert store.dirty_count == 0
    assert store.flush() == 0
    assert rows(db, "SELECT id, uuid, urn, name, created_on FROM contacts") == [
        (c.id, c.uuid, "tel:+201001234567", "Amal", to_us(T0))
    ]
    assert rows(db, "SELECT id, contact_id, direction, text, status FROM msgs") == [
        (m.id, c.id, "in", "١", "handled")
    ]
    assert rows(db, "SELECT id, text, urns_json FROM broadcasts") == [
        (b.id, "مرحبا", '["tel:+201001234567"]')
    ]
    assert rows(db, "SELECT uuid, flow_uuid, start_uuid, exit_type FROM flow_runs") == [
        (r.uuid, "flow-1", "start-1", None)
    ]
    assert rows(db, "SELECT uuid, restart_participants, status FROM flow_starts") == [
        (s.uuid, 0, "pending")
    ]


def test_times_are_exact_microseconds(store: PlatformStore, db: Path) -> None:
    store.new_contact("tel:+201001234567", T0)
    store.flush()
    [(created,)] = rows(db, "SELECT created_on FROM contacts")
    assert created == 1_700_000_000_123_456


def test_repeated_upserts_write_the_latest_state_once(store: PlatformStore, db: Path) -> None:
    c = store.new_contact("tel:+201001234567", T0)
    m = store.new_msg(c, MsgDirection.OUT, "hello", T0)
    for status in (MsgStatus.WIRED, MsgStatus.SENT):
        m.status = status
        m.modified_on += 1
        store.upsert_msg(m)
    assert store.flush() == 2  # one contact, one message
    assert rows(db, "SELECT status, modified_on FROM msgs") == [("sent", to_us(T0 + 2))]

    m.status = MsgStatus.ERRORED
    m.attempts = 1
    store.upsert_msg(m)
    assert store.flush() == 1
    assert rows(db, "SELECT count(*), status, attempts FROM msgs") == [(1, "errored", 1)]


def test_contact_lookups_and_unique_urn(store: PlatformStore) -> None:
    c = store.new_contact("tel:+201001234567", T0)
    assert store.contact(c.id) is c
    assert store.contact_by_uuid(c.uuid) is c
    assert store.contact_by_urn("tel:+201001234567") is c
    with pytest.raises(ValueError):
        store.new_contact("tel:+201001234567", T0)
    again, created = store.get_or_create_contact("tel:+201001234567", T0)
    assert again is c and not created
    other, created = store.get_or_create_contact("tel:+201101234567", T0)
    assert created and other.id == c.id + 1 and other.uuid != c.uuid


def test_final_messages_and_exited_runs_leave_memory_once_written(store: PlatformStore) -> None:
    c = store.new_contact("tel:+201001234567", T0)
    mo = store.new_msg(c, MsgDirection.IN, "1", T0)  # handled: final
    mt = store.new_msg(c, MsgDirection.OUT, "q1", T0)
    mt.external_id = "smsc-1"
    mt.status = MsgStatus.WIRED
    store.upsert_msg(mt)
    run = store.new_run("flow-1", c, T0)
    run_id = store.run_id(run.uuid)

    store.flush()
    assert store.msg(mo.id) is None
    assert store.msg(mt.id) is mt
    assert store.msg_by_external_id("smsc-1") is mt
    assert store.run(run.uuid) is run

    mt.status = MsgStatus.DELIVERED
    store.upsert_msg(mt)
    run.exit_type = "completed"
    run.exited_on = T0 + 5
    store.upsert_run(run)
    assert store.active_run(c.id) is None
    store.flush()
    assert store.msg(mt.id) is None
    assert store.msg_by_external_id("smsc-1") is None
    assert store.run(run.uuid) is None
    assert store.live_msg_count == 0
    # still listed from SQLite
    assert [m.status for m in store.page_msgs().items] == [MsgStatus.DELIVERED, MsgStatus.HANDLED]
    [stored] = store.page_runs().items
    assert (stored.id, stored.run.exit_type) == (run_id, "completed")


def test_evict_final_off_keeps_everything(db: Path) -> None:
    with PlatformStore(db, autoflush=False, evict_final=False) as s:
        c = s.new_contact("tel:+201001234567", T0)
        m = s.new_msg(c, MsgDirection.IN, "1", T0)
        s.flush()
        assert s.msg(m.id) is m


def test_run_counts_and_active_run_follow_transitions(store: PlatformStore) -> None:
    a = store.new_contact("tel:+201001234567", T0)
    b = store.new_contact("tel:+201001234568", T0)
    ra = store.new_run("quiz", a, T0)
    rb = store.new_run("quiz", b, T0)
    assert store.active_run(a.id) is ra
    assert store.run_counts("quiz")["active"] == 2

    ra.waiting_node = "q1"
    store.upsert_run(ra)
    assert store.run_counts("quiz") == {
        "active": 1,
        "waiting": 1,
        "completed": 0,
        "interrupted": 0,
        "expired": 0,
        "failed": 0,
    }
    ra.waiting_node = None
    ra.exit_type = "completed"
    store.upsert_run(ra)
    rb.exit_type = "expired"
    store.upsert_run(rb)
    counts = store.run_counts("quiz")
    assert (counts["active"], counts["waiting"], counts["completed"], counts["expired"]) == (
        0,
        0,
        1,
        1,
    )
    assert store.run_counts("unknown")["active"] == 0

    # a newer run of the same contact is not cleared when an older one exits
    old = store.new_run("other", a, T0)
    new = store.new_run("quiz", a, T0 + 1)
    old.exit_type = "interrupted"
    store.upsert_run(old)
    assert store.active_run(a.id) is new


def test_reopen_brings_back_live_records_counters_and_counts(db: Path) -> None:
    with PlatformStore(db, autoflush=False) as s:
        c = s.new_contact("tel:+201001234567", T0, name="Amal")
        c.fields["governorate"] = "Asyut"
        c.groups.append("takaful")
        s.upsert_contact(c)
        queued = s.new_msg(c, MsgDirection.OUT, "q1", T0)
        queued.external_id = "x1"
        s.upsert_msg(queued)
        handled = s.new_msg(c, MsgDirection.IN, "1", T0 + 1)
        run = s.new_run("quiz", c, T0, start_uuid="st-1")
        run.path.append(("node-1", T0 + 0.5))
        run.values["q1"] = {"value": "1", "category": "correct", "time": T0 + 1}
        run.waiting_node = "node-1"
        s.upsert_run(run)
        done = s.new_run("quiz", s.new_contact("tel:+201001234568", T0), T0)
        done.exit_type = "completed"
        s.upsert_run(done)
        b = s.new_broadcast("hi", [c.id], [], T0)
        st = s.new_flow_start("quiz", [c.id], [], T0)
        run_id = s.run_id(run.uuid)
    # close() flushed everything

    with PlatformStore(db, autoflush=False) as s:
        c2 = s.contact_by_urn("tel:+201001234567")
        assert c2 is not None and c2.uuid == c.uuid and c2.name == "Amal"
        assert c2.fields == {"governorate": "Asyut"} and c2.groups == ["takaful"]
        assert s.msg_by_external_id("x1") is not None
        assert s.msg(handled.id) is None  # final: in SQLite only
        r2 = s.run(run.uuid)
        assert r2 is not None and s.run_id(run.uuid) == run_id
        assert r2.path == [("node-1", T0 + 0.5)]
        assert r2.values["q1"]["category"] == "correct"
        assert s.active_run(c2.id) is r2
        assert s.active_runs() == [r2]
        assert s.run(done.uuid) is None
        counts = s.run_counts("quiz")
        assert (counts["waiting"], counts["completed"]) == (1, 1)
        assert s.broadcast(b.id) is not None and s.flow_start(st.uuid) is not None
        # ids continue after the ones already used
        assert s.new_contact("tel:+201001234569", T0).id == c.id + 2
        assert s.new_msg(c2, MsgDirection.IN, "2", T0).id == handled.id + 1
        later = s.new_run("quiz", c2, T0)
        assert s.run_id(later.uuid) == run_id + 2  # type: ignore[operator]


def test_reset_starts_clean(db: Path) -> None:
    with PlatformStore(db, autoflush=False) as s:
        s.new_contact("tel:+201001234567", T0)
    with PlatformStore(db, reset=True, autoflush=False) as s:
        assert s.contact_count == 0
        assert s.new_contact("tel:+201001234567", T0).id == 1
    assert rows(db, "SELECT count(*) FROM contacts") == [(1,)]


def test_other_schema_version_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RuntimeError, match="reset=True"):
        PlatformStore(db, autoflush=False)


def test_failed_flush_keeps_the_batch(store: PlatformStore, db: Path) -> None:
    c = store.new_contact("tel:+201001234567", T0)
    m = store.new_msg(c, MsgDirection.IN, "not touched again", T0)
    real = store._db

    class Failing:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def executemany(self, *args: Any) -> Any:
            raise sqlite3.OperationalError("disk I/O error")

    store._db = Failing()  # type: ignore[assignment]
    with pytest.raises(sqlite3.OperationalError):
        store.flush()
    assert store.stats.errors == 1
    c.name = "changed meanwhile"
    store.upsert_contact(c)
    store._db = real
    assert store.flush() == 2
    assert rows(db, "SELECT name FROM contacts") == [("changed meanwhile",)]
    assert rows(db, "SELECT id FROM msgs") == [(m.id,)]


def test_a_record_sqlite_cant_hold_is_dropped_not_retried_forever(
    store: PlatformStore, db: Path
) -> None:
    good = store.new_contact("tel:+201001234567", T0)
    good.fields["since"] = datetime(2020, 3, 1)  # not JSON: saved as its str()
    store.upsert_contact(good)
    bad = store.new_contact("tel:+201001234568", T0)
    bad.name = {"not": "a string"}  # type: ignore[assignment]
    store.upsert_contact(bad)
    store.new_msg(good, MsgDirection.IN, "still saved", T0)
    store.flush()
    assert store.stats.dropped == 1 and store.stats.errors == 0
    assert store.dirty_count == 0
    assert rows(db, "SELECT id, fields_json FROM contacts") == [
        (good.id, '{"since":"2020-03-01 00:00:00"}')
    ]
    assert rows(db, "SELECT text FROM msgs") == [("still saved",)]


def test_background_flusher_keeps_up_with_a_writer_thread(db: Path) -> None:
    """A writer marks records on its own thread while the flusher writes: every record
    lands with its final state."""
    s = PlatformStore(db, flush_interval=0.01)
    try:
        created: list[int] = []

        def write(start: int, count: int) -> None:
            for i in range(start, start + count):
                c, _ = s.get_or_create_contact(f"tel:+2010{i % 500:08d}", T0)
                m = s.new_msg(c, MsgDirection.OUT, "x", T0 + i)
                m.status = MsgStatus.WIRED
                s.upsert_msg(m)
                m.status = MsgStatus.DELIVERED
                s.upsert_msg(m)
                created.append(m.id)

        def writer() -> None:
            # Two bursts with the flusher's turn between them: on a loaded 2-core box a
            # single tight burst can finish before the flusher thread is scheduled at all.
            write(0, 1500)
            deadline = time.monotonic() + 5
            while s.stats.flushes == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            write(1500, 1500)

        t = threading.Thread(target=writer)
        t.start()
        t.join()
        deadline = time.monotonic() + 5
        # The flusher takes the dirty records before it writes them and counts the flush
        # after: wait for both, or a check between the two sees a flush not yet counted.
        while (s.dirty_count or s.stats.flushes < 2) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.dirty_count == 0
        assert s.stats.flushes > 1  # it flushed during the writing, not only at the end
    finally:
        s.close()
    assert len(created) == 3000
    assert rows(db, "SELECT count(*), min(status), max(status) FROM msgs") == [
        (len(created), "delivered", "delivered")
    ]
    assert rows(db, "SELECT count(*) FROM contacts") == [(min(len(created), 500),)]


def test_keyset_pages_have_no_gaps_or_duplicates_with_ties(store: PlatformStore) -> None:
    c = store.new_contact("tel:+201001234567", T0)
    ids = [store.new_msg(c, MsgDirection.IN, str(i), T0 + i // 3).id for i in range(20)]
    store.flush()
    seen: list[int] = []
    cursor = None
    while True:
        page = store.page_msgs(cursor=cursor, limit=6)
        seen += [m.id for m in page.items]
        if not page.more:
            break
        cursor = Cursor(*page.keys[-1])
    assert seen == sorted(ids, reverse=True)

    # backwards from the third page's start gives back the second page
    p1 = store.page_msgs(limit=6)
    p2 = store.page_msgs(cursor=Cursor(*p1.keys[-1]), limit=6)
    p3 = store.page_msgs(cursor=Cursor(*p2.keys[-1]), limit=6)
    back = store.page_msgs(cursor=Cursor(*p3.keys[0], backwards=True), limit=6)
    assert [m.id for m in back.items] == [m.id for m in p2.items]
    assert back.more  # page 1 is before it


async def test_read_flushes_first(store: PlatformStore) -> None:
    c = store.new_contact("tel:+201001234567", T0)
    store.new_msg(c, MsgDirection.IN, "hello", T0)
    page = await store.read(lambda: store.page_msgs())
    assert [m.text for m in page.items] == ["hello"]


def test_close_is_idempotent_and_flushes(db: Path) -> None:
    s = PlatformStore(db, flush_interval=60)
    c = s.new_contact("tel:+201001234567", T0)
    s.new_msg(c, MsgDirection.IN, "bye", T0)
    s.close()
    s.close()
    assert rows(db, "SELECT text FROM msgs") == [("bye",)]


def test_flowrun_model_roundtrip_types(store: PlatformStore) -> None:
    c = store.new_contact("tel:+201001234567", T0)
    r = FlowRun(uuid="r-1", flow_uuid="f", contact_id=c.id, created_on=T0, modified_on=T0)
    r.responded = True
    store.upsert_run(r)
    store.flush()
    [stored] = store.page_runs(responded=True).items
    assert stored.run.responded is True and stored.run.uuid == "r-1"
    assert store.page_runs(flow_uuid="other").items == []
