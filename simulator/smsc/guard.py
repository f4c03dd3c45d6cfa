"""Who may connect and bind: lock-out after repeated bad passwords, connections per IP.

Pure bookkeeping with the time passed in (no I/O, no clock of its own), one per
operator, so the operator's tests and the listeners share one rule set.
"""

from __future__ import annotations

from collections import deque

from simulator.config import SecurityConfig


class BindGuard:
    """Counts failed binds per key (``ip:...`` / ``id:...``) in a sliding window; a key
    with ``bind_failures`` of them is locked for ``lockout`` seconds."""

    __slots__ = ("_config", "_connections", "_failures", "_locked")

    def __init__(self, config: SecurityConfig) -> None:
        self._config = config
        self._failures: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}
        self._connections: dict[str, int] = {}

    # --- binds ----------------------------------------------------------------------------

    def _keys(self, ip: str, system_id: str | None) -> list[str]:
        keys = []
        if self._config.lockout_per_ip:
            keys.append(f"ip:{ip}")
        if self._config.lockout_per_system_id and system_id is not None:
            keys.append(f"id:{system_id}")
        return keys

    def locked(self, ip: str, system_id: str, now: float) -> str | None:
        """The key (``ip:...`` or ``id:...``) that is locked out now, else None."""
        for key in self._keys(ip, system_id):
            until = self._locked.get(key)
            if until is None:
                continue
            if now < until:
                return key
            del self._locked[key]
        return None

    def failed(self, ip: str, system_id: str | None, now: float) -> list[str]:
        """Count a failed bind (``system_id`` None: an unknown one, counted against the IP
        only); returns the keys this failure locked out."""
        cfg = self._config
        if not cfg.lockout:
            return []
        newly = []
        for key in self._keys(ip, system_id):
            times = self._failures.get(key)
            if times is None:
                times = self._failures[key] = deque()
            times.append(now)
            while times and times[0] <= now - cfg.bind_failure_window:
                times.popleft()
            if len(times) >= cfg.bind_failures:
                del self._failures[key]
                self._locked[key] = now + cfg.lockout
                newly.append(key)
        return newly

    def succeeded(self, ip: str, system_id: str) -> None:
        """A good bind forgets the earlier failures of its IP and system_id."""
        for key in self._keys(ip, system_id):
            self._failures.pop(key, None)

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
