"""What the runner tells the Locust processes: one JSON file named by ``SMSIM_RUN``.

Locust workers are separate processes (forked by ``--processes``, or on other
machines); they get the effective scenario (after command-line overrides) and where the
SMSC's channel and the platform's API are, and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from .spec import Scenario

ENV = "SMSIM_RUN"


class RunSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: Scenario
    #: host:port of the SMSC's Locust channel (``simulator.harness.hub``).
    channel: str
    #: A partitioned run (decision 0003): the channel of each part, in part order; a
    #: Locust worker sends each MO to the part that owns its number. Empty: ``channel``.
    channels: list[str] = []
    #: The token each channel wants first (runs over several hosts); None: none.
    channel_token: str | None = None
    #: Base URL of RapidPro's API v2 (the reference platform or a real one).
    api_url: str
    api_token: str

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")

    @classmethod
    def from_env(cls) -> RunSettings:
        name = os.environ.get(ENV)
        if not name:
            raise RuntimeError(f"{ENV} is not set: start Locust through `smsim run SCENARIO`")
        return cls.model_validate_json(Path(name).read_text(encoding="utf-8"))
