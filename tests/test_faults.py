"""Fault injection: every fault as smpplib (a client nobody here wrote) sees it, and the
SMSC serving again once the fault is removed or over; the plan's own rules on a fake clock.

Nothing here asserts how fast anything is: a delay fault is checked as a lower bound
(an answer can't come before the delay it was held for), and the end of a timed fault
is waited for with a generous deadline.
"""

from __future__ import annotations

import json
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.smpp
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from simulator.cli import main as smsim
from simulator.config import (
    ControlConfig,
    FaultKind,
    FaultRule,
    FaultsConfig,
    OperatorConfig,
    ReceiptConfig,
    SmscConfig,
)
from simulator.smpp.constants import Status, status_code
from simulator.smsc.control_cli import ControlClient
from simulator.smsc.faults import Fault, FaultPlan, malformed_pdu
from simulator.smsc.server import SmscThread
from tests.support.peers import PASSWORD, SYSTEM_ID, smsc_config, wait_until
from tests.support.ports import free_port
from tests.support.smpplib_peer import Peer, bound, srv

pytestmark = pytest.mark.timeout(90)

IN_RANGE = "201551230042"  # WE, inside the failing range below
OUT_OF_RANGE = "201001234567"


@pytest.fixture
def smsc() -> Iterator[SmscThread]:
    with SmscThread(smsc_config()) as thread:
        yield thread


def add(smsc: SmscThread, **rule: Any) -> Fault:
    return smsc.call(srv(smsc).add_fault, FaultRule(**rule))  # type: ignore[no-any-return]


def remove(smsc: SmscThread, fault: Fault) -> None:
    assert smsc.call(srv(smsc).remove_fault, fault.id) is fault


def submit_status(peer: Peer, dest: str = OUT_OF_RANGE) -> int:
    """Submit one message and read its answer: the command_status smpplib saw."""
    peer.submit(b"hello", data_coding=0, esm_class=0, destination_addr=dest)
    try:
        peer.client.read_once(auto_send_enquire_link=False)
    except smpplib.exceptions.PDUError as exc:
        return int(exc.args[1])
    return int(peer.responses[-1].status)


# --- the plan, on a fake clock ------------------------------------------------------------


def test_a_rule_is_on_from_its_start_for_its_duration_then_expires() -> None:
    plan = FaultPlan()
    fault = plan.add(
        FaultRule(kind=FaultKind.SUBMIT_ERROR, start=10, duration=5, status="ESME_RTHROTTLED"),
        now=100.0,
    )
    assert plan.submit_error(109.9, "egypt", "rapidpro", OUT_OF_RANGE) == 0
    assert plan.submit_error(110.0, "egypt", "rapidpro", OUT_OF_RANGE) == Status.ESME_RTHROTTLED
    assert plan.submit_error(114.9, "egypt", "rapidpro", OUT_OF_RANGE) == Status.ESME_RTHROTTLED
    assert plan.submit_error(115.0, "egypt", "rapidpro", OUT_OF_RANGE) == 0
    assert fault.hits == 2
    assert plan.expire(114.0) == []
    assert plan.expire(115.0) == [fault]
    assert not plan.has(FaultKind.SUBMIT_ERROR)


def test_a_share_is_seeded_so_a_run_replays_the_same_hits() -> None:
    def pattern(seed: int) -> list[bool]:
        plan = FaultPlan(seed)
        plan.add(FaultRule(kind=FaultKind.SUBMIT_ERROR, share=0.3), now=0.0)
        return [bool(plan.submit_error(1.0, "egypt", None, OUT_OF_RANGE)) for _ in range(10_000)]

    first = pattern(7)
    assert first == pattern(7)
    assert first != pattern(8)
    assert 0.28 < sum(first) / len(first) < 0.32


