"""A smpplib 2.2.4 client as the interop and fault tests drive it (a peer nobody here
wrote), and small views of the SMSC running in its thread."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import smpplib.client
import smpplib.consts as c

from simulator.smsc.server import SmscServer, SmscThread
from tests.support.peers import HANDSET, PASSWORD, SHORT_CODE, SYSTEM_ID

SOCKET_TIMEOUT = 3.0
ESM_DELIVERY_RECEIPT = 0x04  # esm_class "SMSC delivery receipt" (smpplib names no constant for it)


class Peer:
    """A smpplib client and what its handlers saw."""

    def __init__(self, port: int, ssl_context: Any = None) -> None:
        """``ssl_context``: what smpplib calls ``wrap_socket(sock)`` on (TLS), or None."""
        self.client = smpplib.client.Client(
            "127.0.0.1",
            port,
            timeout=SOCKET_TIMEOUT,
            allow_unknown_opt_params=True,
            ssl_context=ssl_context,
        )
        self.delivered: list[Any] = []  # deliver_sm PDUs, answered ESME_ROK by smpplib
        self.responses: list[Any] = []  # submit_sm_resp PDUs
        self.client.set_message_received_handler(lambda pdu, **kw: self.delivered.append(pdu))
        self.client.set_message_sent_handler(lambda pdu, **kw: self.responses.append(pdu))

    def read_until(self, pred: Callable[[], object], timeout: float = 5.0) -> None:
        """Let smpplib read and handle PDUs until ``pred()``; any error status raises."""
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            self.client.read_once(auto_send_enquire_link=False)

    def quiet_for(self, seconds: float) -> None:
        """Handle whatever arrives within ``seconds`` (to show that nothing more does)."""
        time.sleep(seconds)
        self.client.poll(auto_send_enquire_link=False)

    def submit(self, short_message: bytes, *, data_coding: int, esm_class: int, **kw: Any) -> Any:
        kw.setdefault("destination_addr", HANDSET)
        kw.setdefault("registered_delivery", 1)
        return self.client.send_message(
            source_addr_ton=c.SMPP_TON_NWSPEC,
            source_addr_npi=c.SMPP_NPI_UNK,
            source_addr=SHORT_CODE,
            dest_addr_ton=c.SMPP_TON_INTL,
            dest_addr_npi=c.SMPP_NPI_ISDN,
            short_message=short_message,
            data_coding=data_coding,
            esm_class=esm_class,
            **kw,
        )

    def response_to(self, request: Any) -> Any:
        return next(r for r in self.responses if r.sequence == request.sequence)

    def receipts(self) -> list[Any]:
        return [p for p in self.delivered if p.esm_class & ESM_DELIVERY_RECEIPT]

    def mo(self) -> list[Any]:
        return [p for p in self.delivered if not p.esm_class & ESM_DELIVERY_RECEIPT]


def srv(smsc: SmscThread) -> SmscServer:
    """The server inside the thread: touch it only through ``smsc.call`` (its own loop)."""
    assert smsc.server is not None
    return smsc.server


def binds(smsc: SmscThread) -> int:
    """Binds of the account the SMSC holds right now."""
    return int(smsc.call(lambda: len(srv(smsc).operator().accounts[SYSTEM_ID].binds)))


def assert_clean(smsc: SmscThread) -> None:
    """The SMSC saw no malformed PDU, and smpplib refused or nacked none of its own."""
    stats = smsc.call(srv(smsc).stats)
    assert (stats.protocol_errors, stats.deliver_refused, stats.deliver_retries) == (0, 0, 0)
    assert stats.rejected == 0, stats.rejected_by_status


@contextlib.contextmanager
def bound(smsc: SmscThread, mode: str) -> Iterator[Peer]:
    """A smpplib client bound in ``mode``; unbound on exit (which must get unbind_resp)."""
    peer = Peer(smsc.port)
    peer.client.connect()
    try:
        resp = getattr(peer.client, f"bind_{mode}")(system_id=SYSTEM_ID, password=PASSWORD)
        assert (resp.command, resp.status) == (f"bind_{mode}_resp", c.SMPP_ESME_ROK)
        yield peer
        resp = peer.client.unbind()
        assert (resp.command, resp.status) == ("unbind_resp", c.SMPP_ESME_ROK)
        assert peer.client.state == c.SMPP_CLIENT_STATE_OPEN
    finally:
        peer.client.disconnect()
