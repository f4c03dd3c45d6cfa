"""The SMSC process: one listener per operator, one timer heap, one keep-alive tick.

Use it from asyncio (``async with SmscServer(config) as smsc``) or from a thread
(``SmscThread``, for blocking clients such as smpplib in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from simulator.clock import SimClock
from simulator.config import FaultKind, FaultRule, SmscConfig
from simulator.smpp.pdu import DeliverSm, Unbind
from simulator.smpp.session import SessionStateError

from .connection import SmppConnection
from .faults import Fault, FaultPlan
from .handsets import MtRecorder, MtSink
from .ids import IdCounter, MessageIds
from .listener import Listener
from .operator import OperatorSmsc
from .receipts import ReceiptPolicy
from .scheduler import TimerQueue
from .stats import SmscStats
from .store import Message
from .tls import TlsCounters, count_handshakes, server_context

if TYPE_CHECKING:
    from simulator.subscribers.engine import SubscriberEngine
    from simulator.ussd.http_gateway import HttpUssdNetwork
    from simulator.ussd.network import UssdHandset, UssdNetwork
    from simulator.ussd.ports import UssdPort
    from simulator.ussd.session import UssdSession

    from .control import ControlServer
    from .journal import Journal
    from .metrics import ReplyTimer
    from .recovery import Recovered

log = logging.getLogger("smsim.smsc")


class TrafficObserver(Protocol):
    """Sees traffic without owning it: the load-test harness times replies with it."""

    def on_mo(self, source: str) -> None:
        """An MO from ``source`` was injected through ``SmscServer.inject_mo``."""

    def on_mt(self, msg: Message) -> None:
        """An MT (one part) was accepted for the handset ``msg.destination_addr``."""


class ReceiptObserver(Protocol):
    """A ``TrafficObserver`` may also have this; only then does a receipt cost a call."""

    def on_receipt(self, receipt: DeliverSm) -> None:
        """The platform answered the receipt ``receipt`` (for the handset in its
        ``source_addr``) with status 0: delivered to it."""


def _fan_out(hooks: Sequence[Callable[[Any], None]]) -> Callable[[Any], None] | None:
    """One callable that calls every one of ``hooks`` in order; None for none, the hook
    itself for one. Built once: an MT or a receipt then costs a call per hook, not a
    method looking up a tuple to loop over (with metrics on, callgrind counted the SMSC
    at 255,900 instructions a message with the method, 253,000-253,900 with closures)."""
    if len(hooks) <= 1:
        return hooks[0] if hooks else None
    if len(hooks) == 2:
        first, second = hooks

        def both(item: Any) -> None:
            first(item)
            second(item)

        return both
    every_hook = tuple(hooks)

    def every(item: Any) -> None:
        for hook in every_hook:
            hook(item)

    return every


def _receipt_hook(observers: Sequence[object]) -> Callable[[DeliverSm], None] | None:
    """One callable for every observer's ``on_receipt``; None when none has one."""
    return _fan_out([hook for o in observers if callable(hook := getattr(o, "on_receipt", None))])


class _Tee:
    """The sink, then every observer: one MT seen by all (``on_mt``, from ``_fan_out``)."""

    __slots__ = ("_sink", "on_mt")

    def __init__(self, sink: MtSink, observers: Sequence[TrafficObserver]) -> None:
        self._sink = sink
        on_mt = _fan_out([sink.on_mt, *(o.on_mt for o in observers)])
        assert on_mt is not None  # the sink's at least
        self.on_mt = on_mt

    def __getattr__(self, name: str) -> Any:  # on_cancel / on_replace of the sink
        return getattr(self._sink, name)


