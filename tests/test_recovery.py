"""Crash safety (issue 8), as a user meets it: ``smsim smsc --journal DIR`` killed with -9
(or stopped with SIGTERM) and started again on the same directory, with smpplib 2.2.4 (a
client nobody here wrote) as the gateway.

* receipts due while no receiver was bound survive a ``kill -9``: the restarted SMSC
  delivers each exactly once, with its original message id, and a third start delivers
  none (the second journalled the deliveries);
* MO queued while no receiver was bound survive it the same way, text intact;
* SIGTERM with a receiver bound that is behind: the SMSC refuses new submits, hands over
  every queued receipt, then unbinds.

Nothing here times anything: each step waits for a condition (the journal on disk, a
PDU) with a generous deadline, and "exactly once" is checked by reading until the SMSC's
own unbind at its graceful stop, after which it sends nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import smpplib.consts as c
import smpplib.smpp

from simulator.cli import main
from simulator.smsc.journal_files import read_journal
from tests.support.peers import HANDSET, PASSWORD, SYSTEM_ID
from tests.support.ports import free_port
from tests.support.smpplib_peer import Peer

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parent.parent
#: Generous: two loaded cores, a Python start-up per SMSC.
PATIENCE = 60.0
ESM_RECEIPT = 0x04


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Smsc:
    """``smsim smsc --journal DIR`` as a subprocess (its own process group)."""

    def __init__(
        self,
        tmp: Path,
        journal: Path,
        *,
        control: bool = False,
        receipt_delay: float = 0.0,
        receipt_stat: str = "DELIVRD",
        processes: int = 1,
    ) -> None:
        self.port = free_port()
        self.control = free_port() if control else 0
        conf = tmp / f"smsc-{self.port}.toml"
        conf.write_text(
            "[[operators]]\n"
            f"port = {self.port}\n"
            f'[operators.receipt]\ndelay = {receipt_delay}\nstat = "{receipt_stat}"\n'
            "[population]\nenabled = false\n"
            "[journal]\nflush_interval = 0.05\n"
        )
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "simulator.cli", "smsc", "--config", str(conf)),
                *("--control-port", str(self.control), "--journal", str(journal)),
                *("--processes", str(processes)),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + PATIENCE
        while True:
            assert self.proc.poll() is None, self.stderr()
            if _listening(self.port) and (not self.control or _listening(self.control)):
                break
            assert time.monotonic() < deadline, "SMSC not listening"
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.proc.stderr.read().decode() if self.proc.stderr else ""

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(PATIENCE)
        assert self.proc.returncode == -signal.SIGKILL

    def terminate(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)

    def wait(self) -> int:
        return self.proc.wait(PATIENCE)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(PATIENCE)
        if self.proc.stderr:
            self.proc.stderr.close()

    def stats(self) -> Any:
        """The control API's ``/stats``."""
        url = f"http://127.0.0.1:{self.control}/stats"
        with urllib.request.urlopen(url, timeout=PATIENCE) as resp:
            return json.load(resp)

    def inject_mo(self, source: str, text: str) -> None:
        body = json.dumps({"source": source, "text": text}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.control}/mo",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=PATIENCE) as resp:
            assert resp.status == 200


