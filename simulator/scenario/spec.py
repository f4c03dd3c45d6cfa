"""What a scenario file says, as typed models: who the subscribers are, what the
platform is asked to do and when, the load, the duration, and the gates.

One YAML file per scenario (``scenarios/*.yaml``); ``loader.load_scenario`` reads it
and turns every validation error into ``file:line:col: field: message``. The population,
behaviour, delivery, operator and platform sections are the simulator's own config
models (``simulator.config``), so a scenario can set anything a config file can.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from simulator.config import (
    BehaviourConfig,
    DeliveryConfig,
    FaultKind,
    FaultRule,
    OperatorConfig,
    PlatformConfig,
    PopulationConfig,
)

from .gates import GATES
from .units import parse_duration, parse_rate

#: Seconds, written ``90s``, ``5m``, ``1h30m``, ``3d`` or as a number.
Duration = Annotated[float, BeforeValidator(parse_duration)]
#: Events per second, written ``50/s``, ``3000/min`` or as a number.
Rate = Annotated[float, BeforeValidator(parse_rate)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- what the platform is asked to do -------------------------------------------------


class Broadcast(_Spec):
    """A broadcast through RapidPro's API (``POST /api/v2/broadcasts.json``)."""

    text: Annotated[str, Field(min_length=1, max_length=640)]
    #: Distinct subscribers of the population, drawn without repeats.
    recipients: Annotated[int, Field(ge=1)]


class FlowStart(_Spec):
    """A flow started for participants (``POST /api/v2/flow_starts.json``)."""

    #: The flow's name or uuid, as the platform lists it in ``/api/v2/flows.json``.
    flow: Annotated[str, Field(min_length=1)]
    participants: Annotated[int, Field(ge=1)]
    #: Participants of an earlier action of this scenario first (a follow-up), or new ones.
    same_participants_as: int | None = None


class MoWave(_Spec):
    """Subscribers texting 1442 at once (a TV mention, an opt-out storm)."""

    texts: Annotated[list[str], Field(min_length=1)]
    senders: Annotated[int, Field(ge=1)]
    #: Spread over this much real time (0: all in one go).
    over: Duration = 0.0
    #: Of the participants of an earlier action (e.g. those who got a broadcast).
    same_participants_as: int | None = None


class Action(_Spec):
    """One thing the platform is asked to do, ``at`` real seconds into the run."""

    at: Duration = 0.0
    broadcast: Broadcast | None = None
    flow_start: FlowStart | None = None
    mo_wave: MoWave | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        given = [n for n in ("broadcast", "flow_start", "mo_wave") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError(
                "an action is exactly one of broadcast, flow_start, mo_wave"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return "broadcast" if self.broadcast else "flow_start" if self.flow_start else "mo_wave"


class Chaos(FaultRule):
    """A fault on the SMSC during the run: one of ``smsim faults``' rules, with ``fault``
    for the kind, ``at`` real seconds into the load, on ``for`` that long (durations as
    ``90s``, ``5m``). The rest (``share``, ``status``, ``numbers``, ...) as in the rule."""

    # By name too: a scenario re-validated after --duration etc. comes back by field name.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: FaultKind = Field(alias="fault")
    start: Duration = Field(0.0, alias="at", ge=0)
    duration: Duration | None = Field(None, alias="for", gt=0)
    every: Duration | None = Field(None, gt=0)
    delay: Duration = Field(0.0, ge=0)

    def rule(self) -> FaultRule:
        return FaultRule.model_validate(self.model_dump(exclude_defaults=True))


# --- load --------------------------------------------------------------------------------


class Texts(_Spec):
    """Spontaneous MO: what people text 1442 unprompted, with weights."""

    texts: Annotated[dict[str, float], Field(min_length=1)] = Field(
        default_factory=lambda: {"مسابقة": 3.0, "خدمات": 2.0, "تكافل": 2.0, "help": 1.0}
    )

    @field_validator("texts")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return v


class Constant(Texts):
    shape: Literal["constant"]
    rate: Rate


class Ramp(Texts):
    """From ``start_rate`` to ``rate`` over ``ramp``, then held."""

    shape: Literal["ramp"]
    start_rate: Rate = 0.0
    rate: Rate
    ramp: Duration


class QuizBurst(Texts):
    """A reply storm after each question: ``rate`` for ``burst``, every ``every``, with
    ``base_rate`` between the bursts."""

    shape: Literal["quiz-burst"]
    base_rate: Rate = 0.0
    rate: Rate
    burst: Duration
    every: Duration


class Spike(Texts):
    """A TV mention: ``factor`` times ``rate`` from ``at`` for ``length``."""

    shape: Literal["spike"]
    rate: Rate
    factor: Annotated[float, Field(ge=1)] = 50.0
    at: Duration
    length: Duration = 300.0


class Soak(Texts):
    """Steady load for hours; the same as constant but named for reports and gates."""

    shape: Literal["soak"]
    rate: Rate


LoadShape = Annotated[Constant | Ramp | QuizBurst | Spike | Soak, Field(discriminator="shape")]


class Load(_Spec):
    """Open-loop load: arrivals follow the shape, never the platform's speed."""

    #: Locust users; each acts for many subscribers (numbers are never Locust users).
    users: Annotated[int, Field(ge=1)] = 4
    #: Locust worker processes (``--processes``); 1 runs in one process.
    processes: Annotated[int, Field(ge=1)] = 1
    #: Spontaneous MO traffic shape; None: only the replies the actions provoke.
    mo: LoadShape | None = None
    #: Seconds a subscriber waits for the platform's answer before counting it unanswered.
    reply_timeout: Duration = 30.0


class Ussd(_Spec):
    """Subscribers dialling a USSD code, open loop; each then navigates the menu as the
    USSD behaviour model (``behaviour.ussd``) makes them."""

    service_code: Annotated[str, Field(pattern=r"^\*[0-9*]+#$")] = "*1442#"
    #: Dials per second over time (a shape's ``texts`` are not used here).
    dials: LoadShape


class Timing(_Spec):
    #: Simulated seconds per real second (reply delays, receipt dates, validity).
    scale: Annotated[float, Field(gt=0)] = 1.0
    #: Simulated date the run starts at (e.g. an evening for the quiz); None: now.
    start: datetime | None = None
    #: Real seconds the load runs.
    duration: Duration = 60.0
    #: Real seconds after the load stops to wait for outstanding replies and receipts.
    drain: Duration = 30.0


# --- gates -----------------------------------------------------------------------------

Ratio = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0)]


