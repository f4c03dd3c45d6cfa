"""Design C: no asyncio and no SMSC process: each Locust worker is a bare gevent SMPP
listener on our sans-IO ``Session`` that the platform binds to.

    locust -f benchmarks/locust_channel/locustfile_c.py --headless -u 2 -r 20 -t 15s \
        --processes 2 --lc-mo-rate 5000      # LC_PORTS=dir: each worker writes its port

It does only what this benchmark needs from an SMSC: accept binds, deliver MO
(deliver_sm, window per bind, round-robin), answer submit_sm with a message id and treat
it as the reply. No receipts, validation, throttling, query/cancel, fault injection or
subscriber behaviour: those live in ``simulator/smsc`` (asyncio) and would have to be
written a second time for gevent. It is the upper bound for "Locust speaks SMPP itself".
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import gevent
import gevent.lock
from locust import events

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lc_common import Crowd, Runtime, install_runtime, is_master, monotonic

from simulator.smpp.constants import CommandId
from simulator.smpp.pdu import Bind, DeliverSm, SubmitSm
from simulator.smpp.session import (
    PduReceived,
    ResponseReceived,
    Role,
    Session,
    Unbound,
)
from simulator.smpp.text import choose_coding

_BINDS = (CommandId.BIND_TRANSCEIVER, CommandId.BIND_RECEIVER, CommandId.BIND_TRANSMITTER)


class Conn:
    def __init__(self, mini: MiniSmsc, sock: socket.socket) -> None:
        self.mini = mini
        self.sock = sock
        self.session = Session(Role.SMSC, window=mini.window, enquire_link_interval=None)
        self.lock = gevent.lock.Semaphore()

    def flush(self) -> None:
        with self.lock:  # one writer: sendall may yield mid-buffer
            data = self.session.data_to_send()
            if data:
                self.sock.sendall(data)

    def serve(self) -> None:
        mini = self.mini
        session = self.session
        try:
            while True:
                data = self.sock.recv(262144)
                if not data:
                    break
                t = monotonic()
                for ev in session.receive_data(data):
                    if type(ev) is PduReceived:
                        pdu = ev.pdu
                        if type(pdu) is SubmitSm:
                            session.send(pdu.response(message_id=str(next(mini.ids))))
                            mini.on_submit(pdu, t)
                        elif pdu.command_id in _BINDS:
                            assert isinstance(pdu, Bind)
                            session.send(pdu.response(system_id="smsim"))
                            if session.can_receive:
                                mini.receivers.append(self)
                        elif pdu.response_class is not None:
                            session.send(pdu.response())
                    elif type(ev) is ResponseReceived:
                        mini.pump()
                    elif isinstance(ev, Unbound):
                        break
                self.flush()
        finally:
            if self in mini.receivers:
                mini.receivers.remove(self)
            self.sock.close()


class MiniSmsc:
    def __init__(self, window: int) -> None:
        self.window = window
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.receivers: list[Conn] = []
        self.outbox: collections.deque[DeliverSm] = collections.deque()
        self.ids = itertools.count(1)
        self.rt: Runtime | None = None
        self._rr = 0
        gevent.spawn(self._accept)

    def _accept(self) -> None:
        while True:
            sock, _ = self.listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            gevent.spawn(Conn(self, sock).serve)

    def inject(self, items: list[tuple[int, bytes]]) -> None:
        for number, text in items:
            dcs, payload = choose_coding(text.decode())
            self.outbox.append(
                DeliverSm(
                    source_addr_ton=1,
                    source_addr_npi=1,
                    source_addr=str(number),
                    dest_addr_ton=3,
                    destination_addr="1442",
                    data_coding=dcs,
                    short_message=payload,
                )
            )
        self.pump()

    def pump(self) -> None:
        outbox = self.outbox
        receivers = self.receivers
        n = len(receivers)
        if not outbox or not n:
            return
        touched = set()
        idle = 0
        i = self._rr
        while outbox and idle < n:
            conn = receivers[i % n]
            i += 1
            if conn.session.window_free > 0:
                conn.session.send(outbox.popleft())
                touched.add(conn)
                idle = 0
            else:
                idle += 1
        self._rr = i % n
        for conn in touched:
            conn.flush()

    def on_submit(self, pdu: SubmitSm, t: float) -> None:
        if self.rt is not None:
            self.rt.on_reply(int(pdu.destination_addr), t, t)


MINI: MiniSmsc | None = None


@events.init.add_listener
def _init(environment: Any, **_kw: Any) -> None:
    global MINI
    if is_master(environment):
        return
    MINI = MiniSmsc(environment.parsed_options.lc_deliver_window)
    ports = os.environ.get("LC_PORTS")
    if ports:
        info = {"port": MINI.port, "pid": os.getpid()}
        Path(ports, f"{os.getpid()}.json").write_text(json.dumps(info))


@events.test_start.add_listener
def _start(environment: Any, **_kw: Any) -> None:
    if is_master(environment) or MINI is None:
        return
    MINI.rt = install_runtime(environment)


class Subscribers(Crowd):
    def ready(self) -> bool:
        return MINI is not None and bool(MINI.receivers)

    def send(self, items: list[tuple[int, bytes]], due: float) -> None:
        assert MINI is not None
        MINI.inject(items)