class Gateway:
    """A smpplib client bound in ``mode``, reading PDUs itself so that it sees (and
    answers) the SMSC's unbind, which smpplib's own loop ignores."""

    def __init__(self, port: int, mode: str) -> None:
        self.peer = Peer(port)  # the client as the interop tests set it up
        self.client = self.peer.client
        self.client.connect()
        resp = getattr(self.client, f"bind_{mode}")(system_id=SYSTEM_ID, password=PASSWORD)
        assert resp.status == c.SMPP_ESME_ROK
        self.delivered: list[Any] = []
        self.responses: list[Any] = []
        self.unbound = False

    def submit(self, destination: str, registered_delivery: int = 1) -> Any:
        """A GSM 7-bit submit_sm asking for a receipt (on failure only with 2)."""
        text = b"Takaful: your payment is ready"
        return self.peer.submit(
            text,
            data_coding=0,
            esm_class=0,
            destination_addr=destination,
            registered_delivery=registered_delivery,
        )

    def read_until(self, pred: Callable[[], object], timeout: float = PATIENCE) -> None:
        """Read and answer PDUs until ``pred()`` (or the SMSC's unbind)."""
        deadline = time.monotonic() + timeout
        while not pred() and not self.unbound:
            assert time.monotonic() < deadline, "condition not met in time"
            try:
                pdu = self.client.read_pdu()
            except TimeoutError:
                continue
            if pdu.command == "deliver_sm":
                self.delivered.append(pdu)
                self._answer("deliver_sm_resp", pdu)
            elif pdu.command == "submit_sm_resp":
                self.responses.append(pdu)
            elif pdu.command == "enquire_link":
                self._answer("enquire_link_resp", pdu)
            elif pdu.command == "unbind":
                self._answer("unbind_resp", pdu)
                self.unbound = True

    def _answer(self, command: str, pdu: Any) -> None:
        resp = smpplib.smpp.make_pdu(command, client=self.client)
        # make_pdu(sequence=...) keeps the client's own number (a property it will not
        # overwrite): set the request's through the property's setter.
        resp.sequence = pdu.sequence
        self.client.send_pdu(resp)

    def receipts(self) -> list[str]:
        """The receipted message ids, in arrival order."""
        return [
            p.receipted_message_id.decode() for p in self.delivered if p.esm_class & ESM_RECEIPT
        ]

    def mo(self) -> list[str]:
        """The texts of single-part MO (GSM 7-bit, ASCII letters here)."""
        single = [p for p in self.delivered if not p.esm_class & (ESM_RECEIPT | 0x40)]
        return [p.short_message.decode() for p in single]

    def close(self) -> None:
        self.client.disconnect()


def journal_has(journal: Path, kind: str, n: int) -> Callable[[], bool]:
    return lambda: sum(1 for r in read_journal(journal)[0] if r["e"] == kind) >= n


