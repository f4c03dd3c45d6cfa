"""Faults against the gateway the ministry's platform really uses: Kannel 1.4.5.

What Kannel does when the SMSC misbehaves, as these tests pin it, and that nothing
accepted is lost either way:

* ESME_RTHROTTLED: it holds the message and submits it again on its resend thread's
  next round (core ``sms-resend-freq``: 60 s by default, so with the defaults a
  throttling storm delays each refused message by up to a minute; 2 s here); every
  message is accepted in the end and its receipt reaches courier.
* a dropped bind: it reconnects (``reconnect-delay``) and binds again; MO queued
  meanwhile reaches courier after the rebind.
* a PDU it can't read (an unknown command_id): it answers generic_nack and keeps the
  bind, which goes on carrying MO.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.config import FaultRule
from tests.support.kannel import RecordedRequest, kannel_required
from tests.test_interop_kannel import (
    FINAL_STATUSES,
    HANDSET,
    RECEIVE_PATH,
    is_status,
    topology,
    until,
)

pytestmark = [pytest.mark.kannel, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _require_kannel() -> None:
    kannel_required()


def mo_saying(text: str) -> Callable[[RecordedRequest], bool]:
    return lambda r: r.path == RECEIVE_PATH and r.get("message") == text


async def test_kannel_resubmits_what_a_throttling_storm_refused(tmp_path: Path) -> None:
    async with topology(tmp_path, extra_core={"sms-resend-freq": 2}) as t:
        storm = t.smsc.add_fault(
            FaultRule(kind="submit_error", status="ESME_RTHROTTLED", share=0.5)
        )
        uuids = [f"storm-{i}" for i in range(10)]
        for i, uuid in enumerate(uuids):
            await t.send(f"Takaful reminder {i}", uuid)
        await until(lambda: storm.hits >= 1, 30, "a throttled submit")
        for uuid in uuids:
            await t.wait_request(is_status(uuid, FINAL_STATUSES), timeout=60)
        stats = t.smsc.stats()
        assert stats.accepted == 10  # each message accepted once, in the end
        assert stats.throttled == storm.hits >= 1
        assert stats.submits == stats.accepted + stats.throttled
        assert [t.statuses(u)[-1] for u in uuids] == ["1"] * 10  # all DELIVRD for courier


async def test_kannel_rebinds_after_a_drop_and_gets_the_mo_that_waited(tmp_path: Path) -> None:
    async with topology(tmp_path) as t:
        drop = t.smsc.add_fault(FaultRule(kind="bind_drop"))
        await until(lambda: drop.hits == 1 and t.smsc.stats().binds >= 1, 10, "the drop")
        t.smsc.inject_mo(HANDSET, "مساعدة")  # queued while Kannel reconnects
        got = await t.wait_request(mo_saying("مساعدة"), timeout=60)
        assert got.get("sender") == "+" + HANDSET
        assert t.smsc.stats().binds >= 2  # bound again
        assert t.smsc.stats().mo_delivered == 1


async def test_kannel_nacks_a_pdu_it_cannot_read_and_keeps_the_bind(tmp_path: Path) -> None:
    async with topology(tmp_path) as t:
        bad = t.smsc.add_fault(FaultRule(kind="malformed", form="unknown_command"))
        await until(lambda: t.smsc.stats().protocol_errors >= 1, 30, "Kannel's generic_nack")
        assert bad.hits == 1
        t.smsc.inject_mo(HANDSET, "نعم")
        await t.wait_request(mo_saying("نعم"), timeout=30)
        stats = t.smsc.stats()
        assert stats.binds == 1  # the same bind carried it
        assert stats.mo_delivered == 1
