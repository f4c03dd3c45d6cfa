"""An operator's listening sockets with accepts of our own: a connection from a locked-out
IP is closed as ``accept()`` returns it, before a transport, a protocol or a TLS handshake
exists for it (``create_server`` would build all three first); the others are handed to
the loop as ``create_server`` would (``connect_accepted_socket``). Works on asyncio's loop
and on uvloop alike: the listening sockets are watched with ``add_reader``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import struct
from collections.abc import Callable

log = logging.getLogger("smsim.smsc")

#: close() sends RST and leaves no TIME_WAIT behind for a refused connection.
_RESET = struct.pack("ii", 1, 0)
#: Out of descriptors or memory: stop accepting for a while (asyncio does the same).
_RESOURCES = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


class Listener:
    """What the SMSC uses of ``asyncio.Server`` (``sockets``, ``close``, ``wait_closed``,
    ``serve_forever``), accepting itself. ``refuses(ip)`` decides, per accepted
    connection, whether it is closed at once (it counts; nothing is logged here)."""

    __slots__ = (
        "_backlog",
        "_closed",
        "_closing",
        "_factory",
        "_handshake_timeout",
        "_loop",
        "_refuses",
        "_ssl",
        "_tasks",
        "sockets",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        factory: Callable[[], asyncio.Protocol],
        refuses: Callable[[str], bool],
        *,
        ssl_context: ssl.SSLContext | None,
        ssl_handshake_timeout: float | None,
        backlog: int,
    ) -> None:
        self._loop = loop
        self.sockets = sockets
        self._factory = factory
        self._refuses = refuses
        self._ssl = ssl_context
        self._handshake_timeout = ssl_handshake_timeout
        self._backlog = backlog
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed: asyncio.Future[None] | None = None
        self._closing = False
        for sock in sockets:
            loop.add_reader(sock.fileno(), self._accept, sock)

    @classmethod
    async def open(
        cls,
        factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        refuses: Callable[[str], bool],
        ssl_context: ssl.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
        reuse_port: bool = False,
        backlog: int = 1024,
    ) -> Listener:
        """Listen on every address ``host`` resolves to (as ``create_server``: address
        reuse on, IPv6 sockets IPv6 only, ``SO_REUSEPORT`` when asked)."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                # Inherited by every accepted socket (Linux).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    sock.bind(address)
                except OSError as exc:
                    raise OSError(
                        exc.errno,
                        f"error while attempting to bind on address {address!r}: "
                        f"{(exc.strerror or '').lower()}",
                    ) from None
                sock.listen(backlog)
                sock.setblocking(False)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return cls(
            loop,
            sockets,
            factory,
            refuses,
            ssl_context=ssl_context,
            ssl_handshake_timeout=ssl_handshake_timeout,
            backlog=backlog,
        )

    # --- accepting --------------------------------------------------------------------------

    def _accept(self, listening: socket.socket) -> None:
        refuses = self._refuses
        for _ in range(self._backlog):  # at most a backlog per wake-up: the rest wait
            try:
                sock, address = listening.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _RESOURCES:
                    raise
                log.warning(
                    "accept_paused address=%s:%d error=%s for=1s",
                    *listening.getsockname()[:2],
                    exc.strerror,
                )
                self._loop.remove_reader(listening.fileno())
                self._loop.call_later(1.0, self._resume, listening)
                return
            if refuses(str(address[0])):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                sock.close()
                continue
            sock.setblocking(False)
            task = self._loop.create_task(self._connect(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _resume(self, listening: socket.socket) -> None:
        if listening.fileno() >= 0 and not self._closing:
            self._loop.add_reader(listening.fileno(), self._accept, listening)

    async def _connect(self, sock: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(
                self._factory,
                sock,
                ssl=self._ssl,
                ssl_handshake_timeout=self._handshake_timeout if self._ssl else None,
            )
        except (OSError, EOFError, TimeoutError) as exc:
            # A TLS handshake that failed or timed out (``tls.count_handshakes`` counts
            # it), or a client gone already: what create_server drops without a word.
            # The loop has closed the socket (both loops do, on any failure).
            log.debug("accept_dropped error=%r", exc)

    # --- asyncio.Server's part --------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting and close the listening sockets; the handshakes under way are
        cancelled (their sockets closed by the loop), the connections made stay."""
        self._closing = True
        for sock in self.sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
                sock.close()
        for task in self._tasks:
            task.cancel()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """The cancelled handshakes are over."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def serve_forever(self) -> None:
        """Until ``close``."""
        if self._closing:
            return
        if self._closed is None:
            self._closed = self._loop.create_future()
        await self._closed
