"""``smsim``: the one entry point. Subcommands: ``smsc`` (run the fake SMSC), ``demo``
(the SMSC plus a short built-in client run that shows what went through it) and
``platform`` (the reference 1442 platform: RapidPro's API and flows, SMPP or Kannel) and
``run`` (a scenario end to end under Locust, to a pass/fail verdict)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import signal
import sys
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from simulator.config import ConfigError, PlatformConfig, SmscConfig, load_config
from simulator.logs import setup_logging
from simulator.smsc.audit import add_parser as add_audit_parser
from simulator.smsc.control_cli import add_parsers as add_control_parsers
from simulator.smsc.control_cli import with_control


def _with_subscribers(config: SmscConfig, args: argparse.Namespace) -> SmscConfig:
    """Subscribers are on for ``smsim smsc`` unless the file or --no-subscribers says off."""
    pop = config.population
    update: dict[str, object] = {}
    if args.no_subscribers:
        update["enabled"] = False
    elif "enabled" not in pop.model_fields_set:
        update["enabled"] = True
    if args.population is not None:
        update["size"] = args.population
    if args.seed is not None:
        update["seed"] = args.seed
    changes: dict[str, object] = {"population": pop.model_copy(update=update)}
    if args.time_scale is not None:
        changes["time_scale"] = args.time_scale
    return config.model_copy(update=changes)


def _with_address(
    config: SmscConfig, host: str | None, port: int | None, tls_port: int | None = None
) -> SmscConfig:
    """Apply --host/--port/--tls-port to the first operator (the only one by default)."""
    if host is None and port is None and tls_port is None:
        return config
    first = config.operators[0]
    update: dict[str, object] = {
        "host": host or first.host,
        "port": first.port if port is None else port,
    }
    if tls_port is not None:
        update["tls"] = first.tls.model_copy(update={"port": tls_port})
    changed = first.model_copy(update=update)
    return config.model_copy(update={"operators": [changed, *config.operators[1:]]})


async def _run_smsc(config: SmscConfig, reuse_port: bool, quiet: bool, id_offset: int = 0) -> None:
    from simulator.smsc.server import SmscServer

    console = Console(stderr=True)
    server = SmscServer(config, reuse_port=reuse_port)
    server.message_ids.next += id_offset
    # Handlers first: a client can bind (and a supervisor send SIGTERM) as soon as the
    # listeners are up, before start() has returned.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    # What start-up built (modules, config, the population's tables) lives as long as
    # the process: out of the collector's sight, a full collection no longer walks it
    # (each one cost 57-124 ms with 3.5 M subscribers). This process only: not in the
    # server class, which tests start many of in one interpreter.
    gc.freeze()
    if not quiet:
        table = Table(title="smsim fake SMSC", show_lines=False)
        for col in ("operator", "listening", "accounts (system_id/password)", "receipts"):
            table.add_column(col)
        for op in config.operators:
            host, port = server.address(op.name)
            accounts = ", ".join(f"{a.system_id}/{a.password}" for a in op.accounts)
            receipts = (
                "by subscriber"
                if config.population.enabled
                else f"{op.receipt.stat} after {op.receipt.delay}s"
            )
            listening = f"{host}:{port}"
            if op.name in server.tls_certs:
                listening += "\n{}:{} TLS".format(*server.tls_address(op.name))
            table.add_row(op.name, listening, accounts, receipts)
        console.print(table)
        pop = config.population
        if pop.enabled:
            console.print(
                f"{pop.size:,} subscribers (seed {pop.seed}), time x{config.time_scale:g}: "
                "they receive, answer 1442, and their handsets decide each receipt."
            )
        for name, cert in server.tls_certs.items():
            console.print(f"TLS certificate of {name}: {cert} (clients must trust it)")
        if server.control is not None:
            console.print(f"Control API and /metrics: {server.control.url} (smsim top)")
        console.print("Bind any SMPP 3.4 client to it. Ctrl-C stops.")
    await stop.wait()
    await server.stop()
    if not quiet:
        console.print(stats_table(server.stats().as_dict(), "SMSC totals"))


def stats_table(stats: dict[str, object], title: str) -> Table:
    table = Table(title=title)
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name, value in stats.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
        if value:
            table.add_row(name, str(value))
    return table


#: Message ids of ``--processes`` worker K start K blocks above the clock: no two
#: processes hand out the same id (a gateway matches receipts by it).
_PROCESS_ID_BLOCK = 10**13


def _smsc_process(config_json: str, reuse_port: bool, verbose: int, index: int = 0) -> None:
    setup_logging(verbose)
    config = SmscConfig.model_validate_json(config_json)
    from simulator.smsc.journal_files import PROCESS_DIR
    from simulator.smsc.server import new_event_loop

    if config.journal.enabled:
        # Its own journal directory: a restart recovers each process's messages once.
        path = config.journal.path / f"{PROCESS_DIR}{index}"
        journal = config.journal.model_copy(update={"path": path})
        config = config.model_copy(update={"journal": journal})
    loop = new_event_loop(config.uvloop)
    try:
        loop.run_until_complete(
            _run_smsc(config, reuse_port, quiet=True, id_offset=index * _PROCESS_ID_BLOCK)
        )
    finally:
        loop.close()


def cmd_smsc(args: argparse.Namespace) -> int:
    try:
        config = _with_address(load_config(args.config), args.host, args.port, args.tls_port)
        config = _with_subscribers(config, args)
        config = with_control(config, args)
        if args.journal is not None:
            config = config.model_copy(
                update={
                    "journal": config.journal.model_copy(
                        update={"enabled": True, "path": args.journal}
                    )
                }
            )
        # model_copy skips validation: validate the overrides like the file was.
        config = SmscConfig.model_validate(config.model_dump())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"smsim smsc: {exc}", file=sys.stderr)
        return 2
    if args.processes > 1:
        # SO_REUSEPORT: the kernel spreads connections over the processes. Receipts go to
        # a bind of the same account *in the same process*, so use transceiver binds.
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(
                target=_smsc_process, args=(config.model_dump_json(), True, args.verbose, k)
            )
            for k in range(args.processes)
        ]
        for p in procs:
            p.start()
        Console(stderr=True).print(
            f"{args.processes} SMSC processes on "
            + ", ".join(f"{o.host}:{o.port}" for o in config.operators)
        )
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
        return 0
    from simulator.smsc.server import new_event_loop

    loop = new_event_loop(config.uvloop)
    try:
        loop.run_until_complete(_run_smsc(config, False, quiet=False))
    finally:
        loop.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from simulator.demo import run_demo

    return run_demo(port=args.port, messages=args.messages)


def _platform_config(args: argparse.Namespace) -> PlatformConfig:
    """The [platform] table of --config, with the command line's overrides applied."""
    config = load_config(args.config).platform
    update: dict[str, object] = {}
    if args.api_port is not None:
        update["api_port"] = args.api_port
    if args.api_token is not None:
        update["api_token"] = args.api_token
    if args.database is not None:
        update["database"] = str(args.database)
    if args.tps is not None:
        update["tps"] = args.tps
    if args.mode is not None:
        update["mode"] = args.mode
    if args.smsc is not None:
        host, _, port = args.smsc.rpartition(":")
        binds = [
            b.model_copy(update={"host": host or b.host, "port": int(port)}) for b in config.binds
        ]
        update["binds"] = binds
    return PlatformConfig.model_validate({**config.model_dump(), **update})