def test_rules_apply_to_their_operator_account_and_numbers_in_any_form() -> None:
    plan = FaultPlan()
    plan.add(
        FaultRule(
            kind=FaultKind.SUBMIT_ERROR,
            operator="we",
            account="rapidpro",
            numbers=["0155", "+201001230000-201001239999"],
            status=Status.ESME_RINVDSTADR,
        ),
        now=0.0,
    )
    hit = int(Status.ESME_RINVDSTADR)
    for form in ("01551230042", "201551230042", "+201551230042", "00201551230042"):
        assert plan.submit_error(1.0, "we", "rapidpro", form) == hit, form
    assert plan.submit_error(1.0, "we", "rapidpro", "201001234567") == hit  # in the range
    assert plan.submit_error(1.0, "we", "rapidpro", "201001240000") == 0
    assert plan.submit_error(1.0, "we", "rapidpro", "201561230042") == 0
    assert plan.submit_error(1.0, "orange", "rapidpro", "01551230042") == 0
    assert plan.submit_error(1.0, "we", "other", "01551230042") == 0
    # submit_multi has no single destination: a number rule does not refuse it whole
    assert plan.submit_error(1.0, "we", "rapidpro", "") == 0


def test_statuses_parse_by_name_or_number_and_bad_rules_are_refused() -> None:
    assert status_code("ESME_RTHROTTLED") == status_code("0x58") == status_code(88) == 0x58
    with pytest.raises(ValueError, match="unknown SMPP status"):
        status_code("ESME_NOPE")
    with pytest.raises(ValidationError, match="unknown SMPP status"):
        FaultRule(kind=FaultKind.SUBMIT_ERROR, status="ESME_NOPE")
    with pytest.raises(ValidationError, match="an outage needs a duration"):
        FaultRule(kind=FaultKind.OUTAGE)
    with pytest.raises(ValidationError, match="every is for"):
        FaultRule(kind=FaultKind.SUBMIT_ERROR, every=5)
    with pytest.raises(ValidationError, match="numbers is for"):
        FaultRule(kind=FaultKind.BIND_REFUSE, numbers=["015"])
    with pytest.raises(ValueError, match="number range"):
        FaultPlan().add(FaultRule(kind=FaultKind.RECEIPT_FAIL, numbers=["0155-0100"]), 0.0)


# --- submits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (c.SMPP_ESME_RTHROTTLED, "ESME_RTHROTTLED"),
        (c.SMPP_ESME_RSYSERR, "ESME_RSYSERR"),
        (c.SMPP_ESME_RMSGQFUL, "ESME_RMSGQFUL"),
    ],
)
def test_a_storm_of_refusals_reaches_the_client_and_ends_when_removed(
    smsc: SmscThread, status: int, name: str
) -> None:
    with bound(smsc, "transceiver") as peer:
        assert submit_status(peer) == 0
        fault = add(smsc, kind="submit_error", status=name)
        assert [submit_status(peer) for _ in range(5)] == [status] * 5
        remove(smsc, fault)
        assert submit_status(peer) == 0
        peer.read_until(lambda: len(peer.receipts()) == 2)  # the two accepted, receipted
    assert fault.hits == 5
    stats = smsc.call(srv(smsc).stats)
    assert stats.accepted == 2
    if name == "ESME_RTHROTTLED":
        assert stats.throttled == 5
    elif name == "ESME_RMSGQFUL":
        assert stats.queue_full == 5
    else:
        assert stats.rejected_by_status["ESME_RSYSERR"] == 5


def test_a_share_of_submits_is_refused_the_same_way_on_replay() -> None:
    def run() -> list[int]:
        with SmscThread(smsc_config()) as thread:
            add(thread, kind="submit_error", share=0.5, status="ESME_RSYSERR")
            with bound(thread, "transmitter") as peer:
                return [submit_status(peer) for _ in range(60)]

    first = run()
    assert first == run()
    refused = first.count(c.SMPP_ESME_RSYSERR)
    assert 15 <= refused <= 45 and refused + first.count(0) == 60


