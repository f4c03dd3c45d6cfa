"""RapidPro's API v2 subset over real HTTP (aiohttp's test server on 127.0.0.1).

The shapes asserted are RapidPro's (``temba/api/v2/serializers.py`` and the examples in
``views.py``): field names, types, null where RapidPro gives null, 201 on create, 400
bodies keyed by field, ``{"detail": ...}`` for query errors and auth, cursor pages newest
first with ``next``/``previous`` URLs. A fake platform stands in for the flow engine.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from simulator.platform.api import OPENAPI, FlowSummary, create_api, format_datetime
from simulator.platform.model import Broadcast, Contact, MsgDirection, MsgStatus
from simulator.platform.store import FlowStartRecord, PlatformStore

pytestmark = pytest.mark.timeout(30)

TOKEN = "0123456789abcdef0123456789abcdef01234567"
AUTH = {"Authorization": f"Token {TOKEN}"}
T0 = 1_700_000_000.0
QUIZ = "5f05311e-8f81-4a67-a5b5-1501b6d6496a"
SURVEY = "c1bc5fcf-3e27-4265-97bf-f6c3a385c2d6"
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class FakePlatform:
    """What the platform does on a broadcast or flow start, minus the sending."""

    store: PlatformStore
    now: float = T0
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def tick(self, seconds: float = 1.0) -> float:
        self.now += seconds
        return self.now

    def contacts(self, urns: list[str], contact_uuids: list[str]) -> list[Contact]:
        found = [self.store.contact_by_uuid(u) for u in contact_uuids]
        out = [c for c in found if c is not None]
        out += [self.store.get_or_create_contact(u, self.now)[0] for u in urns]
        return out

    def broadcast(self, text: str, urns: list[str], contact_uuids: list[str]) -> Broadcast:
        self.calls.append(("broadcast", text, urns, contact_uuids))
        ids = [self.store.contact_by_uuid(u).id for u in contact_uuids]  # type: ignore[union-attr]
        b = self.store.new_broadcast(text, ids, urns, self.tick())
        for c in self.contacts(urns, contact_uuids):
            self.store.new_msg(c, MsgDirection.OUT, text, self.now, broadcast_id=b.id)
        return b

    def start_flow(
        self,
        flow_uuid: str,
        urns: list[str],
        contact_uuids: list[str],
        restart_participants: bool,
        exclude_active: bool,
        params: dict[str, Any],
    ) -> FlowStartRecord:
        self.calls.append(
            ("start", flow_uuid, urns, contact_uuids, restart_participants, exclude_active, params)
        )
        ids = [self.store.contact_by_uuid(u).id for u in contact_uuids]  # type: ignore[union-attr]
        return self.store.new_flow_start(
            flow_uuid,
            ids,
            urns,
            self.tick(),
            restart_participants=restart_participants,
            exclude_active=exclude_active,
            params=params,
        )

    def flows(self) -> list[FlowSummary]:
        return [
            FlowSummary(
                uuid=QUIZ,
                name="COVID-19 quiz",
                expires=720,
                results=[
                    {
                        "key": "q1",
                        "name": "Q1",
                        "categories": ["Correct", "Wrong", "Other"],
                        "node_uuids": ["99afcda7-f928-4d4a-ae83-c90c96deb76d"],
                    }
                ],
                created_on=T0 - 100,
                modified_on=T0 - 50,
            ),
            FlowSummary(uuid=SURVEY, name="Feedback", created_on=T0 - 10, modified_on=T0 - 10),
        ]


@dataclass
class Env:
    client: TestClient[web.Request, web.Application]
    store: PlatformStore
    platform: FakePlatform

    async def get(self, path: str, status: int = 200, **params: Any) -> Any:
        resp = await self.client.get(path, params=params, headers=AUTH)
        body = await resp.json()
        assert resp.status == status, body
        return body

    async def post(self, path: str, body: Any, status: int = 201) -> Any:
        resp = await self.client.post(path, json=body, headers=AUTH)
        data = await resp.json()
        assert resp.status == status, data
        return data


async def make_env(tmp_path: Path, **kw: Any) -> AsyncIterator[Env]:
    # No background flusher: every read must flush by itself to see new records.
    store = PlatformStore(tmp_path / "api.sqlite3", autoflush=False)
    platform = FakePlatform(store)
    app = create_api(store, platform, TOKEN, **kw)
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(app, host="127.0.0.1", port=0)
    )
    await client.start_server()
    try:
        yield Env(client, store, platform)
    finally:
        await client.close()
        store.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in make_env(tmp_path):
        yield e


def contact(env: Env, n: int, **kw: Any) -> Contact:
    return env.store.new_contact(f"tel:+2010012345{n:02d}", env.platform.tick(), **kw)


# ---------------------------------------------------------------------- auth


async def test_token_required_as_rapidpro_answers(env: Env) -> None:
    c = env.client
    for headers, detail in (
        ({}, "Authentication credentials were not provided."),
        ({"Authorization": "Bearer " + TOKEN}, "Authentication credentials were not provided."),
        ({"Authorization": "Token"}, "Invalid token header. No credentials provided."),
        (
            {"Authorization": "Token a b"},
            "Invalid token header. Token string should not contain spaces.",
        ),
        ({"Authorization": "Token wrong"}, "Invalid token"),
    ):
        for method, path in (("GET", "/api/v2/messages.json"), ("POST", "/api/v2/broadcasts.json")):
            resp = await c.request(method, path, headers=headers, json={})
            assert resp.status == 403, (headers, path)
            assert await resp.json() == {"detail": detail}
    resp = await c.get("/api/v2/messages.json", headers={"Authorization": f"token {TOKEN}"})
    assert resp.status == 200
    for path in ("/api/v2/health", "/openapi.json"):
        assert (await c.get(path)).status == 200


async def test_auth_failure_status_can_be_401(tmp_path: Path) -> None:
    async for e in make_env(tmp_path, auth_failure_status=401):
        resp = await e.client.get("/api/v2/contacts.json")
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Token"


async def test_unknown_method_and_path_answer_json(env: Env) -> None:
    resp = await env.client.delete("/api/v2/broadcasts.json", headers=AUTH)
    assert resp.status == 405
    assert await resp.json() == {"detail": 'Method "DELETE" not allowed.'}
    resp = await env.client.get("/api/v2/nothing.json", headers=AUTH)
    assert resp.status == 404
    assert await resp.json() == {"detail": "Not found."}


# ---------------------------------------------------------------------- broadcasts


async def test_post_broadcast_201_with_rapidpro_shape(env: Env) -> None:
    amal = contact(env, 1, name="Amal")
    body = await env.post(
        "/api/v2/broadcasts.json",
        {"text": "موعد صرف تكافل وكرامة", "urns": ["tel:01001234599"], "contacts": [amal.uuid]},
    )
    assert env.platform.calls == [
        ("broadcast", "موعد صرف تكافل وكرامة", ["tel:+201001234599"], [amal.uuid])
    ]
    assert set(body) == {
        "id",
        "urns",
        "contacts",
        "groups",
        "text",
        "attachments",
        "base_language",
        "status",
        "created_on",
    }
    assert isinstance(body["id"], int)
    assert body["urns"] == ["tel:+201001234599"]
    assert body["contacts"] == [{"uuid": amal.uuid, "name": "Amal"}]
    assert body["groups"] == []
    assert body["text"] == {"ara": "موعد صرف تكافل وكرامة"}
    assert body["attachments"] == {"ara": []}
    assert body["base_language"] == "ara"
    assert body["status"] == "queued"
    assert DATE.match(body["created_on"])

    listed = await env.get("/api/v2/broadcasts.json")
    assert listed == {"next": None, "previous": None, "results": [body]}


async def test_broadcast_translations_pick_the_base_language(env: Env) -> None:
    await env.post(
        "/api/v2/broadcasts.json",
        {
            "text": {"eng": "Hello", "ara": "مرحبا"},
            "base_language": "eng",
            "urns": ["tel:+201001234500"],
        },
    )
    await env.post(
        "/api/v2/broadcasts.json",
        {"text": {"eng": "Hello", "ara": "مرحبا"}, "urns": ["tel:+201001234500"]},
    )
    assert [call[1] for call in env.platform.calls] == ["Hello", "مرحبا"]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"non_field_errors": ["Must provide either text or attachments."]}),
        ({"text": "hi"}, {"non_field_errors": ["Must provide either urns, contacts or groups."]}),
        (
            {"text": "hi", "urns": ["tel:+201001234500", "foo:bar"]},
            {"urns": {"1": ["Invalid URN: foo:bar. Ensure phone numbers contain country codes."]}},
        ),
        (
            {"text": "hi", "urns": "tel:+201001234500"},
            {"urns": ['Expected a list of items but got type "str".']},
        ),
        (
            {"text": "hi", "urns": [f"tel:+2010012{i:05d}" for i in range(101)]},
            {"urns": ["Ensure this field has no more than 100 elements."]},
        ),
        (
            {"text": "hi", "contacts": ["09d23a05-47fe-11e4-bfe9-b8f6b119e9ab"]},
            {"contacts": ["No such object: 09d23a05-47fe-11e4-bfe9-b8f6b119e9ab"]},
        ),
        ({"text": "hi", "groups": [123456]}, {"groups": ["No such object: 123456"]}),
        (
            {"text": "x" * 641, "urns": ["tel:+201001234500"]},
            {"text": {"ara": ["Ensure this field has no more than 640 characters."]}},
        ),
        (
            {"text": {"kin": "Muraho"}, "base_language": "eng", "urns": ["tel:+201001234500"]},
            {"non_field_errors": ["No text translation provided in base language."]},
        ),
        ([1, 2], {"non_field_errors": ["Request body should be a single JSON object"]}),
    ],
)
async def test_post_broadcast_400s(env: Env, body: Any, errors: dict[str, Any]) -> None:
    assert await env.post("/api/v2/broadcasts.json", body, status=400) == errors
    assert env.platform.calls == []


async def test_invalid_json_body(env: Env) -> None:
    resp = await env.client.post(
        "/api/v2/broadcasts.json",
        data=b"{nope",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert (await resp.json())["detail"].startswith("JSON parse error")


async def test_contacts_may_be_given_by_urn(env: Env) -> None:
    amal = contact(env, 1)
    body = await env.post("/api/v2/broadcasts.json", {"text": "hi", "contacts": [amal.urn]})
    assert body["contacts"][0]["uuid"] == amal.uuid


async def test_list_broadcasts_filters(env: Env) -> None:
    ids = []
    for i in range(3):
        ids.append(
            (
                await env.post(
                    "/api/v2/broadcasts.json", {"text": f"b{i}", "urns": ["tel:+201001234500"]}
                )
            )["id"]
        )
    results = (await env.get("/api/v2/broadcasts.json"))["results"]
    assert [b["id"] for b in results] == ids[::-1]
    created = [b["created_on"] for b in results]
    assert [b["id"] for b in (await env.get("/api/v2/broadcasts.json", id=ids[1]))["results"]] == [
        ids[1]
    ]
    # before / after are inclusive, as RapidPro's
    assert [
        b["id"] for b in (await env.get("/api/v2/broadcasts.json", before=created[1]))["results"]
    ] == ids[:2][::-1]
    assert [
        b["id"] for b in (await env.get("/api/v2/broadcasts.json", after=created[1]))["results"]
    ] == ids[1:][::-1]
    assert (await env.get("/api/v2/broadcasts.json", after="not a date"))["results"] == []
    # an offset's "+" sent unencoded reaches the server as a space; it still parses
    plus = created[1].replace("Z", "+00:00")
    resp = await env.client.get(f"/api/v2/broadcasts.json?after={plus}", headers=AUTH)
    assert [b["id"] for b in (await resp.json())["results"]] == ids[1:][::-1]
    assert await env.get("/api/v2/broadcasts.json", status=400, id="x") == {
        "detail": "Value for id must be an integer"
    }


# ---------------------------------------------------------------------- flow starts and flows


async def test_post_flow_start_201_with_rapidpro_shape(env: Env) -> None:
    amal = contact(env, 1, name="Amal")
    body = await env.post(
        "/api/v2/flow_starts.json",
        {
            "flow": QUIZ,
            "contacts": [amal.uuid],
            "urns": ["tel:+201001234599"],
            "restart_participants": False,
            "params": {"round": 3},
        },
    )
    assert env.platform.calls == [
        ("start", QUIZ, ["tel:+201001234599"], [amal.uuid], False, False, {"round": 3})
    ]
    assert body == {
        "id": body["id"],
        "uuid": body["uuid"],
        "flow": {"uuid": QUIZ, "name": "COVID-19 quiz"},
        "status": "pending",
        "groups": [],
        "contacts": [{"uuid": amal.uuid, "name": "Amal"}],
        "params": {"round": 3},
        "created_on": body["created_on"],
        "modified_on": body["modified_on"],
        "extra": {"round": 3},
        "restart_participants": False,
        "exclude_active": False,
    }
    assert isinstance(body["id"], int) and UUID.match(body["uuid"])
    assert DATE.match(body["created_on"]) and DATE.match(body["modified_on"])
    listed = await env.get("/api/v2/flow_starts.json")
    assert listed["results"] == [body]
    assert (await env.get("/api/v2/flow_starts.json", uuid=body["uuid"]))["results"] == [body]
    await env.get("/api/v2/flow_starts.json", status=400, uuid="xyz")


async def test_flow_start_defaults_and_extra(env: Env) -> None:
    await env.post(
        "/api/v2/flow_starts.json", {"flow": QUIZ, "urns": ["tel:+201001234500"], "extra": {"a": 1}}
    )
    assert env.platform.calls[-1][4:] == (True, False, {"a": 1})


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"flow": ["This field is required."], "non_field_errors": None}),
        ({"flow": "abcde", "urns": ["tel:+201001234500"]}, {"flow": ["No such object: abcde"]}),
        ({"flow": QUIZ}, {"non_field_errors": ["Must specify at least one group, contact or URN"]}),
        (
            {"flow": QUIZ, "urns": ["tel:+201001234500"], "restart_participants": "maybe"},
            {"restart_participants": ["Must be a valid boolean."]},
        ),
        (
            {"flow": QUIZ, "urns": ["tel:+201001234500"], "params": [1]},
            {"params": ["Must be a valid JSON object"]},
        ),
        (
            {"flow": QUIZ, "urns": ["tel:12"]},
            {"urns": {"0": ["Invalid URN: tel:12. Ensure phone numbers contain country codes."]}},
        ),
    ],
)
async def test_post_flow_start_400s(env: Env, body: Any, errors: dict[str, Any]) -> None:
    expected = {k: v for k, v in errors.items() if v is not None}
    assert await env.post("/api/v2/flow_starts.json", body, status=400) == expected
    assert env.platform.calls == []


async def test_list_flows_shape_and_run_counts(env: Env) -> None:
    a, b = contact(env, 1), contact(env, 2)
    env.store.new_run(QUIZ, a, T0)
    done = env.store.new_run(QUIZ, b, T0)
    done.exit_type = "completed"
    env.store.upsert_run(done)
    body = await env.get("/api/v2/flows.json")
    assert (body["next"], body["previous"]) == (None, None)
    assert [f["uuid"] for f in body["results"]] == [SURVEY, QUIZ]  # newest first
    quiz = body["results"][1]
    assert quiz == {
        "uuid": QUIZ,
        "name": "COVID-19 quiz",
        "type": "message",
        "archived": False,
        "labels": [],
        "expires": 720,
        "runs": {
            "active": 1,
            "waiting": 0,
            "completed": 1,
            "interrupted": 0,
            "expired": 0,
            "failed": 0,
        },
        "results": [
            {
                "key": "q1",
                "name": "Q1",
                "categories": ["Correct", "Wrong", "Other"],
                "node_uuids": ["99afcda7-f928-4d4a-ae83-c90c96deb76d"],
            }
        ],
        "parent_refs": [],
        "created_on": format_datetime(T0 - 100),
        "modified_on": format_datetime(T0 - 50),
    }
    assert [f["uuid"] for f in (await env.get("/api/v2/flows.json", uuid=QUIZ))["results"]] == [
        QUIZ
    ]
    assert (await env.get("/api/v2/flows.json", archived="true"))["results"] == []
    page = await env.get("/api/v2/flows.json", page_size=1)
    assert [f["uuid"] for f in page["results"]] == [SURVEY]
    nxt = await env.client.session.get(page["next"], headers=AUTH)  # the absolute URL
    assert [f["uuid"] for f in (await nxt.json())["results"]] == [QUIZ]


# ---------------------------------------------------------------------- contacts


async def test_list_contacts_shape_and_filters(env: Env) -> None:
    amal = contact(env, 1, name="Amal")
    amal.fields["governorate"] = "Sohag"
    amal.groups.append("takaful")
    amal.last_seen_on = T0 + 0.5
    env.store.upsert_contact(amal)
    nameless = contact(env, 2)
    nameless.stopped = True
    env.store.upsert_contact(nameless)
    env.store.new_run(QUIZ, amal, T0)

    body = await env.get("/api/v2/contacts.json")
    assert [c["uuid"] for c in body["results"]] == [nameless.uuid, amal.uuid]
    got = body["results"][1]
    assert set(got) == {
        "uuid",
        "name",
        "status",
        "language",
        "urns",
        "groups",
        "fields",
        "flow",
        "created_on",
        "modified_on",
        "last_seen_on",
        "blocked",
        "stopped",
    }
    assert got["name"] == "Amal" and got["status"] == "active" and got["language"] == "ara"
    assert got["urns"] == [amal.urn]
    assert got["groups"][0]["name"] == "takaful" and UUID.match(got["groups"][0]["uuid"])
    assert got["fields"] == {"governorate": "Sohag"}
    assert got["flow"] == {"uuid": QUIZ, "name": "COVID-19 quiz"}
    assert got["last_seen_on"] == "2023-11-14T22:13:20.500000Z"
    assert (got["blocked"], got["stopped"]) == (False, False)
    other = body["results"][0]
    assert other["name"] is None and other["status"] == "stopped" and other["stopped"] is True
    assert other["flow"] is None and other["last_seen_on"] is None

    assert [
        c["uuid"] for c in (await env.get("/api/v2/contacts.json", uuid=amal.uuid))["results"]
    ] == [amal.uuid]
    by_urn = await env.get("/api/v2/contacts.json", urn="tel:01001234501")  # national form
    assert [c["uuid"] for c in by_urn["results"]] == [amal.uuid]
    assert [
        c["uuid"] for c in (await env.get("/api/v2/contacts.json", group="takaful"))["results"]
    ] == [amal.uuid]
    assert [
        c["uuid"] for c in (await env.get("/api/v2/contacts.json", reverse="true"))["results"]
    ] == [
        amal.uuid,
        nameless.uuid,
    ]
    assert (await env.get("/api/v2/contacts.json", deleted="true"))["results"] == []
    assert await env.get("/api/v2/contacts.json", status=400, urn="12345") == {
        "detail": "Invalid URN: 12345"
    }


# ---------------------------------------------------------------------- messages


async def seed_messages(env: Env) -> dict[str, Any]:
    """One of each kind: inbox, flows, outbox, sent (x2), failed, and a broadcast's."""
    s, p = env.store, env.platform
    amal, badr = contact(env, 1, name="Amal"), contact(env, 2, name="Badr")
    m: dict[str, Any] = {}
    m["inbox"] = s.new_msg(amal, MsgDirection.IN, "مرحبا", p.tick())
    m["flows"] = s.new_msg(badr, MsgDirection.IN, "١", p.tick(), flow_uuid=QUIZ)
    m["outbox"] = s.new_msg(amal, MsgDirection.OUT, "q1", p.tick(), flow_uuid=QUIZ)
    sent = s.new_msg(badr, MsgDirection.OUT, "q2", p.tick(), channel="vodafone")
    # created before "wired" but sent after it: the sent folder lists it first
    sent.status, sent.sent_on = MsgStatus.DELIVERED, p.now + 1000
    s.upsert_msg(sent)
    m["sent"] = sent
    wired = s.new_msg(amal, MsgDirection.OUT, "q3", p.tick())
    wired.status, wired.sent_on = MsgStatus.WIRED, p.tick()
    s.upsert_msg(wired)
    m["wired"] = wired
    failed = s.new_msg(badr, MsgDirection.OUT, "q4", p.tick())
    failed.status = MsgStatus.FAILED
    s.upsert_msg(failed)
    m["failed"] = failed
    m["amal"], m["badr"] = amal, badr
    return m


