"""Design B: the SMSC runs inside every Locust worker, in its own OS thread and uvloop.

    locust -f benchmarks/locust_channel/locustfile_b.py --headless -u 2 -r 20 -t 15s \
        --processes 2 --lc-mo-rate 5000      # LC_PORTS=dir: each worker writes its port

The platform must bind to every worker's SMSC (``run.py`` reads the port files).

Pitfalls handled here (each one hit while writing it):
- ``import locust`` has run ``monkey.patch_all()``: ``threading.Thread`` would start a
  greenlet, not a thread, and ``threading.Event``/``Lock`` are gevent objects that must
  not be touched from another OS thread. The thread is started with gevent's
  ``get_original('_thread', 'start_new_thread')`` and talks to the gevent side only
  through a ``deque`` and a hub ``async_`` watcher (whose ``send()`` is thread-safe).
- The stdlib asyncio loop would pick gevent's patched ``selectors``: uvloop (libuv, its
  own sockets) is used in the thread. ``asyncio.set_event_loop`` is not called (the
  policy's thread-local is a gevent local); ``run_until_complete`` is enough.
- Locust -> SMSC: ``loop.call_soon_threadsafe(inject_batch, items)``.
- Both threads share one GIL: the process is one core at most, and a thread waiting for
  the GIL waits up to ``sys.getswitchinterval()`` (5 ms) — see ``--lc-switch-interval``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from gevent import monkey
from locust import events

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lc_common import Crowd, Runtime, install_runtime, is_master, monotonic
from smsc_channel import smsc_config

from simulator.smsc.handsets import MtRecorder, ReceivedMt
from simulator.smsc.server import SmscServer
from simulator.smsc.store import Message

_start_os_thread = monkey.get_original("_thread", "start_new_thread")


class ThreadedSmsc:
    """SmscServer on uvloop in a real OS thread; MT go to the gevent side via a deque."""

    def __init__(self, deliver_window: int) -> None:
        self.deliver_window = deliver_window
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: SmscServer | None = None
        self.port = 0
        self.tid = 0
        self.started = False
        self.done = False
        self.error: BaseException | None = None
        self.mts: collections.deque[tuple[int, float]] = collections.deque()
        self._stop: asyncio.Event | None = None
        hub = gevent.get_hub()
        self._wake = gevent.event.Event()
        self._async = hub.loop.async_()
        self._async.start(self._wake.set)
        self.rt: Runtime | None = None
        self.injected = 0
        self.calls = 0

    # --- SMSC thread ---------------------------------------------------------------------

    def _run(self) -> None:
        import uvloop

        self.tid = threading.get_native_id()
        loop = self.loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to the gevent side
            self.error = exc
        finally:
            loop.close()
            self.done = True

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        recorder = MtRecorder(size=1000, on_complete=self._on_mt)
        self.server = SmscServer(smsc_config(0, 0.0, self.deliver_window), sink=recorder)
        await self.server.start()
        self.port = self.server.port
        self.started = True
        await self._stop.wait()
        await self.server.stop(drain_timeout=0.2)

    def _on_mt(self, mt: ReceivedMt, msg: Message, *_: object) -> None:
        self.mts.append((int(mt.destination_addr), monotonic()))
        self._async.send()  # wakes the gevent hub (thread-safe)

    def _inject(self, items: list[tuple[int, bytes]]) -> None:
        assert self.server is not None
        op = self.server.operator()
        for number, text in items:
            op.inject_mo(str(number), text.decode())
        self.injected += len(items)

    # --- gevent side ---------------------------------------------------------------------

    def start(self) -> None:
        _start_os_thread(self._run, ())
        while not self.started and self.error is None and not self.done:
            gevent.sleep(0.01)
        if self.error is not None:
            raise RuntimeError(f"SMSC thread failed: {self.error!r}")
        gevent.spawn(self._drain)

    def inject(self, items: list[tuple[int, bytes]]) -> None:
        assert self.loop is not None
        self.calls += 1
        self.loop.call_soon_threadsafe(self._inject, items)

    def receivers(self) -> int:
        if self.server is None:
            return 0
        return sum(len(a.receivers) for a in self.server.operator().accounts.values())

    def _drain(self) -> None:
        mts = self.mts
        while True:
            self._wake.wait()
            self._wake.clear()
            rt = self.rt
            t_recv = monotonic()
            while mts:
                number, t_mt = mts.popleft()
                if rt is not None:
                    rt.on_reply(number, t_mt, t_recv)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and not self.done:
            self.loop.call_soon_threadsafe(self._stop.set)
            for _ in range(300):
                if self.done:
                    break
                gevent.sleep(0.01)


SMSC: ThreadedSmsc | None = None


@events.init.add_listener
def _init(environment: Any, **_kw: Any) -> None:
    """After the fork: start this worker's SMSC and tell run.py its port."""
    global SMSC
    if is_master(environment):
        return
    SMSC = ThreadedSmsc(environment.parsed_options.lc_deliver_window)
    SMSC.start()
    ports = os.environ.get("LC_PORTS")
    if ports:
        info = {"port": SMSC.port, "pid": os.getpid(), "tid": SMSC.tid}
        Path(ports, f"{os.getpid()}.json").write_text(json.dumps(info))


@events.test_start.add_listener
def _start(environment: Any, **_kw: Any) -> None:
    if is_master(environment) or SMSC is None:
        return
    rt = install_runtime(environment)
    smsc = SMSC
    smsc.rt = rt
    rt.collectors.append(lambda: {"inject_calls": smsc.calls, "injected": smsc.injected})


@events.quitting.add_listener
def _quit(environment: Any, **_kw: Any) -> None:
    if SMSC is not None:
        SMSC.stop()


class Subscribers(Crowd):
    def ready(self) -> bool:
        return SMSC is not None and SMSC.receivers() > 0

    def send(self, items: list[tuple[int, bytes]], due: float) -> None:
        assert SMSC is not None
        SMSC.inject(items)