async def _run_platform(config: PlatformConfig, token: str, generated: bool, reset: bool) -> None:
    from simulator.platform.runtime import PlatformRuntime

    console = Console(stderr=True)
    runtime = PlatformRuntime(config, token, reset=reset)
    stop = asyncio.Event()  # handlers before the API is up (see _run_smsc)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
    except BaseException:
        await runtime.stop()
        raise
    table = Table(title="smsim reference 1442 platform")
    table.add_column("what")
    table.add_column("value")
    table.add_row("REST API (RapidPro v2)", f"{runtime.url}/api/v2/")
    table.add_row("token", token + (" (generated)" if generated else ""))
    table.add_row("database", f"{config.database}{' (reset)' if reset else ''}")
    if config.mode == "kannel":
        k = config.kannel
        table.add_row("channel", f"Kannel via {k.sendsms_url}")
        table.add_row("Kannel post-url", f"{runtime.url}/c/kn/{k.channel_uuid}/receive")
    else:
        for bind in runtime.binds:
            c = bind.cfg
            table.add_row(
                f"SMPP bind {bind.name}", f"{c.system_id}@{c.host}:{c.port} window {c.window}"
            )
    table.add_row("TPS per channel", "unthrottled" if not config.tps else f"{config.tps:g}")
    table.add_row("flows", ", ".join(f.name for f in runtime.flows))
    console.print(table)
    console.print("Ctrl-C stops.")
    await stop.wait()
    totals: dict[str, object] = {
        **{f"service.{k}": v for k, v in _fields(runtime.service.stats).items()},
        **{f"sender.{k}": v for k, v in _fields(runtime.sender.stats).items()},
    }
    await runtime.stop()
    console.print(stats_table(totals, "platform totals"))


