"""Run real Kannel (bearerbox + smsbox) on loopback for tests.

Kannel sits between an HTTP "platform" (RapidPro's courier, played by :class:`HttpRecorder`)
and an SMPP SMSC (our fake SMSC, running in the test).  Everything listens on 127.0.0.1 only,
on free ports, and writes only inside a work directory.

Typical use (sync)::

    kannel_required()
    with HttpRecorder() as courier, KannelProcess(
        KannelConfig(smsc_port=smsc_port, mo_url=courier_receive_url(courier.url, CHANNEL)),
        tmp_path,
    ) as kannel:
        kannel.wait_smsc_online(10)
        assert kannel.sendsms("201001234567", "hi").startswith("0: Accepted")

With an SMSC running in the test's asyncio loop, never block the loop: use
``async with KannelProcess(...)``, ``await kannel.async_wait_smsc_online()`` and
``await kannel.async_sendsms(...)``, which poll/HTTP in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest

from .ports import free_port

BEARERBOX = Path("/usr/sbin/bearerbox")
SMSBOX = Path("/usr/sbin/smsbox")
LOOPBACK = "127.0.0.1"

#: Query courier's Kannel channel asks Kannel to post MO with (see kannel.conf.example).
COURIER_MO_QUERY = "backend=%i&sender=%p&message=%b&ts=%T&id=%I&to=%P"
#: courier's default dlr-mask: 1 delivered + 2 undelivered + 8 smsc ack + 16 smsc reject.
COURIER_DLR_MASK = 27

# urllib honours http_proxy/no_proxy from the environment; we only ever talk to loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

T = TypeVar("T")
ConfValue = str | int | float | bool


class KannelError(RuntimeError):
    """Kannel did not start, stop or reach a state in time; message includes its log tail."""


# --------------------------------------------------------------------------------------------
# availability


def kannel_required(binaries: Sequence[Path | str] = (BEARERBOX, SMSBOX)) -> None:
    """Skip the calling test when Kannel is not installed, or fail it when env CI is "true".

    Call it at the top of a test or fixture (or from an autouse fixture for tests marked
    ``@pytest.mark.kannel``).
    """
    missing = [str(b) for b in binaries if not os.access(b, os.X_OK)]
    if not missing:
        return
    reason = (
        f"Kannel is not installed ({', '.join(missing)} missing); "
        "install Debian's kannel package to run this test"
    )
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason}. CI=true, where Kannel tests are required.", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------------------------
# configuration


def courier_receive_url(base_url: str, channel_uuid: str) -> str:
    """MO post-url in courier's Kannel contract: ``{base}/c/kn/{uuid}/receive?...%p%b%T%I%P``."""
    return f"{base_url.rstrip('/')}/c/kn/{channel_uuid}/receive?{COURIER_MO_QUERY}"


def courier_status_url(base_url: str, channel_uuid: str, msg_uuid: str) -> str:
    """dlr-url as courier builds it (courier uses https://<domain>; here any base URL)."""
    return f"{base_url.rstrip('/')}/c/kn/{channel_uuid}/status?uuid={msg_uuid}&status=%d"


@dataclass
class KannelPorts:
    """The three TCP ports one Kannel instance listens on (all on 127.0.0.1)."""

    admin: int
    smsbox: int
    sendsms: int

    @classmethod
    def allocate(cls) -> KannelPorts:
        return cls(admin=free_port(), smsbox=free_port(), sendsms=free_port())


