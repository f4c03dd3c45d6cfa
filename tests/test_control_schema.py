"""The served OpenAPI document against the served API: schemathesis generates requests
from /openapi.json for every operation and checks each answer (no 5xx, status codes,
content types and bodies as documented) against a running SMSC with a population."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from simulator.config import ControlConfig, OperatorConfig, PopulationConfig, SmscConfig
from simulator.smsc.control import VERSION
from simulator.smsc.control_schema import openapi_document
from simulator.smsc.server import SmscThread

pytestmark = pytest.mark.timeout(120)


def url(smsc: SmscThread) -> str:
    assert smsc.server is not None and smsc.server.control is not None
    return smsc.server.control.url


@pytest.fixture(scope="module")
def smsc() -> Iterator[SmscThread]:
    config = SmscConfig(
        operators=[OperatorConfig(name="vodafone", port=0), OperatorConfig(name="orange", port=0)],
        population=PopulationConfig(enabled=True, size=10_000),
        control=ControlConfig(enabled=True, port=0),
    )
    with SmscThread(config) as thread:
        yield thread


#: The document the server serves (test_served_document_is_this_one checks it is).
schema = schemathesis.openapi.from_dict(openapi_document(VERSION))


def test_served_document_is_this_one(smsc: SmscThread) -> None:
    served = requests.get(url(smsc) + "/openapi.json", timeout=5).json()
    assert served == openapi_document(VERSION)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, smsc: SmscThread) -> None:
    excluded = []
    if case.operation.label == "POST /faults":
        # Rules across fields (an outage needs a duration, numbers only for the number
        # kinds, a range low to high) are the server's, not the document's: a
        # schema-valid rule may get 400, and must say why (the other checks still run).
        excluded.append(positive_data_acceptance)
    case.call_and_validate(base_url=url(smsc), excluded_checks=excluded)
