"""RapidPro's REST API v2, the subset a load test drives, in front of the reference platform.

Same paths, ``Authorization: Token <key>`` header, JSON shapes, filters, cursor paging
and error bodies as RapidPro (``temba/api/v2``), so one locustfile runs against this
stand-in and a real RapidPro. Lists are read from SQLite after a flush of the store
(consistent pages, every record created before the request included); writes go to the
platform through the small ``PlatformApi`` protocol below.

Where this deliberately follows RapidPro rather than intuition: a missing or wrong token
is answered 403 (RapidPro's first authenticator is the session one, so DRF never sends
401), ``before``/``after`` that don't parse list nothing, an unknown folder lists nothing,
an invalid cursor is 404, and recipient lists take at most 100 items.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from simulator.platform.model import Broadcast, Contact, FlowRun, Msg
from simulator.platform.store import (
    Cursor,
    FlowStartRecord,
    Page,
    PlatformStore,
    StoredRun,
    to_us,
)

T = TypeVar("T")

#: RapidPro's page size (REST_FRAMEWORK PAGE_SIZE); also the cap on ``page_size``.
DEFAULT_PAGE_SIZE = 250
#: RapidPro's limit on urns / contacts / groups in one broadcast or flow start.
MAX_RECIPIENTS = 100
#: RapidPro's MSG_FIELD_SIZE.
MAX_TEXT_LENGTH = 640
#: Paths answered without a token (not RapidPro: for the harness).
PUBLIC_PATHS = frozenset({"/api/v2/health", "/openapi.json"})
#: Channel callbacks (courier's ``/c/kn/{uuid}/receive`` ...): gateways send no token.
CHANNEL_PREFIX = "/c/"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SPACED_OFFSET = re.compile(r" (\d\d(?::?\d\d)?)$")
_NS = uuidlib.UUID("6f1c2a3e-1442-4b5a-9c1d-5e7f00001442")  # stable uuids for names


# ---------------------------------------------------------------------- the platform side


@dataclass(slots=True)
class FlowSummary:
    """What ``flows.json`` shows of a flow; the flow engine builds these."""

    uuid: str
    name: str
    #: "message", "voice", "background" or "survey".
    type: str = "message"
    archived: bool = False
    #: Minutes before a waiting run expires (RapidPro's ``expires``).
    expires: int = 10080
    #: [{"key": "q1", "name": "Q1", "categories": [...], "node_uuids": [...]}]
    results: list[dict[str, Any]] = field(default_factory=list)
    parent_refs: list[str] = field(default_factory=list)
    created_on: float = 0.0
    modified_on: float = 0.0


class PlatformApi(Protocol):
    """What the API needs from the platform. Called on the event loop: queue work, don't
    block. URNs arrive normalized (``tel:+201001234567``), contact uuids exist in the store.
    """

    def broadcast(self, text: str, urns: list[str], contact_uuids: list[str]) -> Broadcast:
        """Create (store.new_broadcast) and queue a broadcast; contacts for unknown URNs
        are created. Returns the stored record."""
        ...

    def start_flow(
        self,
        flow_uuid: str,
        urns: list[str],
        contact_uuids: list[str],
        restart_participants: bool,
        exclude_active: bool,
        params: dict[str, Any],
    ) -> FlowStartRecord:
        """Create (store.new_flow_start) and queue a flow start; returns the record."""
        ...

    def flows(self) -> Sequence[FlowSummary]:
        """The flows contacts can be started in (``flows.json``, ``flow_starts`` ``flow``)."""
        ...


# ---------------------------------------------------------------------- formats


def format_datetime(t: float | None) -> str | None:
    """RapidPro's API date format, UTC with microseconds: 2016-10-13T11:54:32.525277Z."""
    if t is None:
        return None
    return (_EPOCH + timedelta(microseconds=to_us(t))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_datetime(value: str) -> int | None:
    """An ISO 8601 parameter to µs since the epoch (naive means UTC); None if invalid.

    A ``+`` offset sent unencoded arrives as a space (form decoding); it is put back.
    """
    value = _SPACED_OFFSET.sub(r"+\1", value.strip())
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1)


def normalize_urn(value: str, country_code: str = "20") -> str | None:
    """A tel URN in E.164 (``tel:+201001234567``), or None if it isn't a phone number.

    National Egyptian numbers (``01001234567``) get the country code, like RapidPro
    normalizing with the workspace's country. Only ``tel`` URNs: this platform is SMS.
    """
    scheme, sep, path = value.strip().partition(":")
    if not sep or scheme.lower() != "tel":
        return None
    number = "".join(ch for ch in path if ch not in " -().")
    if number.startswith("00"):
        number = "+" + number[2:]
    if not number.startswith("+"):
        if number.startswith("0"):
            number = "+" + country_code + number[1:]
        elif number.startswith(country_code) and len(number) >= 11:
            number = "+" + number
        else:
            return None
    digits = number[1:]
    if not digits.isascii() or not digits.isdigit() or not 8 <= len(digits) <= 15:
        return None
    if digits.startswith("20") and len(digits) not in (10, 11, 12):
        return None
    return "tel:+" + digits