@dataclass
class KannelConfig:
    """What goes into kannel.conf; defaults follow /work/shared/kannel.conf.example."""

    smsc_port: int
    smsc_host: str = LOOPBACK
    smsc_id: str = "fake1442"
    system_id: str = "rapidpro"  # smsc-username
    password: str = "secret"  # smsc-password
    system_type: str = ""
    transceiver_mode: bool = True
    interface_version: int = 34
    source_ton: int = 3  # short code 1442
    source_npi: int = 0
    dest_ton: int = 1  # handsets 20XXXXXXXXXX
    dest_npi: int = 1
    msg_id_type: int | None = None  # None: line omitted, ids kept as C strings
    max_pending_submits: int = 10
    throughput: float | None = 100  # None: line omitted (unthrottled)
    enquire_link_interval: int = 30
    reconnect_delay: int = 1  # example has 5; Kannel's minimum is 1, tests want fast retries
    wait_ack_expire: int = 0x01
    # smsbox / courier side
    mo_url: str | None = None  # post-url; see courier_receive_url(). None: MO is dropped.
    short_code: str = "1442"  # faked-sender and allowed-receiver-prefix
    sendsms_username: str = "rp_kannel"
    sendsms_password: str = "rp_pass"
    sendsms_max_messages: int = 10
    admin_password: str = "admin"
    # delivery reports
    dlr_storage: str = "internal"
    dlr_mask: int = COURIER_DLR_MASK  # default dlr-mask of KannelProcess.sendsms()
    sendsms_dlr_url: str | None = None  # dlr-url of the sendsms-user group (fallback)
    # bearerbox message store: "none" keeps everything in memory (and nothing on disk);
    # "file"/"spool" put the store inside the work directory.
    store: Literal["none", "file", "spool"] = "none"
    log_level: int = 0  # log-file level of both boxes: 0 debug (PDU dumps) .. 4 panic
    # extra "key = value" lines per group, e.g. extra_smsc={"alt-charset": "UTF-8"}
    extra_core: Mapping[str, ConfValue] = field(default_factory=dict)
    extra_smsc: Mapping[str, ConfValue] = field(default_factory=dict)
    extra_smsbox: Mapping[str, ConfValue] = field(default_factory=dict)
    extra_sendsms_user: Mapping[str, ConfValue] = field(default_factory=dict)
    extra_sms_service: Mapping[str, ConfValue] = field(default_factory=dict)


def _conf_value(value: ConfValue | Path) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    if any(c in text for c in '"\\\n\r'):
        raise ValueError(f"cannot put {text!r} into kannel.conf (quote, backslash or newline)")
    return f'"{text}"'


def _group(name: str, items: Mapping[str, ConfValue | Path | None]) -> str:
    lines = [f"group = {name}"]
    lines += [f"{key} = {_conf_value(v)}" for key, v in items.items() if v is not None]
    return "\n".join(lines) + "\n"


