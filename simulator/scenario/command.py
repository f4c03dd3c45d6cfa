"""The ``smsim run`` subcommand's arguments, kept beside the runner they drive."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from simulator.harness.cluster import DEFAULT_PORT, SMPP_PORTS_PER_PART, TOKEN_ENV, run_worker

from .distributed import ClusterOptions, run_cluster
from .loader import shipped_names
from .runner import RunOptions, run
from .units import parse_duration


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run a scenario to a verdict: SMSC, subscribers, platform and Locust",
        description=(
            "Run SCENARIO (a shipped name or a YAML file) and exit 0 when every gate passes, "
            f"1 when one fails, 2 when the run could not be made. Shipped: "
            f"{', '.join(shipped_names())}."
        ),
    )
    p.add_argument("scenario", help="scenario name or path to a scenario YAML file")
    p.add_argument("--duration", type=_duration, help="how long the load runs (e.g. 90s, 5m)")
    p.add_argument("--population", type=int, help="subscribers in the population")
    p.add_argument("--users", type=int, help="Locust users at the peak")
    p.add_argument("--processes", type=int, help="Locust worker processes")
    p.add_argument("--out", type=Path, help="run folder (default runs/NAME-TIMESTAMP)")
    p.add_argument(
        "--gate",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set or change one gate, e.g. --gate mo_reply_p95=2s (repeatable)",
    )
    p.add_argument("--target", help="base URL of a real RapidPro API instead of ours")
    p.add_argument("--token", help="API token for --target (RapidPro: your API token)")
    p.add_argument(
        "--smsc-port", type=int, default=2775, help="SMSC port with --target (default 2775)"
    )
    p.add_argument("--ui", action="store_true", help="Locust's web UI instead of headless")
    p.add_argument("--baseline", type=Path, help="summary.json of an earlier run to compare")
    p.add_argument(
        "--tolerance", type=float, default=0.10, help="allowed regression vs --baseline (0.10)"
    )
    p.add_argument("--no-live", action="store_true", help="no live dashboard (CI logs)")
    p.add_argument(
        "--control-port",
        type=int,
        default=8775,
        help="the SMSC's control API during the run, for smsim top (0: off; default 8775)",
    )
    d = p.add_argument_group(
        "partitioned and multi-machine runs",
        "The SMSC side split by number range over processes or hosts (decision 0003).",
    )
    d.add_argument(
        "--partition",
        action="store_true",
        help="on this machine: --processes SMSC-side parts, each with its Locust worker",
    )
    d.add_argument(
        "--master", action="store_true", help="wait for `smsim worker` hosts to join the run"
    )
    d.add_argument("--bind-host", default="127.0.0.1", help="address the master listens on")
    d.add_argument("--expect-workers", type=int, default=1, help="worker hosts to wait for")
    d.add_argument(
        "--cluster-port", type=int, default=DEFAULT_PORT, help=f"(default {DEFAULT_PORT})"
    )
    d.add_argument(
        "--cluster-token",
        help=f"what worker hosts must give (or ${TOKEN_ENV}); required off loopback",
    )
    d.add_argument("--locust-port", type=int, default=5557, help="Locust's master (5557)")
    d.add_argument("--api-port", type=int, default=0, help="the platform's API (default: free)")
    p.set_defaults(func=cmd_run)
    _add_worker_parser(sub)


def _add_worker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        help="join a `smsim run --master` from another host: SMSC-side parts + Locust workers",
        description=(
            "Connect to the master, run --processes SMSC-side parts (each owning a range of "
            "the numbers) and as many Locust workers, until the master ends the run."
        ),
    )
    p.add_argument("--master", required=True, help="HOST[:PORT] of `smsim run --master`")
    p.add_argument("--token", help=f"the master's --cluster-token (or ${TOKEN_ENV})")
    p.add_argument("--processes", type=int, default=1, help="parts and Locust workers (1)")
    p.add_argument("--bind-host", default="0.0.0.0", help="address the parts listen on (0.0.0.0)")
    p.add_argument("--advertise", help="address the master should use for this host")
    p.add_argument(
        "--channel-port", type=int, default=0, help="first channel port (one per part; 0: free)"
    )
    p.add_argument(
        "--smpp-port",
        type=int,
        default=0,
        help=f"first SMPP port ({SMPP_PORTS_PER_PART} per part; 0: free)",
    )
    p.add_argument("--out", type=Path, default=Path("runs/worker"), help="Locust worker files")
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio

    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        print(f"smsim worker: give --token or ${TOKEN_ENV}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(
            run_worker(
                args.master,
                token,
                args.processes,
                args.bind_host,
                args.advertise,
                args.out.resolve(),
                channel_port=args.channel_port,
                smpp_port=args.smpp_port,
                verbosity=args.verbose,
            )
        )
    except (OSError, ConnectionError) as exc:
        print(f"smsim worker: {exc}", file=sys.stderr)
        return 2


def cmd_run(args: argparse.Namespace) -> int:
    common: dict[str, Any] = {
        "scenario": args.scenario,
        "duration": args.duration,
        "population": args.population,
        "users": args.users,
        "processes": args.processes,
        "out": args.out,
        "gates": args.gate,
        "target": args.target,
        "token": args.token,
        "smsc_port": args.smsc_port,
        "ui": args.ui,
        "baseline": args.baseline,
        "tolerance": args.tolerance,
        "live": not args.no_live,
        "control_port": args.control_port,
    }
    if not (args.partition or args.master):
        return run(RunOptions(**common))
    return run_cluster(
        ClusterOptions(
            **common,
            partition=args.partition,
            master=args.master,
            bind_host=args.bind_host,
            expect_workers=args.expect_workers,
            cluster_port=args.cluster_port,
            cluster_token=args.cluster_token,
            locust_port=args.locust_port,
            api_port=args.api_port,
        )
    )