def urn_display(urn: str) -> str:
    """How RapidPro shows an Egyptian mobile number nationally (``010 01234567``)."""
    path = urn.removeprefix("tel:")
    if path.startswith("+20") and len(path) == 13 and path[3] == "1":
        return f"0{path[3:5]} {path[5:]}"
    return path


def _name_uuid(kind: str, name: str) -> str:
    return str(uuidlib.uuid5(_NS, f"{kind}:{name}"))


def _str_to_bool(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "y", "yes", "1")


# ---------------------------------------------------------------------- errors


class _Invalid(Exception):
    """A request RapidPro refuses with this body (400 unless said otherwise)."""

    def __init__(self, body: dict[str, Any], status: int = 400) -> None:
        super().__init__(body)
        self.body = body
        self.status = status


def _detail(message: str, status: int = 400) -> _Invalid:
    return _Invalid({"detail": message}, status)


_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


# ---------------------------------------------------------------------- the application

STORE: web.AppKey[PlatformStore] = web.AppKey("store", PlatformStore)
PLATFORM: web.AppKey[PlatformApi] = web.AppKey("platform", PlatformApi)


def create_api(
    store: PlatformStore,
    platform: PlatformApi,
    token: str,
    *,
    base_language: str = "ara",
    auth_failure_status: int = 403,
) -> web.Application:
    """The API as an aiohttp application (mount it, or run it with ``web.AppRunner``).

    ``base_language``: the language key of broadcast texts (the workspace's first flow
    language in RapidPro). ``auth_failure_status``: 403 as RapidPro; 401 if a client
    needs the textbook answer.
    """
    api = _Api(store, platform, base_language)
    expected = token.encode()

    @web.middleware
    async def errors(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Invalid as exc:
            return _json(exc.body, status=exc.status)
        except web.HTTPNotFound:
            return _json({"detail": "Not found."}, status=404)
        except web.HTTPMethodNotAllowed:
            return _json({"detail": f'Method "{request.method}" not allowed.'}, status=405)

    @web.middleware
    async def auth(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS or request.path.startswith(CHANNEL_PREFIX):
            return await handler(request)
        # DRF's TokenAuthentication, message for message.
        words = request.headers.get("Authorization", "").split()
        if not words or words[0].lower() != "token":
            detail = "Authentication credentials were not provided."
        elif len(words) == 1:
            detail = "Invalid token header. No credentials provided."
        elif len(words) > 2:
            detail = "Invalid token header. Token string should not contain spaces."
        elif hmac.compare_digest(words[1].encode(), expected):
            return await handler(request)
        else:
            detail = "Invalid token"
        headers = {"WWW-Authenticate": "Token"} if auth_failure_status == 401 else None
        return web.json_response(
            {"detail": detail}, status=auth_failure_status, headers=headers, dumps=_dumps
        )

    app = web.Application(middlewares=[errors, auth])
    app[STORE] = store
    app[PLATFORM] = platform
    r = app.router
    r.add_get("/api/v2/health", api.health)
    r.add_get("/openapi.json", api.openapi)
    r.add_get("/api/v2/broadcasts.json", api.list_broadcasts)
    r.add_post("/api/v2/broadcasts.json", api.post_broadcast)
    r.add_get("/api/v2/contacts.json", api.list_contacts)
    r.add_get("/api/v2/flows.json", api.list_flows)
    r.add_get("/api/v2/flow_starts.json", api.list_flow_starts)
    r.add_post("/api/v2/flow_starts.json", api.post_flow_start)
    r.add_get("/api/v2/messages.json", api.list_messages)
    r.add_get("/api/v2/runs.json", api.list_runs)
    return app


class _Api:
    """The handlers; state is the store, the platform and the base language."""

    __slots__ = ("base_language", "platform", "store")

    def __init__(self, store: PlatformStore, platform: PlatformApi, base_language: str) -> None:
        self.store = store
        self.platform = platform
        self.base_language = base_language

    # ------------------------------------------------------------------ helpers

    def _flows(self) -> dict[str, FlowSummary]:
        return {f.uuid: f for f in self.platform.flows()}

    def _contact_ref(self, contact_id: int) -> dict[str, Any]:
        c = self.store.contact(contact_id)
        if c is None:
            return {"uuid": None, "name": None}
        return {"uuid": c.uuid, "name": c.name or None}

    @staticmethod
    def _flow_ref(flows: dict[str, FlowSummary], flow_uuid: str | None) -> dict[str, Any] | None:
        if flow_uuid is None:
            return None
        f = flows.get(flow_uuid)
        return {"uuid": flow_uuid, "name": f.name if f is not None else None}

    @staticmethod
    def _int_param(request: web.Request, name: str) -> int | None:
        value = request.query.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise _detail(f"Value for {name} must be an integer") from None

    @staticmethod
    def _uuid_param(request: web.Request, name: str) -> str | None:
        value = request.query.get(name)
        if value is None:
            return None
        try:
            return str(uuidlib.UUID(value))
        except ValueError:
            raise _detail(f"Value for {name} must be a valid UUID") from None

    @staticmethod
    def _exclusive(request: web.Request, *names: str) -> None:
        if sum(1 for n in names if request.query.get(n)) > 1:
            raise _detail(f"You may only specify one of the {', '.join(names)} parameters")

    @staticmethod
    def _range(request: web.Request) -> tuple[int | None, int | None, bool]:
        """(after, before) in µs, and False if either doesn't parse (RapidPro then
        lists nothing)."""
        bounds: list[int | None] = []
        for name in ("after", "before"):
            value = request.query.get(name)
            if not value:
                bounds.append(None)
                continue
            us = parse_datetime(value)
            if us is None:
                return None, None, False
            bounds.append(us)
        return bounds[0], bounds[1], True

    @staticmethod
    def _paging(request: web.Request) -> tuple[Cursor | None, int]:
        cursor = None
        raw = request.query.get("cursor")
        if raw:
            cursor = _decode_cursor(raw)
            if cursor is None:
                raise _detail("Invalid cursor", 404)  # as DRF's CursorPagination
        size = DEFAULT_PAGE_SIZE
        try:
            asked = int(request.query.get("page_size", ""))
        except ValueError:
            asked = 0
        if asked > 0:
            size = min(asked, DEFAULT_PAGE_SIZE)
        return cursor, size

    async def _list(
        self,
        request: web.Request,
        query: Callable[[Cursor | None, int], Page[T]],
        render: Callable[[T], dict[str, Any]],
        *,
        empty: bool = False,
    ) -> web.Response:
        """One page as RapidPro: {"next": url|null, "previous": url|null, "results": [...]}."""
        cursor, size = self._paging(request)
        if empty:
            page: Page[T] = Page([], [], False)
        else:
            page = await self.store.read(partial(query, cursor, size))
        return _json(
            {
                **_links(request, cursor, page),
                "results": [render(item) for item in page.items],
            }
        )

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json(loads=json.loads)
        except ValueError as exc:
            raise _detail(f"JSON parse error - {exc}") from None
        if not isinstance(body, dict):
            raise _Invalid({"non_field_errors": ["Request body should be a single JSON object"]})
        return body

    # ------------------------------------------------------------------ renderers

    def _contact_json(self, c: Contact, flows: dict[str, FlowSummary]) -> dict[str, Any]:
        run = self.store.active_run(c.id)
        status = "blocked" if c.blocked else "stopped" if c.stopped else "active"
        return {
            "uuid": c.uuid,
            "name": c.name or None,
            "status": status,
            "language": c.language or None,
            "urns": [c.urn],
            "groups": [{"uuid": _name_uuid("group", g), "name": g} for g in c.groups],
            "fields": c.fields,
            "flow": self._flow_ref(flows, run.flow_uuid if run is not None else None),
            "created_on": format_datetime(c.created_on),
            "modified_on": format_datetime(c.modified_on),
            "last_seen_on": format_datetime(c.last_seen_on),
            "blocked": c.blocked,
            "stopped": c.stopped,
        }

    def _msg_json(self, m: Msg, flows: dict[str, FlowSummary]) -> dict[str, Any]:
        return {
            "id": m.id,
            "broadcast": m.broadcast_id,
            "contact": self._contact_ref(m.contact_id),
            "urn": m.urn,
            "channel": (
                {"uuid": _name_uuid("channel", m.channel), "name": m.channel} if m.channel else None
            ),
            "direction": str(m.direction),
            "type": "text",
            "status": str(m.status),
            "archived": False,
            "visibility": "visible",
            "text": m.text,
            "labels": [],
            "flow": self._flow_ref(flows, m.flow_uuid),
            "attachments": [],
            "created_on": format_datetime(m.created_on),
            "sent_on": format_datetime(m.sent_on),
            "modified_on": format_datetime(m.modified_on),
            "media": None,
        }

    def _broadcast_json(self, b: Broadcast) -> dict[str, Any]:
        lang = self.base_language
        return {
            "id": b.id,
            "urns": list(b.urns),
            "contacts": [self._contact_ref(cid) for cid in b.contact_ids],
            "groups": [],
            "text": {lang: b.text},
            "attachments": {lang: []},
            "base_language": lang,
            "status": b.status,
            "created_on": format_datetime(b.created_on),
        }

    def _run_json(
        self, stored: StoredRun, flows: dict[str, FlowSummary], paths: bool
    ) -> dict[str, Any]:
        r: FlowRun = stored.run
        c = self.store.contact(r.contact_id)
        contact: dict[str, Any] = {
            "uuid": c.uuid if c else None,
            "name": (c.name or None) if c else None,
            "urn": c.urn if c else None,
            "urn_display": urn_display(c.urn) if c else None,
        }
        values = {
            key: {
                "value": v.get("value"),
                "category": v.get("category"),
                "node": v.get("node"),
                "time": _time_value(v.get("time")),
                "input": v.get("input"),
                "name": v.get("name", key),
            }
            for key, v in r.values.items()
        }
        return {
            "id": stored.id,
            "uuid": r.uuid,
            "flow": self._flow_ref(flows, r.flow_uuid),
            "contact": contact,
            "start": {"uuid": stored.start_uuid} if stored.start_uuid else None,
            "responded": r.responded,
            "path": (
                [{"node": node, "time": format_datetime(t)} for node, t in r.path]
                if paths
                else None
            ),
            "values": values,
            "created_on": format_datetime(r.created_on),
            "modified_on": format_datetime(r.modified_on),
            "exited_on": format_datetime(r.exited_on),
            "exit_type": r.exit_type,
        }

    def _start_json(self, s: FlowStartRecord, flows: dict[str, FlowSummary]) -> dict[str, Any]:
        return {
            "id": s.id,
            "uuid": s.uuid,
            "flow": self._flow_ref(flows, s.flow_uuid),
            "status": s.status,
            "groups": [],
            "contacts": [self._contact_ref(cid) for cid in s.contact_ids],
            "params": s.params,
            "created_on": format_datetime(s.created_on),
            "modified_on": format_datetime(s.modified_on),
            "extra": s.params,
            "restart_participants": s.restart_participants,
            "exclude_active": s.exclude_active,
        }

    def _flow_json(self, f: FlowSummary) -> dict[str, Any]:
        return {
            "uuid": f.uuid,
            "name": f.name,
            "type": f.type,
            "archived": f.archived,
            "labels": [],
            "expires": f.expires,
            "runs": self.store.run_counts(f.uuid),
            "results": f.results,
            "parent_refs": f.parent_refs,
            "created_on": format_datetime(f.created_on),
            "modified_on": format_datetime(f.modified_on),
        }

    # ------------------------------------------------------------------ handlers

    async def health(self, request: web.Request) -> web.Response:
        st = self.store.stats
        return _json(
            {
                "status": "ok",
                "contacts": self.store.contact_count,
                "live_msgs": self.store.live_msg_count,
                "dirty": self.store.dirty_count,
                "flushes": st.flushes,
                "rows_flushed": st.rows,
                "flush_errors": st.errors,
            }
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(OPENAPI)

    async def list_contacts(self, request: web.Request) -> web.Response:
        q = request.query
        after, before, ok = self._range(request)
        urn = None
        if q.get("urn"):
            urn = normalize_urn(q["urn"])
            if urn is None:
                raise _detail(f"Invalid URN: {q['urn']}")
        flows = self._flows()
        return await self._list(
            request,
            lambda cursor, size: self.store.page_contacts(
                uuid=q.get("uuid") or None,
                urn=urn,
                group=q.get("group") or None,
                after=after,
                before=before,
                cursor=cursor,
                limit=size,
                ascending=_str_to_bool(q.get("reverse")),
            ),
            lambda c: self._contact_json(c, flows),
            empty=not ok or _str_to_bool(q.get("deleted")),
        )

    async def list_messages(self, request: web.Request) -> web.Response:
        q = request.query
        self._exclusive(request, "contact", "folder", "label", "broadcast")
        msg_id = self._int_param(request, "id")
        after, before, ok = self._range(request)
        broadcast_id: int | None = None
        if q.get("broadcast"):
            try:
                broadcast_id = int(q["broadcast"])
            except ValueError:
                ok = False
        folder = q.get("folder", "").lower() or None
        flows = self._flows()
        return await self._list(
            request,
            lambda cursor, size: self.store.page_msgs(
                folder=folder,
                contact_uuid=q.get("contact") or None,
                broadcast_id=broadcast_id,
                msg_id=msg_id,
                after=after,
                before=before,
                cursor=cursor,
                limit=size,
            ),
            lambda m: self._msg_json(m, flows),
            empty=not ok or bool(q.get("label")),  # no labels here
        )

    async def list_runs(self, request: web.Request) -> web.Response:
        q = request.query
        self._exclusive(request, "contact", "flow")
        run_id = self._int_param(request, "id")
        run_uuid = self._uuid_param(request, "uuid")
        after, before, ok = self._range(request)
        paths = _str_to_bool(q.get("paths", "true"))
        flows = self._flows()
        return await self._list(
            request,
            lambda cursor, size: self.store.page_runs(
                flow_uuid=q.get("flow") or None,
                contact_uuid=q.get("contact") or None,
                run_uuid=run_uuid,
                run_id=run_id,
                responded=_str_to_bool(q.get("responded")),
                after=after,
                before=before,
                cursor=cursor,
                limit=size,
                ascending=_str_to_bool(q.get("reverse")),
            ),
            lambda r: self._run_json(r, flows, paths),
            empty=not ok,
        )

    async def list_broadcasts(self, request: web.Request) -> web.Response:
        broadcast_id = self._int_param(request, "id")
        after, before, ok = self._range(request)
        return await self._list(
            request,
            lambda cursor, size: self.store.page_broadcasts(
                broadcast_id=broadcast_id,
                after=after,
                before=before,
                cursor=cursor,
                limit=size,
            ),
            self._broadcast_json,
            empty=not ok,
        )

    async def list_flow_starts(self, request: web.Request) -> web.Response:
        start_id = self._int_param(request, "id")
        start_uuid = self._uuid_param(request, "uuid")
        after, before, ok = self._range(request)
        flows = self._flows()
        return await self._list(
            request,
            lambda cursor, size: self.store.page_flow_starts(
                start_uuid=start_uuid,
                start_id=start_id,
                after=after,
                before=before,
                cursor=cursor,
                limit=size,
                ascending=_str_to_bool(request.query.get("reverse")),
            ),
            lambda s: self._start_json(s, flows),
            empty=not ok,
        )

    async def list_flows(self, request: web.Request) -> web.Response:
        """Flows live in the platform's memory: filtered and paged here, newest first."""
        q = request.query
        after, before, ok = self._range(request)
        flows = sorted(self.platform.flows(), key=lambda f: (to_us(f.created_on), f.uuid))
        # ids for the cursor: the position in creation order, stable while flows are added
        keyed = [(to_us(f.created_on), i + 1, f) for i, f in enumerate(flows)]
        if q.get("uuid"):
            keyed = [k for k in keyed if k[2].uuid == q["uuid"]]
        if q.get("type"):
            keyed = [k for k in keyed if k[2].type == q["type"]]
        if q.get("archived"):
            archived = _str_to_bool(q["archived"])
            keyed = [k for k in keyed if k[2].archived == archived]
        if after is not None:
            keyed = [k for k in keyed if to_us(k[2].modified_on) >= after]
        if before is not None:
            keyed = [k for k in keyed if to_us(k[2].modified_on) <= before]

        cursor, size = self._paging(request)
        result = _page_in_memory(keyed, cursor, size) if ok else Page([], [], False)
        return _json(
            {
                **_links(request, cursor, result),
                "results": [self._flow_json(f) for f in result.items],
            }
        )

    # ------------------------------------------------------------------ writes

    def _recipients(
        self, body: dict[str, Any], errors: dict[str, Any]
    ) -> tuple[list[str], list[str]]:
        """Validated (urns, contact uuids) as RapidPro's serializers do; no group exists
        here, so any group is "No such object"."""
        urns: list[str] = []
        raw = body.get("urns")
        if raw is not None:
            if not isinstance(raw, list):
                errors["urns"] = [f'Expected a list of items but got type "{_type(raw)}".']
            elif len(raw) > MAX_RECIPIENTS:
                errors["urns"] = [f"Ensure this field has no more than {MAX_RECIPIENTS} elements."]
            else:
                bad: dict[str, list[str]] = {}
                for i, value in enumerate(raw):
                    norm = normalize_urn(value) if isinstance(value, str) else None
                    if norm is None:
                        bad[str(i)] = [
                            f"Invalid URN: {value}. Ensure phone numbers contain country codes."
                        ]
                    else:
                        urns.append(norm)
                if bad:
                    errors["urns"] = bad

        contacts: list[str] = []
        raw = body.get("contacts")
        if raw is not None:
            if not isinstance(raw, list):
                errors["contacts"] = [f'Expected a list of items but got type "{_type(raw)}".']
            elif len(raw) > MAX_RECIPIENTS:
                errors["contacts"] = [
                    f"Ensure this field has no more than {MAX_RECIPIENTS} elements."
                ]
            else:
                for value in raw:
                    if not isinstance(value, str | int) or isinstance(value, bool):
                        errors["contacts"] = ["Must be a string or integer"]
                        break
                    c = self.store.contact_by_uuid(str(value))
                    if c is None:  # RapidPro also looks contacts up by URN
                        norm = normalize_urn(str(value))
                        c = self.store.contact_by_urn(norm) if norm else None
                    if c is None:
                        errors["contacts"] = [f"No such object: {value}"]
                        break
                    contacts.append(c.uuid)

        raw = body.get("groups")
        if raw is not None:
            if not isinstance(raw, list):
                errors["groups"] = [f'Expected a list of items but got type "{_type(raw)}".']
            elif len(raw) > MAX_RECIPIENTS:
                errors["groups"] = [
                    f"Ensure this field has no more than {MAX_RECIPIENTS} elements."
                ]
            elif raw:  # no groups on this platform
                errors["groups"] = [f"No such object: {raw[0]}"]
        return urns, contacts

    def _text(self, body: dict[str, Any], errors: dict[str, Any]) -> str | None:
        """The text to send: a string, or the base-language one of a translations dict."""
        raw = body.get("text")
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = {self.base_language: raw}
        if not isinstance(raw, dict):
            errors["text"] = [f'Expected a dictionary of items but got type "{_type(raw)}".']
            return None
        if not raw:
            errors["text"] = ["This dictionary may not be empty."]
            return None
        bad: dict[str, list[str]] = {}
        for lang, text in raw.items():
            if not isinstance(text, str) or not text.strip():
                bad[lang] = ["This field may not be blank."]
            elif len(text) > MAX_TEXT_LENGTH:
                bad[lang] = [f"Ensure this field has no more than {MAX_TEXT_LENGTH} characters."]
        if bad:
            errors["text"] = bad
            return None
        base = body.get("base_language")
        if isinstance(base, str) and base:
            if base not in raw:
                errors["non_field_errors"] = ["No text translation provided in base language."]
                return None
            return str(raw[base])
        return str(raw.get(self.base_language, next(iter(raw.values()))))

    async def post_broadcast(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        errors: dict[str, Any] = {}
        text = self._text(body, errors)
        if body.get("attachments"):
            errors["attachments"] = ["Attachments are not supported by this platform (SMS)."]
        urns, contacts = self._recipients(body, errors)
        if not errors:
            if not text:
                errors["non_field_errors"] = ["Must provide either text or attachments."]
            elif not (urns or contacts):
                errors["non_field_errors"] = ["Must provide either urns, contacts or groups."]
        if errors:
            raise _Invalid(errors)
        b = self.platform.broadcast(str(text), urns, contacts)
        return _json(self._broadcast_json(b), status=201)

    async def post_flow_start(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        errors: dict[str, Any] = {}
        flows = self._flows()
        flow_uuid = body.get("flow")
        if flow_uuid is None:
            errors["flow"] = ["This field is required."]
        elif not isinstance(flow_uuid, str | int) or isinstance(flow_uuid, bool):
            errors["flow"] = ["Must be a string or integer"]
        elif str(flow_uuid) not in flows:
            errors["flow"] = [f"No such object: {flow_uuid}"]
        urns, contacts = self._recipients(body, errors)
        flags: dict[str, bool] = {}
        for name, default in (("restart_participants", True), ("exclude_active", False)):
            value = body.get(name, default)
            parsed = _parse_bool(value)
            if parsed is None:
                errors[name] = ["Must be a valid boolean."]
            else:
                flags[name] = parsed
        for name in ("extra", "params"):
            if body.get(name) is not None and not isinstance(body[name], dict):
                errors[name] = ["Must be a valid JSON object"]
        # params wins over the deprecated extra, as RapidPro
        params: dict[str, Any] = body.get("params") or body.get("extra") or {}
        if not errors and not (urns or contacts):
            errors["non_field_errors"] = ["Must specify at least one group, contact or URN"]
        if errors:
            raise _Invalid(errors)
        start = self.platform.start_flow(
            str(flow_uuid),
            urns,
            contacts,
            flags["restart_participants"],
            flags["exclude_active"],
            params,
        )
        return _json(self._start_json(start, flows), status=201)


# ---------------------------------------------------------------------- paging


def _encode_cursor(key: tuple[int, int], backwards: bool) -> str:
    qs = {"p": str(key[0]), "i": str(key[1])}
    if backwards:
        qs["r"] = "1"
    return base64.urlsafe_b64encode(urlencode(qs).encode()).decode()


def _decode_cursor(raw: str) -> Cursor | None:
    try:
        qs = dict(parse_qsl(base64.urlsafe_b64decode(raw.encode()).decode(), strict_parsing=True))
        return Cursor(int(qs["p"]), int(qs["i"]), qs.get("r") == "1")
    except (ValueError, KeyError, binascii.Error, UnicodeDecodeError):
        return None


def _links(request: web.Request, cursor: Cursor | None, page: Page[Any]) -> dict[str, str | None]:
    """RapidPro's (DRF's CursorPagination) ``next`` and ``previous`` URLs."""
    first = page.keys[0] if page.keys else None
    last = page.keys[-1] if page.keys else None
    position = (cursor.value, cursor.id) if cursor is not None else None
    next_key: tuple[int, int] | None
    prev_key: tuple[int, int] | None
    if cursor is None:
        next_key = last if page.more else None
        prev_key = None
    elif not cursor.backwards:
        next_key = last if page.more else None
        prev_key = first or position
    else:  # read backwards from the cursor: everything after it exists
        next_key = last or position
        prev_key = first if page.more else None

    def url(key: tuple[int, int] | None, backwards: bool) -> str | None:
        if key is None:
            return None
        return str(request.url.update_query(cursor=_encode_cursor(key, backwards)))

    return {"next": url(next_key, False), "previous": url(prev_key, True)}


def _page_in_memory(keyed: list[tuple[int, int, T]], cursor: Cursor | None, size: int) -> Page[T]:
    """The store's keyset paging, over a small sorted list (oldest first)."""
    items = list(reversed(keyed))  # newest first
    if cursor is not None:
        pos = (cursor.value, cursor.id)
        if cursor.backwards:
            items = [k for k in keyed if (k[0], k[1]) > pos]  # oldest first
        else:
            items = [k for k in items if (k[0], k[1]) < pos]
    more = len(items) > size
    chosen = items[:size]
    if cursor is not None and cursor.backwards:
        chosen.reverse()
    return Page([k[2] for k in chosen], [(k[0], k[1]) for k in chosen], more)


# ---------------------------------------------------------------------- small helpers


def _type(value: Any) -> str:
    return {dict: "dict", list: "list", str: "str", int: "int", float: "float", bool: "bool"}.get(
        type(value), type(value).__name__
    )


def _parse_bool(value: Any) -> bool | None:
    """DRF's BooleanField."""
    if value in (True, 1, "true", "True", "TRUE", "1", "yes", "Yes", "on", "On", "y", "Y"):
        return True
    if value in (False, 0, "false", "False", "FALSE", "0", "no", "No", "off", "Off", "n", "N"):
        return False
    return None


def _time_value(value: Any) -> Any:
    """A result's time: simulated seconds become RapidPro dates; strings pass through."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_datetime(float(value))
    return value


# ---------------------------------------------------------------------- OpenAPI


def _list_params(*names: str) -> list[dict[str, Any]]:
    docs = {
        "cursor": "Opaque position from a previous page's next/previous URL",
        "page_size": f"Results per page, 1-{DEFAULT_PAGE_SIZE} (not RapidPro; default 250)",
        "before": "Only items whose sort date is on or before this ISO 8601 date",
        "after": "Only items whose sort date is on or after this ISO 8601 date",
        "reverse": "true: oldest first",
        "uuid": "Only the item with this UUID",
        "id": "Only the item with this integer id",
        "urn": "Only the contact with this URN, e.g. tel:+201001234567",
        "group": "Only contacts in this group (name)",
        "deleted": "true: deleted contacts (always none here)",
        "contact": "Only items of the contact with this UUID",
        "folder": "inbox, flows, archived, outbox, sent, failed or incoming",
        "broadcast": "Only messages of this broadcast id",
        "label": "Only messages with this label (none exist here)",
        "flow": "Only runs of the flow with this UUID",
        "responded": "true: only runs where the contact replied",
        "paths": "false: leave out each run's path",
        "type": "Only flows of this type",
        "archived": "Only archived (true) or active (false) flows",
    }
    return [
        {
            "name": n,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": docs[n],
        }
        for n in names
    ]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_DATE = {"type": "string", "format": "date-time"}
_OBJ = {"type": "object"}
_REF = {"type": "object", "properties": {"uuid": _STR, "name": _nullable(_STR)}}


def _list_of(schema: str) -> dict[str, Any]:
    return {
        "200": {
            "description": "One page, newest first",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "next": _nullable({"type": "string", "format": "uri"}),
                            "previous": _nullable({"type": "string", "format": "uri"}),
                            "results": {"type": "array", "items": _ref(schema)},
                        },
                    }
                }
            },
        },
        "400": {"description": 'Invalid query ({"detail": ...})'},
        "403": {"description": "Missing or invalid token"},
    }


def _created(schema: str) -> dict[str, Any]:
    return {
        "201": {
            "description": "Created",
            "content": {"application/json": {"schema": _ref(schema)}},
        },
        "400": {"description": 'Invalid body ({"field": ["message"], "non_field_errors": [...]})'},
        "403": {"description": "Missing or invalid token"},
    }


def _body(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_RECIPIENTS = {
    "urns": {"type": "array", "maxItems": MAX_RECIPIENTS, "items": _STR},
    "contacts": {"type": "array", "maxItems": MAX_RECIPIENTS, "items": _STR},
    "groups": {"type": "array", "maxItems": MAX_RECIPIENTS, "items": _STR},
}

#: The document served at /openapi.json; tests check it names every route.
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "smsim reference platform: RapidPro API v2 subset",
        "version": "1",
        "description": (
            "Same paths, token auth, JSON shapes and cursor paging as RapidPro's API v2. "
            "Authenticate with 'Authorization: Token <key>'."
        ),
    },
    "components": {
        "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}},
        "schemas": {
            "Contact": {
                "type": "object",
                "properties": {
                    "uuid": _STR,
                    "name": _nullable(_STR),
                    "status": {
                        "type": "string",
                        "enum": ["active", "blocked", "stopped", "archived"],
                    },
                    "language": _nullable(_STR),
                    "urns": {"type": "array", "items": _STR},
                    "groups": {"type": "array", "items": _REF},
                    "fields": _OBJ,
                    "flow": _nullable(_REF),
                    "created_on": _DATE,
                    "modified_on": _DATE,
                    "last_seen_on": _nullable(_DATE),
                    "blocked": _BOOL,
                    "stopped": _BOOL,
                },
            },
            "Message": {
                "type": "object",
                "properties": {
                    "id": _INT,
                    "broadcast": _nullable(_INT),
                    "contact": _REF,
                    "urn": _STR,
                    "channel": _nullable(_REF),
                    "direction": {"type": "string", "enum": ["in", "out"]},
                    "type": _STR,
                    "status": {
                        "type": "string",
                        "enum": [
                            "queued",
                            "wired",
                            "sent",
                            "delivered",
                            "handled",
                            "errored",
                            "failed",
                        ],
                    },
                    "archived": _BOOL,
                    "visibility": _STR,
                    "text": _STR,
                    "labels": {"type": "array", "items": _REF},
                    "flow": _nullable(_REF),
                    "attachments": {"type": "array", "items": _OBJ},
                    "created_on": _DATE,
                    "sent_on": _nullable(_DATE),
                    "modified_on": _DATE,
                    "media": _nullable(_STR),
                },
            },
            "Broadcast": {
                "type": "object",
                "properties": {
                    "id": _INT,
                    "urns": {"type": "array", "items": _STR},
                    "contacts": {"type": "array", "items": _REF},
                    "groups": {"type": "array", "items": _REF},
                    "text": {"type": "object", "additionalProperties": _STR},
                    "attachments": {"type": "object"},
                    "base_language": _STR,
                    "status": {"type": "string", "enum": ["queued", "sent", "failed"]},
                    "created_on": _DATE,
                },
            },
            "Run": {
                "type": "object",
                "properties": {
                    "id": _INT,
                    "uuid": _STR,
                    "flow": _REF,
                    "contact": {
                        "type": "object",
                        "properties": {
                            "uuid": _STR,
                            "name": _nullable(_STR),
                            "urn": _STR,
                            "urn_display": _STR,
                        },
                    },
                    "start": _nullable({"type": "object", "properties": {"uuid": _STR}}),
                    "responded": _BOOL,
                    "path": _nullable(
                        {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"node": _STR, "time": _DATE},
                            },
                        }
                    ),
                    "values": {"type": "object"},
                    "created_on": _DATE,
                    "modified_on": _DATE,
                    "exited_on": _nullable(_DATE),
                    "exit_type": _nullable(
                        {
                            "type": "string",
                            "enum": ["completed", "interrupted", "expired", "failed"],
                        }
                    ),
                },
            },
            "FlowStart": {
                "type": "object",
                "properties": {
                    "id": _INT,
                    "uuid": _STR,
                    "flow": _REF,
                    "status": {
                        "type": "string",
                        "enum": ["pending", "starting", "complete", "failed"],
                    },
                    "groups": {"type": "array", "items": _REF},
                    "contacts": {"type": "array", "items": _REF},
                    "params": _OBJ,
                    "created_on": _DATE,
                    "modified_on": _DATE,
                    "extra": _OBJ,
                    "restart_participants": _BOOL,
                    "exclude_active": _BOOL,
                },
            },
            "Flow": {
                "type": "object",
                "properties": {
                    "uuid": _STR,
                    "name": _STR,
                    "type": _STR,
                    "archived": _BOOL,
                    "labels": {"type": "array", "items": _REF},
                    "expires": _INT,
                    "runs": {"type": "object", "additionalProperties": _INT},
                    "results": {"type": "array", "items": _OBJ},
                    "parent_refs": {"type": "array", "items": _STR},
                    "created_on": _DATE,
                    "modified_on": _DATE,
                },
            },
        },
    },
    "security": [{"token": []}],
    "paths": {
        "/api/v2/broadcasts.json": {
            "get": {
                "summary": "List broadcasts (by created_on)",
                "parameters": _list_params("id", "before", "after", "cursor", "page_size"),
                "responses": _list_of("Broadcast"),
            },
            "post": {
                "summary": "Send a broadcast",
                "requestBody": _body(
                    {
                        "text": {
                            "oneOf": [_STR, {"type": "object", "additionalProperties": _STR}],
                            "description": "A text or translations by ISO 639-3 code",
                        },
                        "base_language": _STR,
                        **_RECIPIENTS,
                    }
                ),
                "responses": _created("Broadcast"),
            },
        },
        "/api/v2/contacts.json": {
            "get": {
                "summary": "List contacts (by modified_on)",
                "parameters": _list_params(
                    "uuid",
                    "urn",
                    "group",
                    "deleted",
                    "before",
                    "after",
                    "reverse",
                    "cursor",
                    "page_size",
                ),
                "responses": _list_of("Contact"),
            }
        },
        "/api/v2/flows.json": {
            "get": {
                "summary": "List flows (by created_on; before/after on modified_on)",
                "parameters": _list_params(
                    "uuid", "type", "archived", "before", "after", "cursor", "page_size"
                ),
                "responses": _list_of("Flow"),
            }
        },
        "/api/v2/flow_starts.json": {
            "get": {
                "summary": "List flow starts (by modified_on)",
                "parameters": _list_params(
                    "id", "uuid", "before", "after", "reverse", "cursor", "page_size"
                ),
                "responses": _list_of("FlowStart"),
            },
            "post": {
                "summary": "Start contacts in a flow",
                "requestBody": _body(
                    {
                        "flow": _STR,
                        **_RECIPIENTS,
                        "restart_participants": {**_BOOL, "default": True},
                        "exclude_active": {**_BOOL, "default": False},
                        "params": _OBJ,
                        "extra": {**_OBJ, "deprecated": True},
                    },
                    ["flow"],
                ),
                "responses": _created("FlowStart"),
            },
        },
        "/api/v2/messages.json": {
            "get": {
                "summary": "List messages (by created_on; sent: sent_on; incoming: modified_on)",
                "parameters": _list_params(
                    "id",
                    "contact",
                    "folder",
                    "broadcast",
                    "label",
                    "before",
                    "after",
                    "cursor",
                    "page_size",
                ),
                "responses": _list_of("Message"),
            }
        },
        "/api/v2/runs.json": {
            "get": {
                "summary": "List flow runs (by modified_on)",
                "parameters": _list_params(
                    "id",
                    "uuid",
                    "flow",
                    "contact",
                    "responded",
                    "paths",
                    "before",
                    "after",
                    "reverse",
                    "cursor",
                    "page_size",
                ),
                "responses": _list_of("Run"),
            }
        },
        "/api/v2/health": {
            "get": {
                "summary": "Liveness and store counters (not RapidPro; no token needed)",
                "security": [],
                "responses": {"200": {"description": '{"status": "ok", ...}'}},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document (no token needed)",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.0 document"}},
            }
        },
    },
}
