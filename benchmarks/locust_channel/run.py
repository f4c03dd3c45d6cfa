"""Run one design end to end and print one row: MO->reply/s, latency, CPU per process.

    python benchmarks/locust_channel/run.py --design A --workers 1 --rate 5000
    python benchmarks/locust_channel/run.py --design B --workers 2 --rate 5000
    python benchmarks/locust_channel/run.py --design A --workers 1 --rate 5000 --reply-rate 2000

Designs: A = SMSC process + channel (smsc_channel.py, locustfile_a.py); B = the SMSC in
an OS thread inside every Locust worker (locustfile_b.py); C = a gevent-native mini SMSC
inside every Locust worker, no asyncio (locustfile_c.py). The platform is
``instant_platform.py`` in its own process. Everything on 127.0.0.1; every process is bounded
by ``--duration`` (Locust ``-t``) plus a few seconds.

Measurement window: [launch + warmup, launch + duration - cooldown], on CLOCK_MONOTONIC,
passed to the workers in LC_WINDOW_START/END; CPU of every process (and thread, for B)
is sampled with psutil at the window's edges. Appends a JSON line to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from channel import LatencyHistogram  # noqa: E402

PY = sys.executable
LOCUST = str(Path(PY).parent / "locust")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_line(proc: subprocess.Popen[str], key: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process {proc.args} exited before {key!r}")
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if key in d:
            return d
    raise RuntimeError(f"timeout waiting for {key!r}")


def tree(pids: dict[str, int]) -> dict[str, psutil.Process]:
    """Named processes plus the Locust master's children (workers), by role."""
    out: dict[str, psutil.Process] = {}
    for name, pid in pids.items():
        try:
            p = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        out[name] = p
        if name == "locust":
            for i, c in enumerate(sorted(p.children(recursive=True), key=lambda c: c.pid)):
                out[f"worker{i}"] = c
    return out


def cpu_sample(procs: dict[str, psutil.Process]) -> dict[str, Any]:
    sys_t = psutil.cpu_times()
    out: dict[str, Any] = {"_busy": sum(sys_t) - sys_t.idle - sys_t.iowait}
    for name, p in procs.items():
        try:
            t = p.cpu_times()
            out[name] = t.user + t.system
            out[name + ".threads"] = {th.id: th.user_time + th.system_time for th in p.threads()}
        except psutil.NoSuchProcess:
            pass
    return out


def merge_results(d: Path) -> dict[str, Any]:
    files = sorted(d.glob("worker-*.json"))
    total: dict[str, Any] = {"workers": len(files)}
    hists = {k: LatencyHistogram() for k in ("e2e", "at_smsc", "notify", "lag")}
    per_worker = []
    for f in files:
        r = json.loads(f.read_text())
        per_worker.append(r)
        for k in (
            "offered",
            "replied_in_window",
            "matched",
            "unanswered",
            "timeouts",
            "unsolicited",
            "sent_total",
            "replies_total",
        ):
            total[k] = total.get(k, 0) + r[k]
        for k, h in hists.items():
            h.merge(LatencyHistogram.from_json(r[k]))
    total["hists"] = hists
    total["per_worker"] = per_worker
    return total