def test_a_number_range_always_fails_at_submit_or_in_its_receipt(smsc: SmscThread) -> None:
    add(smsc, kind="submit_error", numbers=["0155"], status="ESME_RINVDSTADR")
    add(smsc, kind="receipt_fail", numbers=["201001230000-201001239999"], stat="UNDELIV", err=13)
    with bound(smsc, "transceiver") as peer:
        assert submit_status(peer, IN_RANGE) == c.SMPP_ESME_RINVDSTADR
        assert submit_status(peer, "201001231111") == 0  # accepted, then fails
        assert submit_status(peer, "201011111111") == 0
        peer.read_until(lambda: len(peer.receipts()) == 2)
    by_handset = {r.source_addr.decode(): r for r in peer.receipts()}
    failed, fine = by_handset["201001231111"], by_handset["201011111111"]
    assert failed.message_state == c.SMPP_MESSAGE_STATE_UNDELIVERABLE
    assert " stat:UNDELIV err:013 " in failed.short_message.decode()
    assert fine.message_state == c.SMPP_MESSAGE_STATE_DELIVERED


def test_responses_are_held_for_a_latency_spike(smsc: SmscThread) -> None:
    with bound(smsc, "transceiver") as peer:
        fault = add(smsc, kind="response_delay", delay=0.4)
        started = time.monotonic()
        assert submit_status(peer) == 0
        assert time.monotonic() - started >= 0.4
        remove(smsc, fault)
        assert submit_status(peer) == 0
    assert fault.hits == 1


# --- binds, links, outages ------------------------------------------------------------------


def test_binds_are_refused_while_the_rule_is_on(smsc: SmscThread) -> None:
    fault = add(smsc, kind="bind_refuse")
    peer = Peer(smsc.port)
    peer.client.connect()
    try:
        with pytest.raises(smpplib.exceptions.PDUError) as err:
            peer.client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        assert err.value.args[1] == c.SMPP_ESME_RBINDFAIL
    finally:
        peer.client.disconnect()
    remove(smsc, fault)
    with bound(smsc, "transceiver") as peer:
        assert submit_status(peer) == 0


def test_a_dropped_bind_is_seen_as_a_closed_connection_and_receipts_wait(
    smsc: SmscThread,
) -> None:
    smsc.call(srv(smsc).operator().pause_receipts)
    with bound(smsc, "transmitter") as tx:
        assert submit_status(tx) == 0
    rx = Peer(smsc.port)
    rx.client.connect()
    rx.client.bind_receiver(system_id=SYSTEM_ID, password=PASSWORD)
    drop = add(smsc, kind="bind_drop", account=SYSTEM_ID)
    with pytest.raises(smpplib.exceptions.ConnectionError):
        rx.read_until(lambda: False, timeout=10)
    rx.client.disconnect()
    assert drop.hits == 1
    smsc.call(srv(smsc).operator().resume_receipts)
    with bound(smsc, "receiver") as again:
        again.read_until(lambda: len(again.receipts()) == 1)


def test_a_bind_dropped_with_an_unbind_gets_one(smsc: SmscThread) -> None:
    peer = Peer(smsc.port)
    peer.client.connect()
    try:
        peer.client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        add(smsc, kind="bind_drop", unbind=True)
        pdu = peer.client.read_pdu()
        assert pdu.command == "unbind"
        answer = smpplib.smpp.make_pdu("unbind_resp", client=peer.client)
        answer.sequence = pdu.sequence
        peer.client.send_pdu(answer)
        with pytest.raises(smpplib.exceptions.ConnectionError):
            peer.client.read_pdu()  # the SMSC closes after unbind_resp
    finally:
        peer.client.disconnect()


def test_an_outage_cuts_every_bind_refuses_connections_then_delivers_what_waited() -> None:
    with SmscThread(smsc_config()) as smsc:
        tx = Peer(smsc.port)
        tx.client.connect()
        tx.client.bind_transmitter(system_id=SYSTEM_ID, password=PASSWORD)
        assert [submit_status(tx) for _ in range(3)] == [0, 0, 0]
        outage = add(smsc, kind="outage", duration=2.0)
        with pytest.raises(smpplib.exceptions.ConnectionError):
            tx.read_until(lambda: False, timeout=10)
        tx.client.disconnect()
        refused = 0

        def bind_once() -> bool:
            nonlocal refused
            peer = Peer(smsc.port)
            try:
                peer.client.connect()
                peer.client.bind_receiver(system_id=SYSTEM_ID, password=PASSWORD)
            except (smpplib.exceptions.ConnectionError, OSError):
                refused += 1
                peer.client.disconnect()
                time.sleep(0.1)
                return False
            peer.client.disconnect()
            return True

        wait_until(bind_once, timeout=30)
        assert refused >= 1  # the outage was seen from outside before it ended
        assert outage.hits >= 2  # the cut, and at least one connection closed at once
        refusals = smsc.call(lambda: dict(srv(smsc).operator().stats.connection_refusals))
        assert refusals["outage"] == outage.hits - 1
        with bound(smsc, "receiver") as rx:
            rx.read_until(lambda: len(rx.receipts()) == 3)  # nothing accepted was lost


