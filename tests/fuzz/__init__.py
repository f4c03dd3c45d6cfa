"""Fuzzing the codec, the session and a live SMSC (issue 8).

``pdus.py`` generates valid PDUs of every command and mutates them; ``model.py`` says
what a peer must be answered; ``settings`` below bounds the runs. CI runs each fuzz test
for a fixed, derandomized number of examples; ``SMSIM_FUZZ_EXAMPLES=N`` runs N random
examples per test instead (long local runs; failures are kept in .hypothesis/ and
replayed first); ``SMSIM_FUZZ_NO_SHRINK=1`` reports a failure as found, unshrunk (a
first look in seconds rather than minutes). ``atheris_codec.py`` is the coverage-guided
harness for long runs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

#: The env knob for long local runs: examples per fuzz test, random seed.
EXAMPLES_ENV = "SMSIM_FUZZ_EXAMPLES"


#: pytest-timeout for a fuzz module: generous in CI, none for a long run.
TIMEOUT = 0 if os.environ.get(EXAMPLES_ENV) else 300


def fuzz_settings(ci_examples: int) -> settings:
    """``ci_examples`` fixed examples (the same every run) unless SMSIM_FUZZ_EXAMPLES says."""
    long_run = os.environ.get(EXAMPLES_ENV)
    common = {
        "deadline": None,
        "suppress_health_check": [
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    }
    if os.environ.get("SMSIM_FUZZ_NO_SHRINK"):  # a first look at a failure, fast
        common["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
    if long_run:
        return settings(max_examples=int(long_run), derandomize=False, **common)  # type: ignore[arg-type]
    return settings(max_examples=ci_examples, derandomize=True, database=None, **common)  # type: ignore[arg-type]