def ms(x: float | None) -> float | None:
    return round(x * 1000, 3) if x is not None else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", choices="ABC", default="A")
    ap.add_argument("--workers", type=int, default=1, help="Locust --processes (0: no master)")
    ap.add_argument("--users", type=int, default=10, help="Locust users in total (-u)")
    ap.add_argument("--rate", type=float, default=5000, help="MO/s offered in total")
    ap.add_argument("--tick", type=float, default=0.005)
    ap.add_argument("--duration", type=int, default=16, help="Locust -t seconds (<= 20)")
    ap.add_argument("--warmup", type=float, default=6.0)
    ap.add_argument("--cooldown", type=float, default=2.5)
    ap.add_argument("--binds", type=int, default=2, help="platform binds per SMSC")
    ap.add_argument("--window", type=int, default=10, help="SMSC deliver_sm window per bind")
    ap.add_argument("--reply-rate", type=float, default=0, help="slow platform: max replies/s")
    ap.add_argument("--receipts", type=int, default=0, help="registered_delivery on replies")
    ap.add_argument("--events", type=int, default=1, help="fire Locust request events")
    ap.add_argument("--switch-interval", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument(
        "--driver",
        choices=("locust", "direct"),
        default="locust",
        help="direct: design A driven by direct.py (asyncio, no Locust)",
    )
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=str(HERE / "results.jsonl"))
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=120,
        help="wait up to this many seconds for the machine to be idle (< 10 %% busy) first",
    )
    args = ap.parse_args()
    if args.duration > 20:
        ap.error("--duration is at most 20 s")

    wait_quiet(args.wait_quiet)
    tmp = Path(tempfile.mkdtemp(prefix="lc-"))
    results_dir = tmp / "results"
    ports_dir = tmp / "ports"
    ports_dir.mkdir()
    procs: dict[str, subprocess.Popen[str]] = {}
    life = args.duration + 12
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{ROOT}:{HERE}"
    try:
        smsc_port = free_port()
        channel_port = free_port()
        if args.design == "A":
            procs["smsc"] = subprocess.Popen(
                [
                    PY,
                    str(HERE / "smsc_channel.py"),
                    "--port",
                    str(smsc_port),
                    "--channel-port",
                    str(channel_port),
                    "--duration",
                    str(life),
                    "--deliver-window",
                    str(args.window),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            wait_line(procs["smsc"], "ready", 20)
            procs["platform"] = start_platform(args, [smsc_port], life, env)
            wait_line(procs["platform"], "ready", 20)

        locustfile = HERE / f"locustfile_{args.design.lower()}.py"
        launch = time.monotonic()
        w0 = launch + args.warmup
        w1 = launch + args.duration - args.cooldown
        env_l = dict(env, LC_WINDOW_START=repr(w0), LC_WINDOW_END=repr(w1), LC_PORTS=str(ports_dir))
        cmd = [
            LOCUST,
            "-f",
            str(locustfile),
            "--headless",
            "-u",
            str(args.users),
            "-r",
            str(max(args.users, 1) * 10),
            "-t",
            f"{args.duration}s",
            "--stop-timeout",
            "1",
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--lc-mo-rate",
            str(args.rate),
            "--lc-tick",
            str(args.tick),
            "--lc-target",
            f"127.0.0.1:{channel_port}",
            "--lc-results",
            str(results_dir),
            "--lc-events",
            str(args.events),
            "--lc-timeout",
            str(args.timeout),
            "--lc-switch-interval",
            str(args.switch_interval),
            "--lc-deliver-window",
            str(args.window),
        ]
        if args.workers:
            cmd += ["--processes", str(args.workers)]
        if args.driver == "direct":
            if args.design != "A":
                ap.error("--driver direct is for design A")
            cmd = [
                PY,
                str(HERE / "direct.py"),
                "--target",
                f"127.0.0.1:{channel_port}",
                "--rate",
                str(args.rate),
                "--users",
                str(args.users),
                "--tick",
                str(args.tick),
                "-t",
                str(args.duration),
                "--results",
                str(results_dir),
            ]
        with open(tmp / "locust.log", "w") as log:
            procs["locust"] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env_l, cwd=str(ROOT)
            )
        if args.design in "BC":
            n = max(args.workers, 1)
            deadline = time.monotonic() + 20
            while len(list(ports_dir.glob("*.json"))) < n and time.monotonic() < deadline:
                time.sleep(0.05)
            infos = [json.loads(f.read_text()) for f in sorted(ports_dir.glob("*.json"))]
            if len(infos) < n:
                raise RuntimeError(f"only {len(infos)} of {n} workers reported an SMSC port")
            procs["platform"] = start_platform(args, [i["port"] for i in infos], life, env)
            wait_line(procs["platform"], "ready", 20)
        else:
            infos = []

        time.sleep(max(0.0, w0 - time.monotonic()))
        roles = tree({name: p.pid for name, p in procs.items()})
        c0 = cpu_sample(roles)
        t0 = time.monotonic()
        time.sleep(max(0.0, w1 - time.monotonic()))
        c1 = cpu_sample(roles)
        t1 = time.monotonic()
        procs["locust"].wait(timeout=args.duration + 30)
        for name in ("platform", "smsc"):
            p = procs.get(name)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
        plat = read_final(procs.get("platform"))
        smsc = read_final(procs.get("smsc"))
        res = merge_results(results_dir)
        report(args, res, c0, c1, t1 - t0, w1 - w0, roles, infos, plat, smsc, tmp)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        if not args.keep_logs:
            for f in sorted(tmp.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
            tmp.rmdir()


def wait_quiet(limit: float) -> None:
    """Other sessions share this machine: start only when it has been idle for 2 s."""
    deadline = time.monotonic() + limit
    quiet = 0
    while time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=1.0)
        quiet = quiet + 1 if busy < 10 else 0
        if quiet >= 2:
            return
    print(f"warning: machine still busy after {limit:.0f} s; measuring anyway", file=sys.stderr)


def start_platform(
    args: argparse.Namespace, ports: list[int], life: float, env: dict[str, str]
) -> subprocess.Popen[str]:
    cmd = [
        PY,
        str(HERE / "instant_platform.py"),
        "--binds",
        str(args.binds),
        "--duration",
        str(life),
    ]
    for p in ports:
        cmd += ["--smsc", f"127.0.0.1:{p}"]
    cmd += ["--reply-rate", str(args.reply_rate), "--receipts", str(args.receipts)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def read_final(proc: subprocess.Popen[str] | None) -> dict[str, Any]:
    if proc is None:
        return {}
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    last: dict[str, Any] = {}
    for line in out.splitlines():
        with contextlib.suppress(ValueError):
            last = json.loads(line)
    return last


def report(
    args: argparse.Namespace,
    res: dict[str, Any],
    c0: dict[str, Any],
    c1: dict[str, Any],
    cpu_wall: float,
    window: float,
    roles: dict[str, psutil.Process],
    infos: list[dict[str, Any]],
    plat: dict[str, Any],
    smsc: dict[str, Any],
    tmp: Path,
) -> None:
    h = res["hists"]
    replies = res.get("replied_in_window", 0)
    rate = replies / window
    cpu: dict[str, float] = {}
    for name in roles:
        if name in c0 and name in c1 and not name.startswith("_"):
            cpu[name] = (c1[name] - c0[name]) / cpu_wall
    smsc_threads = {}
    for info in infos:  # B: the SMSC thread's share of its worker's CPU
        for name in roles:
            if roles[name].pid == info.get("pid"):
                tid = info.get("tid")
                a = c0.get(name + ".threads", {}).get(tid)
                b = c1.get(name + ".threads", {}).get(tid)
                if a is not None and b is not None:
                    smsc_threads[name] = (b - a) / cpu_wall
    ours = sum(v for k, v in cpu.items())
    busy = (c1["_busy"] - c0["_busy"]) / cpu_wall
    row = {
        "label": args.label,
        "design": args.design,
        "driver": args.driver,
        "workers": args.workers,
        "users": args.users,
        "offered_per_s": round(res.get("offered", 0) / window),
        "replies_per_s": round(rate),
        "e2e_p50_ms": ms(h["e2e"].percentile(0.5)),
        "e2e_p99_ms": ms(h["e2e"].percentile(0.99)),
        "e2e_p999_ms": ms(h["e2e"].percentile(0.999)),
        "e2e_max_ms": ms(h["e2e"].max),
        "smsc_p50_ms": ms(h["at_smsc"].percentile(0.5)),
        "smsc_p99_ms": ms(h["at_smsc"].percentile(0.99)),
        "notify_p50_ms": ms(h["notify"].percentile(0.5)),
        "notify_p99_ms": ms(h["notify"].percentile(0.99)),
        "lag_p99_ms": ms(h["lag"].percentile(0.99)),
        "timeouts": res.get("timeouts", 0),
        "unanswered": res.get("unanswered", 0),
        "unsolicited": res.get("unsolicited", 0),
        "cpu": {k: round(v, 3) for k, v in cpu.items()},
        "smsc_thread_cpu": {k: round(v, 3) for k, v in smsc_threads.items()},
        "us_per_msg": {k: round(v / rate * 1e6, 1) if rate else None for k, v in cpu.items()},
        "platform": plat,
        "smsc": smsc,
        "reply_rate": args.reply_rate,
        "tick": args.tick,
        "binds": args.binds,
        "window": args.window,
        "receipts": args.receipts,
        "events": args.events,
        "switch_interval": args.switch_interval,
        "machine_load": os.getloadavg(),
        "machine_busy_cores": round(busy, 3),
        "other_cpu_cores": round(busy - ours, 3),
        "tmp": str(tmp) if args.keep_logs else None,
    }
    print(json.dumps(row, indent=1))
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
