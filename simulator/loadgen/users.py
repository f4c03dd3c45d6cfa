"""Locust user classes: subscribers texting 1442, and the campaign manager.

``SubscriberUser`` is open loop: every few milliseconds it sends what the shape's rate
owes since its last turn, never waiting for an answer (answers are timed at the SMSC
and come back as request events). Each user acts for many numbers. ``CampaignManager``
is one user (``fixed_count``) that does the scenario's actions on their schedule through
RapidPro's API, so broadcasts and flow starts show as API requests with their latency,
exactly as they would against a real RapidPro; and follows what each one's numbers then
receive (``harness.delivery``): "DELIVERY" requests give the time from the action's
first API call to the last MT reaching the SMSC side and to the last receipt reaching
the platform, each with the numbers that got there, or a failure saying how many did
not by the scenario's ``receipt_completion_time`` (else by ``REPORT_BEFORE_END`` before
the load's end; an action too late for that is judged when the load ends).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.pool
from locust import HttpUser, User, constant, task

from simulator.scenario.spec import Action

from .runtime import DeliveryWatch, Runtime, report_delivery, runtime

log = logging.getLogger("smsim.loadgen")

#: Seconds between a subscriber user's turns.
TICK = 0.01
#: RapidPro's limit of URNs in one broadcast or flow start.
URNS_PER_CALL = 100
#: API calls the manager has in flight at once for one big action.
API_CONCURRENCY = 4
#: Seconds to wait for every part to answer an action's TRACK before its first API call.
TRACK_TIMEOUT = 5.0
#: Seconds between looks at an action's delivery.
DELIVERY_POLL = 0.05
#: An action with no receipt_completion_time gate must be complete this long before the
#: load ends: Locust rewrites its CSV files once a second and closes them as it stops,
#: so a request fired as the test stops is in its console table and HTML report only.
REPORT_BEFORE_END = 2.0


def _open_loop(rate: Callable[[float], float], act: Callable[[], None], t0: float) -> None:
    """Every ``TICK``, do ``act`` as often as ``rate(t)`` (per second) owes since the last
    turn, whatever happened to the earlier ones: arrivals never wait for answers."""
    credit = 0.0
    last = time.monotonic()
    while True:
        gevent.sleep(TICK)
        now = time.monotonic()
        credit += rate(now - t0) * (now - last)
        last = now
        n = int(credit)
        credit -= n
        for _ in range(n):
            act()


class SubscriberUser(User):
    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        self.rt: Runtime = runtime(self.environment)

    @task
    def text_1442(self) -> None:
        rt = self.rt
        if rt.settings.scenario.load.mo is None:
            gevent.sleep(1.0)
            return
        send = rt.channel.send
        _open_loop(rt.my_rate, lambda: send(rt.next_sender(), rt.next_text()), rt.t0)


class UssdDialler(User):
    """Subscribers dialling *1442#, open loop like ``SubscriberUser``; what they do on
    each screen is the SMSC's USSD behaviour model, judged there (ussd_* gates)."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        self.rt: Runtime = runtime(self.environment)

    @task
    def dial(self) -> None:
        rt = self.rt
        ussd = rt.settings.scenario.ussd
        if ussd is None:
            gevent.sleep(1.0)
            return
        dial, code = rt.channel.dial, ussd.service_code
        _open_loop(rt.my_dial_rate, lambda: dial(rt.next_sender(), code), rt.t0)


def _urn(msisdn: str) -> str:
    return f"tel:+{msisdn}"