async def test_message_shape(env: Env) -> None:
    m = await seed_messages(env)
    body = await env.get("/api/v2/messages.json", id=m["sent"].id)
    assert body["results"] == [
        {
            "id": m["sent"].id,
            "broadcast": None,
            "contact": {"uuid": m["badr"].uuid, "name": "Badr"},
            "urn": m["badr"].urn,
            "channel": {"uuid": body["results"][0]["channel"]["uuid"], "name": "vodafone"},
            "direction": "out",
            "type": "text",
            "status": "delivered",
            "archived": False,
            "visibility": "visible",
            "text": "q2",
            "labels": [],
            "flow": None,
            "attachments": [],
            "created_on": format_datetime(m["sent"].created_on),
            "sent_on": format_datetime(m["sent"].sent_on),
            "modified_on": format_datetime(m["sent"].modified_on),
            "media": None,
        }
    ]
    assert UUID.match(body["results"][0]["channel"]["uuid"])
    flows_msg = (await env.get("/api/v2/messages.json", id=m["flows"].id))["results"][0]
    assert flows_msg["flow"] == {"uuid": QUIZ, "name": "COVID-19 quiz"}
    assert (flows_msg["direction"], flows_msg["status"], flows_msg["sent_on"]) == (
        "in",
        "handled",
        None,
    )
    assert flows_msg["channel"] is None


