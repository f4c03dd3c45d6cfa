"""The control API: see and steer a running SMSC over HTTP/JSON, on the SMSC's own loop.

Everything a handler does is a plain call on ``SmscServer``/``OperatorSmsc`` made from
the loop that runs them, so no locking is needed and the SMPP hot path pays nothing
until someone asks. The contract (and /openapi.json) is ``control_schema.py``; the
Prometheus exposition is ``metrics.py``. Off loopback a token is always required.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from simulator.config import ControlConfig, FaultRule
from simulator.subscribers.numbering import normalize

from .control_schema import (
    TOKEN_ENV,
    DropRequest,
    MoBatch,
    MoRequest,
    OperatorChoice,
    TpsRequest,
    openapi_document,
)
from .metrics import CONTENT_TYPE, Metrics, split_key
from .stats import LatencyHistogram

if TYPE_CHECKING:
    from .operator import OperatorSmsc
    from .server import SmscServer

log = logging.getLogger("smsim.control")

VERSION = "1"
_M = TypeVar("_M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(config: ControlConfig, env: str | None) -> tuple[str | None, bool]:
    """(token or None, generated?): the configured one, else the environment's, else
    (off loopback only) a new random one."""
    if config.token:
        return config.token, False
    if env:
        return env, False
    if is_loopback(config.host):
        return None, False
    return secrets.token_urlsafe(24), True


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str, ensure_ascii=False),
        status=status,
        content_type="application/json",
    )


def latency(h: LatencyHistogram) -> dict[str, Any]:
    return {"count": h.count, "sum": h.total, "p50": h.quantile(0.5), "p99": h.quantile(0.99)}


# --- what the API reports (plain data, also what ``smsim top`` draws) --------------------------


def binds_snapshot(server: SmscServer) -> list[dict[str, Any]]:
    out = []
    for name, op in server.operators.items():
        for acct in op.accounts.values():
            for conn in acct.binds:
                s = conn.session
                out.append(
                    {
                        "operator": name,
                        "account": acct.system_id,
                        "peer": conn.peer,
                        "mode": s.state.value,
                        "outbind": conn.outbind_for is not None,
                        "writable": conn.writable,
                        "deliver_window": {"size": s.window, "in_flight": s.window - s.window_free},
                        "submit_window": {
                            "size": s.inbound_window or 0,
                            "in_flight": s.pending_inbound,
                        },
                    }
                )
    return out


def _operator_snapshot(op: OperatorSmsc) -> dict[str, Any]:
    held: dict[str, int] = {}
    for acct, _ in op.held_receipts:
        held[acct.system_id] = held.get(acct.system_id, 0) + 1
    pdus: dict[str, dict[str, int]] = {}
    for direction, counts in (("in", op.pdus_in), ("out", op.pdus_out)):
        named: dict[str, int] = {}
        for key, n in list(counts.items()):
            command, status = split_key(key)
            named[f"{command} {status}"] = n
        pdus[direction] = named
    return {
        "counters": op.stats.as_dict(),
        "pdus_in": pdus["in"],
        "pdus_out": pdus["out"],
        "delivery_rtt": latency(op.delivery_rtt),
        "receipts_paused": op.receipts_paused,
        "accounts": {
            sid: {
                "tps": acct.tps,
                "binds": len(acct.binds),
                "receivers": len(acct.receivers),
                "queued": len(acct.outbox),
                "held": held.get(sid, 0),
                "counters": acct.stats.as_dict(),
            }
            for sid, acct in op.accounts.items()
        },
    }


def stats_snapshot(server: SmscServer, started: float) -> dict[str, Any]:
    summary = server.subscribers.summary() if server.subscribers is not None else None
    return {
        "uptime": time.monotonic() - started,
        "scheduled": server.scheduled(),
        "totals": server.stats().as_dict(),
        "operators": {name: _operator_snapshot(op) for name, op in server.operators.items()},
        "platform_reply": latency(server.replies.histogram) if server.replies else None,
        "subscribers": _plain(summary) if summary is not None else None,
    }


def _plain(obj: object) -> dict[str, Any]:
    assert is_dataclass(obj) and not isinstance(obj, type)
    return asdict(obj)


# --- the server ----------------------------------------------------------------------------------


class ControlServer:
    def __init__(self, server: SmscServer, config: ControlConfig) -> None:
        self.smsc = server
        self.config = config
        self.token, self.token_generated = resolve_token(config, os.environ.get(TOKEN_ENV))
        self.metrics = Metrics(server, server.replies) if config.metrics else None
        self._started = time.monotonic()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._openapi = openapi_document(VERSION)

    # --- lifecycle -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._auth], client_max_size=4 << 20)
        r = app.router
        r.add_get("/openapi.json", self.openapi)
        r.add_get("/status", self.status)
        r.add_get("/stats", self.stats)
        r.add_get("/binds", self.binds)
        r.add_post("/binds/drop", self.drop)
        r.add_post("/mo", self.mo)
        r.add_post("/mo/batch", self.mo_batch)
        r.add_get("/subscribers/{number}", self.subscriber)
        r.add_put("/operators/{operator}/accounts/{system_id}/tps", self.tps)
        r.add_post("/receipts/pause", self.pause)
        r.add_post("/receipts/resume", self.resume)
        r.add_get("/faults", self.faults)
        r.add_post("/faults", self.add_fault)
        r.add_delete("/faults", self.clear_faults)
        r.add_delete("/faults/{id}", self.remove_fault)
        r.add_get("/metrics", self.prometheus)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await self._site.start()
        except BaseException:
            await self.stop()
            raise
        log.info("control_listening url=%s auth=%s", self.url, "token" if self.token else "none")
        if self.token_generated:
            log.warning("control_token_generated url=%s token=%s", self.url, self.token)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        assert self._runner is not None
        for addr in self._runner.addresses:
            return int(addr[1])
        raise RuntimeError("control API not listening")

    @property
    def url(self) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    # --- middleware ------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return _json({"error": str(exc)}, exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            resp = _json({"error": exc.reason}, exc.status)
            if "Allow" in exc.headers:  # 405 names the methods the path takes
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.token is not None:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            ok = scheme.lower() in ("token", "bearer") and hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            )
            if not ok:
                return web.Response(
                    text=json.dumps({"error": "missing or wrong token"}),
                    status=401,
                    content_type="application/json",
                    headers={"WWW-Authenticate": "Token"},
                )
        return await handler(request)

    # --- helpers ---------------------------------------------------------------------------

    async def _body(self, request: web.Request, model: type[_M], required: bool = True) -> _M:
        raw = await request.read()
        if not raw and not required:
            return model()  # no body at all; whitespace alone is not JSON (400 below)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the body is not JSON") from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ApiError(400, f"{where}: {message}") from None

    def _operators(self, name: str | None) -> list[OperatorSmsc]:
        if name is None:
            return list(self.smsc.operators.values())
        op = self.smsc.operators.get(name)
        if op is None:
            raise ApiError(404, f"no operator {name!r}")
        return [op]

    def _inject(self, mo: MoRequest) -> tuple[str, str, int]:
        smsc = self.smsc
        name = mo.operator
        if name is None and smsc.subscribers is not None:
            name = smsc.subscribers.listener_for(mo.source)
        op = self._operators(name)[0] if name is not None else smsc.operator()
        try:
            acct = op.route_mo(mo.destination, mo.account)
        except KeyError as exc:
            raise ApiError(404, str(exc.args[0])) from None
        pdus = smsc.inject_mo(
            mo.source,
            mo.text,
            operator=op.name,
            destination=mo.destination,
            account=acct.system_id,
        )
        return op.name, acct.system_id, len(pdus)

    # --- handlers --------------------------------------------------------------------------

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(self._openapi)

    async def status(self, request: web.Request) -> web.Response:
        return _json(
            {
                "version": VERSION,
                "uptime": time.monotonic() - self._started,
                "operators": list(self.smsc.operators),
                "population": self.smsc.subscribers is not None,
                "metrics": self.metrics is not None,
            }
        )

    async def stats(self, request: web.Request) -> web.Response:
        return _json(stats_snapshot(self.smsc, self._started))

    async def binds(self, request: web.Request) -> web.Response:
        return _json({"binds": binds_snapshot(self.smsc)})

    async def drop(self, request: web.Request) -> web.Response:
        body = await self._body(request, DropRequest)
        dropped = sum(
            op.drop_binds(body.account, body.peer, unbind=body.unbind)
            for op in self._operators(body.operator)
        )
        return _json({"dropped": dropped})

    async def mo(self, request: web.Request) -> web.Response:
        mo = await self._body(request, MoRequest)
        operator, account, parts = self._inject(mo)
        return _json({"operator": operator, "account": account, "parts": parts})

    async def mo_batch(self, request: web.Request) -> web.Response:
        batch = await self._body(request, MoBatch)
        parts = sum(self._inject(mo)[2] for mo in batch.messages)
        log.info("mo_batch messages=%d parts=%d", len(batch.messages), parts)
        return _json({"queued": len(batch.messages), "parts": parts})

    async def subscriber(self, request: web.Request) -> web.Response:
        engine = self.smsc.subscribers
        raw_limit = request.query.get("limit", "20")
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ApiError(400, "limit: not an integer") from None
        if not 0 <= limit <= 1000:
            raise ApiError(400, "limit: 0 to 1000")
        if engine is None:
            raise ApiError(409, "this SMSC runs without subscribers")
        number = normalize(request.match_info["number"])
        if number is None:
            raise ApiError(404, "not an Egyptian mobile number")
        described = engine.describe(number)
        return _json(
            {
                "number": number,
                "listener": engine.listener_for(number),
                "profile": described["profile"],
                "name": described["name"],
                "counters": described["counters"],
                "received": [_plain(e) for e in engine.received_by(number, limit)],
                "sent": [_plain(e) for e in engine.sent_by(number, limit)],
            }
        )

    async def tps(self, request: web.Request) -> web.Response:
        body = await self._body(request, TpsRequest)
        op = self._operators(request.match_info["operator"])[0]
        system_id = request.match_info["system_id"]
        if system_id not in op.accounts:
            raise ApiError(404, f"operator {op.name} has no account {system_id!r}")
        op.set_tps(system_id, body.tps)
        return _json({"operator": op.name, "system_id": system_id, "tps": body.tps})

    async def pause(self, request: web.Request) -> web.Response:
        body = await self._body(request, OperatorChoice, required=False)
        ops = self._operators(body.operator)
        for op in ops:
            op.pause_receipts()
        return _json({"paused": True, "held": sum(len(op.held_receipts) for op in ops)})

    async def resume(self, request: web.Request) -> web.Response:
        body = await self._body(request, OperatorChoice, required=False)
        released = sum(op.resume_receipts() for op in self._operators(body.operator))
        return _json({"paused": False, "released": released})

    async def faults(self, request: web.Request) -> web.Response:
        now = asyncio.get_running_loop().time()
        return _json({"faults": [f.describe(now) for f in self.smsc.faults.faults.values()]})

    async def add_fault(self, request: web.Request) -> web.Response:
        rule = await self._body(request, FaultRule)
        smsc = self.smsc
        if rule.operator is not None:
            self._operators(rule.operator)
        if rule.account is not None and not any(
            rule.account in op.accounts for op in smsc.operators.values()
        ):
            raise ApiError(404, f"no account {rule.account!r}")
        try:
            fault = self.smsc.add_fault(rule)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return _json({"fault": fault.describe(asyncio.get_running_loop().time())})

    async def clear_faults(self, request: web.Request) -> web.Response:
        ids = list(self.smsc.faults.faults)
        for fid in ids:
            self.smsc.remove_fault(fid)
        return _json({"removed": len(ids)})

    async def remove_fault(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        fault = self.smsc.remove_fault(int(raw)) if raw.isdigit() else None
        if fault is None:
            raise ApiError(404, f"no fault rule {raw!r}")
        return _json({"removed": fault.describe(asyncio.get_running_loop().time())})

    async def prometheus(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            raise ApiError(404, "metrics are off")
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})
