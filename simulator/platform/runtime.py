"""The reference platform assembled and running: store, flows, service, sender, channels
and the HTTP server (REST API + Kannel callbacks) on one event loop.

``smsim platform`` and the end-to-end tests start the same ``PlatformRuntime``, so what
the tests prove is what the command runs.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from simulator.config import PlatformConfig
from simulator.platform.api import create_api
from simulator.platform.campaigns import load_flows
from simulator.platform.channels.kannel import KannelChannel
from simulator.platform.channels.smpp import SmppBind, bind_names, make_router
from simulator.platform.flows import FlowDef
from simulator.platform.model import Msg, MsgStatus
from simulator.platform.sender import Channel, Sender
from simulator.platform.service import PlatformService
from simulator.platform.store import PlatformStore
from simulator.platform.ussd import UssdApp

log = logging.getLogger("smsim.platform")


def resolve_token(configured: str | None, env: str | None) -> tuple[str, bool]:
    """The API token: configured, else the environment's, else a new one (True)."""
    if configured:
        return configured, False
    if env:
        return env, False
    return secrets.token_hex(20), True


class PlatformRuntime:
    """Everything ``smsim platform`` runs; ``start()`` / ``stop()`` on a running loop."""

    def __init__(
        self,
        config: PlatformConfig,
        token: str,
        *,
        reset: bool = False,
        flows: list[FlowDef] | None = None,
        now: Callable[[], float] = time.time,
        database: str | Path | None = None,
    ) -> None:
        self.config = config
        self.token = token
        self.store = PlatformStore(database or config.database, reset=reset)
        self.flows = flows if flows is not None else load_flows(config.flows_dir)
        self.service = PlatformService(config, self.store, self.flows, now=now)
        self.binds: list[SmppBind] = []
        self.kannel: KannelChannel | None = None
        channels: list[Channel] = []
        route: Callable[[Msg], str]
        if config.mode == "kannel":
            self.kannel = KannelChannel(
                config.kannel,
                config,
                lambda: self.service.sender,
                self.service.receive,
                self.store.msg,
            )
            channels.append(self.kannel)
            name = self.kannel.name
            route = lambda msg: name  # noqa: E731
        else:
            names = bind_names(config.binds)
            for cfg, bind_name in zip(config.binds, names, strict=True):
                bind = SmppBind(
                    bind_name,
                    cfg,
                    config,
                    events=_LateSender(self),
                    receive=self.service.receive,
                    lookup=self.store.msg_by_external_id,
                )
                self.binds.append(bind)
                channels.append(bind)
            route = make_router(config.binds, names)
        self.sender = Sender(config, self.store, channels, route, now=now)
        self.service.attach(self.sender)
        self.app = create_api(self.store, self.service, token)
        #: *1442#: over the binds (USSD deliver_sm) and at ``ussd.HTTP_PATH``.
        self.ussd = UssdApp(self.store, now=now)
        self.ussd.add_routes(self.app)
        for bind in self.binds:
            bind.ussd = self.ussd.on_deliver
        if self.kannel is not None:
            self.kannel.add_routes(self.app)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.api_port = 0

    async def start(self, api_port: int | None = None) -> None:
        """Serve the API, bind the channels, start sending."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        port = self.config.api_port if api_port is None else api_port
        self._site = web.TCPSite(self._runner, self.config.api_host, port)
        await self._site.start()
        addresses = self._runner.addresses
        self.api_port = int(addresses[0][1]) if addresses else port
        log.info("api listening=%s:%d", self.config.api_host, self.api_port)
        if self.kannel is not None:
            await self.kannel.start()
        for bind in self.binds:
            await bind.start()
        self.sender.start()
        self.service.start()
        # What a previous run queued but never sent goes out now, as RapidPro's outbox.
        unsent = self.store.unsent_msgs()
        for msg in unsent:
            self.sender.enqueue(msg)
        if unsent:
            log.info("resume_outbox messages=%d", len(unsent))

    async def stop(self) -> None:
        await self.service.stop()
        await self.sender.stop()
        for bind in self.binds:
            await bind.stop()
        if self.kannel is not None:
            await self.kannel.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        self.store.close()

    @property
    def url(self) -> str:
        return f"http://{self.config.api_host}:{self.api_port}"


class _LateSender:
    """The binds' event sink: the runtime's sender, which exists once the binds do."""

    __slots__ = ("_rt",)

    def __init__(self, rt: PlatformRuntime) -> None:
        self._rt = rt

    def wired(self, msg: Msg, external_id: str) -> None:
        self._rt.sender.wired(msg, external_id)

    def failed_submit(self, msg: Msg, reason: str) -> None:
        self._rt.sender.failed_submit(msg, reason)

    def status(self, msg: Msg, status: MsgStatus) -> None:
        self._rt.sender.status(msg, status)