async def test_message_folders_and_filters(env: Env) -> None:
    m = await seed_messages(env)

    async def ids(**params: Any) -> list[int]:
        return [x["id"] for x in (await env.get("/api/v2/messages.json", **params))["results"]]

    everything = [m[k].id for k in ("failed", "wired", "sent", "outbox", "flows", "inbox")]
    assert await ids() == everything
    assert await ids(folder="inbox") == [m["inbox"].id]
    assert await ids(folder="INBOX") == [m["inbox"].id]
    assert await ids(folder="flows") == [m["flows"].id]
    assert await ids(folder="incoming") == [m["flows"].id, m["inbox"].id]
    assert await ids(folder="outbox") == [m["outbox"].id]
    assert await ids(folder="sent") == [m["sent"].id, m["wired"].id]  # by sent_on
    assert await ids(folder="failed") == [m["failed"].id]
    assert await ids(folder="archived") == []
    assert await ids(folder="bogus") == []
    assert await ids(contact=m["amal"].uuid) == [m[k].id for k in ("wired", "outbox", "inbox")]
    assert await ids(contact="not-a-contact") == []
    assert await ids(label="Spam") == []
    created = format_datetime(m["outbox"].created_on)
    assert await ids(before=created) == [m[k].id for k in ("outbox", "flows", "inbox")]
    assert await ids(after=created) == [m[k].id for k in ("failed", "wired", "sent", "outbox")]
    assert await ids(after="2100-01-01T00:00:00.000") == []

    b = await env.post(
        "/api/v2/broadcasts.json", {"text": "hi", "contacts": [m["amal"].uuid, m["badr"].uuid]}
    )
    from_b = await ids(broadcast=b["id"])
    assert len(from_b) == 2 and from_b == sorted(from_b, reverse=True)
    assert all(x not in everything for x in from_b)

    for params in ({"contact": m["amal"].uuid, "folder": "inbox"}, {"broadcast": 1, "label": "x"}):
        assert await env.get("/api/v2/messages.json", status=400, **params) == {
            "detail": "You may only specify one of the contact, folder, label, broadcast parameters"
        }
    assert await env.get("/api/v2/messages.json", status=400, id="x") == {
        "detail": "Value for id must be an integer"
    }


