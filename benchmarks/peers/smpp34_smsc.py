#!/usr/bin/env python3
"""Minimal SMSC on the smpp34 (Rust core) Python server -- a benchmark peer.

    python benchmarks/peers/smpp34_smsc.py --host 127.0.0.1 --port 2775

Behaviour (same as npm_smsc.js):
  * accepts every bind (tx / rx / trx): smpp34's Python server does this itself
    and offers no hook to refuse one;
  * answers each submit_sm with a decimal counter as message_id;
  * when registered_delivery & 1, sends a delivery receipt deliver_sm on the same
    session (esm_class 0x04, addresses swapped, Appendix B text plus the TLVs
    receipted_message_id 0x001E and message_state 0x0427 = 2 DELIVERED);
  * enquire_link / unbind are answered by the Rust core (not visible to Python).

Prints ``listening HOST:PORT`` once accepting; exits 0 on SIGTERM / SIGINT.

Speed notes (this is meant to be a fair peer, not a crippled one):
  * the only Python entry point is ``await Server.next()`` (one GIL crossing per
    event); ``--consumers`` keeps several next() calls outstanding so the Rust
    side always has a waiting receiver;
  * the receipt is sent with ``Esme.deliver_sm()``, which returns an asyncio
    future that is already running in the Rust runtime; we do not await it
    inline (that would serialise receipts), we only attach a done-callback;
  * uvloop by default (``--loop``): every completed Rust future wakes the loop
    through call_soon_threadsafe, which uvloop does far more cheaply (measured
    ~2.5x the throughput of the default asyncio loop here);
  * ``--worker-threads`` sets SMPP34_WORKER_THREADS (tokio pool, default 2);
  * ``--inbound-capacity`` sizes the Rust->Python event channel; when it is full
    the core answers submit_sm with ESME_RMSGQFUL (library default 1024).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2775)
    p.add_argument("--system-id", default="SMPP34SMSC")
    p.add_argument(
        "--worker-threads",
        type=int,
        default=None,
        help="tokio worker threads (SMPP34_WORKER_THREADS; library default 2)",
    )
    p.add_argument(
        "--inbound-capacity",
        type=int,
        default=16384,
        help="Rust->Python event channel size (library default 1024)",
    )
    p.add_argument(
        "--consumers",
        type=int,
        default=64,
        help="concurrent Server.next() calls kept outstanding (1 = a plain loop)",
    )
    p.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop; auto = uvloop when installed (a project dependency)",
    )
    return p.parse_args(argv)


ARGS = parse_args()
if ARGS.worker_threads:
    # Read once, when the extension initialises its runtime: set before import.
    os.environ["SMPP34_WORKER_THREADS"] = str(ARGS.worker_threads)

import smpp34  # noqa: E402

TLV_RECEIPTED_MESSAGE_ID = 0x001E  # smpp34.TLV_RECEIPTED_MESSAGE_ID
TLV_MESSAGE_STATE = 0x0427  # smpp34.TLV_MESSAGE_STATE
STATE_DELIVERED = smpp34.Tlv(TLV_MESSAGE_STATE, b"\x02")
Tlv = smpp34.Tlv
Esme = smpp34.Esme
SubmitSmEvent = smpp34.SubmitSmEvent
Unbound = smpp34.Unbound


class Stats:
    __slots__ = ("receipts_failed", "receipts_ok", "receipts_sent", "submits")

    def __init__(self) -> None:
        self.submits = 0
        self.receipts_sent = 0
        self.receipts_ok = 0
        self.receipts_failed = 0


class Smsc:
    def __init__(self, server: smpp34.Server) -> None:
        self.server = server
        self.sessions: dict[str, Esme] = {}
        # receipts for a session whose Esme event we have not handled yet: with
        # several outstanding next() calls, completions may be handled out of order
        self.early: dict[str, list[tuple[bytes, str, str, str]]] = {}
        self.next_id = 0
        self.stats = Stats()
        self._minute = -1
        self._stamp = b""

    def stamp(self) -> bytes:
        """YYMMDDhhmm, recomputed at most once a minute."""
        now = time.time()
        minute = int(now // 60)
        if minute != self._minute:
            self._minute = minute
            self._stamp = time.strftime("%y%m%d%H%M", time.localtime(now)).encode()
        return self._stamp

    def _receipt_done(self, fut: asyncio.Future[smpp34.DeliverSmResp]) -> None:
        if fut.cancelled():
            self.stats.receipts_failed += 1
            return
        exc = fut.exception()
        if exc is not None or not fut.result().is_success:
            self.stats.receipts_failed += 1
        else:
            self.stats.receipts_ok += 1

    def send_receipt(self, esme: Esme, msg_id: str, text: bytes, src: str, dst: str) -> None:
        if not esme.can_receive:
            # smpp34 panics (Rust) when deliver_sm is sent on a TX bind; a real
            # SMSC would queue the receipt for an RX/TRX bind of the same system_id.
            return
        stamp = self.stamp()
        body = (
            b"id:%s sub:001 dlvrd:001 submit date:%s done date:%s "
            b"stat:DELIVRD err:000 text:%s" % (msg_id.encode(), stamp, stamp, text)
        )
        # deliver_sm() returns an asyncio future already running in the Rust
        # runtime (the stub says coroutine); ensure_future() passes a future
        # through untouched, so there is no Task per receipt.
        fut = asyncio.ensure_future(
            esme.deliver_sm(
                src,  # destination_addr = the submit's source
                body,
                source_addr=dst,  # source_addr = the submit's destination
                esm_class=0x04,
                tlvs=[Tlv(TLV_RECEIPTED_MESSAGE_ID, msg_id.encode() + b"\x00"), STATE_DELIVERED],
            )
        )
        fut.add_done_callback(self._receipt_done)
        self.stats.receipts_sent += 1

    async def consume(self) -> None:
        server_next = self.server.next
        sessions = self.sessions
        stats = self.stats
        while True:
            ev = await server_next()
            if type(ev) is SubmitSmEvent:
                self.next_id += 1
                msg_id = str(self.next_id)
                ev.accept(msg_id)
                stats.submits += 1
                if ev.registered_delivery & 1:
                    text = ev.short_message[:20]
                    esme = sessions.get(ev.session_id)
                    if esme is not None:
                        self.send_receipt(esme, msg_id, text, ev.source_addr, ev.destination_addr)
                    else:
                        self.early.setdefault(ev.session_id, []).append(
                            (text, msg_id, ev.source_addr, ev.destination_addr)
                        )
            elif type(ev) is Esme:
                sessions[ev.session_id] = ev
                for text, msg_id, src, dst in self.early.pop(ev.session_id, ()):
                    self.send_receipt(ev, msg_id, text, src, dst)
            elif type(ev) is Unbound:
                sessions.pop(ev.session_id, None)
                self.early.pop(ev.session_id, None)


async def main() -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    server = smpp34.Server(
        host=ARGS.host,
        port=ARGS.port,
        system_id=ARGS.system_id,
        inbound_capacity=ARGS.inbound_capacity,
    )
    await server.start()  # returns once the socket accepts (raises on bind failure)
    smsc = Smsc(server)
    consumers = [asyncio.ensure_future(smsc.consume()) for _ in range(max(1, ARGS.consumers))]
    print(f"listening {ARGS.host}:{ARGS.port}", flush=True)

    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait([stopper, *consumers], return_when=asyncio.FIRST_COMPLETED)
    rc = 0
    for t in consumers:
        if t in done and t.exception() is not None:
            print(f"consumer failed: {t.exception()!r}", file=sys.stderr)
            rc = 1
        t.cancel()
    stopper.cancel()
    with contextlib.suppress(Exception):  # shutting down anyway
        await asyncio.wait_for(server.stop(), 2.0)
    s = smsc.stats
    print(
        f"stopped submits={s.submits} receipts_sent={s.receipts_sent} "
        f"receipts_ok={s.receipts_ok} receipts_failed={s.receipts_failed}",
        file=sys.stderr,
        flush=True,
    )
    return rc


if __name__ == "__main__":
    if ARGS.loop != "asyncio":
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            if ARGS.loop == "uvloop":
                raise
    rc = asyncio.run(main())
    sys.stdout.flush()
    # Session tasks live in the Rust runtime and server.stop() does not close
    # them; leave without waiting for them.
    os._exit(rc)
