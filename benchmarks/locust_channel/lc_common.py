"""What every design's locustfile shares: options, the open-loop crowd user, the reply
matcher and sub-millisecond latency recording.

A Locust user is a crowd of subscribers, not one: it offers MOs at
``--lc-mo-rate / -u`` per second on a fixed schedule of ticks (``--lc-tick``), each MO
from a fresh number of this worker's slot of the ``NumberSpace``. The schedule never
waits for replies (no coordinated omission): every MO is stamped with the tick time it
was *due* at, and its latency is reply arrival minus that time, so a late sender or a
slow platform both show up in the latency instead of silently lowering the rate.

Replies are matched by number in one dict of the MOs in flight (bounded by rate x
latency, swept at ``--lc-timeout``); nothing is kept per number after its reply.
Latencies go into a log-bucketed histogram at 1 % resolution (Locust's own stats round
to whole milliseconds below 100 ms); each worker writes it to ``--lc-results`` at
test_stop, and ``run.py`` merges the workers' files.
"""

from __future__ import annotations

import collections
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import User, events, task
from locust.runners import MasterRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from channel import LatencyHistogram, NumberSpace

monotonic = time.monotonic  # CLOCK_MONOTONIC: comparable across processes on one host
MO_TEXTS = [b"1", b"2", b"YES", b"STOP", b"\xd9\x86\xd8\xb9\xd9\x85"]  # last: Arabic "na'am"


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    g = parser.add_argument_group("locust_channel")
    g.add_argument("--lc-mo-rate", type=float, default=5000.0, help="MO/s offered in total")
    g.add_argument("--lc-tick", type=float, default=0.005, help="seconds between a user's sends")
    g.add_argument("--lc-timeout", type=float, default=5.0, help="seconds before an MO fails")
    g.add_argument("--lc-target", default="127.0.0.1:2776", help="channel host:port (design A)")
    g.add_argument("--lc-slots", type=int, default=64, help="number-space slots (max workers)")
    g.add_argument("--lc-results", default="", help="directory for per-worker result JSON")
    g.add_argument("--lc-events", type=int, default=1, help="fire Locust request events (1/0)")
    g.add_argument("--lc-deliver-window", type=int, default=10, help="B/C: SMSC window per bind")
    g.add_argument("--lc-switch-interval", type=float, default=0.0, help="sys.setswitchinterval")