async def test_a_request_sees_what_was_created_before_it(env: Env) -> None:
    amal = contact(env, 1)
    for i in range(3):
        env.store.new_msg(amal, MsgDirection.IN, str(i), env.platform.tick())
        body = await env.get("/api/v2/messages.json")
        assert len(body["results"]) == i + 1


# ---------------------------------------------------------------------- runs


async def test_runs_shape_and_filters(env: Env) -> None:
    amal, badr = contact(env, 1, name="Amal"), contact(env, 2)
    start = await env.post("/api/v2/flow_starts.json", {"flow": QUIZ, "contacts": [amal.uuid]})
    r1 = env.store.new_run(QUIZ, amal, T0 + 10, start_uuid=start["uuid"])
    r1.path += [("node-a", T0 + 10), ("node-b", T0 + 11)]
    r1.values["q1"] = {
        "value": "1",
        "category": "Correct",
        "node": "node-b",
        "time": T0 + 12,
        "input": "١",
        "name": "Q1",
    }
    r1.responded = True
    r1.exit_type, r1.exited_on, r1.modified_on = "completed", T0 + 13, T0 + 13
    env.store.upsert_run(r1)
    r2 = env.store.new_run(SURVEY, badr, T0 + 20)
    r2.waiting_node = "node-x"
    env.store.upsert_run(r2)

    body = await env.get("/api/v2/runs.json")
    assert [r["uuid"] for r in body["results"]] == [r2.uuid, r1.uuid]
    got = body["results"][1]
    assert got == {
        "id": got["id"],
        "uuid": r1.uuid,
        "flow": {"uuid": QUIZ, "name": "COVID-19 quiz"},
        "contact": {
            "uuid": amal.uuid,
            "name": "Amal",
            "urn": amal.urn,
            "urn_display": "010 01234501",
        },
        "start": {"uuid": start["uuid"]},
        "responded": True,
        "path": [
            {"node": "node-a", "time": format_datetime(T0 + 10)},
            {"node": "node-b", "time": format_datetime(T0 + 11)},
        ],
        "values": {
            "q1": {
                "value": "1",
                "category": "Correct",
                "node": "node-b",
                "time": format_datetime(T0 + 12),
                "input": "١",
                "name": "Q1",
            }
        },
        "created_on": format_datetime(T0 + 10),
        "modified_on": format_datetime(T0 + 13),
        "exited_on": format_datetime(T0 + 13),
        "exit_type": "completed",
    }
    assert isinstance(got["id"], int)
    waiting = body["results"][0]
    assert (waiting["exit_type"], waiting["exited_on"], waiting["start"]) == (None, None, None)
    assert waiting["contact"]["name"] is None

    async def uuids(**params: Any) -> list[str]:
        return [r["uuid"] for r in (await env.get("/api/v2/runs.json", **params))["results"]]

    assert await uuids(flow=QUIZ) == [r1.uuid]
    assert await uuids(contact=badr.uuid) == [r2.uuid]
    assert await uuids(responded="true") == [r1.uuid]
    assert await uuids(uuid=r2.uuid) == [r2.uuid]
    assert await uuids(id=got["id"]) == [r1.uuid]
    assert await uuids(reverse="true") == [r1.uuid, r2.uuid]
    assert await uuids(before=format_datetime(T0 + 13)) == [r1.uuid]
    assert (await env.get("/api/v2/runs.json", paths="false"))["results"][1]["path"] is None
    assert await env.get("/api/v2/runs.json", status=400, flow=QUIZ, contact=amal.uuid) == {
        "detail": "You may only specify one of the contact, flow parameters"
    }
    assert await env.get("/api/v2/runs.json", status=400, uuid="nope") == {
        "detail": "Value for uuid must be a valid UUID"
    }


