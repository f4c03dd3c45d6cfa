"""Free TCP ports on loopback for tests."""

from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Never returns the same port twice within one process, so several ports taken in a row
    (e.g. for one Kannel instance) are distinct even if the kernel would reuse one.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