class SmscServer:
    def __init__(
        self,
        config: SmscConfig | None = None,
        *,
        clock: SimClock | None = None,
        sink: MtSink | None = None,
        policy: ReceiptPolicy | None = None,
        reuse_port: bool = False,
        observers: Sequence[TrafficObserver] = (),
    ) -> None:
        self.config = config or SmscConfig()
        self.clock = clock or SimClock(self.config.time_scale)
        self.recorder = MtRecorder(self.config.mt_log_size, self.config.reassembly_timeout)
        self.subscribers: SubscriberEngine | None = None
        if self.config.population.enabled and sink is None and policy is None:
            from simulator.subscribers.engine import SubscriberEngine

            self.subscribers = SubscriberEngine(self.config, self.clock)
            self.recorder = self.subscribers.recorder
            sink = policy = self.subscribers
        self.sink: MtSink = sink or self.recorder
        #: The control API (``config.control``), started with the server when enabled.
        self.control: ControlServer | None = None
        self.replies: ReplyTimer | None = None
        if self.config.control.enabled and self.config.control.metrics:
            from .metrics import ReplyTimer

            self.replies = ReplyTimer()
            observers = (*observers, self.replies)
        self._observers = tuple(observers)
        if self._observers:
            self.sink = _Tee(self.sink, self._observers)
        self._on_receipt = _receipt_hook(self._observers)
        self._policy = policy
        self._reuse_port = reuse_port
        #: Who sees USSD screens (None: each operator's ``UssdRecorder``); set before start.
        self.ussd_handset: UssdHandset | None = None
        #: Operators whose USSD goes to an application's HTTP callback (``transport``).
        self.ussd_http: dict[str, HttpUssdNetwork] = {}
        self.operators: dict[str, OperatorSmsc] = {}
        self._servers: list[Listener] = []
        #: The TLS listeners, by operator (``OperatorConfig.tls.port`` set).
        self._tls_servers: dict[str, Listener] = {}
        #: The certificate each TLS listener serves (for clients to trust when self-signed).
        self.tls_certs: dict[str, Path] = {}
        #: Each TLS listener's handshakes: completed, failed by reason (/metrics).
        self.tls_counters: dict[str, TlsCounters] = {}
        self._timers = TimerQueue()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = float("inf")
        self._tick_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The durable message journal (``config.journal``), started with the server.
        self.journal: Journal | None = None
        #: What start() queued again from an earlier run's journal, by operator.
        self.recovered: dict[str, Recovered] = {}
        #: Fault injection, shared by every operator (``config.faults``, the control API,
        #: scenarios' chaos schedules).
        self.faults = FaultPlan(self.config.faults.seed)
        #: Message ids: one sequence for every operator, so no two messages share an id.
        self.message_ids = IdCounter()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        plan = None
        if self.config.journal.enabled:
            from .journal import Journal

            if self.config.journal.recover:
                # What an earlier run into this directory left undelivered (recovery.py).
                from .recovery import read_plan

                plan = read_plan(Path(self.config.journal.path))
            self.journal = Journal(self.config.journal)
            self.journal.start()
        for op_cfg in self.config.operators:
            op = OperatorSmsc(
                op_cfg,
                scheduler=self._timers,
                schedule=self.schedule,
                clock=self.clock,
                sink=self.sink,
                policy=self._policy,
            )
            self.operators[op.name] = op
            op.faults = self.faults
            op.on_receipt = self._on_receipt
            op.ids = MessageIds(op_cfg.message_id_format, counter=self.message_ids)
            if self.journal is not None:
                op.journal = self.journal.operator(op.name)
                op.journal.route = lambda dst, op=op: op.route_mo(dst).system_id
                if plan:
                    self.recovered[op.name] = plan.apply(op, op.journal)
            if op_cfg.ussd.enabled and op_cfg.ussd.transport == "http":
                from simulator.ussd.http_gateway import HttpUssdNetwork

                http = HttpUssdNetwork(op_cfg.ussd, handset=self.ussd_handset, name=op.name)
                await http.start()
                self.ussd_http[op.name] = http
            elif op_cfg.ussd.enabled:
                from simulator.ussd.network import UssdNetwork

                op.ussd = UssdNetwork(
                    op,
                    op_cfg.ussd,
                    schedule=self.schedule,
                    loop_time=self._loop.time,
                    handset=self.ussd_handset,
                )
            # Accepts of our own: a locked-out IP's connections are closed as they come.
            server = await Listener.open(
                functools.partial(SmppConnection, op),
                op_cfg.host,
                op_cfg.port,
                refuses=op.refuses,
                reuse_port=bool(self._reuse_port),
                backlog=1024,
            )
            self._servers.append(server)
            log.info("listening operator=%s address=%s:%d", op.name, *self.address(op.name))
            if op_cfg.tls.port is not None:
                await self._listen_tls(op)
        if self.subscribers is not None:
            self.subscribers.attach(
                schedule=self.schedule,
                loop_time=self._loop.time,
                inject=self.inject_mo,
                operators=list(self.operators),
                alert=self.handset_available,
            )
        for rule in self.config.faults.rules:
            self.add_fault(rule)
        self._tick_task = asyncio.create_task(self._tick_loop())
        if self.config.control.enabled:
            from .control import ControlServer

            control = ControlServer(self, self.config.control)
            try:
                await control.start()
                self.control = control
            except OSError as exc:
                # The SMSC is the job; its side API must not stop it (a second smsim smsc
                # on the default port): say so and run without.
                log.warning(
                    "control_unavailable address=%s:%d error=%s (set --control-port)",
                    self.config.control.host,
                    self.config.control.port,
                    exc.strerror or exc,
                )

    async def _listen_tls(self, op: OperatorSmsc) -> None:
        """The operator's second listener: the same SMSC behind TLS."""
        assert self._loop is not None
        tls = op.config.tls
        ctx, cert = server_context(tls, op.name)
        self.tls_counters[op.name] = count_handshakes(ctx)
        # A locked-out IP is refused before its TLS handshake, not after it.
        assert tls.port is not None
        server = await Listener.open(
            lambda: SmppConnection(op),
            op.config.host,
            tls.port,
            refuses=op.refuses,
            ssl_context=ctx,
            ssl_handshake_timeout=tls.handshake_timeout,
            reuse_port=bool(self._reuse_port),
            backlog=1024,
        )
        self._tls_servers[op.name] = server
        self.tls_certs[op.name] = cert
        log.info(
            "listening_tls operator=%s address=%s:%d cert=%s",
            op.name,
            *self.tls_address(op.name),
            cert,
        )

    def tls_address(self, operator: str | None = None) -> tuple[str, int]:
        """(host, port) of an operator's TLS listener; KeyError when it has none."""
        name = self.operator(operator).name
        host, port = self._tls_servers[name].sockets[0].getsockname()[:2]
        return host, port

    def address(self, operator: str | None = None) -> tuple[str, int]:
        """(host, port) an operator listens on (the real port when configured as 0)."""
        names = list(self.operators)
        index = names.index(operator) if operator else 0
        host, port = self._servers[index].sockets[0].getsockname()[:2]
        return host, port

    @property
    def port(self) -> int:
        return self.address()[1]

    async def stop(
        self, drain_timeout: float | None = None, *, deliver_timeout: float | None = None
    ) -> None:
        """Stop listening and refuse submits (ESME_RSYSERR); let the bound receivers take
        the queued receipts and MO (up to ``deliver_timeout``, ``config.shutdown_drain``);
        unbind every client (waiting up to ``drain_timeout``,
        ``config.shutdown_unbind_timeout``); close."""
        from .recovery import drain

        if drain_timeout is None:
            drain_timeout = self.config.shutdown_unbind_timeout
        if self.control is not None:
            await self.control.stop()
        for http in self.ussd_http.values():
            await http.stop()
        for server in (*self._servers, *self._tls_servers.values()):
            server.close()
        for op in self.operators.values():
            op.close()
            op.refuse_submits()
        if deliver_timeout is None:
            deliver_timeout = self.config.shutdown_drain
        await drain(list(self.operators.values()), deliver_timeout)
        if self._tick_task is not None:
            self._tick_task.cancel()
            # Awaited, so that no "Task was destroyed but it is pending" at interpreter exit.
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        conns = [c for op in self.operators.values() for c in op.connections]
        for conn in conns:
            if conn.session.is_bound:
                with contextlib.suppress(SessionStateError):
                    conn.send_request(Unbind())
            # Unbinding: deliveries requeued meanwhile must not be handed to it.
            conn.writable = False
        deadline = asyncio.get_running_loop().time() + drain_timeout
        while (
            any(not c.session.closed for c in conns)
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.02)
        for conn in conns:
            conn.abort()
        for server in (*self._servers, *self._tls_servers.values()):
            await server.wait_closed()
        if self._timer is not None:
            self._timer.cancel()
        if self.journal is not None:
            self.journal.stop()
        pending = sum(op.pending_deliveries() for op in self.operators.values())
        if pending or len(self._timers):
            log.warning(
                "stopped_with_pending deliveries=%d scheduled=%d", pending, len(self._timers)
            )

    async def __aenter__(self) -> SmscServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        servers = (*self._servers, *self._tls_servers.values())
        await asyncio.gather(*(s.serve_forever() for s in servers))

    # --- timers ---------------------------------------------------------------------------

    def schedule(self, due: float, fn: Callable[[Any], None], arg: Any) -> None:
        """Run ``fn(arg)`` at loop time ``due`` (one loop timer for the whole heap)."""
        self._timers.push(due, fn, arg)
        if due < self._timer_due:
            self._arm(due)

    def _arm(self, due: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = self._loop.call_at(due, self._run_timers)

    def _run_timers(self) -> None:
        assert self._loop is not None
        self._timer = None
        self._timer_due = float("inf")
        self._timers.run_due(self._loop.time())
        nxt = self._timers.next_due()
        if nxt is not None:
            self._arm(nxt)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.subscribers is not None:
                self.subscribers.spontaneous_tick()
            self.recorder.expire(self.clock.now())
            assert self._loop is not None
            for fault in self.faults.expire(self._loop.time()):
                log.info("fault_off id=%d name=%s hits=%d", fault.id, fault.name, fault.hits)
            for op in self.operators.values():
                op.close_unbound()
                for conn in list(op.connections):
                    events = conn.session.tick()
                    if events:
                        op.handle_events(conn, events)
                    conn.flush()

    # --- faults -----------------------------------------------------------------------------

    def add_fault(self, rule: FaultRule) -> Fault:
        """Put a fault rule on (``rule.start`` counted from now); ValueError when it names
        an operator or account the SMSC does not have, or a status that does not parse."""
        assert self._loop is not None, "start the server first"
        if rule.operator is not None and rule.operator not in self.operators:
            raise ValueError(f"no operator named {rule.operator!r}")
        if rule.account is not None and not any(
            rule.account in op.accounts for op in self.operators.values()
        ):
            raise ValueError(f"no account named {rule.account!r}")
        now = self._loop.time()
        fault = self.faults.add(rule, now)
        log.info(
            "fault_on id=%d name=%s kind=%s start_in=%gs duration=%s share=%g operator=%s "
            "account=%s",
            fault.id,
            fault.name,
            rule.kind.value,
            rule.start,
            f"{rule.duration:g}s" if rule.duration is not None else "-",
            rule.share,
            rule.operator or "*",
            rule.account or "*",
        )
        if FaultPlan.is_action(rule.kind):
            self.schedule(fault.start, self._fault_due, fault)
        return fault

    def loop_time(self) -> float:
        """The loop's clock, which fault rules' start and end are on."""
        assert self._loop is not None, "start the server first"
        return self._loop.time()

    def remove_fault(self, fault_id: int) -> Fault | None:
        fault = self.faults.remove(fault_id)
        if fault is not None:
            log.info("fault_off id=%d name=%s hits=%d", fault.id, fault.name, fault.hits)
        return fault

    def _fault_due(self, fault: Fault) -> None:
        if fault.removed:
            return
        rule = fault.rule
        touched = sum(
            op.fault_action(fault)
            for op in self.operators.values()
            if rule.operator is None or rule.operator == op.name
        )
        if rule.kind is not FaultKind.MALFORMED:
            fault.hits += 1
        log.warning(
            "fault_action id=%d name=%s kind=%s binds=%d%s",
            fault.id,
            fault.name,
            rule.kind.value,
            touched,
            f" for={rule.duration:g}s" if rule.kind is FaultKind.OUTAGE and rule.duration else "",
        )
        if rule.every is not None and not fault.removed:
            assert self._loop is not None
            due = self._loop.time() + rule.every
            if due < fault.end:
                self.schedule(due, self._fault_due, fault)

    # --- API --------------------------------------------------------------------------------

    def operator(self, name: str | None = None) -> OperatorSmsc:
        if name is None:
            return next(iter(self.operators.values()))
        return self.operators[name]

    def inject_mo(
        self, source: str, text: str | bytes, *, operator: str | None = None, **kw: Any
    ) -> list[DeliverSm]:
        """Queue an MO from ``source`` (see OperatorSmsc.inject_mo for the options)."""
        op = self.operator(operator)
        pdus = op.inject_mo(source, text, **kw)
        if op.journal is not None:
            op.journal.mo_injected(source, kw.get("destination", "1442"), pdus)
        for o in self._observers:
            o.on_mo(source)
        return pdus

    def ussd(self, operator: str | None = None) -> UssdNetwork:
        """An operator's USSD-over-SMPP network; KeyError when it has none."""
        network = self.operator(operator).ussd
        if network is None:
            raise KeyError(f"no USSD over SMPP on operator {self.operator(operator).name}")
        return network

    def ussd_port(self, operator: str | None = None) -> UssdPort:
        """An operator's USSD network over either transport; KeyError when off."""
        name = self.operator(operator).name
        return self.ussd_http[name] if name in self.ussd_http else self.ussd(name)

    def ussd_networks(self) -> list[UssdNetwork | HttpUssdNetwork]:
        """Every operator's USSD network (for counters and handsets)."""
        smpp = [op.ussd for op in self.operators.values() if op.ussd is not None]
        return [*smpp, *self.ussd_http.values()]

    def ussd_dial(
        self, msisdn: str, service_code: str | None = None, *, operator: str | None = None
    ) -> UssdSession | None:
        """``msisdn`` dials a USSD code on its serving operator (or ``operator``)."""
        if operator is None and self.subscribers is not None:
            operator = self.subscribers.listener_for(msisdn)
        return self.ussd_port(operator).dial(msisdn, service_code)

    async def outbind(
        self, system_id: str, *, operator: str | None = None, address: tuple[str, int] | None = None
    ) -> SmppConnection:
        """Connect to an account's ESME and send outbind (see OperatorSmsc.outbind)."""
        return await self.operator(operator).outbind(system_id, address)

    def handset_available(self, number: str, availability: int = 0) -> int:
        """A handset is reachable again: alert_notification to every account that asked
        (set_dpf) on any operator; returns how many were queued."""
        return sum(
            len(op.handset_available(number, availability)) for op in self.operators.values()
        )

    def stats(self) -> SmscStats:
        total = SmscStats()
        for op in self.operators.values():
            total.add(op.stats)
        return total

    def pending_deliveries(self) -> int:
        return sum(op.pending_deliveries() for op in self.operators.values())

    def on_the_wire(self) -> tuple[int, int]:
        """(receipts, MO parts) sent to clients and not yet answered."""
        receipts = mo = 0
        for op in self.operators.values():
            r, m = op.on_the_wire()
            receipts += r
            mo += m
        return receipts, mo

    def scheduled(self) -> int:
        """Timed work on the heap (receipts, replies, redeliveries)."""
        return len(self._timers)


def new_event_loop(use_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    """uvloop when installed and wanted (it cuts the server's CPU by a quarter)."""
    if use_uvloop:
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


class SmscThread:
    """An SMSC running in its own thread and loop: for blocking clients and Kannel tests.

    ``call(fn, *args)`` runs ``fn`` on the SMSC's loop and returns its result.
    """

    def __init__(self, config: SmscConfig | None = None, **kw: Any) -> None:
        self._config = config
        self._kw = kw
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.server: SmscServer | None = None
        self._thread = threading.Thread(target=self._run, name="smsc", daemon=True)

    def _run(self) -> None:
        loop = new_event_loop(self._config.uvloop if self._config else True)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.server = SmscServer(self._config, **self._kw)
        await self.server.start()
        self._ready.set()
        await self._stop.wait()
        await self.server.stop()

    def start(self) -> SmscThread:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"SMSC failed to start: {self._error!r}") from self._error
        return self

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        assert self._loop is not None

        async def run() -> Any:
            return fn(*args, **kw)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def __enter__(self) -> SmscThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
