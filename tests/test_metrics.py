"""/metrics over HTTP parses as Prometheus text and its numbers are the SMSC's: PDUs by
command and status, messages, receipts by stat, windows, queues, throttles, latency
histograms, the platform's reply delay; two servers keep separate registries."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulator.config import (
    AccountConfig,
    ControlConfig,
    OperatorConfig,
    ReceiptConfig,
    SmscConfig,
)
from simulator.esme.client import EsmeClient
from simulator.smpp.constants import EsmClass
from simulator.smpp.pdu import SubmitSm
from simulator.smsc.server import SmscServer

pytestmark = pytest.mark.timeout(30)


def config(tps: float = 0) -> SmscConfig:
    return SmscConfig(
        operators=[
            OperatorConfig(
                name="vodafone",
                port=0,
                receipt=ReceiptConfig(delay=0.01),
                accounts=[AccountConfig(tps=tps)],
            )
        ],
        control=ControlConfig(enabled=True, port=0),
    )


def sm(dest: str) -> SubmitSm:
    return SubmitSm(
        source_addr="1442",
        source_addr_ton=3,
        destination_addr=dest,
        dest_addr_ton=1,
        dest_addr_npi=1,
        registered_delivery=1,
        short_message=b"hello",
    )


async def until(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def scrape(smsc: SmscServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert smsc.control is not None
    async with aiohttp.ClientSession() as http, http.get(smsc.control.url + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(m: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return m[(name, tuple(sorted(labels.items())))]


async def test_metrics_are_the_smscs_counters() -> None:
    async with SmscServer(config(tps=1000)) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        for i in range(6):
            assert (await client.request(sm(f"20100000000{i}"))).command_status == 0
        smsc.inject_mo("201001234567", "1")
        await until(lambda: len(client.delivered) == 7)
        await until(lambda: smsc.operator().stats.receipts_delivered == 6)
        # The platform answers the MO: its reply delay is observed.
        assert (await client.request(sm("201001234567"))).command_status == 0
        smsc.operator().set_tps("rapidpro", 1)
        throttled = 0
        for _ in range(5):
            throttled += (await client.request(sm("201001111111"))).command_status == 0x58
        m = await scrape(smsc)
        op = {"operator": "vodafone"}
        assert (
            get(m, "smsim_pdus_total", direction="in", command="submit_sm", status="ESME_ROK", **op)
            == 12
        )
        assert (
            get(
                m,
                "smsim_pdus_total",
                direction="out",
                command="submit_sm_resp",
                status="ESME_ROK",
                **op,
            )
            == 12 - throttled
        )
        assert (
            get(
                m,
                "smsim_pdus_total",
                direction="out",
                command="submit_sm_resp",
                status="ESME_RTHROTTLED",
                **op,
            )
            == throttled
        )
        assert (
            get(
                m,
                "smsim_pdus_total",
                direction="in",
                command="deliver_sm_resp",
                status="ESME_ROK",
                **op,
            )
            >= 7
        )
        assert throttled >= 3
        assert get(m, "smsim_throttled_total", **op) == throttled
        assert get(m, "smsim_submits_total", **op) == 12
        assert get(m, "smsim_messages_accepted_total", **op) == 12 - throttled
        assert get(m, "smsim_receipts_total", stat="DELIVRD", **op) >= 6
        assert get(m, "smsim_mo_total", state="delivered", **op) == 1
        assert get(m, "smsim_account_tps_limit", account="rapidpro", **op) == 1
        acct = {"account": "rapidpro", **op}
        assert get(m, "smsim_account_messages_total", kind="throttled", **acct) == throttled
        assert get(m, "smsim_account_messages_total", kind="submits", **acct) == 12
        assert get(m, "smsim_account_messages_total", kind="mo_queued", **acct) == 1
        assert get(m, "smsim_queue_depth", account="rapidpro", **op) >= 0
        assert get(m, "smsim_binds", account="rapidpro", mode="bound_trx", **op) == 1
        peer = next(iter(smsc.operator().connections)).peer
        win = {"account": "rapidpro", "peer": peer, **op}
        assert get(m, "smsim_deliver_window_size", **win) == 10
        assert get(m, "smsim_submit_window_size", **win) == 100
        count = get(m, "smsim_delivery_response_seconds_count", **op)
        assert count >= 7
        assert get(m, "smsim_delivery_response_seconds_bucket", le="+Inf", **op) == count
        assert get(m, "smsim_delivery_response_seconds_bucket", le="30.0", **op) == count
        assert get(m, "smsim_platform_reply_seconds_count") == 1
        assert 0 < get(m, "smsim_platform_reply_seconds_sum") < 5
        client.close()


async def test_receipts_paused_and_held_are_gauges() -> None:
    async with SmscServer(config()) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        smsc.operator().pause_receipts()
        for i in range(3):
            await client.request(sm(f"20100000000{i}"))
        await until(lambda: len(smsc.operator().held_receipts) == 3)
        m = await scrape(smsc)
        assert get(m, "smsim_receipts_paused", operator="vodafone") == 1
        assert get(m, "smsim_receipts_held", operator="vodafone", account="rapidpro") == 3
        assert not [d for d in client.delivered if d.esm_class & EsmClass.DELIVERY_RECEIPT]
        client.close()


async def test_two_servers_two_registries() -> None:
    async with SmscServer(config()) as a, SmscServer(config()) as b:
        client = await EsmeClient.connect("127.0.0.1", a.port)
        await client.request(sm("201000000001"))
        ma, mb = await scrape(a), await scrape(b)
        key = {"operator": "vodafone"}
        assert get(ma, "smsim_submits_total", **key) == 1
        assert get(mb, "smsim_submits_total", **key) == 0
        client.close()


async def test_metrics_can_be_off() -> None:
    cfg = config().model_copy(
        update={"control": ControlConfig(enabled=True, port=0, metrics=False)}
    )
    async with SmscServer(cfg) as smsc:
        assert smsc.control is not None and smsc.replies is None
        async with aiohttp.ClientSession() as http, http.get(smsc.control.url + "/metrics") as r:
            assert r.status == 404


async def test_grafana_dashboard_queries_only_served_metrics() -> None:
    import json
    import re
    from pathlib import Path

    from simulator.config import PopulationConfig

    dash = json.loads(Path("docs/grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    wanted = {name for e in exprs for name in re.findall(r"smsim_[a-z_]+", e)}
    cfg = config().model_copy(update={"population": PopulationConfig(enabled=True, size=1000)})
    async with SmscServer(cfg) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        assert smsc.control is not None
        async with aiohttp.ClientSession() as http, http.get(smsc.control.url + "/metrics") as r:
            text = await r.text()
        client.close()
    # Every family is described (HELP/TYPE) even before it has samples.
    served = set()
    for family in text_string_to_metric_families(text):
        base = family.name
        served |= {base, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}
    assert len(wanted) >= 15
    assert wanted <= served, wanted - served
