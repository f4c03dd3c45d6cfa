"""The control API's command-line faces: ``smsim inject``, ``subscriber``, ``binds``,
``steer`` (TPS, receipts pause/resume, bind drop) and ``top``, plus the ``smsim smsc``
side (``with_control``: --control-port and defaults).

They speak HTTP to the running SMSC (``--control URL``, env SMSIM_CONTROL_URL; token
from --token or env SMSIM_CONTROL_TOKEN) and hold no state of their own. Importing this
module must stay cheap (``smsim`` imports it to build its parser): no aiohttp here."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from simulator.config import DEFAULT_CONTROL_PORT, SmscConfig

from .control_schema import TOKEN_ENV
from .control_top import Snapshot, render

URL_ENV = "SMSIM_CONTROL_URL"
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}"


def with_control(config: SmscConfig, args: argparse.Namespace) -> SmscConfig:
    """``smsim smsc``: the control API on (at --control-port, or the file's port) unless
    the file says ``enabled = false`` or --control-port is 0; off with --processes > 1
    (the workers would share one port and each see only its own binds)."""
    ctl = config.control
    update: dict[str, object] = {}
    port = getattr(args, "control_port", None)
    if port == 0 or getattr(args, "processes", 1) > 1:
        update["enabled"] = False
    else:
        if port is not None:
            update["port"] = port
            update["enabled"] = True
        elif "enabled" not in ctl.model_fields_set:
            update["enabled"] = True
    return config.model_copy(update={"control": ctl.model_copy(update=update)})


class ControlClient:
    """A small blocking JSON client for the control API."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Token {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                message = exc.reason
            raise ControlError(f"{method} {path}: {exc.code} {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ControlError(f"cannot reach the control API at {self.url}: {exc}") from None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: object = None) -> Any:
        return self.call("POST", path, body)


class ControlError(Exception):
    pass


def _client(args: argparse.Namespace) -> ControlClient:
    return ControlClient(args.control, args.token)


def _add_common(p: argparse.ArgumentParser, *, inherit: bool = False) -> None:
    """--control and --token; ``inherit``: a subcommand's, leaving the parent's value be
    when not given again (``smsim faults --control URL list``)."""
    url: object = argparse.SUPPRESS if inherit else os.environ.get(URL_ENV, DEFAULT_URL)
    token: object = argparse.SUPPRESS if inherit else os.environ.get(TOKEN_ENV)
    p.add_argument(
        "--control",
        default=url,
        help=f"control API URL (default: env {URL_ENV} or {DEFAULT_URL})",
    )
    p.add_argument("--token", default=token, help=f"API token (default: env {TOKEN_ENV})")


def _read_batch(path: str) -> list[dict[str, Any]]:
    """JSON lines of {"source", "text", ...}, or lines ``NUMBER,TEXT``; '-' is stdin."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            out.append(json.loads(line))
        else:
            source, _, body = line.partition(",")
            out.append({"source": source.strip(), "text": body})
    return out


def cmd_inject(args: argparse.Namespace) -> int:
    client = _client(args)
    extra: dict[str, Any] = {"destination": args.to}
    if args.operator:
        extra["operator"] = args.operator
    try:
        if args.batch:
            messages = [{**extra, **m} for m in _read_batch(args.batch)]
            total = {"queued": 0, "parts": 0}
            for i in range(0, len(messages), 10_000):
                got = client.post("/mo/batch", {"messages": messages[i : i + 10_000]})
                total = {k: total[k] + got[k] for k in total}
            print(f"queued {total['queued']} MO ({total['parts']} parts)")
            return 0
        if args.number is None or args.text is None:
            print("smsim inject: NUMBER TEXT, or --batch FILE", file=sys.stderr)
            return 2
        got = client.post("/mo", {"source": args.number, "text": args.text, **extra})
        print(f"queued via {got['operator']}/{got['account']} ({got['parts']} parts)")
        return 0
    except (ControlError, ValueError, OSError) as exc:
        print(f"smsim inject: {exc}", file=sys.stderr)
        return 1


def cmd_subscriber(args: argparse.Namespace) -> int:
    try:
        got = _client(args).get(f"/subscribers/{args.number}?limit={args.limit}")
    except ControlError as exc:
        print(f"smsim subscriber: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(got, ensure_ascii=False, indent=2))
        return 0
    console = Console()
    table = Table(title=f"{got['name']} — {got['number']} (MO via {got['listener']})")
    table.add_column("attribute")
    table.add_column("value")
    for k, v in got["profile"].items():
        table.add_row(k, str(v))
    for k, v in (got["counters"] or {}).items():
        table.add_row(k, str(v))
    console.print(table)
    for title, entries in (("received", got["received"]), ("sent", got["sent"])):
        t = Table(title=title)
        for col in ("time", "text", "outcome"):
            t.add_column(col)
        for e in entries:
            t.add_row(f"{e['time']:.1f}", e["text"], str(e.get("outcome") or ""))
        console.print(t)
    return 0


def cmd_binds(args: argparse.Namespace) -> int:
    try:
        binds = _client(args).get("/binds")["binds"]
    except ControlError as exc:
        print(f"smsim binds: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(binds, indent=2))
        return 0
    table = Table(title=f"{len(binds)} binds")
    for col in ("operator", "account", "peer", "mode", "deliver window", "submit window"):
        table.add_column(col)
    for b in binds:
        dw, sw = b["deliver_window"], b["submit_window"]
        table.add_row(
            b["operator"],
            b["account"],
            b["peer"],
            b["mode"],
            f"{dw['in_flight']}/{dw['size']}",
            f"{sw['in_flight']}/{sw['size']}",
        )
    Console().print(table)
    return 0


def cmd_steer(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        if args.action == "tps":
            got = client.call(
                "PUT",
                f"/operators/{args.operator}/accounts/{args.account}/tps",
                {"tps": args.value},
            )
            print(f"{got['operator']}/{got['system_id']}: tps {got['tps']:g}")
        elif args.action in ("pause", "resume"):
            body = {"operator": args.operator} if args.operator else {}
            got = client.post(f"/receipts/{args.action}", body)
            if args.action == "pause":
                print(f"receipts paused ({got['held']} held)")
            else:
                print(f"receipts resumed ({got['released']} released)")
        else:
            body = {
                k: v
                for k, v in (
                    ("operator", args.operator),
                    ("account", args.account),
                    ("peer", args.peer),
                )
                if v
            }
            got = client.post("/binds/drop", {**body, "unbind": args.unbind})
            print(f"dropped {got['dropped']} binds")
        return 0
    except ControlError as exc:
        print(f"smsim steer: {exc}", file=sys.stderr)
        return 1


def _fault_fields(kind: str, pairs: list[str]) -> dict[str, Any]:
    """``KIND key=value ...`` as the FaultRule JSON: numbers and booleans as such,
    ``numbers=A,B`` as a list; the server validates the rest."""
    rule: dict[str, Any] = {"kind": kind}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ControlError(f"{pair!r}: expected key=value")
        if key == "numbers":
            rule[key] = [n for n in value.split(",") if n]
        elif value.lower() in ("true", "false"):
            rule[key] = value.lower() == "true"
        else:
            try:
                rule[key] = json.loads(value) if value[:1].isdigit() else value
            except ValueError:
                rule[key] = value
    return rule


def cmd_faults(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        if args.action == "add":
            got = client.post("/faults", _fault_fields(args.kind, args.fields))["fault"]
            print(f"fault {got['id']} {got['name']}: on in {got['starts_in']:g}s")
            return 0
        if args.action == "remove":
            got = client.call("DELETE", f"/faults/{args.id}")["removed"]
            print(f"fault {got['id']} {got['name']} removed after {got['hits']} hits")
            return 0
        if args.action == "clear":
            print(f"removed {client.call('DELETE', '/faults')['removed']} fault rules")
            return 0
        faults = client.get("/faults")["faults"]
    except ControlError as exc:
        print(f"smsim faults: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(faults, ensure_ascii=False, indent=2))
        return 0
    table = Table(title="fault rules")
    for col in ("id", "name", "on", "starts in", "ends in", "hits", "rule"):
        table.add_column(col, justify="right" if col in ("id", "hits") else "left")
    for f in faults:
        rule = dict(f["rule"])
        fields = " ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in rule.items()
            if k != "kind"
        )
        table.add_row(
            str(f["id"]),
            f["name"],
            "yes" if f["active"] else "no",
            f"{f['starts_in']:.0f}s",
            "-" if f["ends_in"] is None else f"{f['ends_in']:.0f}s",
            str(f["hits"]),
            f"{rule['kind']} {fields}".strip(),
        )
    Console().print(table)
    return 0


def snapshot(client: ControlClient) -> Snapshot:
    return Snapshot(client.get("/stats"), client.get("/binds")["binds"], time.monotonic())


def cmd_top(args: argparse.Namespace) -> int:
    client = _client(args)
    console = Console()
    try:
        before = snapshot(client)
        if args.once:
            time.sleep(args.interval)
            console.print(render(snapshot(client), before, client.url))
            return 0
        with Live(
            render(before, None, client.url), console=console, screen=True, auto_refresh=False
        ) as live:
            while True:
                time.sleep(args.interval)
                now = snapshot(client)
                live.update(render(now, before, client.url), refresh=True)
                before = now
    except ControlError as exc:
        print(f"smsim top: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("inject", help="inject MO into a running SMSC (control API)")
    p.add_argument("number", nargs="?", help="the subscriber, e.g. 201001234567")
    p.add_argument("text", nargs="?", help="what they send")
    p.add_argument("--to", default="1442", help="destination short code (default 1442)")
    p.add_argument("--operator", help="listener to inject through (default: serving operator)")
    p.add_argument("--batch", help="JSON lines or NUMBER,TEXT lines ('-': stdin)")
    _add_common(p)
    p.set_defaults(func=cmd_inject)

    p = sub.add_parser("subscriber", help="one subscriber: attributes, received, sent")
    p.add_argument("number")
    p.add_argument("--limit", type=int, default=20, help="messages each way (default 20)")
    p.add_argument("--json", action="store_true")
    _add_common(p)
    p.set_defaults(func=cmd_subscriber)

    p = sub.add_parser("binds", help="binds of a running SMSC and their windows")
    p.add_argument("--json", action="store_true")
    _add_common(p)
    p.set_defaults(func=cmd_binds)

    p = sub.add_parser("steer", help="steer a running SMSC: TPS, receipts, bind drops")
    steer = p.add_subparsers(dest="action", required=True)
    s = steer.add_parser("tps", help="change an account's TPS limit now (0: unlimited)")
    s.add_argument("operator")
    s.add_argument("account")
    s.add_argument("value", type=float)
    _add_common(s)
    for action, what in (("pause", "hold receipts as they come due"), ("resume", "release them")):
        s = steer.add_parser(action, help=what)
        s.add_argument("--operator", help="one operator (default: all)")
        _add_common(s)
    s = steer.add_parser("drop", help="drop binds (all, or those matching)")
    s.add_argument("--operator")
    s.add_argument("--account")
    s.add_argument("--peer", help="HOST:PORT as smsim binds shows it")
    s.add_argument("--unbind", action="store_true", help="send unbind instead of cutting TCP")
    _add_common(s)
    p.set_defaults(func=cmd_steer)

    p = sub.add_parser("faults", help="fault injection in a running SMSC: list, add, remove")
    faults = p.add_subparsers(dest="action")
    s = faults.add_parser("list", help="the rules, and how often each acted (the default)")
    s.add_argument("--json", action="store_true")
    _add_common(s, inherit=True)
    s = faults.add_parser(
        "add",
        help="add a rule: KIND key=value ... (e.g. submit_error status=ESME_RTHROTTLED "
        "share=0.3 duration=60)",
    )
    s.add_argument(
        "kind",
        help="submit_error, bind_refuse, bind_drop, outage, response_delay, "
        "enquire_link, receipt_delay, receipt_duplicate, receipt_fail, malformed",
    )
    s.add_argument("fields", nargs="*", help="FaultRule fields as key=value")
    _add_common(s, inherit=True)
    s = faults.add_parser("remove", help="remove one rule")
    s.add_argument("id", type=int)
    _add_common(s, inherit=True)
    s = faults.add_parser("clear", help="remove every rule")
    _add_common(s, inherit=True)
    _add_common(p)
    p.set_defaults(func=cmd_faults, action="list", json=False)

    p = sub.add_parser("top", help="live dashboard of a running SMSC")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    _add_common(p)
    p.set_defaults(func=cmd_top)
