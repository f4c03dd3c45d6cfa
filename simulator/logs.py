"""One line per event, ``event key=value ...``, quiet (warnings only) by default."""

from __future__ import annotations

import logging
import sys


def setup_logging(verbosity: int = 0, stream: object = None) -> None:
    """0: warnings, 1: info (binds, errors from peers), 2+: debug."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger("smsim")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
