"""Prometheus metrics of a running SMSC, read from its counters at scrape time.

Nothing here runs per PDU except ``ReplyTimer`` (one dict operation per MO and per MT):
the operators keep plain integer counters (``SmscStats``, ``pdus_in``/``pdus_out``,
``delivery_rtt``) and ``SmscCollector`` turns them into metric families when Prometheus
asks. Each control server has its own ``CollectorRegistry``: no process-wide state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from simulator.smpp.constants import CommandId, status_name

from .stats import LatencyHistogram

if TYPE_CHECKING:
    from .server import SmscServer
    from .store import Message

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Numbers whose MO waits for the platform's answer, at most (the oldest are forgotten).
_MAX_WAITING = 100_000


def command_name(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"0x{command_id:08x}"


def split_key(key: int) -> tuple[str, str]:
    """(command, status) of a ``pdus_in``/``pdus_out`` key."""
    return command_name(key & 0xFFFFFFFF), status_name(key >> 32)


class ReplyTimer:
    """The platform's reply delay: from an MO injected for a number to the next MT the
    platform submits to that number (a TrafficObserver of the SMSC)."""

    __slots__ = ("_waiting", "histogram")

    def __init__(self) -> None:
        self._waiting: dict[str, float] = {}
        self.histogram = LatencyHistogram()

    def on_mo(self, source: str) -> None:
        waiting = self._waiting
        key = source.lstrip("+")
        if key not in waiting and len(waiting) >= _MAX_WAITING:
            del waiting[next(iter(waiting))]
        waiting.setdefault(key, time.monotonic())

    def on_mt(self, msg: Message) -> None:
        if not self._waiting:
            return
        sent = self._waiting.pop(msg.destination_addr.lstrip("+"), None)
        if sent is not None:
            self.histogram.observe(time.monotonic() - sent)

    @property
    def waiting(self) -> int:
        return len(self._waiting)


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def _add_histogram(family: HistogramMetricFamily, labels: list[str], h: LatencyHistogram) -> None:
    buckets: list[tuple[str, float]] = []
    seen = 0
    for bound, n in zip((*h.bounds, float("inf")), h.counts, strict=True):
        seen += n
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), seen))
    family.add_metric(labels, buckets, h.total)


class SmscCollector:
    """Every metric of one SmscServer, built from its counters on each collect()."""

    def __init__(self, server: SmscServer, replies: ReplyTimer | None = None) -> None:
        self._server = server
        self._replies = replies

    def collect(self) -> Iterator[Metric]:
        server = self._server
        op_l = ["operator"]
        pdus = CounterMetricFamily(
            "smsim_pdus",
            "PDUs by direction, command and status",
            labels=[*op_l, "direction", "command", "status"],
        )
        submits = CounterMetricFamily(
            "smsim_submits", "submit_sm/submit_multi/data_sm requests", labels=op_l
        )
        accepted = CounterMetricFamily(
            "smsim_messages_accepted", "MT messages accepted (one per destination)", labels=op_l
        )
        throttled = CounterMetricFamily(
            "smsim_throttled", "submits answered ESME_RTHROTTLED (over the TPS)", labels=op_l
        )
        queue_full = CounterMetricFamily(
            "smsim_queue_full", "requests answered ESME_RMSGQFUL (window full)", labels=op_l
        )
        rejected = CounterMetricFamily(
            "smsim_rejected", "requests refused, by status", labels=[*op_l, "status"]
        )
        receipts = CounterMetricFamily(
            "smsim_receipts", "receipts that came due, by stat", labels=[*op_l, "stat"]
        )
        receipts_done = CounterMetricFamily(
            "smsim_receipts_delivered", "receipts acknowledged by the client", labels=op_l
        )
        mo = CounterMetricFamily(
            "smsim_mo", "MO parts, queued and delivered", labels=[*op_l, "state"]
        )
        retries = CounterMetricFamily(
            "smsim_deliver_retries", "deliver_sm requeued (busy client, timeout, drop)", labels=op_l
        )
        binds_total = CounterMetricFamily(
            "smsim_bind_attempts", "binds, by result", labels=[*op_l, "result"]
        )
        queue = GaugeMetricFamily(
            "smsim_queue_depth", "deliver_sm waiting for a receiver", labels=[*op_l, "account"]
        )
        held = GaugeMetricFamily(
            "smsim_receipts_held",
            "receipts held while receipts are paused",
            labels=[*op_l, "account"],
        )
        per_account = CounterMetricFamily(
            "smsim_account_messages",
            "per account: submits, accepted, throttled, receipts due, MO queued",
            labels=[*op_l, "account", "kind"],
        )
        tps = GaugeMetricFamily(
            "smsim_account_tps_limit",
            "the account's TPS limit (0: none)",
            labels=[*op_l, "account"],
        )
        binds = GaugeMetricFamily(
            "smsim_binds", "bound connections", labels=[*op_l, "account", "mode"]
        )
        win_l = [*op_l, "account", "peer"]
        dw_used = GaugeMetricFamily(
            "smsim_deliver_window_in_flight",
            "deliver_sm awaiting an answer, per bind",
            labels=win_l,
        )
        dw_size = GaugeMetricFamily(
            "smsim_deliver_window_size", "deliver_sm window, per bind", labels=win_l
        )
        sw_used = GaugeMetricFamily(
            "smsim_submit_window_in_flight",
            "client requests not yet answered, per bind",
            labels=win_l,
        )
        sw_size = GaugeMetricFamily(
            "smsim_submit_window_size", "requests a bind may have unanswered", labels=win_l
        )
        paused = GaugeMetricFamily(
            "smsim_receipts_paused", "1 while receipts are paused", labels=op_l
        )
        rtt = _histogram(
            "smsim_delivery_response_seconds", "deliver_sm to the client's deliver_sm_resp", op_l
        )
        for name, op in server.operators.items():
            labels = [name]
            for direction, counts in (("in", op.pdus_in), ("out", op.pdus_out)):
                for key, n in list(counts.items()):
                    pdus.add_metric([name, direction, *split_key(key)], n)
            s = op.stats
            submits.add_metric(labels, s.submits)
            accepted.add_metric(labels, s.accepted)
            throttled.add_metric(labels, s.throttled)
            queue_full.add_metric(labels, s.queue_full)
            for status, n in s.rejected_by_status.items():
                rejected.add_metric([name, status], n)
            for stat, n in s.receipts_by_stat.items():
                receipts.add_metric([name, stat], n)
            receipts_done.add_metric(labels, s.receipts_delivered)
            mo.add_metric([name, "queued"], s.mo_queued)
            mo.add_metric([name, "delivered"], s.mo_delivered)
            retries.add_metric(labels, s.deliver_retries)
            binds_total.add_metric([name, "ok"], s.binds)
            binds_total.add_metric([name, "refused"], s.bind_failures)
            paused.add_metric(labels, 1.0 if op.receipts_paused else 0.0)
            held_by: dict[str, int] = {}
            for acct, _ in op.held_receipts:
                held_by[acct.system_id] = held_by.get(acct.system_id, 0) + 1
            for sid, acct in op.accounts.items():
                queue.add_metric([name, sid], len(acct.outbox))
                held.add_metric([name, sid], held_by.get(sid, 0))
                tps.add_metric([name, sid], acct.tps)
                for kind, n in acct.stats.as_dict().items():
                    per_account.add_metric([name, sid, kind], n)
                modes: dict[str, int] = {}
                for conn in acct.binds:
                    mode = conn.session.state.value
                    modes[mode] = modes.get(mode, 0) + 1
                    session = conn.session
                    wl = [name, sid, conn.peer]
                    dw_used.add_metric(wl, session.window - session.window_free)
                    dw_size.add_metric(wl, session.window)
                    sw_used.add_metric(wl, session.pending_inbound)
                    sw_size.add_metric(wl, session.inbound_window or 0)
                for mode, n in modes.items():
                    binds.add_metric([name, sid, mode], n)
            _add_histogram(rtt, labels, op.delivery_rtt)
        yield from (pdus, submits, accepted, throttled, queue_full, rejected, receipts)
        yield from (receipts_done, mo, retries, binds_total, queue, held, tps, binds, per_account)
        yield from (dw_used, dw_size, sw_used, sw_size, paused, rtt)
        yield GaugeMetricFamily(
            "smsim_scheduled_timers", "timed work waiting on the heap", value=server.scheduled()
        )
        if self._replies is not None:
            reply = _histogram(
                "smsim_platform_reply_seconds",
                "an MO for a number to the platform's next MT to that number",
                [],
            )
            _add_histogram(reply, [], self._replies.histogram)
            yield reply
            yield GaugeMetricFamily(
                "smsim_platform_replies_awaited",
                "numbers whose MO the platform has not answered yet",
                value=self._replies.waiting,
            )
        yield from self._subscribers()
        yield from self._security()
        yield from self._faults()

    def _faults(self) -> Iterator[Metric]:
        """Fault rules now on the plan: how often each acted, and whether it is on."""
        labels = ["name", "kind"]
        hits = CounterMetricFamily(
            "smsim_fault_hits", "times each fault rule acted (requests, binds, PDUs)", labels=labels
        )
        active = GaugeMetricFamily(
            "smsim_fault_active", "1 while a fault rule is on", labels=labels
        )
        now = self._server.loop_time()
        for fault in self._server.faults.faults.values():
            key = [fault.name, fault.rule.kind.value]
            hits.add_metric(key, fault.hits)
            active.add_metric(key, 1 if fault.on(now) else 0)
        yield from (hits, active)

    def _security(self) -> Iterator[Metric]:
        """Who was kept out: refused binds by reason, lock-outs, refused and closed
        connections, TLS handshakes (completed, failed by reason, in progress)."""
        server = self._server
        op_l = ["operator"]
        refusals = CounterMetricFamily(
            "smsim_bind_refusals",
            "binds refused, by reason (bad_password, unknown_system_id, locked_out, "
            "ip_not_allowed, max_binds, not_tls, no_client_certificate, "
            "client_certificate_not_pinned, fault)",
            labels=[*op_l, "reason"],
        )
        lockouts = CounterMetricFamily(
            "smsim_bind_lockouts",
            "lock-outs started after repeated bad binds, by what was locked (ip, id)",
            labels=[*op_l, "key"],
        )
        refused = CounterMetricFamily(
            "smsim_connections_refused",
            "connections closed as they came, by reason",
            labels=[*op_l, "reason"],
        )
        closed = CounterMetricFamily(
            "smsim_connections_closed_unbound",
            "connections closed before a bind: bind_timeout, errors_before_bind",
            labels=[*op_l, "reason"],
        )
        handshakes = CounterMetricFamily(
            "smsim_tls_handshakes", "TLS handshakes completed", labels=op_l
        )
        failures = CounterMetricFamily(
            "smsim_tls_handshake_failures",
            "TLS handshakes failed, by OpenSSL's reason (or timeout, closed)",
            labels=[*op_l, "reason"],
        )
        abandoned = CounterMetricFamily(
            "smsim_tls_handshakes_abandoned",
            "TLS handshakes cut off unfinished (client hung up, or handshake_timeout)",
            labels=op_l,
        )
        in_progress = GaugeMetricFamily(
            "smsim_tls_handshakes_in_progress", "TLS handshakes under way", labels=op_l
        )
        for name, op in server.operators.items():
            s = op.stats
            for reason, n in s.bind_refusals.items():
                refusals.add_metric([name, reason], n)
            for key, n in s.lockouts.items():
                lockouts.add_metric([name, key], n)
            for reason, n in s.connection_refusals.items():
                refused.add_metric([name, reason], n)
            closed.add_metric([name, "bind_timeout"], s.bind_timeouts)
            closed.add_metric([name, "errors_before_bind"], s.junk_closed)
            tls = server.tls_counters.get(name)
            if tls is not None:
                handshakes.add_metric([name], tls.handshakes)
                abandoned.add_metric([name], tls.abandoned)
                in_progress.add_metric([name], tls.in_progress)
                for reason, n in tls.failures.items():
                    failures.add_metric([name, reason], n)
        yield from (refusals, lockouts, refused, closed)
        yield from (handshakes, failures, abandoned, in_progress)

    def _subscribers(self) -> Iterator[Metric]:
        engine = self._server.subscribers
        if engine is None:
            return
        summary = engine.summary()
        outcomes = CounterMetricFamily(
            "smsim_subscriber_outcomes",
            "MT parts by the recipient's serving operator and fate",
            labels=["serving_operator", "stat"],
        )
        for op, by_stat in summary.outcomes.items():
            for stat, n in by_stat.items():
                outcomes.add_metric([op, stat], n)
        replies = CounterMetricFamily(
            "smsim_subscriber_texts",
            "MO texts subscribers sent, by serving operator and kind",
            labels=["serving_operator", "kind"],
        )
        for op, by_kind in summary.replies.items():
            for kind, n in by_kind.items():
                replies.add_metric([op, kind], n)
        yield outcomes
        yield replies
        yield GaugeMetricFamily(
            "smsim_subscribers_touched", "subscribers with state", value=summary.touched
        )
        yield GaugeMetricFamily(
            "smsim_subscriber_replies_pending",
            "replies decided, not yet due",
            value=summary.pending_replies,
        )


class Metrics:
    """One registry with one collector: what /metrics serves."""

    def __init__(self, server: SmscServer, replies: ReplyTimer | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SmscCollector(server, replies))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