def wait_for(pred: Callable[[], object], timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def smscs(tmp_path: Path) -> Iterator[Callable[..., Smsc]]:
    started: list[Smsc] = []

    def start(**kw: Any) -> Smsc:
        smsc = Smsc(tmp_path, tmp_path / "journal", **kw)
        started.append(smsc)
        return smsc

    yield start
    for smsc in started:
        smsc.close()


def _receive_until_stopped(smsc: Smsc, mode: str, pred: Callable[[Gateway], object]) -> Gateway:
    """Bind a receiver, read until ``pred``, then SIGTERM the SMSC and read on until its
    unbind: whatever it still had to send has arrived by then."""
    gw = Gateway(smsc.port, mode)
    try:
        gw.read_until(lambda: pred(gw))
        smsc.terminate()
        gw.read_until(lambda: False)
        assert gw.unbound
    finally:
        gw.close()
    assert smsc.wait() == 0, smsc.stderr()
    return gw


def test_receipts_pending_at_a_kill_9_are_delivered_once_after_restart(
    smscs: Callable[..., Smsc], tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    first = smscs()
    sender = Gateway(first.port, "transmitter")  # receipts due, nobody to take them
    requests = [sender.submit(f"2010{i:08d}") for i in range(20)]
    sender.read_until(lambda: len(sender.responses) == len(requests))
    ids = sorted(r.message_id.decode() for r in sender.responses)
    assert all(r.status == c.SMPP_ESME_ROK for r in sender.responses)
    # Each accept holds its plan (a receipt at once): the receipts are due once the
    # accepts are on disk, and that is what a restart goes by.
    wait_for(journal_has(journal, "accept", 20))
    first.kill9()
    sender.close()
    # The restarted SMSC queued them again; the first receiver bound gets each once.
    second = smscs()
    gw = _receive_until_stopped(second, "receiver", lambda g: len(g.receipts()) >= 20)
    assert sorted(gw.receipts()) == ids
    texts = [p.short_message.decode() for p in gw.delivered]
    assert all(t.startswith("id:") and " stat:DELIVRD err:000" in t for t in texts)
    assert {t.split()[0][3:] for t in texts} == set(ids)  # the original ids, in the text too
    assert main(["audit", str(journal)]) == 0
    # A third run finds them delivered: nothing is queued again.
    third = smscs()
    gw = _receive_until_stopped(third, "receiver", lambda g: True)
    assert gw.receipts() == []
    recovered = [r for r in read_journal(journal)[0] if r["e"] == "receipt_recovered"]
    assert sorted(r["id"] for r in recovered) == ids


def test_mo_queued_at_a_kill_9_is_delivered_once_after_restart(
    smscs: Callable[..., Smsc], tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    first = smscs(control=True)
    texts = [f"STOP {i}" for i in range(10)] + ["نعم، أريد الاشتراك في التحديثات " * 3]
    for i, text in enumerate(texts):
        first.inject_mo(f"2010{i:08d}", text)
    wait_for(journal_has(journal, "mo_injected", len(texts)))
    first.kill9()
    parts = sum(r["parts"] for r in read_journal(journal)[0] if r["e"] == "mo_injected")
    assert parts > len(texts)  # the long one is concatenated
    second = smscs()
    gw = _receive_until_stopped(second, "transceiver", lambda g: len(g.delivered) >= parts)
    assert len(gw.delivered) == parts  # each part once
    assert sorted(gw.mo()) == sorted(texts[:10])
    # The long Arabic one: UCS-2 parts with their UDH, joined as sent.
    udh = [p for p in gw.delivered if p.esm_class & 0x40]
    assert len(udh) == parts - 10
    body = b"".join(p.short_message[1 + p.short_message[0] :] for p in udh)
    assert body.decode("utf-16-be") == texts[-1]
    assert main(["audit", str(journal)]) == 0
    third = smscs()
    assert _receive_until_stopped(third, "receiver", lambda g: True).delivered == []


def test_sigterm_refuses_new_submits_drains_receipts_then_unbinds(
    smscs: Callable[..., Smsc], tmp_path: Path
) -> None:
    """A transceiver that stops reading: its window fills with receipts and the rest
    queue. SIGTERM: the SMSC refuses what is submitted now, delivers every queued
    receipt as the client reads again, and unbinds it last."""
    journal = tmp_path / "journal"
    smsc = smscs(control=True)
    gw = Gateway(smsc.port, "transceiver")
    try:
        for i in range(40):
            gw.submit(f"2010{i:08d}")
        wait_for(lambda: smsc.stats()["totals"]["receipts_due"] >= 40)  # all queued, none read
        smsc.terminate()
        # Stopping closes the listener and refuses submits in one step of its loop.
        wait_for(lambda: not _listening(smsc.port))
        late = gw.submit("201099999999")
        gw.read_until(lambda: False)  # to the unbind
        assert gw.unbound
    finally:
        gw.close()
    assert smsc.wait() == 0
    ok = [r for r in gw.responses if r.status == c.SMPP_ESME_ROK]
    assert len(ok) == 40
    (refused,) = [r for r in gw.responses if r.sequence == late.sequence]
    assert refused.status == c.SMPP_ESME_RSYSERR
    assert sorted(gw.receipts()) == sorted(r.message_id.decode() for r in ok)
    assert main(["audit", str(journal)]) == 0


def test_a_message_whose_outcome_had_not_come_is_planned_again(
    smscs: Callable[..., Smsc], tmp_path: Path
) -> None:
    """Accepted, its receipt due in an hour at the kill: the restart plans it again (here
    with receipts at once), and its receipt keeps the message's id."""
    journal = tmp_path / "journal"
    first = smscs(receipt_delay=3600.0)
    sender = Gateway(first.port, "transmitter")
    sender.submit(HANDSET)
    sender.read_until(lambda: len(sender.responses) == 1)
    wait_for(journal_has(journal, "accept", 1))
    first.kill9()
    sender.close()
    second = smscs()
    gw = _receive_until_stopped(second, "receiver", lambda g: len(g.receipts()) >= 1)
    assert gw.receipts() == [sender.responses[0].message_id.decode()]
    assert main(["audit", str(journal)]) == 0


def test_failure_only_messages_are_planned_again_unless_they_ended_well(
    smscs: Callable[..., Smsc], tmp_path: Path
) -> None:
    """registered_delivery 2 (a receipt on failure only): one that ended well before the
    kill (its accept's plan says delivered, at once) is left alone; one whose outcome
    had not come is planned again, fails, and its receipt comes."""
    journal = tmp_path / "journal"
    first = smscs()  # DELIVRD at once: needs no receipt
    sender = Gateway(first.port, "transmitter")
    sender.submit(HANDSET, registered_delivery=2)
    sender.read_until(lambda: len(sender.responses) == 1)
    wait_for(journal_has(journal, "accept", 1))
    first.terminate()
    assert first.wait() == 0, first.stderr()
    sender.close()
    second = smscs(receipt_delay=3600.0, receipt_stat="UNDELIV")
    sender = Gateway(second.port, "transmitter")
    sender.submit(HANDSET, registered_delivery=2)
    sender.read_until(lambda: len(sender.responses) == 1)
    wait_for(journal_has(journal, "accept", 2))
    second.kill9()
    sender.close()
    third = smscs(receipt_stat="UNDELIV")  # the pending one fails at once now
    gw = _receive_until_stopped(third, "receiver", lambda g: len(g.receipts()) >= 1)
    assert gw.receipts() == [sender.responses[0].message_id.decode()]
    assert main(["audit", str(journal)]) == 0


def test_each_of_several_smsc_processes_journals_and_recovers_its_own(
    smscs: Callable[..., Smsc], tmp_path: Path
) -> None:
    """``--processes 2``: each process journals in its own directory and hands out ids
    of its own; after a kill -9 each recovers its own messages, so every receipt comes
    once (with one shared directory each would have queued all of them)."""
    journal = tmp_path / "journal"
    first = smscs(processes=2, receipt_delay=3600.0)
    # The port answers once one process listens: wait for both (each opens its journal
    # as it starts), or every connection could land on the first.
    both = ["process-0", "process-1"]
    wait_for(lambda: journal.is_dir() and sorted(p.name for p in journal.iterdir()) == both)

    def accepts(process: str) -> int:
        return sum(1 for r in read_journal(journal / process)[0] if r["e"] == "accept")

    ids: list[str] = []
    # The kernel spreads connections over the processes at random: six at least, more
    # until each process has taken some (all on one has odds of 1 in 32 for six).
    while len(ids) < 6 or (min(accepts(p) for p in both) == 0 and len(ids) < 40):
        gw = Gateway(first.port, "transmitter")
        gw.submit(HANDSET)
        gw.read_until(lambda gw=gw: len(gw.responses) == 1)  # type: ignore[misc]
        ids.append(gw.responses[0].message_id.decode())
        gw.close()
        if len(ids) >= 6:
            wait_for(journal_has(journal, "accept", len(ids)))
    assert len(set(ids)) == len(ids)
    assert min(accepts(p) for p in both) > 0, [accepts(p) for p in both]
    first.kill9()
    second_port = smscs(processes=2).port  # receipts at once now
    got: list[str] = []
    deadline = time.monotonic() + PATIENCE
    while len(set(got)) < len(ids):
        assert time.monotonic() < deadline, (sorted(got), sorted(ids))
        rx = Gateway(second_port, "receiver")  # lands on one process or the other
        # That process may have nothing (left) for this account: then it times out.
        with contextlib.suppress(AssertionError):
            rx.read_until(lambda rx=rx: len(rx.receipts()) > 0, timeout=3.0)  # type: ignore[misc]
        got += rx.receipts()
        rx.close()
    assert sorted(got) == sorted(ids)  # each once
