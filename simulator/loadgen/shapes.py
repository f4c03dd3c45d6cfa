"""Locust load shapes: ramp, quiz-burst, spike, soak (and constant).

Each tick returns the users the scenario's rate needs now (``rates.users_at``) plus the
campaign manager, and stops the test at the scenario's duration. The classes differ
only in the rate function they follow; they are separate so Locust's UI and report name
the shape that ran. ``shape_for`` picks the one a scenario asks for.
"""

from __future__ import annotations

from typing import ClassVar

from locust import LoadTestShape

from simulator.scenario.rates import users_at
from simulator.scenario.spec import Scenario

#: Users started per second when the shape grows.
SPAWN_RATE = 100.0


class ScenarioShape(LoadTestShape):
    abstract: ClassVar[bool] = True
    scenario: ClassVar[Scenario | None] = None

    def tick(self) -> tuple[int, float] | None:
        sc = self.scenario
        if sc is None:
            return None
        t = float(self.get_run_time())  # type: ignore[no-untyped-call]
        if t >= sc.time.duration:
            return None
        diallers = users_at(sc.load, t) if sc.ussd is not None else 0
        return users_at(sc.load, t) + diallers + (1 if sc.actions else 0), SPAWN_RATE


class ConstantShape(ScenarioShape):
    abstract = True


class RampShape(ScenarioShape):
    abstract = True


class QuizBurstShape(ScenarioShape):
    abstract = True


class SpikeShape(ScenarioShape):
    abstract = True


class SoakShape(ScenarioShape):
    abstract = True


_BY_NAME: dict[str, type[ScenarioShape]] = {
    "constant": ConstantShape,
    "ramp": RampShape,
    "quiz-burst": QuizBurstShape,
    "spike": SpikeShape,
    "soak": SoakShape,
}


def shape_for(scenario: Scenario) -> type[ScenarioShape]:
    """A concrete shape class for ``scenario`` (Locust runs the one non-abstract class)."""
    base = _BY_NAME[scenario.load.mo.shape] if scenario.load.mo is not None else ConstantShape
    return type(base.__name__, (base,), {"abstract": False, "scenario": scenario})
