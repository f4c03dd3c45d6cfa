"""Kannel mode: RapidPro courier's Kannel channel contract (``handlers/kannel``), over HTTP.

MT: GET on Kannel's ``sendsms`` with username, password, from, to, text, dlr-mask=27 and
dlr-url=``<callback_base>/c/kn/{uuid}/status?id=<msg id>&status=%d`` (non-GSM text as
``coding=2&charset=utf8``). A 2xx answer means Kannel queued it: the message is wired.
Kannel then calls the dlr-url: 1 delivered, 2 and 16 errored (re-sent by the sender up
to ``max_attempts``), 8 (SMSC ack) sent, 4 (queued on the SMSC) wired.

MO: Kannel's ``post-url`` calls ``/c/kn/{uuid}/receive`` with id, ts, sender, message,
in a form body (courier's documented POST) or in the query string (how
``kannel.conf.example``'s post-url sends them); both are read.

The receive and status routes are added to the API's aiohttp application, so one port
serves the REST API and Kannel's callbacks, as one RapidPro host does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from aiohttp import web

from simulator.config import KannelChannelConfig, PlatformConfig
from simulator.platform.model import Msg, MsgStatus
from simulator.platform.sender import Sender
from simulator.smpp.text import is_gsm7

log = logging.getLogger("smsim.platform.kannel")

#: courier's dlr-mask: 1 delivered + 2 undelivered + 8 SMSC ack + 16 SMSC reject.
DLR_MASK = 27
#: Kannel DLR type -> RapidPro status.
DLR_STATUS = {
    1: MsgStatus.DELIVERED,
    2: MsgStatus.ERRORED,
    16: MsgStatus.ERRORED,
    4: MsgStatus.WIRED,
    8: MsgStatus.SENT,
}


@dataclass(slots=True)
class KannelStats:
    sendsms: int = 0
    sendsms_errors: int = 0
    dlr: int = 0
    dlr_unmatched: int = 0
    mo: int = 0
    mo_rejected: int = 0


class KannelChannel:
    """The one Kannel channel: sends through sendsms, takes Kannel's callbacks."""

    def __init__(
        self,
        cfg: KannelChannelConfig,
        platform: PlatformConfig,
        sender: Callable[[], Sender | None],
        receive: Callable[[str, str, str], object],
        lookup: Callable[[int], Msg | None],
        name: str = "kannel",
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.short_code = platform.short_code
        self._sender = sender
        self.receive = receive
        self.lookup = lookup
        self.stats = KannelStats()
        self._slots = asyncio.Semaphore(cfg.concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        base = cfg.callback_base.rstrip("/")
        # %d is Kannel's: it puts the DLR type there.
        self._dlr_base = f"{base}/c/kn/{quote(cfg.channel_uuid)}/status?status=%d&id="

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout),
            connector=aiohttp.TCPConnector(limit=self.cfg.concurrency),
        )

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def add_routes(self, app: web.Application) -> None:
        base = f"/c/kn/{self.cfg.channel_uuid}"
        app.router.add_route("POST", f"{base}/receive", self.on_receive)
        app.router.add_route("GET", f"{base}/receive", self.on_receive)
        app.router.add_route("POST", f"{base}/status", self.on_status)
        app.router.add_route("GET", f"{base}/status", self.on_status)

    # ------------------------------------------------------------------ MT

    def params(self, msg: Msg) -> dict[str, str]:
        """The sendsms query for ``msg``, as courier builds it."""
        params = {
            "username": self.cfg.username,
            "password": self.cfg.password,
            "from": self.short_code,
            "to": msg.urn.removeprefix("tel:"),
            "text": msg.text,
            "dlr-mask": str(DLR_MASK),
            "dlr-url": f"{self._dlr_base}{msg.id}",
        }
        if not is_gsm7(msg.text):
            params["coding"] = "2"
            params["charset"] = "utf8"
        return params

    async def send(self, msg: Msg) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._sendsms(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sendsms(self, msg: Msg) -> None:
        sender = self._sender()
        assert self._session is not None and sender is not None
        self.stats.sendsms += 1
        try:
            async with self._session.get(self.cfg.sendsms_url, params=self.params(msg)) as resp:
                body = await resp.text()
                ok = 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, body = False, repr(exc)
        finally:
            self._slots.release()
        if ok:
            sender.wired(msg, str(msg.id))
        else:
            self.stats.sendsms_errors += 1
            log.warning("sendsms_failed msg=%d answer=%s", msg.id, body.strip()[:80])
            sender.failed_submit(msg, body)

    # ------------------------------------------------------------------ callbacks

    @staticmethod
    async def _fields(request: web.Request) -> dict[str, str]:
        fields = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            form = await request.post()
            fields.update({k: v for k, v in form.items() if isinstance(v, str)})
        return fields

    async def on_receive(self, request: web.Request) -> web.Response:
        f = await self._fields(request)
        sender, text = f.get("sender"), f.get("message")
        if not sender or text is None:
            self.stats.mo_rejected += 1
            return web.json_response(
                {"message": "Error", "data": [{"type": "error", "error": "missing sender"}]},
                status=400,
            )
        self.stats.mo += 1
        msg = self.receive(sender, text, self.name)
        if msg is None:
            self.stats.mo_rejected += 1
            return web.json_response({"message": "Error", "data": []}, status=400)
        return web.json_response({"message": "Message Accepted", "data": []})

    async def on_status(self, request: web.Request) -> web.Response:
        f = await self._fields(request)
        self.stats.dlr += 1
        try:
            msg_id, code = int(f.get("id", "")), int(f.get("status", ""))
        except ValueError:
            self.stats.dlr_unmatched += 1
            return web.json_response({"message": "Error", "data": []}, status=400)
        status = DLR_STATUS.get(code)
        msg = self.lookup(msg_id)
        sender = self._sender()
        if status is None or msg is None or sender is None:
            self.stats.dlr_unmatched += 1
            # courier answers 200 for a message it no longer knows: Kannel must not retry
            return web.json_response({"message": "Status Update Ignored", "data": []})
        if status is MsgStatus.WIRED:
            pass  # already wired when sendsms answered
        else:
            sender.status(msg, status)
        return web.json_response({"message": "Status Update Accepted", "data": []})