def test_enquire_link_answered_late_or_never(smsc: SmscThread) -> None:
    with bound(smsc, "transceiver") as peer:
        never = add(smsc, kind="enquire_link", drop=True)
        peer.client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=peer.client))
        peer.client._socket.settimeout(1.0)
        with pytest.raises(socket.timeout):
            peer.client.read_pdu()
        remove(smsc, never)
        add(smsc, kind="enquire_link", delay=0.3)
        peer.client._socket.settimeout(10.0)
        started = time.monotonic()
        peer.client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=peer.client))
        assert peer.client.read_pdu().command == "enquire_link_resp"
        assert time.monotonic() - started >= 0.3
    assert never.hits == 1


# --- receipts -------------------------------------------------------------------------------


def test_receipts_delayed_and_duplicated(smsc: SmscThread) -> None:
    add(smsc, kind="receipt_delay", delay=0.5)
    duplicate = add(smsc, kind="receipt_duplicate")
    with bound(smsc, "transceiver") as peer:
        started = time.monotonic()
        assert submit_status(peer) == 0
        message_id = peer.responses[-1].message_id.decode()
        peer.read_until(lambda: len(peer.receipts()) == 2)
        assert time.monotonic() - started >= 0.5
    ids = [r.receipted_message_id.decode() for r in peer.receipts()]
    assert ids == [message_id, message_id]
    assert duplicate.hits == 1
    stats = smsc.call(srv(smsc).stats)
    assert (stats.receipts_due, stats.receipts_delivered) == (1, 2)


# --- malformed PDUs to the client -----------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "seen"),
    [
        ("unknown_command", smpplib.exceptions.UnknownCommandError),
        ("bad_body", Exception),  # smpplib fails to parse it, in its own way
        ("bad_length", Exception),
        ("truncated", smpplib.exceptions.ConnectionError),
    ],
)
def test_malformed_pdus_reach_the_client_and_the_smsc_serves_on(
    smsc: SmscThread, form: str, seen: type[Exception]
) -> None:
    other = Peer(smsc.port)  # a bind of another client, which must not notice
    other.client.connect()
    other.client.bind_transmitter(system_id=SYSTEM_ID, password=PASSWORD)
    try:
        peer = Peer(smsc.port)
        peer.client.connect()
        peer.client.bind_receiver(system_id=SYSTEM_ID, password=PASSWORD)
        add(smsc, kind="malformed", form=form, account=SYSTEM_ID)
        with pytest.raises(seen) as err:
            peer.read_until(lambda: False, timeout=10)
        # read_until's own AssertionError is a timeout: smpplib saw nothing wrong.
        assert not isinstance(err.value, AssertionError), err.value
        peer.client.disconnect()
        assert submit_status(other) == 0
        with bound(smsc, "receiver") as rx:
            rx.read_until(lambda: len(rx.receipts()) == 1)
    finally:
        other.client.disconnect()


def test_a_generic_nack_for_a_malformed_pdu_keeps_the_bind() -> None:
    """What a careful client (Kannel, say) does with a PDU it can't read: generic_nack;
    the SMSC logs it and the bind goes on (literal bytes: smpplib sends no nack)."""
    with SmscThread(smsc_config()) as smsc:
        with bound(smsc, "transceiver") as peer:
            add(smsc, kind="malformed", form="unknown_command")
            raw = peer.client._recv_exact(16)
            length, command_id, _, seq = struct.unpack(">IIII", raw)
            assert (length, command_id) == (16, 0x111)
            nack = struct.pack(">IIII", 16, 0x8000_0000, Status.ESME_RINVCMDID, seq)
            peer.client._socket.sendall(nack)
            assert submit_status(peer) == 0
            peer.read_until(lambda: len(peer.receipts()) == 1)
        assert smsc.call(srv(smsc).stats).protocol_errors == 1