class Gates(_Spec):
    """Thresholds, one field per gate of ``gates.GATES`` (direction and meaning there)."""

    mo_reply_p50: Duration | None = None
    mo_reply_p95: Duration | None = None
    mo_reply_p99: Duration | None = None
    unanswered_ratio: Ratio | None = None
    broadcast_throughput: Rate | None = None
    receipt_completion_ratio: Ratio | None = None
    receipt_completion_time: Duration | None = None
    error_ratio: Ratio | None = None
    throttle_ratio: Ratio | None = None
    lost_messages: Count | None = None
    ussd_completion_ratio: Ratio | None = None
    ussd_screen_p95: Duration | None = None
    ussd_sessions_per_s: Rate | None = None
    ussd_abandoned_ratio: Ratio | None = None
    ussd_timeout_ratio: Ratio | None = None

    def thresholds(self) -> dict[str, float]:
        """The gates this scenario sets, in ``GATES`` order."""
        return {n: float(v) for n in GATES if (v := getattr(self, n)) is not None}

    def with_overrides(self, overrides: dict[str, float]) -> Gates:
        """``--gate NAME=VALUE`` applied (already parsed by ``gates.parse_gate_override``)."""
        return self.model_copy(update=overrides)


# --- the scenario ------------------------------------------------------------------------


class Scenario(_Spec):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    description: str = ""
    population: PopulationConfig = Field(default_factory=lambda: PopulationConfig(enabled=True))
    behaviour: BehaviourConfig = Field(default_factory=BehaviourConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    #: The SMSC's operators; empty: one listener for every number.
    operators: list[OperatorConfig] = Field(default_factory=list)
    #: The reference platform's settings (TPS, retries...) when it is the target.
    platform: PlatformConfig = Field(default_factory=PlatformConfig)
    time: Timing = Field(default_factory=Timing)
    actions: list[Action] = Field(default_factory=list)
    #: Faults on the SMSC on a schedule (an outage at 2m for 1m, a throttle storm, ...).
    chaos: list[Chaos] = Field(default_factory=list)
    load: Load = Field(default_factory=Load)
    #: USSD dialling (*1442#); None: SMS only.
    ussd: Ussd | None = None
    gates: Gates = Field(default_factory=lambda: Gates())

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        # A scenario is about people: the population is on unless it says otherwise.
        if isinstance(data, dict) and isinstance(data.get("population"), dict):
            data = {**data, "population": {"enabled": True, **data["population"]}}
        return data

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        for i, a in enumerate(self.actions):
            ref = getattr(a.flow_start or a.mo_wave, "same_participants_as", None)
            if ref is not None and not 0 <= ref < i:
                raise ValueError(
                    f"actions[{i}]: same_participants_as must name an earlier action (0..{i - 1})"
                )
            if a.at > self.time.duration:
                raise ValueError(
                    f"actions[{i}]: at {a.at:g}s is after the run's duration "
                    f"{self.time.duration:g}s"
                )
        for i, c in enumerate(self.chaos):
            if c.start > self.time.duration:
                raise ValueError(
                    f"chaos[{i}]: at {c.start:g}s is after the run's duration "
                    f"{self.time.duration:g}s"
                )
        return self
