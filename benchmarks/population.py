"""Population benchmark: what 100 M derived subscribers cost, and how fast they answer.

    .venv/bin/python benchmarks/population.py [--quick] [--repeat N]

Prints one table. Not a test: nothing here asserts a speed or a size; the targets are
shown beside the figures.

* **build**: ``Population(PopulationConfig(size=...))`` in a fresh interpreter per size,
  so the RSS is honest: the delta of the resident set (``/proc/self/statm``) across the
  constructor, after the imports; the whole process's RSS is shown alongside.
* **throughput**: one thread, GC on, results discarded as a server would; best of N
  repeats of ~0.25 s each over 50k numbers/indices sampled from a 100 M population.
  ``profile`` is fed canonical numbers (what the SMSC has after ``normalize``) of
  members; ``profile (national form)`` pays for ``normalize``'s conversion too.
* **touched state**: 1 M distinct subscribers each get one MT (a broadcast: equal text,
  a fresh string per message as reassembly produces, a 16-digit decimal message id) and
  its outcome, in a fresh interpreter. Bytes per touched subscriber = traced Python
  memory (``tracemalloc``) / 1 M, and, in another fresh interpreter without tracing, the
  RSS delta after ``gc.collect()`` and glibc ``malloc_trim(0)`` (freed heap handed back,
  so the figure is live memory, not allocator slack). Once with no history
  (``history_size=0``: the per-subscriber rows alone), once with the default 1 M-event
  ring holding the 1 M MTs.
* **engine**: the same 1 M subscribers each get one MT through ``SubscriberEngine`` as
  the SMSC calls it (``outcome`` then ``on_mt``: profile, fate, reassembly, history;
  then the arrival at the handset, taken from the heap every 1,000 messages as if due:
  behaviour), a one-part quiz question (numbered options), default population (3.5 M)
  and models, at noon Cairo time, one thread, the SMSC's ``TimerQueue`` as the timer
  heap: µs per message and RSS bytes per touched subscriber once with a behaviour that
  answers nothing, once with the default one (about half decide to answer; the replies
  wait in the engine until due); the difference over the replies waiting is what each
  costs while it waits.

``--smsc-calls VARIANT N`` (not part of the table) times, with ``time.process_time``,
exactly the calls the SMSC of ``smsc_throughput.py --subscribers`` makes per accepted
submit_sm (``outcome``, the planned state and time, ``on_mt``, due arrivals and replies
from a ``TimerQueue`` every 50 messages on a simulated loop clock at 18,000 messages/s,
MO injection a no-op), with that benchmark's configuration files (VARIANT ``none``,
``silent``, ``x1`` or ``x3600``) and its first N destinations, in its order; prints µs
per message as JSON. Run it under ``valgrind --tool=callgrind`` at two N to count
instructions per message, which do not move with the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from simulator.config import PopulationConfig  # noqa: E402
from simulator.subscribers.numbering import normalize  # noqa: E402
from simulator.subscribers.population import Population  # noqa: E402
from simulator.subscribers.state import TouchedStore  # noqa: E402

QUIZ = "كورونا: ما أهم وسيلة وقاية؟ ١) غسل اليدين ٢) مضاد حيوي ٣) ماء ساخن"
BROADCAST = "وزارة التضامن الاجتماعي: موعد صرف تكافل وكرامة لشهر نوفمبر يبدأ الأحد. للاستفسار ١٤٤٢"


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def trim() -> None:
    gc.collect()
    # Not glibc: no malloc_trim, and the RSS figure keeps the allocator's slack.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# --- children: each measurement of memory runs in its own interpreter -----------------------


def child_build(size: int) -> dict[str, float]:
    config = PopulationConfig(size=size)
    trim()
    before = rss()
    t = time.perf_counter()
    pop = Population(config)
    seconds = time.perf_counter() - t
    after = rss()
    assert pop.index_of(pop.msisdn(size - 1)) == size - 1
    return {"seconds": seconds, "rss_delta": after - before, "rss_total": after}


def child_touched(n: int, history_size: int, traced: bool) -> dict[str, float]:
    pop = Population(PopulationConfig(size=100_000_000))
    numbers = [pop.msisdn(i) for i in random.Random(1).sample(range(pop.size), n)]
    ids = [str(1_718_000_000_000_000 + i) for i in range(n)]
    trim()
    if traced:
        tracemalloc.start()
    before = rss()
    store = TouchedStore(history_size=history_size)
    now = 1_795_000_000.0
    for number, message_id in zip(numbers, ids, strict=True):
        store.record_mt(number, now, (BROADCAST + "!")[:-1], message_id)
        store.record_outcome(number, "DELIVRD")
    if traced:
        used = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return {"bytes": used / n}
    trim()
    assert len(store) == n
    return {"bytes": (rss() - before) / n}


def child_engine(n: int, replies: bool) -> dict[str, float]:
    from simulator.clock import SimClock
    from simulator.config import BehaviourConfig, SmscConfig
    from simulator.smsc.scheduler import TimerQueue
    from simulator.smsc.store import Message
    from simulator.subscribers.engine import SubscriberEngine

    behaviour = BehaviourConfig()
    if not replies:  # nobody answers, not even STOP: the rest of the engine alone
        silent = dict.fromkeys(behaviour.reply_probability, 0.0)
        behaviour = BehaviourConfig(
            reply_probability=silent, unprompted_reply_probability=0.0, stop_share=0.0
        )
    config = SmscConfig(population=PopulationConfig(enabled=True), behaviour=behaviour)
    noon = 1_795_000_000.0 - 1_795_000_000.0 % 86400 + 10 * 3600
    engine = SubscriberEngine(config, SimClock(1.0, start=noon))
    timers = TimerQueue()  # replies waiting
    arrivals = TimerQueue()  # messages on their way to the handsets

    def schedule(due: float, fn: Callable[[Any], None], arg: Any) -> None:
        (arrivals if fn == engine._arrive_fn else timers).push(due, fn, arg)

    def deliver() -> None:
        """The messages reach their handsets (at once here): people read and decide."""
        for _due, fn, arg in arrivals.drain():
            fn(arg)

    engine.attach(
        schedule=schedule,
        loop_time=time.monotonic,
        inject=lambda *a, **kw: None,
        operators=["egypt"],
    )
    numbers = [engine.population.msisdn(i) for i in random.Random(1).sample(range(3_500_000), n)]
    body = QUIZ.encode("utf-16-be")
    assert len(body) <= 140
    trim()
    before = rss()
    t = time.perf_counter()
    for i, number in enumerate(numbers):
        msg = Message(
            str(1_718_000_000_000_000 + i), "rapidpro", "1442", 3, 0, number, 1, 1,
            0, 8, body, 1, noon + i * 1e-3,
        )  # fmt: skip
        out = engine.outcome(msg)
        msg.planned_state = out.state
        msg.planned_time = msg.submit_time + out.delay
        engine.on_mt(msg)
        if i % 1000 == 999:
            deliver()  # as in the SMSC, a message lives until it reaches the handset
    deliver()
    seconds = time.perf_counter() - t
    trim()  # ``numbers`` stays alive: it was counted in ``before``
    assert len(engine.store) == n
    return {
        "us": seconds / n * 1e6,
        "bytes": (rss() - before) / n,
        "pending": float(engine.summary().pending_replies),
        "rss_delta": float(rss() - before),
    }


def smsc_calls(variant: str, n: int) -> dict[str, float]:
    """See the module docstring (``--smsc-calls``)."""
    import tempfile

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from smsc_throughput import population_numbers, smsc_config

    from simulator.clock import SimClock
    from simulator.config import load_config
    from simulator.smsc.handsets import MtRecorder
    from simulator.smsc.receipts import FixedPolicy, ReceiptPolicy
    from simulator.smsc.scheduler import TimerQueue
    from simulator.smsc.store import Message
    from simulator.subscribers.engine import SubscriberEngine

    scale = 3600.0 if variant == "x3600" else 1.0
    size = None if variant == "none" else 3_500_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "smsc.toml"
        path.write_text(smsc_config(0, size, 1442, scale, silent=variant == "silent"))
        config = load_config(path)
    numbers = population_numbers(3_500_000, 1442, 1_000_000)[:n]
    loop = [0.0]

    def now() -> float:
        return loop[0]

    # 03:00 Cairo: the night, as for a run of the SMSC benchmark at 01:00 UTC.
    start = 1_795_000_000.0 - 1_795_000_000.0 % 86400 + 3600
    clock = SimClock(scale, start=start, monotonic=now)
    timers = TimerQueue()

    def schedule(due: float, fn: Callable[[Any], None], arg: Any) -> None:
        timers.push(due, fn, arg)

    policy: ReceiptPolicy
    engine = None
    if variant == "none":
        recorder = MtRecorder(config.mt_log_size, config.reassembly_timeout)
        on_mt, policy = recorder.on_mt, FixedPolicy(delay=0.0)
    else:
        engine = SubscriberEngine(config, clock)
        on_mt, policy = engine.on_mt, engine
        engine.attach(
            schedule=schedule, loop_time=now, inject=lambda *a, **kw: None, operators=["op"]
        )
    body = b"Takaful & Karama: school attendance reminder for this month. Reply 1 to confirm."
    msgs = [
        Message(str(1_718_000_000_000_000 + i), "rapidpro", "1442", 3, 0, number, 1, 1,
                0, 0, body, 1, 0.0, {})
        for i, number in enumerate(numbers)
    ]  # fmt: skip
    gc.collect()
    outcome = policy.outcome
    t = time.process_time()
    for i, msg in enumerate(msgs):
        loop[0] = i / 18_000
        msg.submit_time = clock.now()
        out = outcome(msg)
        msg.planned_state = out.state
        msg.planned_time = msg.submit_time + out.delay
        on_mt(msg)
        if i % 50 == 49:
            timers.run_due(loop[0])
    if variant == "x3600":
        loop[0] += 10.0
        timers.run_due(loop[0])
    seconds = time.process_time() - t
    summary = engine.summary() if engine is not None else None
    return {
        "us": seconds / n * 1e6,
        "pending": float(summary.pending_replies if summary else 0),
        "sent": float(summary.sent if summary else 0),
    }


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- throughput -------------------------------------------------------------------------------


def rate(fn: Callable[[Sequence[Any]], None], items: Sequence[Any], repeat: int) -> float:
    """Best items/s over ``repeat`` timed passes (after one warm-up pass)."""
    fn(items)
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        fn(items)
        best = max(best, len(items) / (time.perf_counter() - t))
    return best


def throughput(quick: bool, repeat: int) -> list[tuple[str, float, str]]:
    pop = Population(PopulationConfig(size=100_000_000))
    n = 5_000 if quick else 50_000
    rng = random.Random(42)
    indices = rng.sample(range(pop.size), n)
    members = [pop.msisdn(i) for i in indices]
    national = ["0" + m[2:] for m in members]
    arabic = [m.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) for m in national]
    strangers = [f"2012{rng.randrange(10**8):08d}" for _ in range(n)]
    profile, profile_at, index_of, msisdn = pop.profile, pop.profile_at, pop.index_of, pop.msisdn

    def run_profile(xs: Sequence[str]) -> None:
        for x in xs:
            profile(x)

    def run_profile_at(xs: Sequence[int]) -> None:
        for x in xs:
            profile_at(x)

    def run_index_of(xs: Sequence[str]) -> None:
        for x in xs:
            index_of(x)

    def run_msisdn(xs: Sequence[int]) -> None:
        for x in xs:
            msisdn(x)

    def run_normalize(xs: Sequence[str]) -> None:
        for x in xs:
            normalize(x)

    ids = [str(1_718_000_000_000_000 + i) for i in range(n)]

    def run_record(xs: Sequence[str]) -> None:
        store = TouchedStore()
        for x, message_id in zip(xs, ids, strict=True):
            store.record_mt(x, 1.0, BROADCAST, message_id)

    store = TouchedStore()
    for m in members:
        store.record_mt(m, 1.0, BROADCAST, "1")

    def run_record_again(xs: Sequence[str]) -> None:
        for x, message_id in zip(xs, ids, strict=True):
            store.record_mt(x, 2.0, BROADCAST, message_id)

    def run_outcome(xs: Sequence[str]) -> None:
        for x in xs:
            store.record_outcome(x, "DELIVRD")

    def run_history(xs: Sequence[str]) -> None:
        for x in xs:
            store.history(x)

    target = "≥ 300k/s"
    history_rate = rate(run_history, members, repeat)
    entries = len(store.history(members[0]))
    return [
        ("profile(msisdn), members, canonical", rate(run_profile, members, repeat), target),
        ("profile(msisdn), members, national form", rate(run_profile, national, repeat), ""),
        ("profile(msisdn), non-members", rate(run_profile, strangers, repeat), ""),
        ("profile_at(index)", rate(run_profile_at, indices, repeat), ""),
        ("index_of(msisdn)", rate(run_index_of, members, repeat), ""),
        ("msisdn(index)", rate(run_msisdn, indices, repeat), ""),
        ("normalize, canonical 2010…", rate(run_normalize, members, repeat), ""),
        ("normalize, national 010…", rate(run_normalize, national, repeat), ""),
        ("normalize, Arabic-Indic ٠١٠…", rate(run_normalize, arabic, repeat), ""),
        ("TouchedStore.record_mt, first touch", rate(run_record, members, repeat), ""),
        ("TouchedStore.record_mt, touched before", rate(run_record_again, members, repeat), ""),
        ("TouchedStore.record_outcome", rate(run_outcome, members, repeat), ""),
        (f"TouchedStore.history, {entries} entries each", history_rate, ""),
    ]


def machine() -> str:
    return (
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} vCPU, "
        f"Python {platform.python_version()} ({platform.machine()}), Faker {version('faker')}"
    )


def mb(x: float) -> str:
    return f"{x / 2**20:.2f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--repeat", type=int, help="timed repeats per rate (default 5, quick 1)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument(
        "--smsc-calls",
        nargs=2,
        metavar=("VARIANT", "N"),
        help="time the SMSC benchmark's engine calls alone (none|silent|x1|x3600, messages)",
    )
    args = parser.parse_args(argv)
    if args.smsc_calls:
        print(json.dumps(smsc_calls(args.smsc_calls[0], int(args.smsc_calls[1]))))
        return 0
    if args.child:
        kind, *rest = args.child
        if kind == "build":
            print(json.dumps(child_build(int(rest[0]))))
        elif kind == "engine":
            print(json.dumps(child_engine(int(rest[0]), rest[1] == "replies")))
        else:
            print(json.dumps(child_touched(int(rest[0]), int(rest[1]), rest[2] == "traced")))
        return 0

    repeat = args.repeat or (1 if args.quick else 5)
    touched = 20_000 if args.quick else 1_000_000
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    console.print(f"[bold]Population benchmark[/]  {machine()}")
    t0 = time.perf_counter()
    table = Table(title="population: build, throughput, touched state")
    table.add_column("measurement")
    table.add_column("result", justify="right")
    table.add_column("target", justify="right")
    with console.status("measuring") as status:
        for size in (3_500_000, 100_000_000, 400_000_000):
            status.update(f"build {size:,}")
            r = run_child("build", str(size))
            table.add_row(f"build {size:,}: time", f"{r['seconds'] * 1000:.1f} ms", "< 1 s")
            table.add_row(
                f"build {size:,}: RSS delta (process RSS)",
                f"{mb(r['rss_delta'])} ({mb(r['rss_total'])})",
                "< 50 MB",
            )
        status.update("throughput")
        for label, value, target in throughput(args.quick, repeat):
            table.add_row(f"{label} /s", f"{value:,.0f}", target)
        for history, what in ((0, "no history"), (1_000_000, "+ 1 M-event ring, 1 MT each")):
            status.update(f"touched state, {what}")
            traced = run_child("touched", str(touched), str(history), "traced")["bytes"]
            resident = run_child("touched", str(touched), str(history), "rss")["bytes"]
            table.add_row(
                f"bytes per touched subscriber at {touched:,}, {what}",
                f"{traced:.0f} traced / {resident:.0f} RSS",
                "< 200",
            )
        status.update("engine")
        silent = run_child("engine", str(touched), "silent")
        kept = run_child("engine", str(touched), "replies")
        table.add_row(
            f"engine: outcome + on_mt + arrival, {touched:,} subscribers, 1 MT each, "
            "nobody answers",
            f"{silent['us']:.1f} µs/message",
            "",
        )
        table.add_row(
            "engine: the same, the default behaviour (replies decided, kept until due)",
            f"{kept['us']:.1f} µs/message",
            "",
        )
        table.add_row(
            f"engine: bytes per touched subscriber at {touched:,}, nobody answers",
            f"{silent['bytes']:.0f} RSS",
            "< 200",
        )
        pending = kept["pending"]
        per_reply = (kept["rss_delta"] - silent["rss_delta"]) / pending if pending else 0.0
        table.add_row(
            f"engine: bytes per reply waiting until due ({pending:,.0f} waiting)",
            f"{per_reply:.0f} RSS",
            "",
        )
    console.print(table)
    console.print(f"[dim]{time.perf_counter() - t0:.1f} s[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
