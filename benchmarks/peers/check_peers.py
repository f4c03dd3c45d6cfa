#!/usr/bin/env python3
"""Smoke check for the benchmark peer SMSCs, driven by smpplib (blocking client).

    .venv/bin/python benchmarks/peers/check_peers.py [--peers smpp34,npm]

For each peer: start it as a subprocess on a free 127.0.0.1 port, wait for its
``listening 127.0.0.1:N`` line, bind as transceiver (rapidpro / secret), submit
``--count`` messages (default 100) with registered_delivery=1, and require
``--count`` successful submit_sm_resp with distinct message ids and exactly one
delivery receipt per id (id checked in the text and in receipted_message_id,
plus esm_class 0x04, message_state 2, swapped addresses, echoed text). Then a
timed ``--perf-count`` run (default 5000) for a rough rate, and SIGTERM, which
must end the peer with exit code 0.

The rate is a sanity figure only: smpplib itself tops out around 20k PDUs/s
(codec) and here handles 4 PDUs per message, on the same CPUs as the peer.
Exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SYSTEM_ID = "rapidpro"
PASSWORD = "secret"
RECEIPT_RE = re.compile(
    rb"^id:(?P<id>\S+) sub:001 dlvrd:001 submit date:(?P<sd>\d{10}) "
    rb"done date:(?P<dd>\d{10}) stat:DELIVRD err:000 text:(?P<text>.*)$",
    re.S,
)


# ── peers ────────────────────────────────────────────────────────────────────
def smpp34_cmd(port: int, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        str(HERE / "smpp34_smsc.py"),
        "--host",
        HOST,
        "--port",
        str(port),
        *extra,
    ]


def npm_cmd(port: int, extra: list[str]) -> list[str]:
    return ["node", str(HERE / "npm_smsc.js"), "--host", HOST, "--port", str(port), *extra]


def smpp34_version() -> str:
    from importlib.metadata import version

    return f"smpp34 {version('smpp34')} (Python {sys.version.split()[0]})"


def npm_version() -> str:
    pkg = HERE / "node_modules" / "smpp" / "package.json"
    if not pkg.exists():
        return "smpp (not installed: run npm install --prefix benchmarks/peers)"
    v = json.loads(pkg.read_text())["version"]
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        node = "node?"
    return f"smpp {v} (node {node})"


PEERS = {
    "smpp34": (smpp34_cmd, smpp34_version),
    "npm": (npm_cmd, npm_version),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_peer(cmd: list[str], port: int, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd,
        cwd=HERE.parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # our SIGINT does not reach it; we stop it ourselves
    )
    want = f"listening {HOST}:{port}".encode()
    deadline = time.monotonic() + timeout
    buf = b""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            first = " / ".join(err.strip().splitlines()[:2])[:300]
            raise RuntimeError(f"peer exited with {proc.returncode} before ready: {first}")
        r, _, _ = select.select([proc.stdout], [], [], 0.1)
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            buf += chunk
            if want + b"\n" in buf:
                return proc
            if b"\n" in buf and not buf.startswith(b"listening"):
                break
    stop_peer(proc)
    raise RuntimeError(f"no ready line {want.decode()!r} within {timeout}s (got {buf[:200]!r})")


def stop_peer(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> tuple[int | None, str]:
    """SIGTERM; returns (exit code or None if it had to be killed, stderr tail)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None, ""
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    return proc.returncode, err.strip()


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ── one run against a started peer ───────────────────────────────────────────
@dataclass
class RunResult:
    submitted: int = 0
    resp_ok: int = 0
    resp_err: int = 0
    ids: list[str] = field(default_factory=list)
    receipts: int = 0
    receipt_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    t_resps: float = 0.0
    enquire_link: str = "-"
    unbind: str = "-"

    def problem(self, msg: str) -> None:
        if len(self.problems) < 10:
            self.problems.append(msg)