def _fields(obj: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else {}


def cmd_platform(args: argparse.Namespace) -> int:
    from simulator.platform.runtime import resolve_token

    try:
        config = _platform_config(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (ValidationError, ValueError) as exc:
        print(f"smsim platform: {exc}", file=sys.stderr)
        return 2
    token, generated = resolve_token(config.api_token, os.environ.get("SMSIM_API_TOKEN"))
    from simulator.smsc.server import new_event_loop

    loop = new_event_loop(True)
    try:
        loop.run_until_complete(_run_platform(config, token, generated, args.reset))
    except (OSError, TimeoutError, ConnectionError) as exc:
        print(f"smsim platform: {exc}", file=sys.stderr)
        return 1
    finally:
        loop.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsim", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("smsc", help="run the fake SMSC (default 127.0.0.1:2775, rapidpro/secret)")
    p.add_argument("--config", type=Path, help="TOML file: operators, accounts, policies")
    p.add_argument("--host", help="listen address of the first operator")
    p.add_argument("--port", type=int, help="listen port of the first operator")
    p.add_argument(
        "--tls-port",
        type=int,
        help="SMPP over TLS on this port too (first operator; self-signed cert unless configured)",
    )
    p.add_argument(
        "--processes", type=int, default=1, help="SO_REUSEPORT worker processes (default 1)"
    )
    p.add_argument("--population", type=int, help="subscribers (default 3,500,000)")
    p.add_argument("--seed", type=int, help="population seed: same seed, same people")
    p.add_argument("--time-scale", type=float, help="simulated seconds per real second (default 1)")
    p.add_argument(
        "--no-subscribers",
        action="store_true",
        help="no simulated people: every message gets the fixed receipt policy",
    )
    p.add_argument(
        "--control-port", type=int, help="control API and /metrics port (default 8775, 0: off)"
    )
    p.add_argument(
        "--journal", type=Path, help="journal every message to DIR (read it with smsim audit)"
    )
    p.set_defaults(func=cmd_smsc)

    p = sub.add_parser("demo", help="SMSC plus a short built-in client run, shown with rich")
    p.add_argument("--port", type=int, default=2775, help="SMSC port (0: any free port)")
    p.add_argument("--messages", type=int, default=2000, help="messages in the throughput run")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("platform", help="the reference 1442 platform (RapidPro API v2, flows)")
    p.add_argument("--config", type=Path, help="TOML file; its [platform] table is read")
    p.add_argument("--api-port", type=int, help="REST API port on 127.0.0.1 (default 8000)")
    p.add_argument("--api-token", help="API token (default: env SMSIM_API_TOKEN, or generated)")
    p.add_argument("--database", type=Path, help="SQLite file (default platform.sqlite3)")
    p.add_argument("--reset", action="store_true", help="start with a clean database")
    p.add_argument("--tps", type=float, help="messages per second per channel (0: unthrottled)")
    p.add_argument("--mode", choices=("smpp", "kannel"), help="channel mode (default smpp)")
    p.add_argument("--smsc", help="HOST:PORT of the SMSC for every SMPP bind")
    p.set_defaults(func=cmd_platform)

    from simulator.scenario.command import add_parser as add_run_parser

    add_run_parser(sub)
    from simulator.scenario.html_report import add_parser as add_report_parser

    add_report_parser(sub)
    add_control_parsers(sub)
    add_audit_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
