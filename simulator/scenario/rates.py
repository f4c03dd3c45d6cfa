"""The offered MO rate of a load shape at time t, and the Locust users that carry it.

Open loop: the rate is a function of time alone, never of how fast the platform
answers, so a slow platform shows as latency and backlog instead of a quietly lower
load (coordinated omission). Locust's users follow the rate (more users at a spike) so
its UI shows the shape, but each user paces itself by ``rate(t) / users(t)``: the
offered load is exact whatever the user count's rounding.
"""

from __future__ import annotations

import math

from .spec import Constant, Load, LoadShape, QuizBurst, Ramp, Soak, Spike


def rate_at(shape: LoadShape | None, t: float) -> float:
    """MO per second offered ``t`` real seconds into the run."""
    if shape is None or t < 0:
        return 0.0
    if isinstance(shape, Constant | Soak):
        return shape.rate
    if isinstance(shape, Ramp):
        if shape.ramp <= 0 or t >= shape.ramp:
            return shape.rate
        return shape.start_rate + (shape.rate - shape.start_rate) * t / shape.ramp
    if isinstance(shape, QuizBurst):
        in_burst = shape.every > 0 and (t % shape.every) < shape.burst
        return shape.rate if in_burst else shape.base_rate
    if isinstance(shape, Spike):
        return shape.rate * shape.factor if shape.at <= t < shape.at + shape.length else shape.rate
    raise TypeError(f"unknown load shape {shape!r}")


def peak_rate(shape: LoadShape | None) -> float:
    if shape is None:
        return 0.0
    if isinstance(shape, Spike):
        return shape.rate * shape.factor
    if isinstance(shape, Ramp):
        return max(shape.rate, shape.start_rate)
    if isinstance(shape, QuizBurst):
        return max(shape.rate, shape.base_rate)
    return shape.rate


def users_at(load: Load, t: float) -> int:
    """Locust users at ``t``: ``load.users`` at the peak rate, in proportion below it,
    never fewer than one (someone must be there to send the next MO)."""
    peak = peak_rate(load.mo)
    if peak <= 0:
        return load.users
    return max(1, math.ceil(load.users * rate_at(load.mo, t) / peak))


def per_user_rate(load: Load, shape: LoadShape | None, t: float) -> float:
    """What one Locust user offers at ``t`` of ``shape`` (the MO's, or the USSD dials'):
    the rate over the users of its class the load shape runs then, on every worker
    together (``users_at``: as many diallers as texters). Not a share per worker: Locust
    places a class's users where it likes (with two workers and two users of each class,
    every dialler on one worker and every texter on the other)."""
    return rate_at(shape, t) / users_at(load, t)


def expected_mo(shape: LoadShape | None, duration: float, step: float = 0.01) -> float:
    """MO offered over ``[0, duration)``: what a run's count is checked against."""
    if shape is None or duration <= 0:
        return 0.0
    n = max(1, int(duration / step))
    dt = duration / n
    return sum(rate_at(shape, (i + 0.5) * dt) for i in range(n)) * dt
