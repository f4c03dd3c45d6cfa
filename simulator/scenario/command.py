"""The ``smsim run`` subcommand's arguments, kept beside the runner they drive."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    return run(
        RunOptions(
            scenario=args.scenario,
            duration=args.duration,
            population=args.population,
            users=args.users,
            processes=args.processes,
            out=args.out,
            gates=args.gate,
            target=args.target,
            token=args.token,
            smsc_port=args.smsc_port,
            ui=args.ui,
            baseline=args.baseline,
            tolerance=args.tolerance,
            live=not args.no_live,
            control_port=args.control_port,
        )
    )
