"""Locust entry point for smsim scenarios.

`smsim run SCENARIO` starts Locust with this file and `SMSIM_RUN` naming the run's
settings (the scenario after overrides, the SMSC channel, the platform's API). By hand,
after a `smsim run --ui` wrote a run.json:

    SMSIM_RUN=runs/<run>/run.json locust -f loadtests/locustfile.py

In a partitioned run (`smsim run --partition`, or `--master` with `smsim worker` on other
hosts) the master runs this file as Locust's master and each worker host as Locust
workers; run.json then lists every part's channel and each MO goes to its number's part.

Users: `Subscriber` (people texting 1442, open loop; their MO -> reply latency is timed
at the SMSC and reported here as "SMS" requests), `Dialler` (people dialling *1442#,
open loop; each session is played by the SMSC's USSD behaviour model) and `Manager` (the
campaign manager: the scenario's broadcasts and flow starts through RapidPro's API).
The load shape is the scenario's (ramp, quiz-burst, spike, soak or constant).
"""

from __future__ import annotations

from typing import Any

from locust import events
from locust.runners import MasterRunner

from simulator.loadgen.runtime import start_runtime, stop_runtime
from simulator.loadgen.shapes import shape_for
from simulator.loadgen.users import CampaignManager, SubscriberUser, UssdDialler
from simulator.scenario.run_settings import RunSettings

SETTINGS = RunSettings.from_env()


class Subscriber(SubscriberUser):
    abstract = False
    weight = 1


class Dialler(UssdDialler):
    abstract = SETTINGS.scenario.ussd is None
    weight = 1


class Manager(CampaignManager):
    abstract = not SETTINGS.scenario.actions
    host = SETTINGS.api_url


Shape = shape_for(SETTINGS.scenario)


@events.test_start.add_listener
def _start(environment: Any, **_: Any) -> None:
    if not isinstance(environment.runner, MasterRunner):
        start_runtime(environment, SETTINGS)


@events.test_stop.add_listener
def _stop(environment: Any, **_: Any) -> None:
    stop_runtime(environment)
