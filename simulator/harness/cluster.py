"""A run over several hosts: the master's coordinator, the worker hosts' agent, and the
runner's reader of every part's counters (decision 0003).

``smsim run SCENARIO --master`` listens on the cluster port; each ``smsim worker
--master HOST:PORT`` connects, gives the token and how many Locust worker processes it
brings (P); when all expected hosts are in, the master numbers the parts (P per host, in
the order they joined), sends each host its parts and the scenario, and the host starts
one SMSC-side process per part (``shard.py``) and answers with their ports. The master
binds the platform to every part, writes the run settings, starts Locust's master and
tells each host where it is; the host starts its P Locust workers. ``end`` (or the
master going away) stops them. One JSON object per line; a wrong token is refused
before anything else is said.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .frames import (
    FrameError,
    FrameReader,
    Stats,
    encode_auth,
    encode_start,
    encode_stats_request,
)
from .shard import ShardReady, ShardSpec, shard_process

log = logging.getLogger("smsim.cluster")

DEFAULT_PORT = 5550
#: SMPP ports each part takes from ``--smpp-port`` on (one per operator, at most).
SMPP_PORTS_PER_PART = 10
#: Environment variable the token may come in (so it is not on a command line).
TOKEN_ENV = "SMSIM_CLUSTER_TOKEN"
ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"


class ClusterError(Exception):
    """The cluster could not be formed (a host missing, a part that did not start ...)."""


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def split_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    return host.strip("[]"), int(port)


async def _send(writer: asyncio.StreamWriter, msg: dict[str, Any]) -> None:
    writer.write(json.dumps(msg).encode() + b"\n")
    await writer.drain()


async def _recv(reader: asyncio.StreamReader, timeout: float | None = None) -> dict[str, Any]:
    line = await asyncio.wait_for(reader.readline(), timeout)
    if not line:
        raise ConnectionError("the other end closed the cluster connection")
    msg = json.loads(line)
    if not isinstance(msg, dict):
        raise ConnectionError("not a cluster message")
    return msg


# --- master ------------------------------------------------------------------------------


@dataclass(slots=True)
class PartAddress:
    part: int
    host: str
    channel_port: int
    smpp: dict[str, int]
    accounts: dict[str, tuple[str, str, int]]

    @property
    def channel(self) -> str:
        return f"{self.host}:{self.channel_port}"


@dataclass(slots=True)
class _Host:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    processes: int
    #: This host as the master sees it (or what it said to advertise).
    host: str
    #: The master's own address on the network this host reached it over.
    master_host: str
    parts: list[int] = field(default_factory=list)


class Coordinator:
    def __init__(self, token: str, expect_hosts: int) -> None:
        self._token = token
        self.expect = expect_hosts
        self.hosts: list[_Host] = []
        self._full = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.refused = 0

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._joined, host, port, reuse_address=True)
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("cluster_listening address=%s:%d expect=%d", host, bound, self.expect)
        return bound

    async def _joined(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            hello = (await _recv(reader, 30)).get("hello") or {}
            token = str(hello.get("token", ""))
            if not secrets.compare_digest(token.encode(), self._token.encode()):
                self.refused += 1
                log.warning("cluster_refused peer=%s reason=token", peer)
                await _send(writer, {"error": "wrong cluster token"})
                writer.close()
                return
            if self._full.is_set():
                await _send(writer, {"error": "the run has all its worker hosts"})
                writer.close()
                return
        except (ConnectionError, TimeoutError, ValueError) as exc:
            log.warning("cluster_refused peer=%s reason=%s", peer, exc)
            writer.close()
            return
        local = writer.get_extra_info("sockname")
        h = _Host(
            reader,
            writer,
            processes=max(1, int(hello.get("processes", 1))),
            host=str(hello.get("advertise") or peer[0]),
            master_host=str(local[0]),
        )
        self.hosts.append(h)
        log.info("cluster_joined host=%s processes=%d", h.host, h.processes)
        if len(self.hosts) >= self.expect:
            self._full.set()

    async def wait_hosts(self, timeout: float) -> list[_Host]:
        try:
            await asyncio.wait_for(self._full.wait(), timeout)
        except TimeoutError:
            raise ClusterError(
                f"{len(self.hosts)} of {self.expect} worker hosts joined in {timeout:g}s"
            ) from None
        return self.hosts

    @property
    def parts(self) -> int:
        return sum(h.processes for h in self.hosts)

    async def assign(self, scenario_json: str, timeout: float) -> list[PartAddress]:
        """Number the parts, have every host start its own; their addresses, in order."""
        nxt = 0
        for h in self.hosts:
            h.parts = list(range(nxt, nxt + h.processes))
            nxt += h.processes
            await _send(
                h.writer,
                {"assign": {"scenario": scenario_json, "parts": h.parts, "of": self.parts}},
            )
        out: list[PartAddress] = []
        for h in self.hosts:
            try:
                msg = await _recv(h.reader, timeout)
            except (ConnectionError, TimeoutError) as exc:
                raise ClusterError(f"worker host {h.host} did not start its parts: {exc}") from None
            if "error" in msg:
                raise ClusterError(f"worker host {h.host}: {msg['error']}")
            for r in msg["ready"]:
                ready = ShardReady.model_validate(r)
                out.append(
                    PartAddress(ready.part, h.host, ready.channel_port, ready.smpp, ready.accounts)
                )
        return sorted(out, key=lambda p: p.part)

    async def start_locust(self, port: int, settings_json: str) -> None:
        for h in self.hosts:
            await _send(h.writer, {"locust": {"port": port, "settings": settings_json}})

    async def end(self) -> None:
        for h in self.hosts:
            with contextlib.suppress(OSError, ConnectionError):
                await _send(h.writer, {"end": True})
            h.writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class PartMonitor:
    """The runner's connection to each part's channel: counters on demand (STATS)."""

    def __init__(self, parts: list[PartAddress], token: str) -> None:
        self._parts = parts
        self._token = token
        self._conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, FrameReader]] = []
        self.last: list[dict[str, Any]] = [{} for _ in parts]

    async def connect(self) -> None:
        for p in self._parts:
            reader, writer = await asyncio.open_connection(p.host, p.channel_port)
            writer.write(encode_auth(self._token))
            self._conns.append((reader, writer, FrameReader()))

    def start_load(self) -> None:
        """Tell every part the load starts now (each puts the chaos schedule on); a
        STATS request after this one is answered after it."""
        for _, writer, _ in self._conns:
            writer.write(encode_start())

    async def _one(self, i: int) -> dict[str, Any]:
        reader, writer, frames = self._conns[i]
        writer.write(encode_stats_request())
        while True:
            data = await reader.read(1 << 20)
            if not data:
                raise ConnectionError(f"part {i} closed its channel")
            for frame in frames.feed(data):
                if isinstance(frame, Stats):
                    return frame.data

    async def sample(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every part's counters now (a part that does not answer: its last ones)."""
        results = await asyncio.gather(
            *(asyncio.wait_for(self._one(i), timeout) for i in range(len(self._conns))),
            return_exceptions=True,
        )
        for i, r in enumerate(results):
            if isinstance(r, dict):
                self.last[i] = r
            else:
                log.warning("part_stats_failed part=%d error=%r", i, r)
                if isinstance(r, (ConnectionError, FrameError)):
                    raise ClusterError(f"part {i} is gone: {r}")
        return list(self.last)

    def close(self) -> None:
        for _, writer, _ in self._conns:
            writer.close()


