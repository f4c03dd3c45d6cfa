"""USSD over an aggregator's HTTP callback: the network's side, on asyncio + aiohttp.

The same session rules as over SMPP (``UssdSessions``): a dial or an input is the
application's turn, carried by one POST that must be answered within ``app_timeout``
or the network releases the session (and drops the request); the subscriber's turn,
the whole-session timer and one-session-per-subscriber are enforced alike. Screens go
to the same ``UssdHandset`` as the SMPP network's, so simulated people drive either.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import aiohttp

from simulator.config import UssdConfig
from simulator.smsc.stats import LatencyHistogram

from .aggregator import BadAnswer, callback_form, read_answer
from .mapping import short_code_of
from .ports import UssdHandset, UssdRecorder
from .session import ScreenStatus, UssdSession, UssdSessions

log = logging.getLogger("smsim.ussd.http")


class HttpUssdNetwork:
    """A network whose USSD gateway POSTs each step to the application's URL."""

    def __init__(
        self,
        config: UssdConfig,
        *,
        handset: UssdHandset | None = None,
        name: str = "http",
        max_connections: int = 256,
    ) -> None:
        if not config.url:
            raise ValueError("HttpUssdNetwork needs config.url")
        self.config = config
        self.name = name
        self.sessions = UssdSessions(config)
        self.handset: UssdHandset = handset or UssdRecorder()
        self.screen_latency = LatencyHistogram()
        self.http_errors = 0
        self._codes = frozenset(short_code_of(c) for c in config.service_codes)
        self._ids = itertools.count(1)
        self._session_ids: dict[str, str] = {}
        self._requests: dict[str, asyncio.Task[None]] = {}
        self._max_connections = max_connections
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed = float("inf")

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=self._max_connections)
        self._http = aiohttp.ClientSession(connector=connector)

    async def stop(self) -> None:
        for task in list(self._requests.values()):
            task.cancel()
        await asyncio.gather(*self._requests.values(), return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> HttpUssdNetwork:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _now(self) -> float:
        assert self._loop is not None, "start() first"
        return self._loop.time()

    # --- UssdPort ---------------------------------------------------------------------------

    def dial(self, msisdn: str, service_code: str | None = None) -> UssdSession | None:
        code = service_code or self.config.service_codes[0]
        if short_code_of(code) not in self._codes:
            return None
        s = self.sessions.dial(msisdn, code, self._now())
        if s is None:
            return None
        self._session_ids[msisdn] = f"smsim-{self.name}-{next(self._ids)}"
        self._post(s)
        return s

    def answer(self, msisdn: str, text: str) -> bool:
        s = self.sessions.answer(msisdn, text, self._now())
        if s is None:
            return False
        self._post(s)
        return True

    def abandon(self, msisdn: str) -> bool:
        s = self.sessions.abandon(msisdn, self._now())
        if s is None:
            return False
        self._forget(msisdn)
        return True

    # --- the callback -----------------------------------------------------------------------

    def _post(self, s: UssdSession) -> None:
        assert self._loop is not None
        form = callback_form(s, self._session_ids[s.msisdn], self.config)
        task = self._loop.create_task(self._request(s.msisdn, form, s.turn_started))
        self._requests[s.msisdn] = task
        self._arm()

    async def _request(self, msisdn: str, form: dict[str, str], asked_at: float) -> None:
        assert self._http is not None
        try:
            async with self._http.post(self.config.url, data=form) as resp:
                body = await resp.text()
                if resp.status != 200:
                    raise BadAnswer(f"HTTP {resp.status}")
            text, final = read_answer(body)
        except asyncio.CancelledError:
            raise
        except (BadAnswer, aiohttp.ClientError, OSError) as exc:
            self.http_errors += 1
            if self._requests.get(msisdn) is asyncio.current_task():
                del self._requests[msisdn]
            s = self.sessions.fail(msisdn)
            log.info("ussd_http_error network=%s msisdn=%s error=%s", self.name, msisdn, exc)
            if s is not None:
                self._session_ids.pop(msisdn, None)
                self.handset.on_release(self, s)
            return
        if self._requests.get(msisdn) is asyncio.current_task():
            del self._requests[msisdn]
        now = self._now()
        status, s = self.sessions.screen(msisdn, text, final, now)
        if status is ScreenStatus.TOO_LONG:
            s = self.sessions.fail(msisdn)
            log.info("ussd_http_error network=%s msisdn=%s error=too_long", self.name, msisdn)
            if s is not None:
                self._session_ids.pop(msisdn, None)
                self.handset.on_release(self, s)
            return
        if s is None or status not in (ScreenStatus.SHOWN, ScreenStatus.FINAL):
            return  # released while the request was out
        self.screen_latency.observe(now - asked_at)
        if status is ScreenStatus.FINAL:
            self._session_ids.pop(msisdn, None)
        self.handset.on_screen(self, s, status is ScreenStatus.FINAL)
        self._arm()

    def _forget(self, msisdn: str) -> None:
        self._session_ids.pop(msisdn, None)
        task = self._requests.pop(msisdn, None)
        if task is not None:
            task.cancel()

    # --- timers -----------------------------------------------------------------------------

    def _arm(self) -> None:
        due = self.sessions.next_due()
        if due is None or due >= self._armed:
            return
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._armed = due
        self._timer = self._loop.call_at(due, self._on_timer)

    def _on_timer(self, *_: Any) -> None:
        self._timer = None
        self._armed = float("inf")
        for s in self.sessions.expire(self._now()):
            self._forget(s.msisdn)  # the aggregator stops waiting for the application
            log.info(
                "ussd_release network=%s msisdn=%s reason=%s",
                self.name,
                s.msisdn,
                s.release.value if s.release else "-",
            )
            self.handset.on_release(self, s)
        self._arm()