def render_kannel_conf(cfg: KannelConfig, ports: KannelPorts, workdir: Path | str) -> Path:
    """Write ``workdir/kannel.conf`` for ``cfg`` listening on ``ports``; return its path.

    Logs go to workdir (bearerbox.log, bearerbox-access.log, smsbox.log, smsbox-access.log);
    with ``store="none"`` bearerbox has no message store at all (status: "store size -1").
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if cfg.reconnect_delay < 1:
        raise ValueError("reconnect-delay must be >= 1")

    core: dict[str, ConfValue | Path | None] = {
        "admin-port": ports.admin,
        "admin-password": cfg.admin_password,
        "admin-allow-ip": LOOPBACK,
        "admin-interface": LOOPBACK,
        "smsbox-port": ports.smsbox,
        "smsbox-interface": LOOPBACK,
        "box-allow-ip": LOOPBACK,
        "dlr-storage": cfg.dlr_storage,
        "log-file": workdir / "bearerbox.log",
        "log-level": cfg.log_level,
        "access-log": workdir / "bearerbox-access.log",
    }
    if cfg.store == "file":
        core["store-type"] = "file"
        core["store-location"] = workdir / "kannel.store"
    elif cfg.store == "spool":
        (workdir / "spool").mkdir(exist_ok=True)
        core["store-type"] = "spool"
        core["store-location"] = workdir / "spool"
    core.update(cfg.extra_core)

    smsc: dict[str, ConfValue | Path | None] = {
        "smsc": "smpp",
        "smsc-id": cfg.smsc_id,
        "host": cfg.smsc_host,
        "port": cfg.smsc_port,
        "transceiver-mode": cfg.transceiver_mode,
        "smsc-username": cfg.system_id,
        "smsc-password": cfg.password,
        "system-type": cfg.system_type,
        "interface-version": cfg.interface_version,
        "source-addr-ton": cfg.source_ton,
        "source-addr-npi": cfg.source_npi,
        "dest-addr-ton": cfg.dest_ton,
        "dest-addr-npi": cfg.dest_npi,
        "msg-id-type": cfg.msg_id_type,
        "max-pending-submits": cfg.max_pending_submits,
        "throughput": cfg.throughput,
        "enquire-link-interval": cfg.enquire_link_interval,
        "reconnect-delay": cfg.reconnect_delay,
        "wait-ack-expire": cfg.wait_ack_expire,
        **cfg.extra_smsc,
    }
    smsbox: dict[str, ConfValue | Path | None] = {
        "bearerbox-host": LOOPBACK,
        "bearerbox-port": ports.smsbox,
        "sendsms-port": ports.sendsms,
        "sendsms-interface": LOOPBACK,
        "mo-recode": True,
        "max-pending-requests": 512,
        "log-file": workdir / "smsbox.log",
        "log-level": cfg.log_level,
        "access-log": workdir / "smsbox-access.log",
        **cfg.extra_smsbox,
    }
    sendsms_user: dict[str, ConfValue | Path | None] = {
        "username": cfg.sendsms_username,
        "password": cfg.sendsms_password,
        "concatenation": True,
        "max-messages": cfg.sendsms_max_messages,
        "user-allow-ip": LOOPBACK,
        "faked-sender": cfg.short_code,
        "forced-smsc": cfg.smsc_id,
        "default-smsc": cfg.smsc_id,
        "dlr-url": cfg.sendsms_dlr_url,
        **cfg.extra_sendsms_user,
    }
    service: dict[str, ConfValue | Path | None] = {
        "keyword": "default",
        "accepted-smsc": cfg.smsc_id,
        "allowed-receiver-prefix": cfg.short_code,
        "max-messages": 0,  # never answer the handset from Kannel itself
    }
    if cfg.mo_url is not None:
        service["post-url"] = cfg.mo_url
    else:
        service["text"] = "no MO endpoint configured"
    service |= {
        "concatenation": True,
        "assume-plain-text": True,
        "accept-x-kannel-headers": True,
        "omit-empty": True,
        **cfg.extra_sms_service,
    }

    header = (
        "# Generated by tests/support/kannel.py for a test run; everything on 127.0.0.1.\n"
        "# Modelled on /work/shared/kannel.conf.example.\n"
    )
    text = "\n".join(
        [
            header + _group("core", core),
            _group("smsc", smsc),
            _group("smsbox", smsbox),
            _group("sendsms-user", sendsms_user),
            _group("sms-service", service),
        ]
    )
    path = workdir / "kannel.conf"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# courier's sendsms request

# GSM 03.38 default alphabet and its extension table (chars that need an escape).
_GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = "\f^{}\\[~]|€"
_GSM7 = frozenset(_GSM7_BASIC + _GSM7_EXTENDED)
# courier (gocommon gsm7.ReplaceSubstitutions) maps these to GSM7 before deciding encoding
_GSM7_SUBSTITUTIONS = str.maketrans(
    {
        **dict.fromkeys("áãâ", "a"),
        **dict.fromkeys("ÁÂÃÀ", "A"),
        "ê": "e",
        **dict.fromkeys("ÈÊ", "E"),
        "ç": "c",
        "Ç": "C",
        **dict.fromkeys("íî", "i"),
        **dict.fromkeys("ÍÎÌ", "I"),
        **dict.fromkeys("úû", "u"),
        **dict.fromkeys("ÚÙÛ", "U"),
        **dict.fromkeys("õôó", "o"),
        **dict.fromkeys("ÓÔÒÕ", "O"),
        **dict.fromkeys("’‘", "'"),
        **dict.fromkeys("“”", '"'),
        "–": "-",
        "\xa0": " ",
        "\t": " ",
    }
)


def is_gsm7(text: str) -> bool:
    return all(c in _GSM7 for c in text)


def courier_sendsms_params(
    *,
    username: str,
    password: str,
    from_: str,
    to: str,
    text: str,
    dlr_url: str | None = None,
    dlr_mask: int | str | None = COURIER_DLR_MASK,
    encoding: Literal["S", "D", "U"] = "S",
    high_priority: bool = False,
    coding: int | str | None = None,
    charset: str | None = None,
) -> dict[str, str]:
    """Parameters of courier's Kannel ``Send`` (handlers/kannel), sorted like Go's Encode().

    courier sends username, password, from (channel address), to, text, dlr-url
    (``https://<domain>/c/kn/<channel>/status?uuid=<msg>&status=%d``) and dlr-mask (27);
    priority=1 for high-priority messages.  With the default "smart" encoding (S) it
    substitutes a few look-alikes; if the result is GSM7 it sends that, otherwise it sends
    the original text with ``coding=2&charset=utf8``.  "U" always sends coding=2/utf8,
    "D" never.  ``coding``/``charset`` given explicitly override that decision.
    dlr_url/dlr_mask None leave the parameter out (courier always sends both).
    """
    params: dict[str, str] = {
        "username": username,
        "password": password,
        "from": from_,
        "to": to,
        "text": text,
    }
    if dlr_url is not None:
        params["dlr-url"] = dlr_url
    if dlr_mask is not None:
        params["dlr-mask"] = str(dlr_mask)
    if high_priority:
        params["priority"] = "1"
    if encoding == "S":
        replaced = text.translate(_GSM7_SUBSTITUTIONS)
        if is_gsm7(replaced):
            params["text"] = replaced
        else:
            encoding = "U"
    if encoding == "U":
        params["coding"] = "2"
        params["charset"] = "utf8"
    if coding is not None:
        params["coding"] = str(coding)
    if charset is not None:
        params["charset"] = charset
    return dict(sorted(params.items()))


def courier_sendsms_query(**kwargs: Any) -> str:
    """The query string courier appends to the send URL (Go url.Values.Encode: sorted, '+')."""
    return urllib.parse.urlencode(courier_sendsms_params(**kwargs))


# --------------------------------------------------------------------------------------------
# processes


def _http_get(url: str, timeout: float) -> tuple[int, str]:
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def _tcp_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """Linux: have the child get SIGTERM if the thread that spawned it dies (e.g. pytest is
    killed or os._exit()s on timeout).  Only used from the main thread, because the signal
    fires when the *spawning thread* exits, which for a worker thread would be too early."""
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return preexec


def _kill_groups(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM each process group, wait up to ``grace`` s, then SIGKILL what is left, reap.

    Signals go only to groups whose leader (our child) has not been reaped yet, so the
    pgid cannot have been recycled for someone else's processes.
    """
    live = [p for p in procs if p.poll() is None]
    for p in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in live:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
    for p in live:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


class KannelProcess:
    """bearerbox + smsbox as child processes (each in its own session/process group).

    Synchronous API (blocks the calling thread) and ``async_*`` twins that keep an asyncio
    loop free (use those when the SMSC under test runs in the same loop).
    """

    def __init__(
        self,
        cfg: KannelConfig,
        workdir: Path | str,
        ports: KannelPorts | None = None,
        *,
        start_timeout: float = 15.0,
        stop_grace: float = 3.0,
        bearerbox: Path | str = BEARERBOX,
        smsbox: Path | str = SMSBOX,
    ) -> None:
        self.cfg = cfg
        self.workdir = Path(workdir).resolve()
        self.ports = ports or KannelPorts.allocate()
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.bearerbox_bin = str(bearerbox)
        self.smsbox_bin = str(smsbox)
        self.conf_path = render_kannel_conf(cfg, self.ports, self.workdir)
        self.bearerbox: subprocess.Popen[bytes] | None = None
        self.smsbox: subprocess.Popen[bytes] | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._last_smsc_state: str | None = ""  # "" = not polled yet; None = no such smsc
        # kills leftovers on garbage collection and at interpreter exit
        self._finalizer = weakref.finalize(self, _kill_groups, self._procs, 1.0)

    # -- urls / files ---------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.admin}"

    @property
    def sendsms_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.sendsms}/cgi-bin/sendsms"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def log_files(self) -> list[Path]:
        names = ["bearerbox.log", "smsbox.log", "bearerbox.stderr", "smsbox.stderr"]
        return [self.workdir / n for n in names]

    def log_tail(self, n: int = 40) -> str:
        """Last ``n`` lines of each Kannel log (file logs, then the boxes' stderr)."""
        parts = []
        for path in self.log_files():
            if not path.exists():
                continue
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            # stderr (-v 1) repeats the log file's INFO lines; it matters for early panics
            keep = n if path.suffix == ".log" else min(n, 15)
            parts.append(f"==> {path} <==\n" + "\n".join(lines[-keep:]))
        return "\n".join(parts) if parts else f"(no Kannel logs in {self.workdir})"

    # -- lifecycle ------------------------------------------------------------------------

    def _spawn(self, binary: str, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{name}.stderr", "ab") as errfile:
            proc = subprocess.Popen(
                [binary, *args, str(self.conf_path)],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=errfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
            )
        self._procs.append(proc)
        return proc

    def _dead(self) -> str | None:
        for name, proc in (("bearerbox", self.bearerbox), ("smsbox", self.smsbox)):
            if proc is not None and proc.poll() is not None:
                return f"{name} (pid {proc.pid}) exited with status {proc.returncode}"
        return None

    def _bearerbox_ready(self) -> bool:
        return _tcp_accepts(self.ports.smsbox) and self._admin_answers()

    def _admin_answers(self) -> bool:
        try:
            return "Status:" in self.status(timeout=1.0)
        except (OSError, KannelError):
            return False

    def _smsbox_ready(self) -> bool:
        if not _tcp_accepts(self.ports.sendsms):
            return False
        try:
            root = self.status_xml(timeout=1.0)
        except (OSError, ET.ParseError, KannelError):
            return False
        return any(b.findtext("type") == "smsbox" for b in root.iter("box"))

    def _fail(self, what: str) -> KannelError:
        if self._last_smsc_state != "":
            what += f"; last smsc state: {self._last_smsc_state!r}"
        return KannelError(f"Kannel: {what} (conf {self.conf_path})\n{self.log_tail()}")

    def _check(self, what: str, check: Callable[[], bool], deadline: float) -> bool:
        dead = self._dead()
        if dead:
            raise self._fail(f"{dead} while waiting for {what}")
        if check():
            return True
        if time.monotonic() > deadline:
            raise self._fail(f"timed out waiting for {what}")
        return False

    def _wait(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while not self._check(what, check, deadline):
            time.sleep(0.05)

    async def _await(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while not await asyncio.to_thread(self._check, what, check, deadline):
            await asyncio.sleep(0.05)

    def start(self) -> KannelProcess:
        """Start bearerbox, wait for its admin and box ports, then smsbox and its sendsms
        port (and its box connection).  Raises KannelError with the log tail on failure."""
        if self._procs:
            raise RuntimeError("KannelProcess already started")
        deadline = time.monotonic() + self.start_timeout
        try:
            self.bearerbox = self._spawn(self.bearerbox_bin, "bearerbox", ["-v", "1"])
            self._wait("bearerbox admin/box ports", self._bearerbox_ready, deadline)
            self.smsbox = self._spawn(self.smsbox_bin, "smsbox", ["-v", "1"])
            self._wait("smsbox sendsms port", self._smsbox_ready, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    async def async_start(self) -> KannelProcess:
        """start() without blocking the event loop (spawns in the loop's thread)."""
        if self._procs:
            raise RuntimeError("KannelProcess already started")
        deadline = time.monotonic() + self.start_timeout
        try:
            self.bearerbox = self._spawn(self.bearerbox_bin, "bearerbox", ["-v", "1"])
            await self._await("bearerbox admin/box ports", self._bearerbox_ready, deadline)
            self.smsbox = self._spawn(self.smsbox_bin, "smsbox", ["-v", "1"])
            await self._await("smsbox sendsms port", self._smsbox_ready, deadline)
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        return self

    def stop(self) -> None:
        """SIGTERM both process groups, SIGKILL after ``stop_grace`` s; reaps them. Idempotent."""
        _kill_groups(self._procs, self.stop_grace)

    async def async_stop(self) -> None:
        await asyncio.to_thread(self.stop)

    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def __enter__(self) -> KannelProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> KannelProcess:
        return await self.async_start()

    async def __aexit__(self, *exc: object) -> None:
        await self.async_stop()

    # -- admin ----------------------------------------------------------------------------

    def _admin(self, page: str, timeout: float) -> str:
        pw = urllib.parse.quote(self.cfg.admin_password)
        code, body = _http_get(f"{self.admin_url}/{page}?password={pw}", timeout)
        if code != 200:
            raise KannelError(f"admin {page}: HTTP {code}: {body[:200]}")
        return body

    def status(self, timeout: float = 5.0) -> str:
        """bearerbox's ``/status.txt`` (admin port)."""
        return self._admin("status.txt", timeout)

    def status_xml(self, timeout: float = 5.0) -> ET.Element:
        return ET.fromstring(self._admin("status.xml", timeout))

    def smsc_state(self, smsc_id: str | None = None) -> str | None:
        """Kannel's state of the SMSC, e.g. "online 3s", "connecting", "re-connecting",
        "disconnected", "dead"; None if no such smsc-id (from status.xml)."""
        wanted = smsc_id or self.cfg.smsc_id
        for smsc in self.status_xml().iter("smsc"):
            if smsc.findtext("id") == wanted or smsc.findtext("admin-id") == wanted:
                return (smsc.findtext("status") or "").strip()
        return None

    def smsc_online(self, smsc_id: str | None = None) -> bool:
        state = self.smsc_state(smsc_id)
        return state is not None and state.startswith("online")

    def _online_check(self, smsc_id: str | None) -> Callable[[], bool]:
        def check() -> bool:
            try:
                state = self.smsc_state(smsc_id)
            except (OSError, ET.ParseError, KannelError) as err:
                state = f"unknown ({err})"
            self._last_smsc_state = state
            return state is not None and state.startswith("online")

        return check

    def wait_smsc_online(self, timeout: float = 10.0, smsc_id: str | None = None) -> None:
        """Block until the SMSC bind is "online"; KannelError (with state + logs) otherwise."""
        what = f"smsc {smsc_id or self.cfg.smsc_id} online"
        self._wait(what, self._online_check(smsc_id), time.monotonic() + timeout)

    async def async_wait_smsc_online(
        self, timeout: float = 10.0, smsc_id: str | None = None
    ) -> None:
        what = f"smsc {smsc_id or self.cfg.smsc_id} online"
        await self._await(what, self._online_check(smsc_id), time.monotonic() + timeout)

    # -- sendsms --------------------------------------------------------------------------

    def sendsms_request_url(
        self,
        to: str,
        text: str,
        *,
        dlr_url: str | None = None,
        dlr_mask: int | None = COURIER_DLR_MASK,
        coding: int | str | None = None,
        charset: str | None = None,
        from_: str | None = None,
        encoding: Literal["S", "D", "U"] = "S",
        high_priority: bool = False,
    ) -> str:
        """The URL courier would GET for this message (see courier_sendsms_params)."""
        query = courier_sendsms_query(
            username=self.cfg.sendsms_username,
            password=self.cfg.sendsms_password,
            from_=from_ if from_ is not None else self.cfg.short_code,
            to=to,
            text=text,
            dlr_url=dlr_url,
            dlr_mask=dlr_mask,
            encoding=encoding,
            high_priority=high_priority,
            coding=coding,
            charset=charset,
        )
        return f"{self.sendsms_url}?{query}"

    def sendsms_raw(self, to: str, text: str, **kwargs: Any) -> tuple[int, str]:
        """Like sendsms() but returns (HTTP status, body); Kannel answers 202 when accepted."""
        timeout = kwargs.pop("timeout", 10.0)
        return _http_get(self.sendsms_request_url(to, text, **kwargs), timeout)

    def sendsms(
        self,
        to: str,
        text: str,
        *,
        dlr_url: str | None = None,
        dlr_mask: int | None = COURIER_DLR_MASK,
        coding: int | str | None = None,
        charset: str | None = None,
        **kwargs: Any,
    ) -> str:
        """GET /cgi-bin/sendsms the way courier does; return Kannel's body, e.g.
        "0: Accepted for delivery" (errors such as "Authorization failed for sendsms" are
        returned too; use sendsms_raw() for the status code).  Extra keyword arguments:
        from_, encoding ("S" smart/"U"/"D"), high_priority, timeout."""
        return self.sendsms_raw(
            to, text, dlr_url=dlr_url, dlr_mask=dlr_mask, coding=coding, charset=charset, **kwargs
        )[1]

    async def async_sendsms(self, to: str, text: str, **kwargs: Any) -> str:
        return await asyncio.to_thread(lambda: self.sendsms(to, text, **kwargs))


# --------------------------------------------------------------------------------------------
# HTTP recorder (courier's /c/kn/{uuid}/receive and /status endpoints)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without query string
    query: dict[str, list[str]]
    form: dict[str, list[str]]  # parsed body if application/x-www-form-urlencoded
    body: bytes
    headers: dict[str, str]  # header names lower-cased (last value wins)
    raw_path: str
    received_at: float

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name`` from the form body, else the query (like Go's FormValue)."""
        for source in (self.form, self.query):
            if source.get(name):
                return source[name][0]
        return default

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


Responder = Callable[[RecordedRequest], tuple[int, bytes | str] | None]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Kannel's HTTP client likes
    server: _RecorderServer
    timeout = 30

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(self.path)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        form: dict[str, list[str]] = {}
        if ctype == "application/x-www-form-urlencoded":
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        record = RecordedRequest(
            method=self.command,
            path=split.path,
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            form=form,
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_path=self.path,
            received_at=time.time(),
        )
        status, payload = self.server.recorder._record(record)
        data = payload.encode() if isinstance(payload, str) else payload
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _RecorderServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    recorder: HttpRecorder


class HttpRecorder:
    """Threaded HTTP server on 127.0.0.1:<free port> recording every request; answers
    200 "OK" unless a ``responder`` returns (status, body) for a request."""

    def __init__(self, port: int = 0, responder: Responder | None = None) -> None:
        self.responder = responder
        self._records: list[RecordedRequest] = []
        self._cond = threading.Condition()
        self._server = _RecorderServer((LOOPBACK, port), _Handler)
        self._server.recorder = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def receive_url(self, channel_uuid: str) -> str:
        return courier_receive_url(self.url, channel_uuid)

    def status_url(self, channel_uuid: str, msg_uuid: str) -> str:
        return courier_status_url(self.url, channel_uuid, msg_uuid)

    def _record(self, record: RecordedRequest) -> tuple[int, bytes | str]:
        answer = self.responder(record) if self.responder else None
        with self._cond:
            self._records.append(record)
            self._cond.notify_all()
        return answer if answer is not None else (200, b"OK")

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._records)

    def clear(self) -> None:
        with self._cond:
            self._records.clear()

    def wait_for(
        self,
        predicate: Callable[[RecordedRequest], bool] = lambda r: True,
        timeout: float = 10.0,
    ) -> RecordedRequest:
        """First request (already received or arriving within ``timeout``) matching
        ``predicate``; TimeoutError listing what was received otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for record in self._records:
                    if predicate(record):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [f"{r.method} {r.raw_path}" for r in self._records]
                    raise TimeoutError(f"no matching request in {timeout}s; received {seen}")
                self._cond.wait(remaining)

    async def async_wait_for(
        self,
        predicate: Callable[[RecordedRequest], bool] = lambda r: True,
        timeout: float = 10.0,
    ) -> RecordedRequest:
        return await asyncio.to_thread(self.wait_for, predicate, timeout)

    def start(self) -> HttpRecorder:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"HttpRecorder:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HttpRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