# --- worker host ---------------------------------------------------------------------------


def stop_popen(proc: subprocess.Popen[bytes], wait: float = 10) -> None:
    """SIGTERM, ``wait`` seconds, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop_process(proc: multiprocessing.process.BaseProcess) -> None:
    """SIGTERM, 10 seconds, then SIGKILL."""
    if proc.is_alive() and proc.pid is not None:
        os.kill(proc.pid, signal.SIGTERM)
    proc.join(10)
    if proc.is_alive():
        proc.kill()


async def run_worker(
    master: str,
    token: str,
    processes: int,
    bind_host: str,
    advertise: str | None,
    out: Path,
    channel_port: int = 0,
    smpp_port: int = 0,
    verbosity: int = 0,
) -> int:
    """``smsim worker``: join the master, run this host's parts and Locust workers until
    the master ends the run. Exit 0 when it did, 1 when the master went away first, 2
    when the run could not be made."""
    host, port = split_address(master)
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, port)
    await _send(writer, {"hello": {"token": token, "processes": processes, "advertise": advertise}})
    msg = await _recv(reader)
    if "error" in msg:
        log.error("cluster_refused by=%s error=%s", master, msg["error"])
        print(f"smsim worker: {master} refused: {msg['error']}", file=sys.stderr)
        return 2
    assign = msg["assign"]
    ctx = multiprocessing.get_context("spawn")
    shards: list[multiprocessing.process.BaseProcess] = []
    locust: subprocess.Popen[bytes] | None = None
    try:
        pipes = []
        for i, part in enumerate(assign["parts"]):
            spec = ShardSpec.model_validate(
                {
                    "scenario": json.loads(assign["scenario"]),
                    "part": part,
                    "parts": assign["of"],
                    "host": bind_host,
                    "channel_port": channel_port + i if channel_port else 0,
                    "smpp_port": smpp_port + i * SMPP_PORTS_PER_PART if smpp_port else 0,
                    "token": token,
                }
            )
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=shard_process,
                args=(spec.model_dump_json(), send, verbosity),
                name=f"smsim-part-{part}",
                daemon=True,
            )
            proc.start()
            shards.append(proc)
            pipes.append(recv)
        ready = []
        for recv, shard in zip(pipes, shards, strict=True):
            got = await loop.run_in_executor(None, recv.poll, 120)
            if not got:
                await _send(writer, {"error": f"{shard.name} did not start"})
                return 2
            ready.append(json.loads(recv.recv()))
        await _send(writer, {"ready": ready})
        msg = await _recv(reader)
        if "end" in msg:
            return 0
        lc = msg["locust"]
        out.mkdir(parents=True, exist_ok=True)
        settings = out / "run.json"
        settings.write_text(lc["settings"], encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--worker",
            "--master-host",
            host,
            "--master-port",
            str(lc["port"]),
            "--loglevel",
            "WARNING",
        ]
        if processes > 1:
            cmd += ["--processes", str(processes)]
        env = {**os.environ, "SMSIM_RUN": str(settings)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.pop(TOKEN_ENV, None)
        logf = (out / "locust-worker.log").open("wb")
        locust = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=out)
        log.info("locust_workers started=%d master=%s:%s", processes, host, lc["port"])
        # Until the master says the run is over (its drain needs the parts alive).
        try:
            while "end" not in await _recv(reader):
                pass
        except (ConnectionError, ValueError) as exc:
            log.error("cluster_lost master=%s error=%s", master, exc)
            return 1
        return 0
    finally:
        if locust is not None:
            stop_popen(locust)
        for shard in shards:
            stop_process(shard)
        writer.close()
