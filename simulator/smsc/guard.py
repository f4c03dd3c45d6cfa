"""Who may connect and bind: lock-out of an IP that misbehaves (wrong passwords, junk),
of a system_id guessed at, and connections per IP.

Pure bookkeeping with the time passed in (no I/O, no clock of its own), one per
operator, so the operator's tests and the listeners share one rule set.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from simulator.config import SecurityConfig


@dataclass(slots=True)
class Lock:
    """One locked key (``ip:...`` / ``id:...``): until when, why, and what it kept out."""

    key: str
    until: float
    #: What locked it: ``bind_failures`` (wrong passwords, unknown system_ids) or ``junk``.
    reason: str
    #: Connections refused as they came (IP locks) while it held.
    refused: int = 0


class BindGuard:
    """Counts failed binds per key (``ip:...`` / ``id:...``) and connections closed for
    junk per IP, each in a sliding window; a key with ``bind_failures`` of the first (an
    IP with ``junk_connections`` of the second) is locked for ``lockout`` seconds.

    A locked IP's new connections are refused before anything is built for them
    (``refuses``: one dict look-up); a locked system_id's binds are refused unread."""

    __slots__ = ("_config", "_connections", "_failures", "_ip_locks", "_junk", "_locked")

    def __init__(self, config: SecurityConfig) -> None:
        self._config = config
        self._failures: dict[str, deque[float]] = {}
        self._junk: dict[str, deque[float]] = {}
        #: IP -> its lock (looked up for every accepted connection: keyed by the bare IP).
        self._ip_locks: dict[str, Lock] = {}
        #: system_id -> its lock.
        self._locked: dict[str, Lock] = {}
        self._connections: dict[str, int] = {}

    # --- locks ----------------------------------------------------------------------------

    def refuses(self, ip: str, now: float) -> bool:
        """Whether a new connection from ``ip`` is refused as it comes (counted on the
        lock); the caller closes it without a word or a log line."""
        lock = self._ip_locks.get(ip)
        if lock is None or now >= lock.until:
            return False
        lock.refused += 1
        return True

    def locked(self, ip: str, system_id: str, now: float) -> str | None:
        """The key (``ip:...`` or ``id:...``) that is locked out now, else None."""
        lock = self._ip_locks.get(ip)
        if lock is not None and now < lock.until:
            return lock.key
        if self._config.lockout_per_system_id:
            lock = self._locked.get(system_id)
            if lock is not None and now < lock.until:
                return lock.key
        return None

    def ended(self, key: str, now: float) -> Lock | None:
        """Forget the lock on ``key`` if it has run out by ``now`` (and return it); None
        when it still holds (it was renewed) or is gone."""
        kind, _, name = key.partition(":")
        locks = self._ip_locks if kind == "ip" else self._locked
        lock = locks.get(name)
        if lock is None or now < lock.until:
            return None
        del locks[name]
        return lock

    def until(self, key: str) -> float | None:
        kind, _, name = key.partition(":")
        lock = (self._ip_locks if kind == "ip" else self._locked).get(name)
        return None if lock is None else lock.until

    def _lock(self, kind: str, name: str, now: float, reason: str) -> Lock | None:
        """Lock ``kind:name``; the new lock, or None when one held already (then renewed:
        a connection opened before the lock failed again)."""
        locks = self._ip_locks if kind == "ip" else self._locked
        until = now + self._config.lockout
        lock = locks.get(name)
        if lock is None:
            lock = locks[name] = Lock(f"{kind}:{name}", until, reason)
            return lock
        lock.until = max(lock.until, until)
        return None

    @staticmethod
    def _strike(times: dict[str, deque[float]], name: str, now: float, window: float) -> int:
        seen = times.get(name)
        if seen is None:
            seen = times[name] = deque()
        seen.append(now)
        while seen and seen[0] <= now - window:
            seen.popleft()
        return len(seen)

    # --- binds ----------------------------------------------------------------------------

    def failed(self, ip: str, system_id: str | None, now: float) -> list[Lock]:
        """Count a failed bind (``system_id`` None: an unknown one, counted against the IP
        only); returns the locks this failure began."""
        cfg = self._config
        if not cfg.lockout:
            return []
        newly = []
        keys = []
        if cfg.lockout_per_ip:
            keys.append(("ip", ip))
        if cfg.lockout_per_system_id and system_id is not None:
            keys.append(("id", system_id))
        for kind, name in keys:
            key = f"{kind}:{name}"
            if self._strike(self._failures, key, now, cfg.bind_failure_window) < cfg.bind_failures:
                continue
            del self._failures[key]
            if lock := self._lock(kind, name, now, "bind_failures"):
                newly.append(lock)
        return newly

    def succeeded(self, ip: str, system_id: str) -> None:
        """A good bind forgets the earlier failures and junk of its IP and system_id."""
        self._failures.pop(f"ip:{ip}", None)
        self._failures.pop(f"id:{system_id}", None)
        self._junk.pop(ip, None)

    # --- junk -----------------------------------------------------------------------------

    def junk(self, ip: str, now: float) -> Lock | None:
        """Count a connection from ``ip`` closed for junk before it bound (its
        ``errors_before_bind`` used up, a frame no SMPP peer sends); the lock it began."""
        cfg = self._config
        if not cfg.lockout or not cfg.junk_connections:
            return None
        if self._strike(self._junk, ip, now, cfg.bind_failure_window) < cfg.junk_connections:
            return None
        del self._junk[ip]
        return self._lock("ip", ip, now, "junk")

    # --- connections ----------------------------------------------------------------------

    def open(self, ip: str) -> bool:
        """Admit one more connection from ``ip``, or False when it holds its maximum."""
        limit = self._config.max_connections_per_ip
        held = self._connections.get(ip, 0)
        if limit and held >= limit:
            return False
        self._connections[ip] = held + 1
        return True

    def close(self, ip: str) -> None:
        held = self._connections.get(ip, 0) - 1
        if held > 0:
            self._connections[ip] = held
        else:
            self._connections.pop(ip, None)

    def connections(self, ip: str) -> int:
        return self._connections.get(ip, 0)