class Runtime:
    """Per worker process: numbers, MOs in flight, histograms and counters."""

    instance: Runtime | None = None

    def __init__(self, environment: Any) -> None:
        self.env = environment
        opts = environment.parsed_options
        self.opts = opts
        self.slot = max(getattr(environment.runner, "worker_index", 0), 0)
        self.numbers = NumberSpace(slots=opts.lc_slots)
        self.next_j = 0
        self.inflight: dict[int, float] = {}
        self.order: collections.deque[tuple[float, int]] = collections.deque()
        self.e2e = LatencyHistogram()  # reply seen by this worker - MO due time
        self.at_smsc = LatencyHistogram()  # reply MT at the SMSC's sink - MO due time
        self.notify = LatencyHistogram()  # reply seen by this worker - MT at the SMSC
        self.lag = LatencyHistogram()  # MO handed to the transport - MO due time
        ws = os.environ.get("LC_WINDOW_START")
        we = os.environ.get("LC_WINDOW_END")
        self.w0 = float(ws) if ws else 0.0
        self.w1 = float(we) if we else float("inf")
        self.offered = 0  # MO due in the window
        self.replied_in_window = 0  # replies received in the window
        self.matched = 0  # replies (any time) to MO due in the window
        self.timeouts = 0
        self.unsolicited = 0
        self.sent_total = 0
        self.replies_total = 0
        self.fire = environment.events.request.fire if opts.lc_events else None
        self.started = monotonic()
        self.extra: dict[str, Any] = {}
        #: Called at result time; each returns more fields for the result file.
        self.collectors: list[Any] = []
        gevent.spawn(self._sweep)

    # --- MO side -------------------------------------------------------------------------

    def allocate(self, n: int, due: float) -> list[tuple[int, bytes]]:
        """n fresh numbers of this worker's slot, registered as in flight since ``due``."""
        numbers = self.numbers
        slot = self.slot
        j = self.next_j
        self.next_j = j + n
        inflight = self.inflight
        order = self.order
        texts = MO_TEXTS
        per_slot = numbers.per_slot
        items = []
        for i in range(j, j + n):
            number = numbers.slot_number(slot, i % per_slot)  # wraps after per_slot MOs
            inflight[number] = due
            order.append((due, number))
            items.append((number, texts[i % 5]))
        self.sent_total += n
        if self.w0 <= due < self.w1:
            self.offered += n
            self.lag.add(max(monotonic() - due, 1e-7))
        return items

    # --- MT side -------------------------------------------------------------------------

    def on_reply(self, number: int, t_mt: float, t_recv: float) -> None:
        due = self.inflight.pop(number, None)
        self.replies_total += 1
        if due is None:
            self.unsolicited += 1
            return
        if self.w0 <= t_recv < self.w1:
            self.replied_in_window += 1
        if self.w0 <= due < self.w1:
            self.matched += 1
            self.e2e.add(t_recv - due)
            if t_mt:
                self.at_smsc.add(max(t_mt - due, 1e-7))
                self.notify.add(max(t_recv - t_mt, 1e-7))
        if self.fire is not None:
            self.fire(
                request_type="SMS",
                name="MO->reply",
                response_time=(t_recv - due) * 1000.0,
                response_length=0,
                exception=None,
                context=None,
            )

    def _sweep(self) -> None:
        timeout = self.opts.lc_timeout
        while True:
            gevent.sleep(0.5)
            limit = monotonic() - timeout
            order = self.order
            inflight = self.inflight
            while order and order[0][0] < limit:
                due, number = order.popleft()
                if inflight.get(number) == due:
                    del inflight[number]
                    self.timeouts += 1
                    if self.fire is not None:
                        self.fire(
                            request_type="SMS",
                            name="MO->reply",
                            response_time=timeout * 1000.0,
                            response_length=0,
                            exception=TimeoutError(f"no reply in {timeout} s"),
                            context=None,
                        )
            # entries already answered leave the deque lazily
            while order and order[0][1] not in inflight:
                order.popleft()

    # --- results -------------------------------------------------------------------------

    def result(self) -> dict[str, Any]:
        for collect in self.collectors:
            self.extra.update(collect())
        unanswered = sum(1 for due in self.inflight.values() if self.w0 <= due < self.w1)
        return {
            "pid": os.getpid(),
            "slot": self.slot,
            "window": [self.w0, self.w1],
            "offered": self.offered,
            "replied_in_window": self.replied_in_window,
            "matched": self.matched,
            "unanswered": unanswered,
            "timeouts": self.timeouts,
            "unsolicited": self.unsolicited,
            "sent_total": self.sent_total,
            "replies_total": self.replies_total,
            "e2e": self.e2e.to_json(),
            "at_smsc": self.at_smsc.to_json(),
            "notify": self.notify.to_json(),
            "lag": self.lag.to_json(),
            **self.extra,
        }

    def write(self) -> None:
        if not self.opts.lc_results:
            return
        d = Path(self.opts.lc_results)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"worker-{os.getpid()}.json").write_text(json.dumps(self.result()))


class Crowd(User):
    """Many subscribers: offers MOs open-loop at its share of ``--lc-mo-rate``."""

    abstract = True

    def send(self, items: list[tuple[int, bytes]], due: float) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        return True

    @task
    def offer(self) -> None:
        rt = Runtime.instance
        assert rt is not None
        while not self.ready():
            gevent.sleep(0.05)
        opts = rt.opts
        rate = opts.lc_mo_rate / max(opts.num_users, 1)
        tick = opts.lc_tick
        t0 = monotonic() + random.random() * tick
        k = 0
        done = 0
        while True:
            due = t0 + k * tick
            delay = due - monotonic()
            if delay > 0:
                gevent.sleep(delay)
            k += 1
            target = int(k * tick * rate)
            n = target - done
            if n > 0:
                done = target
                self.send(rt.allocate(n, due), due)


def is_master(environment: Any) -> bool:
    return isinstance(environment.runner, MasterRunner)


def install_runtime(environment: Any) -> Runtime:
    """Call from a ``test_start`` listener on workers (worker_index is known by then)."""
    opts = environment.parsed_options
    if opts.lc_switch_interval:
        sys.setswitchinterval(opts.lc_switch_interval)
    rt = Runtime(environment)
    Runtime.instance = rt

    @environment.events.test_stop.add_listener
    def _stop(environment: Any, **_kw: Any) -> None:
        rt.write()

    return rt
