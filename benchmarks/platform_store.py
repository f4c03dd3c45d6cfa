"""Platform store benchmark: how fast records are marked and written, and what the
write-behind flusher costs the event loop at the platform's target rate.

    .venv/bin/python benchmarks/platform_store.py [--quick] [--rate 2000] [--seconds 5]

Not a test: nothing here asserts a speed. Three parts, each on a fresh database in a
temporary directory (WAL, synchronous=NORMAL, as the store runs):

* marks/s: ``new_*`` / ``upsert_*`` calls per second with the flusher off (memory only);
* flush rows/s: one ``flush()`` of everything marked, per kind of record (inserts of new
  rows, then updates of existing ones, as a receipt does);
* the hot path: an asyncio loop doing MO -> reply cycles (an MO from one of 100,000
  numbers: contact lookup or creation, incoming message, run step, reply, then the reply
  wired and delivered: 7 marks a cycle) with the background flusher on, first as fast as
  it goes, then paced at ``--rate`` cycles/s while an API-style read (flush + 250-row page)
  runs every 100 ms. Reported: cycles/s, loop lag (a 5 ms ticker's oversleep), flush
  sizes and times, API read latency. At the end every row is checked against memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.platform.model import Contact, FlowRun, Msg, MsgDirection, MsgStatus
from simulator.platform.store import PlatformStore

T0 = 1_700_000_000.0
POPULATION = 100_000


def timed(label: str, n: int, fn: Callable[[], object]) -> None:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"  {label:<44} {n / dt:>12,.0f}/s  ({n:,} in {dt * 1000:.0f} ms)")


def marks_and_flushes(n: int, tmp: Path) -> None:
    store = PlatformStore(tmp / "marks.sqlite3", reset=True, autoflush=False)
    print(f"marks/s (memory only, n={n:,}) and flush rows/s (one transaction):")
    contacts: list[Contact] = []
    timed(
        "new_contact",
        n,
        lambda: contacts.extend(store.new_contact(f"tel:+2010{i:08d}", T0) for i in range(n)),
    )
    timed("flush: contacts (insert)", n, store.flush)
    msgs: list[Msg] = []
    timed(
        "new_msg",
        n,
        lambda: msgs.extend(
            store.new_msg(c, MsgDirection.OUT, "سؤال ١: ما هي أعراض كورونا؟", T0) for c in contacts
        ),
    )
    timed("flush: msgs (insert)", n, store.flush)

    def receipts() -> None:
        for m in msgs:
            m.status = MsgStatus.WIRED
            m.external_id = str(m.id)
            m.modified_on = T0 + 1
            store.upsert_msg(m)

    timed("upsert_msg (status change)", n, receipts)
    timed("flush: msgs (update)", n, store.flush)
    runs: list[FlowRun] = []
    timed("new_run", n, lambda: runs.extend(store.new_run("quiz", c, T0) for c in contacts))
    timed("flush: runs (insert)", n, store.flush)

    def steps() -> None:
        for r in runs:
            r.path.append(("q1", T0 + 1))
            r.values["q1"] = {"value": "2", "category": "Correct", "time": T0 + 1}
            r.waiting_node = "q2"
            r.modified_on = T0 + 1
            store.upsert_run(r)

    timed("upsert_run (path + result)", n, steps)
    timed("flush: runs (update)", n, store.flush)
    store.close()


async def hot_path(tmp: Path, seconds: float, rate: float | None, api_reads: bool) -> None:
    store = PlatformStore(tmp / "hot.sqlite3", reset=True)
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    reads: list[float] = []
    stop = False

    async def ticker() -> None:
        while not stop:
            t = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - t - 0.005)

    async def reader() -> None:
        while not stop:
            await asyncio.sleep(0.1)
            t = time.perf_counter()
            page = await store.read(lambda: store.page_msgs(limit=250))
            reads.append(time.perf_counter() - t)
            assert len(page.items) == 250 or not page.more

    pending: list[Msg] = []  # replies waiting for their receipt
    cycles = 0
    sim = T0

    def cycle(i: int) -> None:
        nonlocal sim
        sim += 0.0005
        c, _ = store.get_or_create_contact(f"tel:+2010{(i * 7919) % POPULATION:08d}", sim)
        c.last_seen_on = sim
        c.modified_on = sim
        store.upsert_contact(c)
        store.new_msg(c, MsgDirection.IN, "٢", sim, flow_uuid="quiz")
        run = store.active_run(c.id) or store.new_run("quiz", c, sim)
        run.path.append(("q", sim))
        run.values["q"] = {"value": "2", "category": "Correct", "time": sim}
        run.responded = True
        run.modified_on = sim
        store.upsert_run(run)
        out = store.new_msg(c, MsgDirection.OUT, "إجابة صحيحة! السؤال التالي ...", sim)
        out.status = MsgStatus.WIRED
        out.external_id = f"x{out.id}"
        store.upsert_msg(out)
        pending.append(out)
        if len(pending) > 1000:  # receipts come back a little later
            m = pending.pop(0)
            m.status = MsgStatus.DELIVERED
            m.modified_on = sim
            store.upsert_msg(m)

    tasks = [asyncio.create_task(ticker())]
    if api_reads:
        tasks.append(asyncio.create_task(reader()))
    t0 = time.perf_counter()
    flushes0 = store.stats.flushes
    if rate is None:
        while time.perf_counter() - t0 < seconds:
            for _ in range(200):
                cycle(cycles)
                cycles += 1
            await asyncio.sleep(0)
    else:
        batch = max(1, int(rate / 200))  # every 5 ms
        next_at = loop.time()
        while time.perf_counter() - t0 < seconds:
            for _ in range(batch):
                cycle(cycles)
                cycles += 1
            next_at += batch / rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
    elapsed = time.perf_counter() - t0
    stop = True
    await asyncio.gather(*tasks)
    st = store.stats
    backlog = store.dirty_count
    flushes = st.flushes - flushes0
    t_close = time.perf_counter()
    await loop.run_in_executor(None, store.close)
    close_ms = (time.perf_counter() - t_close) * 1000

    label = "as fast as it goes" if rate is None else f"paced at {rate:,.0f} cycles/s"
    print(f"hot path, {label}, {elapsed:.1f} s, background flusher every 200 ms:")
    print(f"  cycles/s {cycles / elapsed:>10,.0f}  (marks/s {7 * cycles / elapsed:,.0f})")
    lags.sort()
    print(
        f"  loop lag ms p50/p99/max      {statistics.median(lags) * 1000:>6.2f} / "
        f"{lags[int(len(lags) * 0.99)] * 1000:.2f} / {lags[-1] * 1000:.2f}"
    )
    if flushes:
        print(
            f"  flushes {flushes}, rows/flush {st.rows / st.flushes:,.0f}, "
            f"flush ms avg {st.seconds / st.flushes * 1000:.1f}, "
            f"rows/s while flushing {st.rows / st.seconds:,.0f}"
        )
    print(f"  dirty at the end {backlog:,}, close (final flush) {close_ms:.0f} ms")
    if reads:
        reads.sort()
        print(
            f"  API read (flush + 250-row page) ms p50/max "
            f"{statistics.median(reads) * 1000:.1f} / {reads[-1] * 1000:.1f} ({len(reads)} reads)"
        )
    # every cycle's records reached SQLite with their last state
    conn = sqlite3.connect(store.path)
    n_msgs, delivered = conn.execute(
        "SELECT count(*), sum(status = 'delivered') FROM msgs"
    ).fetchone()
    conn.close()
    assert n_msgs == 2 * cycles, (n_msgs, cycles)
    assert delivered == max(0, cycles - 1000), (delivered, cycles)
    print(f"  checked: {n_msgs:,} msgs in SQLite, {delivered:,} delivered")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller n, shorter runs")
    ap.add_argument("--rate", type=float, default=2000.0, help="paced MO->reply cycles/s")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    n = 20_000 if args.quick else 100_000
    seconds = 2.0 if args.quick else args.seconds
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        marks_and_flushes(n, tmp)
        asyncio.run(hot_path(tmp, seconds, None, api_reads=False))
        asyncio.run(hot_path(tmp, seconds, args.rate, api_reads=True))


if __name__ == "__main__":
    main()
