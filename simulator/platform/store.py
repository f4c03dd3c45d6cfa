"""The platform's records: live in memory, persisted write-behind to SQLite (WAL).

The flow engine and the channels run on the event loop at thousands of messages a
second, so they read and change records in memory and only mark them dirty
(``upsert_*``); ``flush()`` writes everything dirty in one transaction. A flusher thread
calls it every ``flush_interval`` seconds. The REST API reads from SQLite after a flush,
so its cursor pages are consistent, and a finished run can be inspected with ``sqlite3``.

Why a thread with its own connection rather than an asyncio task that calls ``flush``
through ``run_in_executor``: Python's sqlite3 releases the GIL while SQLite steps and
syncs, so the writer's B-tree and disk work overlaps the loop either way, but a thread
also works without a running loop (sync tests, ``close()`` from a CLI's shutdown path),
keeps flushing while the loop is busy, and never queues behind other executor jobs.
The loop and the writer share one lock, held only to mark records dirty and to swap the
dirty sets, never during SQL.

The contract for callers: create records with ``new_*`` (they allocate ids and uuids),
and after changing one call its ``upsert_*``; the flusher reads records on its own thread,
so a change not followed by an upsert may or may not reach the database.

Times are simulated Unix seconds in memory and integer microseconds in SQLite, so cursor
keys and the API's ``YYYY-MM-DDThh:mm:ss.ssssssZ`` round-trip exactly.

Memory stays bounded in long runs: once a message is final (handled, delivered, failed)
and written, it leaves memory (``evict_final``), and so does a run once it has exited.
Contacts, broadcasts and flow starts stay. Only live records are loaded when a database
is reopened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any, Generic, TypeVar

from simulator.platform.model import Broadcast, Contact, FlowRun, Msg, MsgDirection, MsgStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 1
#: Statuses after which a message never changes again.
FINAL_MSG_STATUSES = frozenset({"handled", "delivered", "failed"})
#: RapidPro's run counts per flow (API v2 ``flows.json`` ``runs``).
RUN_STATUSES = ("active", "waiting", "completed", "interrupted", "expired", "failed")

_US = 1_000_000


def to_us(t: float) -> int:
    """Simulated seconds to integer microseconds (the database's and the API's unit)."""
    return round(t * _US)


def _opt_us(t: float | None) -> int | None:
    return None if t is None else round(t * _US)


def _from_us(us: int | None) -> float | None:
    return None if us is None else us / _US


def _dumps(value: Any) -> str:
    # No indent: the C encoder runs without giving up the GIL (it calls back into Python
    # only for ``default``, i.e. a value JSON can't hold), so a dict or list the loop is
    # changing is read whole. ``default=str`` keeps such a value from failing the flush.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _new_uuid() -> str:
    return str(uuidlib.uuid4())


@dataclass(slots=True)
class FlowStartRecord:
    """A request to start contacts in a flow (RapidPro's FlowStart), as the API shows it."""

    id: int
    uuid: str
    flow_uuid: str
    contact_ids: list[int]
    urns: list[str]
    restart_participants: bool = True
    exclude_active: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    #: pending -> starting -> complete (or failed), as RapidPro.
    status: str = "pending"
    created_on: float = 0.0
    modified_on: float = 0.0


@dataclass(slots=True)
class StoredRun:
    """A run as read back from SQLite, with what only the store knows about it."""

    id: int
    start_uuid: str | None
    run: FlowRun


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a listing: the sort key (µs) and id of the item a page starts after.

    ``backwards`` asks for the page before the position (the API's ``previous`` link).
    """

    value: int
    id: int
    backwards: bool = False


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a listing, in listing order, with each item's (sort key, id)."""

    items: list[T]
    keys: list[tuple[int, int]]
    #: More rows exist beyond this page in the direction it was read.
    more: bool


@dataclass(slots=True)
class FlushStats:
    flushes: int = 0
    rows: int = 0
    seconds: float = 0.0
    last_rows: int = 0
    last_seconds: float = 0.0
    #: Flushes that failed (their records were kept for the next one).
    errors: int = 0
    #: Records that could not be saved at all (logged).
    dropped: int = 0


@dataclass(slots=True)
class _RunMeta:
    id: int
    start_uuid: str | None
    status: str = ""


def _run_status(r: FlowRun) -> str:
    if r.exit_type is not None:
        return r.exit_type
    return "waiting" if r.waiting_node is not None else "active"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL,
    urn TEXT NOT NULL,
    name TEXT NOT NULL,
    language TEXT NOT NULL,
    fields_json TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    stopped INTEGER NOT NULL,
    blocked INTEGER NOT NULL,
    created_on INTEGER NOT NULL,
    modified_on INTEGER NOT NULL,
    last_seen_on INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS contacts_uuid ON contacts (uuid);
CREATE INDEX IF NOT EXISTS contacts_urn ON contacts (urn);
CREATE INDEX IF NOT EXISTS contacts_modified ON contacts (modified_on, id);

CREATE TABLE IF NOT EXISTS msgs (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL,
    contact_id INTEGER NOT NULL,
    urn TEXT NOT NULL,
    direction TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    modified_on INTEGER NOT NULL,
    sent_on INTEGER,
    broadcast_id INTEGER,
    flow_uuid TEXT,
    attempts INTEGER NOT NULL,
    external_id TEXT,
    segments INTEGER NOT NULL,
    channel TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS msgs_created ON msgs (created_on, id);
CREATE INDEX IF NOT EXISTS msgs_contact ON msgs (contact_id, created_on, id);
CREATE INDEX IF NOT EXISTS msgs_broadcast ON msgs (broadcast_id, created_on, id)
    WHERE broadcast_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS msgs_in_modified ON msgs (modified_on, id) WHERE direction = 'in';
CREATE INDEX IF NOT EXISTS msgs_out_sent ON msgs (coalesce(sent_on, created_on), id)
    WHERE direction = 'out';

CREATE TABLE IF NOT EXISTS broadcasts (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    contact_ids_json TEXT NOT NULL,
    urns_json TEXT NOT NULL,
    status TEXT NOT NULL,
    created_on INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS broadcasts_created ON broadcasts (created_on, id);

CREATE TABLE IF NOT EXISTS flow_runs (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL,
    flow_uuid TEXT NOT NULL,
    contact_id INTEGER NOT NULL,
    start_uuid TEXT,
    responded INTEGER NOT NULL,
    path_json TEXT NOT NULL,
    values_json TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    modified_on INTEGER NOT NULL,
    exited_on INTEGER,
    exit_type TEXT,
    waiting_node TEXT,
    wait_timeout_on INTEGER,
    expires_on INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS flow_runs_uuid ON flow_runs (uuid);
CREATE INDEX IF NOT EXISTS flow_runs_modified ON flow_runs (modified_on, id);
CREATE INDEX IF NOT EXISTS flow_runs_flow ON flow_runs (flow_uuid, modified_on, id);
-- A contact has few runs: no modified_on here, so a run's update leaves this index alone.
CREATE INDEX IF NOT EXISTS flow_runs_contact ON flow_runs (contact_id);

CREATE TABLE IF NOT EXISTS flow_starts (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL,
    flow_uuid TEXT NOT NULL,
    status TEXT NOT NULL,
    contact_ids_json TEXT NOT NULL,
    urns_json TEXT NOT NULL,
    restart_participants INTEGER NOT NULL,
    exclude_active INTEGER NOT NULL,
    params_json TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    modified_on INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS flow_starts_uuid ON flow_starts (uuid);
CREATE INDEX IF NOT EXISTS flow_starts_modified ON flow_starts (modified_on, id);
"""

_CONTACT_COLS = (
    "id, uuid, urn, name, language, fields_json, groups_json, stopped, blocked, "
    "created_on, modified_on, last_seen_on"
)
_MSG_COLS = (
    "id, uuid, contact_id, urn, direction, text, status, created_on, modified_on, sent_on, "
    "broadcast_id, flow_uuid, attempts, external_id, segments, channel"
)
_BROADCAST_COLS = "id, text, contact_ids_json, urns_json, status, created_on"
_RUN_COLS = (
    "id, uuid, flow_uuid, contact_id, start_uuid, responded, path_json, values_json, "
    "created_on, modified_on, exited_on, exit_type, waiting_node, wait_timeout_on, expires_on"
)
_START_COLS = (
    "id, uuid, flow_uuid, status, contact_ids_json, urns_json, restart_participants, "
    "exclude_active, params_json, created_on, modified_on"
)


def _upsert_sql(table: str, cols: str, conflict: tuple[str, ...], immutable: set[str]) -> str:
    names = [c.strip() for c in cols.split(",")]
    marks = ", ".join("?" * len(names))
    sets = ", ".join(f"{c} = excluded.{c}" for c in names if c not in immutable)
    clauses = " ".join(f"ON CONFLICT ({c}) DO UPDATE SET {sets}" for c in conflict)
    return f"INSERT INTO {table} ({cols}) VALUES ({marks}) {clauses}"


# Columns that never change are left out of DO UPDATE: SQLite rewrites an index entry
# whenever one of the index's columns is SET, even to the same value.
_UPSERT_CONTACT = _upsert_sql("contacts", _CONTACT_COLS, ("id",), {"id", "uuid", "created_on"})
_UPSERT_MSG = _upsert_sql(
    "msgs",
    _MSG_COLS,
    ("id",),
    {"id", "uuid", "contact_id", "urn", "direction", "created_on"},
)
_UPSERT_BROADCAST = _upsert_sql("broadcasts", _BROADCAST_COLS, ("id",), {"id", "created_on"})
# A run evicted from memory and upserted again gets a new id in memory; the uuid clause
# keeps it on its original row.
_UPSERT_RUN = _upsert_sql(
    "flow_runs",
    _RUN_COLS,
    ("id", "uuid"),
    {"id", "uuid", "flow_uuid", "contact_id", "created_on"},
)
_UPSERT_START = _upsert_sql("flow_starts", _START_COLS, ("id",), {"id", "uuid", "created_on"})


def _contact_row(c: Contact) -> tuple[Any, ...]:
    return (
        c.id,
        c.uuid,
        c.urn,
        c.name,
        c.language,
        _dumps(c.fields),
        _dumps(c.groups),
        int(c.stopped),
        int(c.blocked),
        to_us(c.created_on),
        to_us(c.modified_on),
        _opt_us(c.last_seen_on),
    )


def _msg_row(m: Msg) -> tuple[Any, ...]:
    return (
        m.id,
        m.uuid,
        m.contact_id,
        m.urn,
        str(m.direction),
        m.text,
        str(m.status),
        to_us(m.created_on),
        to_us(m.modified_on),
        _opt_us(m.sent_on),
        m.broadcast_id,
        m.flow_uuid,
        m.attempts,
        m.external_id,
        m.segments,
        m.channel,
    )


def _broadcast_row(b: Broadcast) -> tuple[Any, ...]:
    return (
        b.id,
        b.text,
        _dumps(b.contact_ids),
        _dumps(b.urns),
        b.status,
        to_us(b.created_on),
    )


def _run_row(r: FlowRun, run_id: int, start_uuid: str | None) -> tuple[Any, ...]:
    return (
        run_id,
        r.uuid,
        r.flow_uuid,
        r.contact_id,
        start_uuid,
        int(r.responded),
        _dumps(r.path),
        _dumps(r.values),
        to_us(r.created_on),
        to_us(r.modified_on),
        _opt_us(r.exited_on),
        r.exit_type,
        r.waiting_node,
        _opt_us(r.wait_timeout_on),
        _opt_us(r.expires_on),
    )


def _start_row(s: FlowStartRecord) -> tuple[Any, ...]:
    return (
        s.id,
        s.uuid,
        s.flow_uuid,
        s.status,
        _dumps(s.contact_ids),
        _dumps(s.urns),
        int(s.restart_participants),
        int(s.exclude_active),
        _dumps(s.params),
        to_us(s.created_on),
        to_us(s.modified_on),
    )


def _contact_from_row(r: tuple[Any, ...]) -> Contact:
    return Contact(
        id=r[0],
        uuid=r[1],
        urn=r[2],
        name=r[3],
        language=r[4],
        fields=json.loads(r[5]),
        groups=json.loads(r[6]),
        stopped=bool(r[7]),
        blocked=bool(r[8]),
        created_on=r[9] / _US,
        modified_on=r[10] / _US,
        last_seen_on=_from_us(r[11]),
    )


def _msg_from_row(r: tuple[Any, ...]) -> Msg:
    return Msg(
        id=r[0],
        uuid=r[1],
        contact_id=r[2],
        urn=r[3],
        direction=MsgDirection(r[4]),
        text=r[5],
        status=MsgStatus(r[6]),
        created_on=r[7] / _US,
        modified_on=r[8] / _US,
        sent_on=_from_us(r[9]),
        broadcast_id=r[10],
        flow_uuid=r[11],
        attempts=r[12],
        external_id=r[13],
        segments=r[14],
        channel=r[15],
    )


def _broadcast_from_row(r: tuple[Any, ...]) -> Broadcast:
    return Broadcast(
        id=r[0],
        text=r[1],
        contact_ids=json.loads(r[2]),
        urns=json.loads(r[3]),
        status=r[4],
        created_on=r[5] / _US,
    )


def _run_from_row(r: tuple[Any, ...]) -> StoredRun:
    run = FlowRun(
        uuid=r[1],
        flow_uuid=r[2],
        contact_id=r[3],
        responded=bool(r[5]),
        path=[(node, t) for node, t in json.loads(r[6])],
        values=json.loads(r[7]),
        created_on=r[8] / _US,
        modified_on=r[9] / _US,
        exited_on=_from_us(r[10]),
        exit_type=r[11],
        waiting_node=r[12],
        wait_timeout_on=_from_us(r[13]),
        expires_on=_from_us(r[14]),
    )
    return StoredRun(id=r[0], start_uuid=r[4], run=run)


def _start_from_row(r: tuple[Any, ...]) -> FlowStartRecord:
    return FlowStartRecord(
        id=r[0],
        uuid=r[1],
        flow_uuid=r[2],
        status=r[3],
        contact_ids=json.loads(r[4]),
        urns=json.loads(r[5]),
        restart_participants=bool(r[6]),
        exclude_active=bool(r[7]),
        params=json.loads(r[8]),
        created_on=r[9] / _US,
        modified_on=r[10] / _US,
    )


#: RapidPro's message folders (system labels): the rows they hold and their sort order.
#: ``archived`` is always empty here (nothing is archived); unknown folders list nothing.
MSG_FOLDERS: dict[str, tuple[str, str]] = {
    "inbox": ("direction = 'in' AND status = 'handled' AND flow_uuid IS NULL", "created_on"),
    "flows": ("direction = 'in' AND status = 'handled' AND flow_uuid IS NOT NULL", "created_on"),
    "archived": ("0", "created_on"),
    "outbox": ("direction = 'out' AND status IN ('queued', 'errored')", "created_on"),
    "sent": (
        "direction = 'out' AND status IN ('wired', 'sent', 'delivered')",
        "coalesce(sent_on, created_on)",
    ),
    "failed": ("direction = 'out' AND status = 'failed'", "created_on"),
    "incoming": ("direction = 'in' AND status = 'handled'", "modified_on"),
}


def _empty() -> Page[Any]:
    return Page([], [], False)


class PlatformStore:
    """Contacts, messages, broadcasts, runs and flow starts: in memory, saved write-behind.

    Call the record methods from one thread (the event loop); ``flush``, ``page_*`` and
    ``close`` may be called from any thread.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        reset: bool = False,
        flush_interval: float = 0.2,
        autoflush: bool = True,
        evict_final: bool = True,
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.evict_final = evict_final
        self.stats = FlushStats()
        if reset:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

        self._lock = threading.Lock()  # memory indexes and dirty sets
        self._flush_lock = threading.Lock()  # the write connection, one flush at a time
        self._read_lock = threading.Lock()  # the read connection
        self._closed = False

        self._db = self._connect()
        self._init_schema()
        self._reader = self._connect()
        self._reader.execute("PRAGMA query_only = ON")

        # Live records and their indexes.
        self._contacts: dict[int, Contact] = {}
        self._contacts_by_uuid: dict[str, Contact] = {}
        self._contacts_by_urn: dict[str, Contact] = {}
        self._msgs: dict[int, Msg] = {}
        # (channel, external id): ids are unique per SMSC only, two operators reuse them
        self._msgs_by_external: dict[tuple[str, str], Msg] = {}
        self._broadcasts: dict[int, Broadcast] = {}
        self._runs: dict[str, FlowRun] = {}
        self._run_meta: dict[str, _RunMeta] = {}
        self._active_runs: dict[int, FlowRun] = {}  # contact id -> its unexited run
        self._run_counts: dict[str, dict[str, int]] = {}
        self._starts: dict[str, FlowStartRecord] = {}

        # Dirty since the last flush (dicts: several upserts of a record write it once).
        self._dirty_contacts: dict[int, Contact] = {}
        self._dirty_msgs: dict[int, Msg] = {}
        self._dirty_broadcasts: dict[int, Broadcast] = {}
        self._dirty_runs: dict[str, tuple[FlowRun, int, str | None]] = {}
        self._dirty_starts: dict[str, FlowStartRecord] = {}

        self._load()

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if autoflush:
            self._thread = threading.Thread(
                target=self._flush_loop, name="platform-store-flush", daemon=True
            )
            self._thread.start()

    # ------------------------------------------------------------------ setup

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives the process dying, not the machine losing power,
        # which is the right trade for a load-test run (fsync only at checkpoints).
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    def _init_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(
                f"{self.path}: schema version {version}, expected {SCHEMA_VERSION}; "
                "open it with reset=True to start clean"
            )
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _load(self) -> None:
        """Bring back what a previous run left: every contact, broadcast and flow start,
        the messages and runs still live, the id counters and the run counts."""
        db = self._db
        for row in db.execute(f"SELECT {_CONTACT_COLS} FROM contacts"):
            c = _contact_from_row(row)
            self._index_contact(c)
        final = ", ".join(f"'{s}'" for s in sorted(FINAL_MSG_STATUSES))
        where = f"WHERE status NOT IN ({final})" if self.evict_final else ""
        for row in db.execute(f"SELECT {_MSG_COLS} FROM msgs {where}"):
            m = _msg_from_row(row)
            self._msgs[m.id] = m
            if m.external_id is not None:
                self._msgs_by_external[(m.channel, m.external_id)] = m
        for row in db.execute(f"SELECT {_BROADCAST_COLS} FROM broadcasts"):
            b = _broadcast_from_row(row)
            self._broadcasts[b.id] = b
        where = "WHERE exit_type IS NULL" if self.evict_final else ""
        for row in db.execute(f"SELECT {_RUN_COLS} FROM flow_runs {where}"):
            stored = _run_from_row(row)
            r = stored.run
            self._runs[r.uuid] = r
            self._run_meta[r.uuid] = _RunMeta(stored.id, stored.start_uuid, _run_status(r))
            if r.exit_type is None:
                self._active_runs[r.contact_id] = r
        for row in db.execute(f"SELECT {_START_COLS} FROM flow_starts"):
            s = _start_from_row(row)
            self._starts[s.uuid] = s
        status_sql = (
            "CASE WHEN exit_type IS NOT NULL THEN exit_type "
            "WHEN waiting_node IS NOT NULL THEN 'waiting' ELSE 'active' END"
        )
        for flow_uuid, status, n in db.execute(
            f"SELECT flow_uuid, {status_sql}, count(*) FROM flow_runs GROUP BY 1, 2"
        ):
            counts = self._run_counts.setdefault(flow_uuid, dict.fromkeys(RUN_STATUSES, 0))
            counts[status] = counts.get(status, 0) + n

        def next_id(table: str) -> count[int]:
            top = db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
            return count(int(top) + 1)

        self._contact_ids = next_id("contacts")
        self._msg_ids = next_id("msgs")
        self._broadcast_ids = next_id("broadcasts")
        self._run_ids = next_id("flow_runs")
        self._start_ids = next_id("flow_starts")

    # ------------------------------------------------------------------ contacts

    def _index_contact(self, c: Contact) -> None:
        old = self._contacts.get(c.id)
        if old is not None and old.urn != c.urn and self._contacts_by_urn.get(old.urn) is old:
            del self._contacts_by_urn[old.urn]
        self._contacts[c.id] = c
        self._contacts_by_uuid[c.uuid] = c
        self._contacts_by_urn[c.urn] = c

    def new_contact(
        self, urn: str, now: float, *, name: str = "", language: str = "ara"
    ) -> Contact:
        """A new contact for ``urn`` (normalized, e.g. ``tel:+201001234567``)."""
        if urn in self._contacts_by_urn:
            raise ValueError(f"a contact already has {urn}")
        c = Contact(
            id=next(self._contact_ids),
            uuid=_new_uuid(),
            urn=urn,
            name=name,
            language=language,
            created_on=now,
            modified_on=now,
        )
        self.upsert_contact(c)
        return c

    def get_or_create_contact(self, urn: str, now: float) -> tuple[Contact, bool]:
        """The contact with ``urn``, created if new (an MO from an unknown number)."""
        c = self._contacts_by_urn.get(urn)
        if c is not None:
            return c, False
        return self.new_contact(urn, now), True

    def upsert_contact(self, c: Contact) -> None:
        """Mark ``c`` changed (or add it); it is written at the next flush."""
        with self._lock:
            self._index_contact(c)
            self._dirty_contacts[c.id] = c

    def contact(self, contact_id: int) -> Contact | None:
        return self._contacts.get(contact_id)

    def contact_by_uuid(self, contact_uuid: str) -> Contact | None:
        return self._contacts_by_uuid.get(contact_uuid)

    def contact_by_urn(self, urn: str) -> Contact | None:
        return self._contacts_by_urn.get(urn)

    @property
    def contact_count(self) -> int:
        return len(self._contacts)

    # ------------------------------------------------------------------ messages

    def new_msg(
        self,
        contact: Contact,
        direction: MsgDirection,
        text: str,
        now: float,
        *,
        status: MsgStatus | None = None,
        broadcast_id: int | None = None,
        flow_uuid: str | None = None,
        segments: int = 1,
        channel: str = "",
    ) -> Msg:
        """A new message to or from ``contact``: incoming ones default to handled,
        outgoing ones to queued."""
        if status is None:
            status = MsgStatus.HANDLED if direction == MsgDirection.IN else MsgStatus.QUEUED
        m = Msg(
            id=next(self._msg_ids),
            uuid=_new_uuid(),
            contact_id=contact.id,
            urn=contact.urn,
            direction=direction,
            text=text,
            status=status,
            created_on=now,
            modified_on=now,
            broadcast_id=broadcast_id,
            flow_uuid=flow_uuid,
            segments=segments,
            channel=channel,
        )
        self.upsert_msg(m)
        return m

    def upsert_msg(self, m: Msg) -> None:
        """Mark ``m`` changed (or add it); call after every change, e.g. a receipt."""
        with self._lock:
            self._msgs[m.id] = m
            if m.external_id is not None:
                self._msgs_by_external[(m.channel, m.external_id)] = m
            self._dirty_msgs[m.id] = m

    def msg(self, msg_id: int) -> Msg | None:
        """A live message (final ones leave memory once written, see ``evict_final``)."""
        return self._msgs.get(msg_id)

    def msg_by_external_id(self, external_id: str, channel: str = "") -> Msg | None:
        """The live message ``channel``'s SMSC / gateway knows by ``external_id`` (for
        receipts)."""
        return self._msgs_by_external.get((channel, external_id))

    @property
    def live_msg_count(self) -> int:
        return len(self._msgs)

    def unsent_msgs(self) -> list[Msg]:
        """Outgoing messages still queued or errored (to send again after a restart),
        oldest first."""
        with self._lock:
            return [
                m
                for m in self._msgs.values()
                if m.direction == MsgDirection.OUT
                and m.status in (MsgStatus.QUEUED, MsgStatus.ERRORED)
            ]

    # ------------------------------------------------------------------ broadcasts

    def new_broadcast(
        self, text: str, contact_ids: list[int], urns: list[str], now: float
    ) -> Broadcast:
        b = Broadcast(
            id=next(self._broadcast_ids),
            text=text,
            contact_ids=list(contact_ids),
            urns=list(urns),
            created_on=now,
        )
        self.add_broadcast(b)
        return b

    def add_broadcast(self, b: Broadcast) -> None:
        """Add ``b`` or mark it changed (e.g. its status went to sent)."""
        with self._lock:
            self._broadcasts[b.id] = b
            self._dirty_broadcasts[b.id] = b

    def broadcast(self, broadcast_id: int) -> Broadcast | None:
        return self._broadcasts.get(broadcast_id)

    # ------------------------------------------------------------------ runs

    def new_run(
        self,
        flow_uuid: str,
        contact: Contact,
        now: float,
        *,
        start_uuid: str | None = None,
        expires_on: float | None = None,
    ) -> FlowRun:
        r = FlowRun(
            uuid=_new_uuid(),
            flow_uuid=flow_uuid,
            contact_id=contact.id,
            created_on=now,
            modified_on=now,
            expires_on=expires_on,
        )
        self.upsert_run(r, start_uuid=start_uuid)
        return r

    def upsert_run(self, r: FlowRun, *, start_uuid: str | None = None) -> None:
        """Add ``r`` or mark it changed; keeps the per-flow run counts and each
        contact's active run up to date."""
        with self._lock:
            meta = self._run_meta.get(r.uuid)
            if meta is None:
                meta = _RunMeta(next(self._run_ids), start_uuid)
                self._run_meta[r.uuid] = meta
            elif start_uuid is not None:
                meta.start_uuid = start_uuid
            self._runs[r.uuid] = r
            status = _run_status(r)
            if status != meta.status:
                counts = self._run_counts.get(r.flow_uuid)
                if counts is None:
                    counts = self._run_counts[r.flow_uuid] = dict.fromkeys(RUN_STATUSES, 0)
                if meta.status:
                    counts[meta.status] -= 1
                counts[status] = counts.get(status, 0) + 1
                meta.status = status
            if r.exit_type is None:
                self._active_runs[r.contact_id] = r
            elif self._active_runs.get(r.contact_id) is r:
                del self._active_runs[r.contact_id]
            self._dirty_runs[r.uuid] = (r, meta.id, meta.start_uuid)

    def run(self, run_uuid: str) -> FlowRun | None:
        """A live run (exited ones leave memory once written, see ``evict_final``)."""
        return self._runs.get(run_uuid)

    def run_id(self, run_uuid: str) -> int | None:
        """The integer id the API shows for a live run."""
        meta = self._run_meta.get(run_uuid)
        return None if meta is None else meta.id

    def active_runs(self) -> list[FlowRun]:
        """Every run that has not exited: what a flow engine restores after a restart."""
        with self._lock:
            return list(self._active_runs.values())

    def active_run(self, contact_id: int) -> FlowRun | None:
        """The contact's run that has not exited (waiting for a reply), if any."""
        return self._active_runs.get(contact_id)

    def run_counts(self, flow_uuid: str) -> dict[str, int]:
        """Runs of the flow by status, as RapidPro's ``flows.json`` ``runs`` object."""
        counts = self._run_counts.get(flow_uuid)
        return dict(counts) if counts else dict.fromkeys(RUN_STATUSES, 0)

    # ------------------------------------------------------------------ flow starts

    def new_flow_start(
        self,
        flow_uuid: str,
        contact_ids: list[int],
        urns: list[str],
        now: float,
        *,
        restart_participants: bool = True,
        exclude_active: bool = False,
        params: dict[str, Any] | None = None,
    ) -> FlowStartRecord:
        s = FlowStartRecord(
            id=next(self._start_ids),
            uuid=_new_uuid(),
            flow_uuid=flow_uuid,
            contact_ids=list(contact_ids),
            urns=list(urns),
            restart_participants=restart_participants,
            exclude_active=exclude_active,
            params=dict(params or {}),
            created_on=now,
            modified_on=now,
        )
        self.upsert_flow_start(s)
        return s

    def upsert_flow_start(self, s: FlowStartRecord) -> None:
        with self._lock:
            self._starts[s.uuid] = s
            self._dirty_starts[s.uuid] = s

    def flow_start(self, start_uuid: str) -> FlowStartRecord | None:
        return self._starts.get(start_uuid)

    # ------------------------------------------------------------------ persistence

    @property
    def dirty_count(self) -> int:
        """Records waiting for the next flush."""
        return (
            len(self._dirty_contacts)
            + len(self._dirty_msgs)
            + len(self._dirty_broadcasts)
            + len(self._dirty_runs)
            + len(self._dirty_starts)
        )

    def flush(self) -> int:
        """Write every dirty record in one transaction; returns the rows written.

        Safe from any thread. A record changed while a flush runs is dirty again and goes
        in the next one. If the database fails (disk full, I/O) the batch is put back and
        the error raised; a record holding a value SQLite can't store is logged and
        dropped (``stats.dropped``) rather than blocking every later flush.
        """
        with self._flush_lock:
            if self._closed:
                return 0
            with self._lock:
                contacts, self._dirty_contacts = self._dirty_contacts, {}
                msgs, self._dirty_msgs = self._dirty_msgs, {}
                broadcasts, self._dirty_broadcasts = self._dirty_broadcasts, {}
                runs, self._dirty_runs = self._dirty_runs, {}
                starts, self._dirty_starts = self._dirty_starts, {}
            rows = len(contacts) + len(msgs) + len(broadcasts) + len(runs) + len(starts)
            if not rows:
                return 0
            t0 = time.perf_counter()
            # Rows are built before BEGIN, so the write lock is held for SQL only.
            # Contacts first: messages and runs refer to them.
            batches = (
                (_UPSERT_CONTACT, self._rows("contact", _contact_row, contacts.values())),
                (_UPSERT_BROADCAST, self._rows("broadcast", _broadcast_row, broadcasts.values())),
                (_UPSERT_START, self._rows("flow start", _start_row, starts.values())),
                (_UPSERT_MSG, self._rows("msg", _msg_row, msgs.values())),
                (_UPSERT_RUN, self._rows("run", _run_row, runs.values(), star=True)),
            )
            try:
                try:
                    self._write(batches, one_by_one=False)
                except (sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.IntegrityError):
                    # A value SQLite can't take: write row by row and drop only that row.
                    self._write(batches, one_by_one=True)
            except BaseException:
                self.stats.errors += 1
                with self._lock:  # newer marks win over the failed batch
                    self._dirty_contacts = {**contacts, **self._dirty_contacts}
                    self._dirty_msgs = {**msgs, **self._dirty_msgs}
                    self._dirty_broadcasts = {**broadcasts, **self._dirty_broadcasts}
                    self._dirty_runs = {**runs, **self._dirty_runs}
                    self._dirty_starts = {**starts, **self._dirty_starts}
                raise
            if self.evict_final:
                self._evict(msgs.values(), runs.values())
            elapsed = time.perf_counter() - t0
            st = self.stats
            st.flushes += 1
            st.rows += rows
            st.seconds += elapsed
            st.last_rows = rows
            st.last_seconds = elapsed
            return rows

    def _rows(
        self,
        kind: str,
        build: Callable[..., tuple[Any, ...]],
        records: Iterable[Any],
        star: bool = False,
    ) -> list[tuple[Any, ...]]:
        """Rows for ``records``; a record that can't become a row is logged and dropped,
        so one bad value can't stop every later flush."""
        out: list[tuple[Any, ...]] = []
        append = out.append
        for rec in records:
            try:
                append(build(*rec) if star else build(rec))
            except Exception:
                self.stats.dropped += 1
                log.exception("platform store: can't save %s %r; dropped", kind, rec)
        return out

    def _write(
        self, batches: Iterable[tuple[str, list[tuple[Any, ...]]]], one_by_one: bool
    ) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            for sql, batch in batches:
                if not one_by_one:
                    db.executemany(sql, batch)
                    continue
                for row in batch:
                    try:
                        db.execute(sql, row)
                    except (
                        sqlite3.InterfaceError,
                        sqlite3.ProgrammingError,
                        sqlite3.IntegrityError,
                    ):
                        self.stats.dropped += 1
                        log.exception("platform store: can't save row %r; dropped", row[:2])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _evict(self, msgs: Iterable[Msg], runs: Iterable[tuple[FlowRun, int, str | None]]) -> None:
        """Drop written records that can't change any more (unless marked again since)."""
        with self._lock:
            for m in msgs:
                if (
                    str(m.status) in FINAL_MSG_STATUSES
                    and m.id not in self._dirty_msgs
                    and self._msgs.get(m.id) is m
                ):
                    del self._msgs[m.id]
                    key = (m.channel, m.external_id or "")
                    if m.external_id is not None and self._msgs_by_external.get(key) is m:
                        del self._msgs_by_external[key]
            for r, _, _ in runs:
                if (
                    r.exit_type is not None
                    and r.uuid not in self._dirty_runs
                    and self._runs.get(r.uuid) is r
                ):
                    del self._runs[r.uuid]
                    del self._run_meta[r.uuid]

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:
                log.exception("platform store: flush failed, retrying at the next interval")

    async def read(self, query: Callable[[], T]) -> T:
        """Flush, then run ``query`` (a ``page_*`` call) off the event loop.

        Everything marked before this call is in SQLite when ``query`` runs, so an API
        request sees every record created before it.
        """
        loop = asyncio.get_running_loop()

        def job() -> T:
            self.flush()
            return query()

        return await loop.run_in_executor(None, job)

    def close(self) -> None:
        """Stop the flusher, write what is dirty, close the database. Idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        with self._flush_lock, self._read_lock:
            self._closed = True
            self._db.execute("PRAGMA optimize")
            self._db.close()
            self._reader.close()

    def __enter__(self) -> PlatformStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads (SQLite)

    def _page(
        self,
        table: str,
        cols: str,
        where: list[str],
        params: list[Any],
        sort: str,
        cursor: Cursor | None,
        limit: int,
        ascending: bool,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[int, int]], bool]:
        """Keyset paging on (sort, id): stable while rows are added, no OFFSET scans."""
        where = list(where)
        params = list(params)
        backwards = cursor is not None and cursor.backwards
        forward_asc = ascending != backwards  # direction this query walks the index
        if cursor is not None:
            where.append(f"({sort}, id) {'>' if forward_asc else '<'} (?, ?)")
            params += [cursor.value, cursor.id]
        order = "ASC" if forward_asc else "DESC"
        sql = (
            f"SELECT {cols}, {sort} FROM {table}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {sort} {order}, id {order} LIMIT ?"
        )
        params.append(limit + 1)
        with self._read_lock:
            rows = self._reader.execute(sql, params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        if backwards:
            rows.reverse()
        keys = [(row[-1], row[0]) for row in rows]
        return rows, keys, more

    @staticmethod
    def _time_range(
        where: list[str], params: list[Any], col: str, after: int | None, before: int | None
    ) -> None:
        if after is not None:
            where.append(f"{col} >= ?")
            params.append(after)
        if before is not None:
            where.append(f"{col} <= ?")
            params.append(before)

    @staticmethod
    def _equal(where: list[str], params: list[Any], **cols: object) -> None:
        """``col = ?`` for every filter given (not None)."""
        for col, value in cols.items():
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)

    def page_contacts(
        self,
        *,
        uuid: str | None = None,
        urn: str | None = None,
        group: str | None = None,
        after: int | None = None,
        before: int | None = None,
        cursor: Cursor | None = None,
        limit: int = 250,
        ascending: bool = False,
    ) -> Page[Contact]:
        """Contacts by last modified (newest first); ``after``/``before`` in µs, inclusive."""
        where: list[str] = []
        params: list[Any] = []
        self._equal(where, params, uuid=uuid, urn=urn)
        if group is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(groups_json) WHERE value = ?)")
            params.append(group)
        self._time_range(where, params, "modified_on", after, before)
        rows, keys, more = self._page(
            "contacts", _CONTACT_COLS, where, params, "modified_on", cursor, limit, ascending
        )
        return Page([_contact_from_row(r) for r in rows], keys, more)

    def page_msgs(
        self,
        *,
        folder: str | None = None,
        contact_uuid: str | None = None,
        broadcast_id: int | None = None,
        msg_id: int | None = None,
        after: int | None = None,
        before: int | None = None,
        cursor: Cursor | None = None,
        limit: int = 250,
    ) -> Page[Msg]:
        """Messages newest first, by creation (``sent``: by sent time, ``incoming``: by
        last modified), as RapidPro's ``messages.json``."""
        where: list[str] = []
        params: list[Any] = []
        sort = "created_on"
        if folder is not None:
            spec = MSG_FOLDERS.get(folder)
            if spec is None:
                return _empty()
            where.append(spec[0])
            sort = spec[1]
        if contact_uuid is not None:
            c = self._contacts_by_uuid.get(contact_uuid)
            if c is None:
                return _empty()
            where.append("contact_id = ?")
            params.append(c.id)
        self._equal(where, params, broadcast_id=broadcast_id, id=msg_id)
        # before/after compare the creation time, except for incoming (last modified)
        self._time_range(
            where, params, "modified_on" if folder == "incoming" else "created_on", after, before
        )
        rows, keys, more = self._page("msgs", _MSG_COLS, where, params, sort, cursor, limit, False)
        return Page([_msg_from_row(r) for r in rows], keys, more)

    def page_runs(
        self,
        *,
        flow_uuid: str | None = None,
        contact_uuid: str | None = None,
        run_uuid: str | None = None,
        run_id: int | None = None,
        responded: bool = False,
        after: int | None = None,
        before: int | None = None,
        cursor: Cursor | None = None,
        limit: int = 250,
        ascending: bool = False,
    ) -> Page[StoredRun]:
        """Runs by last modified (newest first), as RapidPro's ``runs.json``."""
        where: list[str] = []
        params: list[Any] = []
        if contact_uuid is not None:
            c = self._contacts_by_uuid.get(contact_uuid)
            if c is None:
                return _empty()
            where.append("contact_id = ?")
            params.append(c.id)
        self._equal(where, params, flow_uuid=flow_uuid, uuid=run_uuid, id=run_id)
        if responded:
            where.append("responded = 1")
        self._time_range(where, params, "modified_on", after, before)
        rows, keys, more = self._page(
            "flow_runs", _RUN_COLS, where, params, "modified_on", cursor, limit, ascending
        )
        return Page([_run_from_row(r) for r in rows], keys, more)

    def page_broadcasts(
        self,
        *,
        broadcast_id: int | None = None,
        after: int | None = None,
        before: int | None = None,
        cursor: Cursor | None = None,
        limit: int = 250,
    ) -> Page[Broadcast]:
        """Broadcasts newest first, as RapidPro's ``broadcasts.json``."""
        where: list[str] = []
        params: list[Any] = []
        self._equal(where, params, id=broadcast_id)
        self._time_range(where, params, "created_on", after, before)
        rows, keys, more = self._page(
            "broadcasts", _BROADCAST_COLS, where, params, "created_on", cursor, limit, False
        )
        return Page([_broadcast_from_row(r) for r in rows], keys, more)

    def page_flow_starts(
        self,
        *,
        start_uuid: str | None = None,
        start_id: int | None = None,
        after: int | None = None,
        before: int | None = None,
        cursor: Cursor | None = None,
        limit: int = 250,
        ascending: bool = False,
    ) -> Page[FlowStartRecord]:
        """Flow starts by last modified (newest first), as RapidPro's ``flow_starts.json``."""
        where: list[str] = []
        params: list[Any] = []
        self._equal(where, params, uuid=start_uuid, id=start_id)
        self._time_range(where, params, "modified_on", after, before)
        rows, keys, more = self._page(
            "flow_starts", _START_COLS, where, params, "modified_on", cursor, limit, ascending
        )
        return Page([_start_from_row(r) for r in rows], keys, more)
