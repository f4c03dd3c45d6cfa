"""Print the results of run.py (results.jsonl) as Markdown tables.

    python benchmarks/locust_channel/table.py [results.jsonl] [--all]

Rows measured while other processes used more than ``--max-other`` cores are marked
``*`` (this machine is shared); repeated rows show the run with the least foreign load
unless ``--all``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def name(r: dict) -> str:
    if r.get("driver") == "direct":
        return "A, direct.py (no Locust)"
    return f"{r['design']}, {r['workers']} worker{'s' if r['workers'] != 1 else ''}"


def fmt(x: float | None, nd: int = 2) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", default=str(HERE / "results.jsonl"))
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--max-other", type=float, default=0.25)
    args = ap.parse_args()
    rows = [json.loads(line) for line in Path(args.file).read_text().splitlines() if line.strip()]
    if not args.all:
        best: dict[tuple, dict] = {}
        for r in rows:
            key = (
                r["label"],
                name(r),
                r["offered_per_s"] // 1000,
                r.get("reply_rate"),
                r.get("tick"),
                r.get("users"),
                r.get("switch_interval"),
            )
            if key not in best or r["other_cpu_cores"] < best[key]["other_cpu_cores"]:
                best[key] = r
        rows = list(best.values())
    print(
        "| run | design | offered/s | MO→reply/s | e2e p50 ms | p99 | p99.9 | at SMSC p50/p99 |"
        " notify p50/p99 | Locust worker CPU (each) | SMSC thread | SMSC proc | platform |"
        " µs/msg: workers / SMSC / platform | timeouts | foreign cores |"
    )
    print("|" + "---|" * 16)
    for r in rows:
        cpu = r["cpu"]
        us = r["us_per_msg"]
        workers = [k for k in cpu if k.startswith("worker")]
        if r.get("driver") == "direct":
            workers = ["locust"]
        wcpu = " / ".join(fmt(cpu[k]) for k in workers) or "—"
        wus = sum(us[k] or 0 for k in workers) if workers else None
        thr = " / ".join(fmt(v) for v in r.get("smsc_thread_cpu", {}).values()) or "—"
        mark = "*" if r["other_cpu_cores"] > args.max_other else ""
        print(
            f"| {r['label']}{mark} | {name(r)} | {r['offered_per_s']:,} | {r['replies_per_s']:,} |"
            f" {fmt(r['e2e_p50_ms'])} | {fmt(r['e2e_p99_ms'])} | {fmt(r['e2e_p999_ms'])} |"
            f" {fmt(r['smsc_p50_ms'])} / {fmt(r['smsc_p99_ms'])} |"
            f" {fmt(r['notify_p50_ms'])} / {fmt(r['notify_p99_ms'])} |"
            f" {wcpu} | {thr} | {fmt(cpu.get('smsc'))} | {fmt(cpu.get('platform'))} |"
            f" {fmt(wus, 0)} / {fmt(us.get('smsc'), 0)} / {fmt(us.get('platform'), 0)} |"
            f" {r['timeouts']:,} | {fmt(r['other_cpu_cores'])} |"
        )


if __name__ == "__main__":
    main()
