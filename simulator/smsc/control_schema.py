"""The control API's contract: request models (validated with pydantic) and the OpenAPI
document served at /openapi.json, built from the same models so they cannot drift."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulator.config import FaultRule

#: The environment variable a token may come from (server and CLI alike).
TOKEN_ENV = "SMSIM_CONTROL_TOKEN"

_NUMBER = r"^\+?[0-9]{1,20}$"
_ADDRESS = r"^[0-9]{1,21}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _utf16(text: str) -> str:
    """Texts travel as GSM 7-bit or UCS-2: a lone surrogate cannot be encoded."""
    try:
        text.encode("utf-16-be")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (lone surrogate)") from None
    return text


class MoRequest(_Body):
    """One mobile-originated text, as if the subscriber ``source`` had sent it."""

    source: Annotated[str, Field(pattern=_NUMBER, description="the handset, e.g. 201001234567")]
    text: Annotated[str, Field(max_length=2000)]
    destination: Annotated[str, Field(pattern=_ADDRESS)] = "1442"
    operator: Annotated[
        str | None,
        Field(description="listener to inject through (default: the subscriber's serving one)"),
    ] = None
    account: str | None = None

    _text = field_validator("text")(_utf16)


class MoBatch(_Body):
    messages: Annotated[list[MoRequest], Field(min_length=1, max_length=10_000)]


class TpsRequest(_Body):
    tps: Annotated[float, Field(ge=0, le=1_000_000, description="messages/s; 0: unlimited")]


class OperatorChoice(_Body):
    operator: Annotated[str | None, Field(description="one operator (default: all)")] = None


class DropRequest(_Body):
    operator: str | None = None
    account: str | None = None
    peer: Annotated[str | None, Field(description="HOST:PORT as /binds lists it")] = None
    unbind: Annotated[bool, Field(description="send unbind instead of cutting the TCP")] = False


_MODELS: tuple[type[BaseModel], ...] = (
    MoRequest,
    MoBatch,
    TpsRequest,
    OperatorChoice,
    DropRequest,
    FaultRule,
)


def _schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or list(properties)}


_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_SECONDS = {"type": ["number", "null"]}
_LATENCY = _schema({"count": _INT, "sum": {"type": "number"}, "p50": _SECONDS, "p99": _SECONDS})
_BIND = _schema(
    {
        "operator": _STR,
        "account": _STR,
        "peer": _STR,
        "mode": _STR,
        "outbind": {"type": "boolean"},
        "writable": {"type": "boolean"},
        "deliver_window": _schema({"size": _INT, "in_flight": _INT}),
        "submit_window": _schema({"size": _INT, "in_flight": _INT}),
    }
)
_ACCOUNT = _schema(
    {
        "tps": {"type": "number"},
        "binds": _INT,
        "receivers": _INT,
        "queued": _INT,
        "held": _INT,
        "counters": _schema(
            {
                "submits": _INT,
                "accepted": _INT,
                "throttled": _INT,
                "receipts_due": _INT,
                "mo_queued": _INT,
            }
        ),
    }
)
_OPERATOR = _schema(
    {
        "counters": {"type": "object"},
        "pdus_in": {"type": "object", "additionalProperties": _INT},
        "pdus_out": {"type": "object", "additionalProperties": _INT},
        "delivery_rtt": {"$ref": "#/components/schemas/Latency"},
        "receipts_paused": {"type": "boolean"},
        "accounts": {"type": "object", "additionalProperties": _ACCOUNT},
    }
)
_STATS = _schema(
    {
        "uptime": {"type": "number"},
        "scheduled": _INT,
        "totals": {"type": "object"},
        "operators": {"type": "object", "additionalProperties": _OPERATOR},
        "platform_reply": {"oneOf": [{"$ref": "#/components/schemas/Latency"}, {"type": "null"}]},
        "subscribers": {"type": ["object", "null"]},
    }
)
_ENTRY = {"type": "object", "properties": {"direction": _STR, "time": {"type": "number"}}}
_SUBSCRIBER = _schema(
    {
        "number": _STR,
        "listener": {"type": ["string", "null"]},
        "profile": {"type": "object"},
        "name": _STR,
        "counters": {"type": ["object", "null"]},
        "received": {"type": "array", "items": _ENTRY},
        "sent": {"type": "array", "items": _ENTRY},
    }
)
_ERROR = _schema({"error": _STR})
_FAULT = _schema(
    {
        "id": _INT,
        "name": _STR,
        "active": {"type": "boolean"},
        "starts_in": {"type": "number"},
        "ends_in": {"type": ["number", "null"]},
        "hits": _INT,
        "rule": {"type": "object"},
    }
)


def _ok(schema: dict[str, Any], what: str = "done") -> dict[str, Any]:
    return {"description": what, "content": {"application/json": {"schema": schema}}}


def _err(what: str) -> dict[str, Any]:
    return _ok({"$ref": "#/components/schemas/Error"}, what)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    summary: str,
    responses: dict[str, Any],
    body: str | None = None,
    body_required: bool = True,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, "401": _err("no token")}}
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": _ref(body)}},
        }
        op["responses"]["400"] = _err("invalid request")
    if parameters:
        op["parameters"] = parameters
    return op


def _path(name: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "path", "required": True, "schema": schema}


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of every endpoint ``control.py`` serves."""
    components: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    components["Error"] = _ERROR
    components["Latency"] = _LATENCY
    components["Bind"] = _BIND
    components["Stats"] = _STATS
    components["Subscriber"] = _SUBSCRIBER
    components["Fault"] = _FAULT
    not_found = _err("no such operator, account or subscriber")
    paths: dict[str, Any] = {
        "/status": {
            "get": _op(
                "Liveness and what runs",
                {
                    "200": _ok(
                        _schema(
                            {
                                "version": _STR,
                                "uptime": {"type": "number"},
                                "operators": {"type": "array", "items": _STR},
                                "population": {"type": "boolean"},
                                "metrics": {"type": "boolean"},
                            }
                        )
                    )
                },
            )
        },
        "/stats": {
            "get": _op("Counters per operator and account, latencies", {"200": _ok(_ref("Stats"))})
        },
        "/binds": {
            "get": _op(
                "Bound connections and their windows",
                {"200": _ok(_schema({"binds": {"type": "array", "items": _ref("Bind")}}))},
            )
        },
        "/binds/drop": {
            "post": _op(
                "Drop binds (all, or of an operator, account or peer)",
                {"200": _ok(_schema({"dropped": _INT})), "404": not_found},
                body="DropRequest",
            )
        },
        "/mo": {
            "post": _op(
                "Inject one MO",
                {
                    "200": _ok(_schema({"operator": _STR, "account": _STR, "parts": _INT})),
                    "404": not_found,
                },
                body="MoRequest",
            )
        },
        "/mo/batch": {
            "post": _op(
                "Inject many MO, in order",
                {"200": _ok(_schema({"queued": _INT, "parts": _INT})), "404": not_found},
                body="MoBatch",
            )
        },
        "/subscribers/{number}": {
            "get": _op(
                "A subscriber: attributes, what they received and sent",
                {
                    "200": _ok(_ref("Subscriber")),
                    "400": _err("invalid limit"),
                    "404": _err("not an Egyptian mobile number"),
                    "409": _err("the SMSC runs without subscribers"),
                },
                parameters=[
                    _path("number"),
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 1000},
                    },
                ],
            )
        },
        "/operators/{operator}/accounts/{system_id}/tps": {
            "put": _op(
                "Change an account's TPS limit now",
                {
                    "200": _ok(
                        _schema({"operator": _STR, "system_id": _STR, "tps": {"type": "number"}})
                    ),
                    "404": not_found,
                },
                body="TpsRequest",
                parameters=[_path("operator"), _path("system_id")],
            )
        },
        "/receipts/pause": {
            "post": _op(
                "Hold receipts as they come due",
                {
                    "200": _ok(_schema({"paused": {"type": "boolean"}, "held": _INT})),
                    "404": not_found,
                },
                body="OperatorChoice",
                body_required=False,
            )
        },
        "/receipts/resume": {
            "post": _op(
                "Release held receipts, in order, and stop holding",
                {
                    "200": _ok(_schema({"paused": {"type": "boolean"}, "released": _INT})),
                    "404": not_found,
                },
                body="OperatorChoice",
                body_required=False,
            )
        },
        "/faults": {
            "get": _op(
                "Fault rules: on, waiting or repeating, and how often each acted",
                {"200": _ok(_schema({"faults": {"type": "array", "items": _ref("Fault")}}))},
            ),
            "post": _op(
                "Add a fault rule (its start counted from now)",
                {"200": _ok(_schema({"fault": _ref("Fault")})), "404": not_found},
                body="FaultRule",
            ),
            "delete": _op("Remove every fault rule", {"200": _ok(_schema({"removed": _INT}))}),
        },
        "/faults/{id}": {
            "delete": _op(
                "Remove one fault rule",
                {"200": _ok(_schema({"removed": _ref("Fault")})), "404": _err("no such rule")},
                parameters=[_path("id", "^[0-9]+$")],
            )
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text exposition",
                "responses": {
                    "200": {"description": "metrics", "content": {"text/plain": {"schema": _STR}}},
                    "401": _err("no token"),
                    "404": _err("metrics are off"),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "smsim control API",
            "version": version,
            "description": "See and steer a running fake SMSC. When a token is set, send "
            "`Authorization: Token <token>` (or Bearer).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization"}
            },
        },
        "security": [{"token": []}, {}],
    }
