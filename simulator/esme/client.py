"""A small, fast asyncio SMPP client built on ``simulator.smpp.session``.

It binds, keeps a window of outstanding requests (``submit`` waits for a slot), answers
deliver_sm by itself (calling ``on_deliver`` first, whose return is the status), and
keeps the link alive. It is what ``smsim demo`` and the project's own drivers use; tests
of the SMSC use clients nobody here wrote (aiosmpplib, smpplib, Kannel) as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from ssl import SSLContext
from typing import cast

from simulator.smpp.constants import CommandId, Status
from simulator.smpp.pdu import (
    AlertNotification,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    Outbind,
    Pdu,
    Unbind,
)
from simulator.smpp.session import (
    Event,
    LinkDead,
    PduReceived,
    ProtocolError,
    ResponseReceived,
    ResponseTimeout,
    Role,
    Session,
    Unbound,
)

log = logging.getLogger("smsim.esme")

_BIND = {"trx": BindTransceiver, "tx": BindTransmitter, "rx": BindReceiver}


class SmppClientError(Exception):
    """A request answered with an error status, or a connection that went away."""

    def __init__(self, message: str, status: int = Status.ESME_RUNKNOWNERR) -> None:
        super().__init__(message)
        self.status = status


class EsmeClient(asyncio.Protocol):
    def __init__(
        self,
        *,
        window: int = 10,
        on_deliver: Callable[[DeliverSm], int] | None = None,
        enquire_link_interval: float | None = 30.0,
        response_timeout: float = 30.0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.session = Session(
            Role.ESME,
            window=window,
            enquire_link_interval=enquire_link_interval,
            response_timeout=response_timeout,
            clock=self._loop.time,
        )
        self.on_deliver = on_deliver
        self.transport: asyncio.Transport | None = None
        self._futures: dict[int, asyncio.Future[Pdu]] = {}
        self._slot = asyncio.Condition()
        self._closed = self._loop.create_future()
        self._tick: asyncio.Task[None] | None = None
        self._flush_pending = False
        self.delivered: list[DeliverSm] = []
        #: Set when the SMSC sends outbind on a connection it opened to us.
        self.outbind_received: asyncio.Future[Outbind] = self._loop.create_future()
        self.alerts: list[AlertNotification] = []

    # --- connecting -------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        system_id: str = "rapidpro",
        password: str = "secret",
        *,
        mode: str = "trx",
        system_type: str = "",
        ssl: SSLContext | None = None,
        server_hostname: str | None = None,
        local_addr: tuple[str, int] | None = None,
        **kw: object,
    ) -> EsmeClient:
        """Open a connection (over TLS with ``ssl``) and bind; raises SmppClientError
        when the bind is refused."""
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(
            lambda: cls(**kw),  # type: ignore[arg-type]
            host,
            port,
            ssl=ssl,
            server_hostname=server_hostname if ssl is not None else None,
            local_addr=local_addr,
        )
        resp = await client.request(
            _BIND[mode](system_id=system_id, password=password, system_type=system_type)
        )
        if resp.command_status:
            client.close()
            raise SmppClientError(f"bind refused: {resp.command_status:#x}", resp.command_status)
        client._tick = loop.create_task(client._tick_loop())
        return client

    @classmethod
    async def listen_for_outbind(
        cls,
        host: str,
        port: int,
        system_id: str = "rapidpro",
        password: str = "secret",
        *,
        mode: str = "rx",
        **kw: object,
    ) -> OutbindListener:
        """Listen for SMSCs that connect and send outbind; each is answered with a bind
        (bind_receiver by default, as SMPP 3.4 2.2.1 has it) and handed out by
        ``OutbindListener.accept``."""
        listener = OutbindListener(system_id, password, mode)
        loop = asyncio.get_running_loop()
        listener.server = await loop.create_server(
            lambda: listener.protocol(cls(**kw)),  # type: ignore[arg-type]
            host,
            port,
        )
        return listener

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._flush_pending = True
        self._handle(self.session.receive_data(data))
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.close()
        err = SmppClientError(f"connection lost: {exc or 'closed by peer'}")
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(err)
        self._futures.clear()
        if not self.outbind_received.done():
            self.outbind_received.cancel()
        if not self._closed.done():
            self._closed.set_result(None)
        if self._tick is not None:
            self._tick.cancel()
        self._loop.create_task(self._wake())

    # --- events ------------------------------------------------------------------------

    def _handle(self, events: list[Event]) -> None:
        for ev in events:
            if type(ev) is ResponseReceived:
                fut = self._futures.pop(ev.pdu.sequence_number, None)
                if fut is not None and not fut.done():
                    fut.set_result(ev.pdu)
                self._loop.create_task(self._wake())
            elif type(ev) is PduReceived:
                pdu = ev.pdu
                status = 0
                if pdu.command_id == CommandId.DELIVER_SM:
                    assert isinstance(pdu, DeliverSm)
                    self.delivered.append(pdu)
                    if self.on_deliver is not None:
                        status = self.on_deliver(pdu)
                elif isinstance(pdu, Outbind):
                    if not self.outbind_received.done():
                        self.outbind_received.set_result(pdu)
                elif isinstance(pdu, AlertNotification):
                    self.alerts.append(pdu)
                if pdu.response_class is not None:
                    self.session.send(pdu.response(status))
            elif isinstance(ev, ResponseTimeout):
                fut = self._futures.pop(ev.request.sequence_number, None)
                if fut is not None and not fut.done():
                    fut.set_exception(SmppClientError(f"{ev.request.name} timed out"))
            elif isinstance(ev, (Unbound, LinkDead)):
                self.close()
            elif isinstance(ev, ProtocolError):
                log.warning("protocol_error error=%s", ev.error)

    async def _wake(self) -> None:
        async with self._slot:
            self._slot.notify_all()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._handle(self.session.tick())
            self._flush()

    def _flush(self) -> None:
        self._flush_pending = False
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    # --- requests ----------------------------------------------------------------------

    def send_nowait(self, pdu: Pdu) -> asyncio.Future[Pdu]:
        """Send now (the window must have room); the future resolves to the response."""
        if self.session.closed:
            raise SmppClientError("connection closed")
        seq = self.session.send(pdu)
        fut: asyncio.Future[Pdu] = self._loop.create_future()
        self._futures[seq] = fut
        self._schedule_flush()
        return fut

    async def wait_for_slot(self) -> None:
        async with self._slot:
            await self._slot.wait_for(lambda: self.session.window_free > 0 or self.session.closed)
        if self.session.closed:
            raise SmppClientError("connection closed")

    async def request(self, pdu: Pdu) -> Pdu:
        """Send when the window has room and wait for the response."""
        if pdu.command_id in (
            CommandId.BIND_TRANSCEIVER,
            CommandId.BIND_TRANSMITTER,
            CommandId.BIND_RECEIVER,
            CommandId.UNBIND,
        ):
            return await self.send_nowait(pdu)
        await self.wait_for_slot()
        return await self.send_nowait(pdu)

    async def unbind(self, timeout: float = 5.0) -> None:
        if self.session.is_bound:
            with contextlib.suppress(TimeoutError, SmppClientError):
                await asyncio.wait_for(self.request(Unbind()), timeout)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self._flush()
            self.transport.close()

    async def wait_closed(self) -> None:
        await self._closed


class OutbindListener:
    """An ESME's listening socket for outbind; ``accept()`` gives the next bound client."""

    def __init__(self, system_id: str, password: str, mode: str) -> None:
        self.system_id = system_id
        self.password = password
        self.mode = mode
        self.server: asyncio.Server | None = None
        self.clients: asyncio.Queue[EsmeClient] = asyncio.Queue()
        #: Outbinds refused because their password was not ours.
        self.refused = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def protocol(self, client: EsmeClient) -> EsmeClient:
        task = asyncio.get_running_loop().create_task(self._serve(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return client

    async def _serve(self, client: EsmeClient) -> None:
        with contextlib.suppress(SmppClientError, asyncio.CancelledError):
            outbind = await client.outbind_received
            if outbind.password != self.password:
                self.refused += 1
                client.close()
                return
            bind = _BIND[self.mode](system_id=self.system_id, password=self.password)
            resp = await client.request(bind)
            if resp.command_status:
                client.close()
                return
            client._tick = asyncio.get_running_loop().create_task(client._tick_loop())
            await self.clients.put(client)

    async def accept(self, timeout: float = 10.0) -> EsmeClient:
        return await asyncio.wait_for(self.clients.get(), timeout)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self._tasks:
            task.cancel()
