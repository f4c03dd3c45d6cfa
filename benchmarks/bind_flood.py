"""Does a flood of junk connections slow a well-behaved bind? Median submit round trip
of one transceiver bind, alone and while N connections hammer the same listener.

    python benchmarks/bind_flood.py                    # 200 junk connections, 20 block pairs
    python benchmarks/bind_flood.py --junk 500 --blocks 40 --json
    python benchmarks/bind_flood.py --elsewhere        # control: flood a second SMSC instead

Three processes: the SMSC (as ``smsim smsc --no-subscribers``: uvloop, warnings logged
to a file), the flood
(its own process and loop, from another loopback address, 127.0.0.2) and the measured
client (this process: one bind, one submit_sm at a time, ``registered_delivery`` 0).
Each flood connection, in a loop: connects, sends one of three kinds of junk (a
command_length of 4 GiB, a burst of unknown command ids, a bind with a wrong password),
reads what comes back until the SMSC closes or 0.2 s pass, hangs up, and starts again
after ``--pause`` (also after a connect that failed: once the SMSC has locked 127.0.0.2
out, it resets each of its connections as it accepts it, which the kernel may report to
the junk client as its connect failing; ``flood_connections_per_s`` counts both).
The flood is switched on and off between blocks of submits, so each flooded block has
an unflooded neighbour measured a moment before: drift on a shared machine (other jobs)
hits both alike. Figures: the median round trip over all blocks of
each kind, their ratio, and the median of the per-pair ratios; the flooded SMSC's
counters (its refusals of 127.0.0.2 once locked out are counted, not logged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import struct
import sys
import tempfile
import time
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from simulator.esme.client import EsmeClient  # noqa: E402
from simulator.smpp.pdu import BindTransceiver, SubmitSm  # noqa: E402

FLOOD_IP = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the flood (its own process) -------------------------------------------------------------


def _junk(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:  # a header claiming 4 GiB, then noise: generic_nack and a close
        return struct.pack(">IIII", 0xFFFFFFF0, rng.getrandbits(32), 0, 1) + rng.randbytes(48)
    if kind == 1:  # well framed, unknown command ids: generic_nack each, until closed
        return b"".join(struct.pack(">IIII", 16, 0x0000_7F00 + i, 0, i + 1) for i in range(20))
    return BindTransceiver(system_id="rapidpro", password=f"g{rng.randrange(10**6)}").encode()


async def _one(
    port: int, pause: float, on: MpEvent, done: MpEvent, counts: dict[str, int], seed: int
) -> None:
    rng = random.Random(seed)
    while not done.is_set():
        if not on.is_set():
            await asyncio.sleep(0.01)
            continue
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(FLOOD_IP, 0)
            )
        except OSError:
            counts["connect_failed"] += 1
            await asyncio.sleep(pause)
            continue
        counts["connections"] += 1
        try:
            writer.write(_junk(rng))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    while data := await reader.read(4096):
                        counts["bytes_back"] += len(data)
                    counts["closed_by_smsc"] += 1
        except OSError:
            counts["reset"] += 1
        finally:
            writer.close()
        await asyncio.sleep(pause)


async def _flood(port: int, junk: int, pause: float, on: MpEvent, done: MpEvent) -> dict[str, int]:
    counts = dict.fromkeys(("connections", "connect_failed", "closed_by_smsc", "reset"), 0)
    counts["bytes_back"] = 0
    await asyncio.gather(*(_one(port, pause, on, done, counts, i) for i in range(junk)))
    return counts


def _flood_process(
    port: int,
    junk: int,
    pause: float,
    on: MpEvent,
    done: MpEvent,
    out: mp.Queue,  # type: ignore[type-arg]
) -> None:
    out.put(asyncio.run(_flood(port, junk, pause, on, done)))


# --- the measured bind ------------------------------------------------------------------------


def _submit() -> SubmitSm:
    return SubmitSm(
        source_addr="1442",
        source_addr_ton=3,
        destination_addr="201001234567",
        dest_addr_ton=1,
        dest_addr_npi=1,
        short_message=b"round trip",
    )


async def _round_trips(client: EsmeClient, n: int) -> list[float]:
    """Seconds of each of ``n`` submits sent one at a time."""
    rtts = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = await client.request(_submit())
        rtts.append(time.perf_counter() - t0)
        assert resp.command_status == 0, resp
    return rtts


async def _measure(
    port: int, on: MpEvent, *, blocks: int, per_block: int, settle: float
) -> tuple[list[list[float]], list[list[float]], float]:
    """One bind from 127.0.0.1, made before any flood (the flood's wrong passwords and
    junk lock 127.0.0.2 out, not this IP: a bind already up is what must keep its pace)."""
    client = await EsmeClient.connect("127.0.0.1", port)
    alone: list[list[float]] = []
    flooded: list[list[float]] = []
    flood_on = 0.0
    try:
        await _round_trips(client, 300)  # warm up both sides
        for _ in range(blocks):
            on.clear()
            await asyncio.sleep(settle)
            alone.append(await _round_trips(client, per_block))
            on.set()
            t0 = time.perf_counter()
            await asyncio.sleep(settle)  # the flood at full strength before the first submit
            flooded.append(await _round_trips(client, per_block))
            flood_on += time.perf_counter() - t0
        on.clear()
    finally:
        await client.unbind()
    return alone, flooded, flood_on


# --- the SMSC --------------------------------------------------------------------------------


def _smsc_process(port: int, per_ip: int, log_path: str) -> None:
    """The SMSC as ``smsim smsc --no-subscribers`` runs it: uvloop, warnings logged."""
    from simulator.config import OperatorConfig, SecurityConfig, SmscConfig
    from simulator.logs import setup_logging
    from simulator.smsc.server import SmscServer, new_event_loop

    security = SecurityConfig(max_connections_per_ip=per_ip, bind_timeout=5)
    config = SmscConfig(operators=[OperatorConfig(port=port, security=security)])

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with SmscServer(config) as smsc:
            await stop.wait()
            s = smsc.stats()
        # What it refused without a log line (a locked-out IP's connections): its counters.
        counters = {
            "connections": s.connections,
            "connections_refused": dict(s.connection_refusals),
            "lockouts": dict(s.lockouts),
            "junk_closed": s.junk_closed,
            "bind_failures": s.bind_failures,
        }
        Path(log_path).with_suffix(".stats").write_text(json.dumps(counters))

    with open(log_path, "w", encoding="utf-8") as log:
        # A file, not a pipe: a pipe nobody reads would fill and stall the SMSC.
        setup_logging(0, log)
        loop = new_event_loop(True)
        try:
            loop.run_until_complete(serve())
        finally:
            loop.close()


def start_smsc(port: int, per_ip: int, log_path: Path) -> mp.process.BaseProcess:
    proc = mp.get_context("spawn").Process(target=_smsc_process, args=(port, per_ip, str(log_path)))
    proc.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not proc.is_alive():
            raise RuntimeError(f"SMSC exited: {log_path.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("SMSC did not listen in time")


def _stop(proc: mp.process.BaseProcess) -> None:
    if proc.pid is not None and proc.is_alive():
        os.kill(proc.pid, signal.SIGTERM)
    proc.join(10)
    if proc.is_alive():
        proc.kill()
        proc.join()


def _cpu_seconds(proc: mp.process.BaseProcess) -> float:
    """User + system CPU seconds the process has used (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p90(blocks: list[list[float]]) -> float:
    return statistics.quantiles([x for block in blocks for x in block], n=10)[-1]


def run(
    *,
    junk: int = 200,
    blocks: int = 20,
    per_block: int = 500,
    pause: float = 0.05,
    settle: float = 0.3,
    per_ip: int = 100,
    elsewhere: bool = False,
) -> dict[str, object]:
    """The figures (see the module's docstring) and the SMSC's refusals as it logged
    them. ``elsewhere``: the flood goes to a second SMSC process instead (the control:
    what the machine's load alone costs the measured bind)."""
    ctx = mp.get_context("spawn")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        smscs = [start_smsc(port, per_ip, Path(tmp) / "measured.log")]
        flood_port = port
        if elsewhere:
            flood_port = free_port()
            smscs.append(start_smsc(flood_port, per_ip, Path(tmp) / "flooded.log"))
        on, done = ctx.Event(), ctx.Event()
        out: mp.Queue[dict[str, int]] = ctx.Queue()
        flood = ctx.Process(target=_flood_process, args=(flood_port, junk, pause, on, done, out))
        flood.start()
        try:
            alone, flooded, flood_on = asyncio.run(
                _measure(port, on, blocks=blocks, per_block=per_block, settle=settle)
            )
            done.set()
            counts = out.get(timeout=30)
            flood.join(10)
            flooded_cpu = _cpu_seconds(smscs[-1])
        finally:
            done.set()
            if flood.is_alive():
                flood.kill()
            for smsc in smscs:
                _stop(smsc)
            log = "".join(p.read_text(errors="replace") for p in Path(tmp).glob("*.log"))
            target = Path(tmp) / ("flooded.stats" if elsewhere else "measured.stats")
            smsc_stats = json.loads(target.read_text()) if target.exists() else {}
    base = statistics.median(x for block in alone for x in block)
    under = statistics.median(x for block in flooded for x in block)
    pairs = [
        statistics.median(f) / statistics.median(a) for a, f in zip(alone, flooded, strict=True)
    ]
    return {
        "junk_connections": junk,
        "flood_target": "another SMSC process" if elsewhere else "the same listener",
        "blocks": blocks,
        "round_trips_per_block": per_block,
        "median_alone_us": round(base * 1e6, 1),
        "median_flooded_us": round(under * 1e6, 1),
        "ratio": round(under / base, 3),
        "median_pair_ratio": round(statistics.median(pairs), 3),
        "p90_alone_us": round(_p90(alone) * 1e6, 1),
        "p90_flooded_us": round(_p90(flooded) * 1e6, 1),
        "flood": counts,
        # Every try is a TCP connection the SMSC accepted: a locked-out IP's are reset as
        # they are accepted, which the junk client may see as its connect failing.
        "flood_connections_per_s": round(
            (counts["connections"] + counts["connect_failed"]) / flood_on
        ),
        "smsc_log_lines": {
            "connection_refused": log.count("connection_refused"),
            "connection_closed": log.count("connection_closed"),
            "bind_lockout": log.count("bind_lockout"),
            "bind_refused": log.count("bind_refused"),
            "protocol_error": log.count("protocol_error"),
        },
        "flooded_smsc_counters": smsc_stats,
        # With --elsewhere the flooded SMSC does nothing else: its CPU is the flood's cost.
        "flooded_smsc_cpu_s": round(flooded_cpu, 2),
        "flooded_smsc_cpu_us_per_try": round(
            flooded_cpu * 1e6 / max(1, counts["connections"] + counts["connect_failed"]), 1
        ),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--junk", type=int, default=200, help="junk connections at once (200)")
    p.add_argument("--blocks", type=int, default=20, help="pairs of blocks, alone/flooded (20)")
    p.add_argument("--per-block", type=int, default=500, help="submits per block (500)")
    p.add_argument("--pause", type=float, default=0.05, help="seconds between junk tries (0.05)")
    p.add_argument("--per-ip", type=int, default=100, help="SMSC max_connections_per_ip (100)")
    p.add_argument(
        "--elsewhere",
        action="store_true",
        help="control run: flood a second SMSC process (the machine's load alone)",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON only")
    p.add_argument(
        "--check",
        type=float,
        metavar="RATIO",
        help="exit 1 unless the median per-pair ratio (flooded / alone) is <= RATIO in one "
        "of --attempts runs (the CI check: 1.10)",
    )
    p.add_argument("--attempts", type=int, default=3, help="runs allowed for --check (3)")
    args = p.parse_args(argv)
    for attempt in range(1, (args.attempts if args.check else 1) + 1):
        result = run(
            junk=args.junk,
            blocks=args.blocks,
            per_block=args.per_block,
            pause=args.pause,
            per_ip=args.per_ip,
            elsewhere=args.elsewhere,
        )
        if args.json:
            print(json.dumps(result))
        else:
            for key, value in result.items():
                print(f"{key:26} {value}")
        if args.check is None:
            return 0
        ratio = float(result["median_pair_ratio"])  # type: ignore[arg-type]
        verdict = "ok" if ratio <= args.check else "over"
        print(f"check attempt {attempt}: median pair ratio {ratio:.3f} <= {args.check}: {verdict}")
        if ratio <= args.check:
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
