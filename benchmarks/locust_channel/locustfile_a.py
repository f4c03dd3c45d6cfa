"""Design A: the SMSC is its own process; Locust workers drive it over the channel.

    locust -f benchmarks/locust_channel/locustfile_a.py --headless -u 10 -r 100 -t 15s \
        --processes 2 --lc-target 127.0.0.1:2776 --lc-mo-rate 5000

Each worker opens one TCP connection to the SMSC's channel port (gevent socket, opened in
test_start, after the fork), says HELLO with its worker index, and from then on every
user's tick is one MO frame; one reader greenlet per worker takes the MT frames and
matches replies.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import gevent
import gevent.lock
from locust import events

sys.path.insert(0, str(Path(__file__).resolve().parent))

from channel import (
    T_MT,
    FrameReader,
    decode_mt_items,
    encode_hello,
    encode_mo_batch,
)
from lc_common import Crowd, Runtime, install_runtime, is_master, monotonic


class ChannelClient:
    def __init__(self, rt: Runtime, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.rt = rt
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(encode_hello(rt.slot, rt.opts.lc_slots, 0))
        self.lock = gevent.lock.Semaphore()
        self.frames_out = 0
        self.frames_in = 0
        self.reader = gevent.spawn(self._read)

    def send(self, items: list[tuple[int, bytes]]) -> None:
        frame = encode_mo_batch(items)
        with self.lock:  # sendall may yield mid-frame: one writer at a time
            self.sock.sendall(frame)
        self.frames_out += 1

    def _read(self) -> None:
        reader = FrameReader()
        rt = self.rt
        on_reply = rt.on_reply
        recv = self.sock.recv
        while True:
            data = recv(262144)
            if not data:
                return
            t_recv = monotonic()
            for ftype, count, buf, pos in reader.feed(data):
                if ftype == T_MT:
                    self.frames_in += 1
                    for number, t_mt, _dcs, _payload in decode_mt_items(buf, pos, count):
                        on_reply(number, t_mt, t_recv)


CLIENT: ChannelClient | None = None


@events.test_start.add_listener
def _start(environment: Any, **_kw: Any) -> None:
    global CLIENT
    if is_master(environment):
        return
    rt = install_runtime(environment)
    client = CLIENT = ChannelClient(rt, environment.parsed_options.lc_target)
    rt.collectors.append(lambda: {"frames_out": client.frames_out, "frames_in": client.frames_in})


class Subscribers(Crowd):
    def send(self, items: list[tuple[int, bytes]], due: float) -> None:
        assert CLIENT is not None
        CLIENT.send(items)