class CampaignManager(HttpUser):
    abstract = True
    fixed_count = 1
    wait_time = constant(3600)

    def on_start(self) -> None:
        self.rt: Runtime = runtime(self.environment)
        self._headers = {"Authorization": f"Token {self.rt.settings.api_token}"}
        self._flows: dict[str, str] | None = None

    def _flow_uuid(self, name_or_uuid: str) -> str | None:
        if self._flows is None:
            with self.client.get(
                "/api/v2/flows.json", headers=self._headers, name="GET flows", catch_response=True
            ) as r:
                if r.status_code != 200:
                    r.failure(f"{r.status_code}")
                    return None
                self._flows = {}
                for f in r.json().get("results", []):
                    self._flows[f["name"]] = f["uuid"]
                    self._flows[f["uuid"]] = f["uuid"]
        return self._flows.get(name_or_uuid)

    @task
    def run_actions(self) -> None:
        rt = self.rt
        for i, action in enumerate(rt.settings.scenario.actions):
            wait = rt.t0 + action.at - time.monotonic()
            if wait > 0:
                gevent.sleep(wait)
            self._do(i, action)
        gevent.sleep(10**6)  # done: Locust's run time ends the test

    def _do(self, i: int, action: Action) -> None:
        rt = self.rt
        numbers = [rt.population.msisdn(j) for j in rt.blocks[i].indices()]
        if action.broadcast is not None:
            body: dict[str, Any] = {"text": action.broadcast.text}
            self._follow(i, action)
            self._in_chunks("/api/v2/broadcasts.json", "POST broadcasts", body, numbers)
        elif action.flow_start is not None:
            uuid = self._flow_uuid(action.flow_start.flow)
            if uuid is None:
                self.environment.events.request.fire(
                    request_type="API",
                    name="POST flow_starts",
                    response_time=0,
                    response_length=0,
                    exception=LookupError(f"no flow named {action.flow_start.flow!r}"),
                    context={},
                )
                return
            self._follow(i, action)
            self._in_chunks("/api/v2/flow_starts.json", "POST flow_starts", {"flow": uuid}, numbers)
        elif action.mo_wave is not None:
            self._mo_wave(action, numbers)

    def _follow(self, i: int, action: Action) -> None:
        """Have every part follow action ``i``'s numbers (answered before the first API
        call, so no MT of it goes uncounted), then watch them until complete."""
        rt = self.rt
        block = rt.blocks[i]
        if block.count == 0:
            return
        view = rt.channel.delivery
        rt.channel.track(i, block.start, block.count)
        wait_until = time.monotonic() + TRACK_TIMEOUT
        while not view.acked(i) and time.monotonic() < wait_until:
            gevent.sleep(0.005)
        started = time.monotonic()
        if view.blind:
            log.warning("delivery_unfollowed action=%d reason=no_population", i)
            return
        if not view.acked(i):  # followed anyway: a silent part's numbers show as missing
            log.warning("delivery_track_unanswered action=%d after=%gs", i, TRACK_TIMEOUT)
        sc = rt.settings.scenario
        gate = sc.gates.receipt_completion_time
        # Without a gate: by the load's end, early enough for Locust's files to show it.
        end = rt.t0 + sc.time.duration - REPORT_BEFORE_END
        deadline = started + gate if gate is not None else end if end > started else None
        w = DeliveryWatch(i, action.kind, block.count, started, deadline)
        rt.watches.append(w)
        rt.watchers.append(gevent.spawn(self._watch, w))

    def _watch(self, w: DeliveryWatch) -> None:
        events = self.environment.events
        while True:
            gevent.sleep(DELIVERY_POLL)
            final = w.deadline is not None and time.monotonic() >= w.deadline
            if report_delivery(self.rt, events, w, final):
                return

    def _in_chunks(self, path: str, name: str, body: dict[str, Any], numbers: list[str]) -> None:
        def post(chunk: list[str]) -> None:
            self.client.post(
                path,
                json={**body, "urns": [_urn(n) for n in chunk]},
                headers=self._headers,
                name=name,
            )

        pool = gevent.pool.Pool(API_CONCURRENCY)
        for start in range(0, len(numbers), URNS_PER_CALL):
            pool.spawn(post, numbers[start : start + URNS_PER_CALL])
        pool.join()

    def _mo_wave(self, action: Action, numbers: list[str]) -> None:
        wave = action.mo_wave
        assert wave is not None
        rt = self.rt
        texts = wave.texts
        steps = max(1, int(wave.over / 0.05))
        per_step = len(numbers) / steps
        sent = 0
        for step in range(steps):
            upto = len(numbers) if step == steps - 1 else int((step + 1) * per_step)
            for k in range(sent, upto):
                rt.channel.send(numbers[k], texts[k % len(texts)])
            sent = upto
            if step < steps - 1:
                gevent.sleep(wave.over / steps)