def _s(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.rstrip(b"\x00").decode("latin-1")
    return str(v)


def run(
    port: int, count: int, window: int, verify: bool, nodelay: bool = True, timeout: float = 30.0
) -> RunResult:
    res = RunResult()
    texts: dict[str, bytes] = {}  # destination -> text, to check the echoed text
    client = smpplib.client.Client(HOST, port, timeout=timeout, allow_unknown_opt_params=True)

    def on_resp(pdu: Any, **_kw: Any) -> None:
        if pdu.status != smpplib.consts.SMPP_ESME_ROK:
            res.resp_err += 1
            res.problem(f"submit_sm_resp status 0x{pdu.status:x}")
            return
        res.resp_ok += 1
        res.ids.append(_s(pdu.message_id))
        if res.resp_ok + res.resp_err == count:
            res.t_resps = time.perf_counter()

    def on_error(pdu: Any) -> None:
        # smpplib calls this for any PDU with a non-zero status, then carries on
        # dispatching it (a failed submit_sm_resp still reaches on_resp)
        if pdu.command != "submit_sm_resp":
            res.problem(f"{pdu.command} status 0x{pdu.status:x}")

    def on_deliver(pdu: Any, **_kw: Any) -> None:
        res.receipts += 1
        if not verify:
            m = RECEIPT_RE.match(pdu.short_message or b"")
            res.receipt_ids.append(m.group("id").decode() if m else "?")
            return
        body = pdu.short_message or b""
        m = RECEIPT_RE.match(body)
        if not m:
            res.problem(f"receipt text does not parse: {body[:120]!r}")
            res.receipt_ids.append("?")
            return
        rid = m.group("id").decode()
        res.receipt_ids.append(rid)
        tlv_id = _s(getattr(pdu, "receipted_message_id", None))
        if tlv_id != rid:
            res.problem(f"receipted_message_id TLV {tlv_id!r} != text id {rid!r}")
        state = getattr(pdu, "message_state", None)
        if state != 2:
            res.problem(f"message_state TLV {state!r} != 2")
        if pdu.esm_class != 0x04:
            res.problem(f"esm_class 0x{pdu.esm_class:02x} != 0x04")
        src, dst = _s(pdu.source_addr), _s(pdu.destination_addr)
        if dst != "12345":
            res.problem(f"receipt destination {dst!r} != submit source '12345'")
        want = texts.get(src)
        if want is None:
            res.problem(f"receipt source {src!r} is not a submit destination")
        elif m.group("text") != want[:20]:
            res.problem(f"receipt text {m.group('text')!r} != {want[:20]!r}")

    client.set_message_sent_handler(on_resp)
    client.set_message_received_handler(on_deliver)
    client.set_error_pdu_handler(on_error)

    client.connect()
    if nodelay:
        # smpplib leaves Nagle on: each small submit_sm / deliver_sm_resp then
        # waits for the peer's (delayed) ACK, which measured the ACK timer, not
        # the peer (npm peer: ~1.6k/s with Nagle, ~4.2k/s without).
        client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        bind = client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        if bind.status != 0:
            res.problem(f"bind_transceiver_resp status 0x{bind.status:x}")
            return res
        if verify:
            el = smpplib.smpp.make_pdu("enquire_link", client=client)
            client.send_pdu(el)
            r = client.read_pdu()
            if r.command == "enquire_link_resp" and r.sequence == el.sequence and not r.is_error():
                res.enquire_link = "ok"
            else:
                res.problem(f"enquire_link answered with {r.command} status 0x{r.status:x}")
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        for i in range(count):
            while res.submitted - (res.resp_ok + res.resp_err) >= window:
                client.read_once(auto_send_enquire_link=False)
            dest = f"2547{i:08d}"
            text = b"smoke message %d from check_peers" % i
            texts[dest] = text
            client.send_message(
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr="12345",
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=dest,
                short_message=text,
                data_coding=0,
                registered_delivery=1,
            )
            res.submitted += 1
        while res.resp_ok + res.resp_err < count or res.receipts < count:
            if time.monotonic() > deadline:
                res.problem(f"timeout: {res.resp_ok + res.resp_err} resps, {res.receipts} receipts")
                break
            client.read_once(auto_send_enquire_link=False)
        res.elapsed = time.perf_counter() - t0
        res.t_resps = (res.t_resps - t0) if res.t_resps else res.elapsed
        try:
            unb = client.unbind()
            if unb.command == "unbind_resp" and not unb.is_error():
                res.unbind = "ok"
            else:
                res.problem(f"unbind answered with {unb.command} status 0x{unb.status:x}")
        except smpplib.exceptions.ConnectionError:
            # peer closed without unbind_resp (smpp34 1.5.0 does this on most
            # unbinds: see README); a warning, not a failure
            res.unbind = "lost"
            client.state = smpplib.consts.SMPP_CLIENT_STATE_OPEN  # quiet its warning
    except (TimeoutError, smpplib.exceptions.ConnectionError, OSError) as e:
        res.problem(f"connection: {e!r}")
    finally:
        client.disconnect()
    return res


def check_binds(port: int) -> tuple[str, list[str]]:
    """bind_transmitter and bind_receiver must be accepted too (trx is the main run)."""
    ok, bad = [], []
    for kind in ("transmitter", "receiver"):
        client = smpplib.client.Client(HOST, port, timeout=5, allow_unknown_opt_params=True)
        try:
            client.connect()
            resp = getattr(client, f"bind_{kind}")(system_id=SYSTEM_ID, password=PASSWORD)
            if resp.is_error():
                bad.append(f"bind_{kind} refused: 0x{resp.status:x}")
            else:
                ok.append("tx" if kind == "transmitter" else "rx")
                with contextlib.suppress(smpplib.exceptions.ConnectionError):
                    client.unbind()
        except (TimeoutError, smpplib.exceptions.PDUError, OSError) as e:
            bad.append(f"bind_{kind}: {e!r}")
        finally:
            client.state = smpplib.consts.SMPP_CLIENT_STATE_OPEN  # quiet its warning
            client.disconnect()
    return "+".join(ok) or "none", bad


def judge(res: RunResult, count: int) -> list[str]:
    bad = list(res.problems)
    if res.resp_ok != count:
        bad.append(f"{res.resp_ok}/{count} successful submit_sm_resp")
    if len(set(res.ids)) != len(res.ids):
        bad.append(f"only {len(set(res.ids))} distinct ids in {len(res.ids)} responses")
    if any(not i.isdigit() for i in res.ids):
        bad.append("non-decimal message ids")
    if res.receipts != count:
        bad.append(f"{res.receipts}/{count} receipts")
    if sorted(res.receipt_ids) != sorted(res.ids):
        missing = set(res.ids) - set(res.receipt_ids)
        bad.append(f"receipt ids do not match submit ids ({len(missing)} ids without receipt)")
    return bad


# ── main ─────────────────────────────────────────────────────────────────────
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default="smpp34,npm", help="comma list of: " + ",".join(PEERS))
    ap.add_argument("--count", type=int, default=100, help="verified messages")
    ap.add_argument("--perf-count", type=int, default=5000, help="timed messages (0 = skip)")
    ap.add_argument("--window", type=int, default=10, help="outstanding submit_sm in the check")
    ap.add_argument("--perf-window", type=int, default=64, help="outstanding submit_sm, timed run")
    ap.add_argument(
        "--nagle",
        action="store_true",
        help="leave Nagle on for smpplib's socket (its default); off otherwise",
    )
    ap.add_argument("--smpp34-args", default="", help="extra arguments for smpp34_smsc.py")
    ap.add_argument("--npm-args", default="", help="extra arguments for npm_smsc.js")
    args = ap.parse_args()
    extra = {"smpp34": args.smpp34_args.split(), "npm": args.npm_args.split()}

    rows = []
    failed = False
    for name in [p.strip() for p in args.peers.split(",") if p.strip()]:
        if name not in PEERS:
            print(f"unknown peer {name!r}", file=sys.stderr)
            return 2
        make_cmd, get_version = PEERS[name]
        row = {"peer": name, "version": get_version()}
        port = free_port()
        try:
            proc = start_peer(make_cmd(port, extra[name]), port)
        except (RuntimeError, OSError) as e:
            row.update(result="FAIL", why=[f"start: {e}"])
            rows.append(row)
            failed = True
            continue
        why: list[str] = []
        unbinds: list[str] = []
        try:
            row["binds"], bad = check_binds(port)
            why += bad
            res = run(port, args.count, args.window, verify=True, nodelay=not args.nagle)
            why += judge(res, args.count)
            if res.enquire_link != "ok":
                why.append("no enquire_link_resp")
            unbinds.append(res.unbind)
            row.update(
                enquire=res.enquire_link,
                resps=f"{res.resp_ok}/{args.count}",
                distinct=len(set(res.ids)),
                receipts=f"{res.receipts}/{args.count}",
                matched=len(set(res.ids) & set(res.receipt_ids)),
            )
            if args.perf_count:
                cpu0, ccpu0 = cpu_seconds(proc.pid), time.process_time()
                perf = run(
                    port,
                    args.perf_count,
                    args.perf_window,
                    verify=False,
                    nodelay=not args.nagle,
                    timeout=120,
                )
                cpu1, ccpu1 = cpu_seconds(proc.pid), time.process_time()
                pwhy = judge(perf, args.perf_count)
                why += [f"perf run: {w}" for w in pwhy]
                unbinds.append(perf.unbind)
                if perf.elapsed:
                    row.update(
                        rate=f"{args.perf_count / perf.elapsed:,.0f}",
                        resp_rate=f"{args.perf_count / perf.t_resps:,.0f}" if perf.t_resps else "-",
                        secs=f"{perf.elapsed:.2f}",
                        peer_cpu="-" if cpu0 is None or cpu1 is None else f"{cpu1 - cpu0:.2f}",
                        client_cpu=f"{ccpu1 - ccpu0:.2f}",
                    )
        except Exception as e:  # report it and carry on with the next peer
            why.append(f"client error: {e!r}")
        finally:
            if unbinds:
                row["unbind"] = f"{unbinds.count('ok')}/{len(unbinds)}"
                if "lost" in unbinds:
                    row.setdefault("warn", []).append(
                        f"{unbinds.count('lost')} unbind_resp lost (peer closed first)"
                    )
            rc, err = stop_peer(proc)
            row["exit"] = "killed" if rc is None else str(rc)
            if rc != 0:
                why.append(f"SIGTERM exit: {row['exit']} {err[-300:]}")
        row.update(result="FAIL" if why else "ok", why=why)
        failed |= bool(why)
        rows.append(row)

    cols = [
        ("peer", "peer"),
        ("version", "version"),
        ("binds", "tx/rx bind"),
        ("enquire", "enquire_link"),
        ("resps", "submit_resp ok"),
        ("distinct", "distinct ids"),
        ("receipts", "receipts"),
        ("matched", "ids matched"),
        ("rate", f"msg/s ({args.perf_count}, +DLR)"),
        ("resp_rate", "submit_resp/s"),
        ("secs", "secs"),
        ("peer_cpu", "peer CPU s"),
        ("client_cpu", "smpplib CPU s"),
        ("unbind", "unbind_resp"),
        ("exit", "SIGTERM rc"),
        ("result", "result"),
    ]
    table = [[h for _, h in cols]] + [[str(r.get(k, "-")) for k, _ in cols] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    for n, line in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        for w in r.get("why", []):
            print(f"  {r['peer']}: FAIL: {w}")
        for w in r.get("warn", []):
            print(f"  {r['peer']}: warning: {w}")
    print("FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
