"""``smsim smsc`` with its population, as a user runs it: the defaults put people behind
the numbers, ``--population``, ``--seed`` and ``--time-scale`` change who they are and how
fast they live, ``--no-subscribers`` turns them off."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.config import BehaviourConfig, DeliveryConfig, PopulationConfig
from simulator.esme.client import EsmeClient
from simulator.smpp.constants import EsmClass, MessageState
from simulator.smpp.pdu import DeliverSm, SubmitSm
from simulator.smpp.text import choose_coding, decode_text
from simulator.subscribers.behaviour import BehaviourModel
from simulator.subscribers.delivery import DeliveryModel
from simulator.subscribers.population import Population
from simulator.subscribers.profile import Availability, Subscriber
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(60)
QUESTION = "هل حضر أطفالك المدرسة هذا الشهر؟ ١) نعم ٢) لا"


def smsim(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "smsc", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _bind(port: int, received: list[DeliverSm]) -> EsmeClient:
    for _ in range(150):
        try:
            return await EsmeClient.connect(
                "127.0.0.1", port, on_deliver=lambda p: received.append(p) or 0
            )
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("smsim smsc did not come up")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


def _submit(number: str) -> SubmitSm:
    coding, payload = choose_coding(QUESTION)
    return SubmitSm(
        source_addr="1442",
        source_addr_ton=3,
        destination_addr=number,
        dest_addr_ton=1,
        dest_addr_npi=1,
        data_coding=coding,
        short_message=payload,
        registered_delivery=1,
    )


def _quick_replier(pop: Population, at: float) -> tuple[Subscriber, str, float]:
    """The member whose handset is on who answers QUESTION soonest (as the SMSC's default
    models decide), the answer and its delay: within minutes by day, in the morning when
    ``at`` is a Cairo night (people answer after they wake)."""
    delivery, behaviour = DeliveryModel(DeliveryConfig()), BehaviourModel(BehaviourConfig())
    best: tuple[Subscriber, str, float] | None = None
    for i in range(pop.size):
        sub = pop.profile_at(i)
        if sub.availability is not Availability.ALWAYS or sub.opted_out:
            continue
        fate = delivery.fate(sub, at, "", 0)
        if fate.state is not MessageState.DELIVERED:
            continue
        replies = behaviour.react(sub, QUESTION, at + fate.delay, 0)
        if len(replies) == 1 and replies[0].text and (best is None or replies[0].delay < best[2]):
            best = (sub, replies[0].text, fate.delay + replies[0].delay)
    assert best is not None, "nobody answers"
    return best


async def test_population_seed_and_time_scale_from_the_command_line() -> None:
    size, seed, scale = 5_000, 9, 3600.0
    pop = Population(PopulationConfig(size=size, seed=seed))
    sub, answer, delay = _quick_replier(pop, time.time())
    assert delay < 9 * 3600  # a night in Cairo ends within 9 hours
    stranger = next(f"2010{i:08d}" for i in range(10**8) if f"2010{i:08d}" not in pop)
    port = free_port()
    proc = smsim("--port", str(port), "--population", str(size), "--seed", str(seed),
                 "--time-scale", str(scale))  # fmt: skip
    received: list[DeliverSm] = []
    try:
        client = await _bind(port, received)
        t0 = time.monotonic()
        for number in (sub.msisdn, stranger):
            resp = await client.request(_submit(number))
            assert resp.command_status == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            mo = [p for p in received if not p.esm_class & EsmClass.DELIVERY_RECEIPT]
            if mo and len(received) >= 3:
                break
            await asyncio.sleep(0.05)
        waited = time.monotonic() - t0
        await client.unbind()
    finally:
        err = _stop(proc)
    assert f"{size:,} subscribers (seed {seed}), time x{scale:g}" in err
    receipts = {
        p.source_addr: p.short_message.split(b"stat:")[1][:7].decode()
        for p in received
        if p.esm_class & EsmClass.DELIVERY_RECEIPT
    }
    # The member of *this* population (size and seed) is reached; a number outside it
    # is not in service.
    assert receipts == {sub.msisdn: "DELIVRD", stranger: "UNDELIV"}
    (mo,) = [p for p in received if not p.esm_class & EsmClass.DELIVERY_RECEIPT]
    assert (mo.source_addr, mo.destination_addr) == (sub.msisdn, "1442")
    assert decode_text(mo.short_message, mo.data_coding) == answer
    # Simulated minutes (by day) or hours (a night) passed in real seconds (at x1 the
    # reply would take ``delay`` seconds; the SMSC's clock ran on while the client bound,
    # so no lower bound here: test_subscriber_engine checks compression both ways).
    assert waited < 30


async def test_no_subscribers_falls_back_to_the_fixed_receipt() -> None:
    port = free_port()
    proc = smsim("--port", str(port), "--no-subscribers")
    received: list[DeliverSm] = []
    stranger = "201000000001"
    try:
        client = await _bind(port, received)
        assert (await client.request(_submit(stranger))).command_status == 0
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await client.unbind()
    finally:
        err = _stop(proc)
    assert "subscribers (seed" not in err
    (receipt,) = received
    assert b"stat:DELIVRD" in receipt.short_message  # nobody behind it: the fixed policy


async def test_default_run_has_the_3_5_million_population() -> None:
    port = free_port()
    proc = smsim("--port", str(port))
    received: list[DeliverSm] = []
    try:
        client = await _bind(port, received)
        await client.unbind()
    finally:
        err = _stop(proc)
    assert "3,500,000 subscribers (seed 1442), time x1" in err