# ---------------------------------------------------------------------- paging


async def follow(env: Env, url: str, key: str = "next") -> list[dict[str, Any]]:
    """Walk next (or previous) links: absolute URLs, fetched as given."""
    if url.startswith("/"):
        url = str(env.client.make_url(url))
    pages = []
    while url:
        resp = await env.client.session.get(url, headers=AUTH)
        assert resp.status == 200
        page = await resp.json()
        pages.append(page)
        url = page[key]
    return pages


async def test_pages_cover_everything_once_newest_first(env: Env) -> None:
    amal = contact(env, 1)
    # ties on created_on: three messages per timestamp
    ids = [env.store.new_msg(amal, MsgDirection.IN, str(i), T0 + i // 3).id for i in range(23)]
    pages = await follow(env, "/api/v2/messages.json?page_size=5")
    assert [len(p["results"]) for p in pages] == [5, 5, 5, 5, 3]
    seen = [x["id"] for p in pages for x in p["results"]]
    assert seen == sorted(ids, reverse=True)
    assert pages[0]["previous"] is None and pages[-1]["next"] is None
    assert all(p["previous"] for p in pages[1:]) and all(p["next"] for p in pages[:-1])
    assert "page_size=5" in pages[0]["next"] and "cursor=" in pages[0]["next"]

    # previous from the third page is the second, and walking back reaches the first
    back = await follow(env, pages[2]["previous"], key="previous")
    assert [x["id"] for x in back[0]["results"]] == [x["id"] for x in pages[1]["results"]]
    assert [x["id"] for x in back[-1]["results"]] == [x["id"] for x in pages[0]["results"]]
    assert back[-1]["previous"] is None
    assert back[0]["next"] is not None

    # new messages arriving while paging don't shift the pages still to come
    for i in range(7):
        env.store.new_msg(amal, MsgDirection.IN, "late", T0 + 100 + i)
    again = await follow(env, pages[0]["next"])
    assert [x["id"] for p in again for x in p["results"]] == seen[5:]


async def test_default_page_size_is_250(env: Env) -> None:
    amal = contact(env, 1)
    for i in range(260):
        env.store.new_msg(amal, MsgDirection.IN, str(i), T0 + i)
    page = await env.get("/api/v2/messages.json", page_size=1000)
    assert len(page["results"]) == 250 and page["next"]
    page = await env.get("/api/v2/messages.json")
    assert len(page["results"]) == 250


async def test_invalid_cursor_is_404(env: Env) -> None:
    assert await env.get("/api/v2/messages.json", status=404, cursor="!!!") == {
        "detail": "Invalid cursor"
    }


# ---------------------------------------------------------------------- health, openapi


async def test_health(env: Env) -> None:
    contact(env, 1)
    resp = await env.client.get("/api/v2/health")
    body = await resp.json()
    assert body["status"] == "ok" and body["contacts"] == 1 and body["dirty"] == 1


async def test_openapi_describes_every_route(env: Env) -> None:
    resp = await env.client.get("/openapi.json")
    doc = await resp.json()
    assert doc == OPENAPI
    routes = {
        (r.resource.canonical, r.method.lower())
        for r in env.client.app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented
    # every documented list parameter is one the handler reads
    assert {p["name"] for p in doc["paths"]["/api/v2/messages.json"]["get"]["parameters"]} == {
        "id",
        "contact",
        "folder",
        "broadcast",
        "label",
        "before",
        "after",
        "cursor",
        "page_size",
    }
