"""The control API over real HTTP against a real SMSC with real binds: every endpoint
does what it says to the running SMSC (not only answers), and the token rules hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from simulator.config import (
    AccountConfig,
    ControlConfig,
    OperatorConfig,
    PopulationConfig,
    ReceiptConfig,
    SmscConfig,
)
from simulator.esme.client import EsmeClient
from simulator.smpp.constants import EsmClass, Status
from simulator.smpp.pdu import DeliverSm, SubmitSm
from simulator.smpp.session import Event, PduReceived
from simulator.smsc.control import resolve_token
from simulator.smsc.server import SmscServer

pytestmark = pytest.mark.timeout(30)


def config(population: bool = False, token: str = "", **acct: object) -> SmscConfig:
    return SmscConfig(
        operators=[
            OperatorConfig(
                name="vodafone",
                port=0,
                receipt=ReceiptConfig(delay=0.01),
                accounts=[AccountConfig(**acct)],  # type: ignore[arg-type]
            ),
            OperatorConfig(name="orange", port=0, receipt=ReceiptConfig(delay=0.01)),
        ],
        population=PopulationConfig(enabled=population, size=10_000),
        control=ControlConfig(enabled=True, port=0, token=token),
    )


async def until(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def sm(dest: str = "201001234567") -> SubmitSm:
    return SubmitSm(
        source_addr="1442",
        source_addr_ton=3,
        destination_addr=dest,
        dest_addr_ton=1,
        dest_addr_npi=1,
        registered_delivery=1,
        short_message=b"hello",
    )


@pytest.fixture
async def smsc() -> AsyncIterator[SmscServer]:
    async with SmscServer(config()) as server:
        yield server


@pytest.fixture
async def http(smsc: SmscServer) -> AsyncIterator[aiohttp.ClientSession]:
    assert smsc.control is not None
    async with aiohttp.ClientSession(smsc.control.url) as session:
        yield session


class Deaf(EsmeClient):
    """Takes deliver_sm and never answers: its window fills."""

    def _handle(self, events: list[Event]) -> None:
        for ev in events:
            if type(ev) is PduReceived and isinstance(ev.pdu, DeliverSm):
                self.delivered.append(ev.pdu)
        super()._handle(
            [e for e in events if not (type(e) is PduReceived and isinstance(e.pdu, DeliverSm))]
        )


def receipts(client: EsmeClient) -> list[object]:
    return [d for d in client.delivered if d.esm_class & EsmClass.DELIVERY_RECEIPT]


async def test_openapi_lists_every_route(smsc: SmscServer, http: aiohttp.ClientSession) -> None:
    async with http.get("/openapi.json") as r:
        doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    assert smsc.control is not None
    served = {
        (route.method.lower(), route.resource.canonical)  # type: ignore[union-attr]
        for route in smsc.control.app().router.routes()
        if route.method != "HEAD"
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served - {("get", "/openapi.json")} == documented


async def test_inject_mo_reaches_the_bound_platform(
    smsc: SmscServer, http: aiohttp.ClientSession
) -> None:
    client = await EsmeClient.connect("127.0.0.1", smsc.port, mode="rx")
    async with http.post(
        "/mo", json={"source": "201001234567", "text": "١ نعم", "operator": "vodafone"}
    ) as r:
        assert r.status == 200
        assert await r.json() == {"operator": "vodafone", "account": "rapidpro", "parts": 1}
    await until(lambda: len(client.delivered) == 1)
    mo = client.delivered[0]
    assert mo.source_addr == "201001234567"
    assert mo.destination_addr == "1442"
    assert mo.short_message.decode("utf-16-be") == "١ نعم"
    batch = [{"source": f"2012000000{i:02d}", "text": f"answer {i}"} for i in range(30)]
    async with http.post("/mo/batch", json={"messages": batch}) as r:
        assert await r.json() == {"queued": 30, "parts": 30}
    await until(lambda: len(client.delivered) == 31)
    assert [d.short_message for d in client.delivered[1:]] == [
        f"answer {i}".encode() for i in range(30)
    ]
    client.close()


async def test_bad_requests_are_400_or_404(http: aiohttp.ClientSession) -> None:
    async with http.post("/mo", data=b"{not json") as r:
        assert r.status == 400
    async with http.post("/mo", json={"source": "abc", "text": "x"}) as r:
        assert r.status == 400
        assert "source" in (await r.json())["error"]
    async with http.post("/mo", json={"source": "201001234567", "text": "\ud800"}) as r:
        assert r.status == 400
    async with http.post("/mo", json={"source": "2010", "text": "x", "operator": "we"}) as r:
        assert r.status == 404
    async with http.post("/mo", json={"source": "2010", "text": "x", "account": "nobody"}) as r:
        assert r.status == 404
    async with http.post("/mo/batch", json={"messages": []}) as r:
        assert r.status == 400
    async with http.get("/no/such/path") as r:
        assert r.status == 404
        assert "error" in await r.json()


async def test_binds_list_windows_and_drop(smsc: SmscServer, http: aiohttp.ClientSession) -> None:
    trx = await Deaf.connect("127.0.0.1", smsc.port)
    orange = await EsmeClient.connect("127.0.0.1", smsc.address("orange")[1], mode="tx")
    # The client never answers deliver_sm: receipts fill its window of 10.
    for i in range(15):
        assert (await trx.request(sm(f"2010000000{i:02d}"))).command_status == 0
    await until(lambda: smsc.operator("vodafone").pending_deliveries() == 15)
    async with http.get("/binds") as r:
        binds = (await r.json())["binds"]
    by_op = {b["operator"]: b for b in binds}
    assert by_op["vodafone"]["mode"] == "bound_trx"
    assert by_op["vodafone"]["deliver_window"] == {"size": 10, "in_flight": 10}
    assert by_op["orange"]["mode"] == "bound_tx"
    assert by_op["orange"]["deliver_window"]["in_flight"] == 0
    async with http.get("/stats") as r:
        stats = await r.json()
    assert stats["operators"]["vodafone"]["accounts"]["rapidpro"]["queued"] == 5
    assert stats["operators"]["vodafone"]["accounts"]["rapidpro"]["counters"] == {
        "submits": 15,
        "accepted": 15,
        "throttled": 0,
        "receipts_due": 15,
        "mo_queued": 0,
    }
    assert stats["operators"]["orange"]["accounts"]["rapidpro"]["counters"]["submits"] == 0
    assert stats["operators"]["vodafone"]["counters"]["accepted"] == 15
    async with http.post("/binds/drop", json={"operator": "vodafone"}) as r:
        assert await r.json() == {"dropped": 1}
    await until(lambda: not smsc.operator("vodafone").connections)
    # The dropped bind's ten in flight went back to the queue: nothing was lost.
    assert smsc.operator("vodafone").accounts["rapidpro"].outbox.__len__() == 15
    async with http.get("/binds") as r:
        assert [b["operator"] for b in (await r.json())["binds"]] == ["orange"]
    async with http.post("/binds/drop", json={"operator": "orange", "unbind": True}) as r:
        assert await r.json() == {"dropped": 1}
    await orange.wait_closed()
    async with http.post("/binds/drop", json={"operator": "etisalat"}) as r:
        assert r.status == 404


async def test_tps_changes_at_run_time(smsc: SmscServer, http: aiohttp.ClientSession) -> None:
    client = await EsmeClient.connect("127.0.0.1", smsc.port)
    statuses = [(await client.request(sm())).command_status for _ in range(20)]
    assert Status.ESME_RTHROTTLED not in statuses
    async with http.put("/operators/vodafone/accounts/rapidpro/tps", json={"tps": 5}) as r:
        assert await r.json() == {"operator": "vodafone", "system_id": "rapidpro", "tps": 5}
    statuses = [(await client.request(sm())).command_status for _ in range(20)]
    assert statuses.count(0) <= 6  # a burst of one second's worth, then throttled
    assert statuses.count(Status.ESME_RTHROTTLED) >= 14
    async with http.put("/operators/vodafone/accounts/rapidpro/tps", json={"tps": 0}) as r:
        assert r.status == 200
    statuses = [(await client.request(sm())).command_status for _ in range(20)]
    assert Status.ESME_RTHROTTLED not in statuses
    async with http.put("/operators/vodafone/accounts/nobody/tps", json={"tps": 1}) as r:
        assert r.status == 404
    async with http.put("/operators/vodafone/accounts/rapidpro/tps", json={"tps": -1}) as r:
        assert r.status == 400
    client.close()


async def test_pause_holds_receipts_and_resume_releases_them_in_order(
    smsc: SmscServer, http: aiohttp.ClientSession
) -> None:
    client = await EsmeClient.connect("127.0.0.1", smsc.port)
    async with http.post("/receipts/pause") as r:
        assert await r.json() == {"paused": True, "held": 0}
    ids = [(await client.request(sm(f"20100000001{i}"))).message_id for i in range(5)]
    await until(lambda: len(smsc.operator("vodafone").held_receipts) == 5)
    assert smsc.pending_deliveries() == 5  # held receipts still count as undelivered
    await asyncio.sleep(0.1)
    assert receipts(client) == []
    # MO is not held.
    async with http.post("/mo", json={"source": "201001234567", "text": "hi"}) as r:
        assert r.status == 200
    await until(lambda: len(client.delivered) == 1)
    async with http.post("/receipts/resume", json={"operator": "vodafone"}) as r:
        assert await r.json() == {"paused": False, "released": 5}
    await until(lambda: len(receipts(client)) == 5)
    assert [d.tlvs[0x001E] for d in receipts(client)] == ids  # type: ignore[attr-defined]
    client.close()


async def test_stats_count_pdus_and_delivery_latency(
    smsc: SmscServer, http: aiohttp.ClientSession
) -> None:
    client = await EsmeClient.connect("127.0.0.1", smsc.port)
    for _ in range(4):
        await client.request(sm())
    await until(lambda: len(receipts(client)) == 4)
    await until(lambda: smsc.operator("vodafone").stats.receipts_delivered == 4)
    async with http.get("/stats") as r:
        vf = (await r.json())["operators"]["vodafone"]
    assert vf["pdus_in"]["submit_sm ESME_ROK"] == 4
    assert vf["pdus_in"]["bind_transceiver ESME_ROK"] == 1
    assert vf["pdus_in"]["deliver_sm_resp ESME_ROK"] == 4
    assert vf["pdus_out"]["submit_sm_resp ESME_ROK"] == 4
    assert vf["pdus_out"]["deliver_sm ESME_ROK"] == 4
    assert vf["delivery_rtt"]["count"] == 4
    assert 0 < vf["delivery_rtt"]["p99"] <= 1
    assert vf["counters"]["receipts_by_stat"] == {"DELIVRD": 4}
    client.close()


async def test_subscriber_lookup_needs_the_population(http: aiohttp.ClientSession) -> None:
    async with http.get("/subscribers/201001234567") as r:
        assert r.status == 409


async def test_subscriber_shows_what_they_received_and_sent() -> None:
    async with SmscServer(config(population=True)) as smsc:
        assert smsc.subscribers is not None and smsc.control is not None
        number = smsc.subscribers.population.msisdn(7)
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        op = smsc.subscribers.listener_for(number)
        assert op is not None
        other = await EsmeClient.connect("127.0.0.1", smsc.address(op)[1])
        async with aiohttp.ClientSession(smsc.control.url) as http:
            # Routed through the subscriber's serving operator when none is named.
            async with http.post("/mo", json={"source": number, "text": "hello 1442"}) as r:
                assert (await r.json())["operator"] == op
            await client.request(sm(number))
            await until(lambda: bool(smsc.subscribers and smsc.subscribers.received_by(number)))
            national = "0" + number[2:]
            async with http.get(f"/subscribers/{national}", params={"limit": "5"}) as r:
                body = await r.json()
            assert body["number"] == number
            assert body["listener"] == op
            assert body["profile"]["msisdn"] == number
            assert [e["text"] for e in body["received"]] == ["hello"]
            # What the simulated person sent (an injected MO is not theirs).
            sent = smsc.subscribers.sent_by(number, 5)
            assert [e["text"] for e in body["sent"]] == [e.text for e in sent]
            async with http.get("/subscribers/1442") as r:
                assert r.status == 404
            async with http.get(f"/subscribers/{number}", params={"limit": "x"}) as r:
                assert r.status == 400
        client.close()
        other.close()


async def test_token_rules() -> None:
    loop_cfg = ControlConfig(host="127.0.0.1")
    assert resolve_token(loop_cfg, None) == (None, False)
    assert resolve_token(loop_cfg, "from-env") == ("from-env", False)
    assert resolve_token(ControlConfig(host="127.0.0.1", token="t"), "env") == ("t", False)
    token, generated = resolve_token(ControlConfig(host="0.0.0.0"), None)
    assert generated and token and len(token) >= 24
    assert resolve_token(ControlConfig(host="::1"), None) == (None, False)
    async with SmscServer(config(token="s3cret")) as smsc:
        assert smsc.control is not None
        async with aiohttp.ClientSession(smsc.control.url) as http:
            async with http.get("/stats") as r:
                assert r.status == 401
            async with http.get("/metrics", headers={"Authorization": "Token wrong"}) as r:
                assert r.status == 401
            async with http.get("/stats", headers={"Authorization": "Token s3cret"}) as r:
                assert r.status == 200
            async with http.get("/metrics", headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 200


async def test_control_is_off_unless_enabled() -> None:
    async with SmscServer(SmscConfig(operators=[OperatorConfig(port=0)])) as smsc:
        assert smsc.control is None
        assert smsc.replies is None


async def test_a_busy_control_port_leaves_the_smsc_running(caplog) -> None:  # type: ignore[no-untyped-def]
    cfg = config()
    async with SmscServer(cfg) as first:
        assert first.control is not None
        busy = cfg.control.model_copy(update={"port": first.control.port})
        async with SmscServer(
            cfg.model_copy(update={"operators": [OperatorConfig(port=0)], "control": busy})
        ) as second:
            assert second.control is None
            assert any("control_unavailable" in r.getMessage() for r in caplog.records)
            client = await EsmeClient.connect("127.0.0.1", second.port)
            assert (await client.request(sm())).command_status == 0
            client.close()
        async with aiohttp.ClientSession(first.control.url) as http, http.get("/status") as r:
            assert r.status == 200