def test_malformed_forms_are_what_they_say() -> None:
    """The forms' bytes, read field by field (not with our codec)."""
    unknown = malformed_pdu("unknown_command", 5)
    assert struct.unpack(">IIII", unknown) == (16, 0x111, 0, 5)
    body = malformed_pdu("bad_body", 6)
    length, cid, _, _ = struct.unpack(">IIII", body[:16])
    assert (length, cid) == (len(body), 5) and body[-1] != 0  # deliver_sm, cut mid-string
    assert struct.unpack(">I", malformed_pdu("bad_length", 7)[:4]) == (8,)
    truncated = malformed_pdu("truncated", 8)
    assert struct.unpack(">I", truncated[:4])[0] > len(truncated)


# --- from the config file, through the control API and the CLI --------------------------------


def test_rules_from_the_config_start_and_end_on_their_own() -> None:
    cfg = smsc_config().model_copy(
        update={
            "faults": FaultsConfig(
                rules=[FaultRule(kind=FaultKind.SUBMIT_ERROR, duration=1.0, name="boot-storm")]
            )
        }
    )
    with SmscThread(cfg) as smsc, bound(smsc, "transmitter") as peer:
        assert submit_status(peer) == c.SMPP_ESME_RSYSERR  # the default status
        wait_until(lambda: submit_status(peer) == 0, timeout=30)
        wait_until(lambda: not smsc.call(lambda: list(srv(smsc).faults.faults)), timeout=30)


def test_faults_through_the_control_api_and_smsim_faults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    cfg = SmscConfig(
        operators=[OperatorConfig(port=0, receipt=ReceiptConfig(delay=0.01))],
        control=ControlConfig(enabled=True, port=port),
    )
    url = f"http://127.0.0.1:{port}"
    with SmscThread(cfg) as smsc:
        api = ControlClient(url)
        got = api.post("/faults", {"kind": "submit_error", "status": "ESME_RTHROTTLED"})["fault"]
        assert got["active"] and got["rule"]["status"] == "ESME_RTHROTTLED"
        with bound(smsc, "transmitter") as peer:
            assert submit_status(peer) == c.SMPP_ESME_RTHROTTLED
            assert api.get("/faults")["faults"][0]["hits"] == 1
            with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
                samples = {
                    (s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(resp.read().decode())
                    for s in family.samples
                }
            key = (("kind", "submit_error"), ("name", got["name"]))
            assert samples[("smsim_fault_hits_total", key)] == 1
            assert samples[("smsim_fault_active", key)] == 1
            assert api.call("DELETE", f"/faults/{got['id']}")["removed"]["hits"] == 1
            assert submit_status(peer) == 0
        with pytest.raises(Exception, match=r"400 .*unknown SMPP status"):
            api.post("/faults", {"kind": "submit_error", "status": "NOPE"})
        with pytest.raises(Exception, match=r"404 .*no operator"):
            api.post("/faults", {"kind": "bind_refuse", "operator": "atlantis"})

        assert (
            smsim(
                ["faults", "add", "receipt_fail", "numbers=0155,0100", "err=13", "--control", url]
            )
            == 0
        )
        assert smsim(["faults", "--control", url, "list", "--json"]) == 0
        out = capsys.readouterr().out
        listed = json.loads(out[out.index("[") :])
        assert listed[0]["rule"] == {
            "kind": "receipt_fail",
            "numbers": ["0155", "0100"],
            "err": 13,
        }
        assert smsim(["faults", "clear", "--control", url]) == 0
        assert "removed 1 fault rules" in capsys.readouterr().out
        assert smsim(["faults", "remove", "99", "--control", url]) == 1
