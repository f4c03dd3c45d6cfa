"""Running the journal's tests against both record buffers (``journal_records``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator.smsc import journal_records

C_BUFFER = pytest.mark.skipif(
    journal_records.CRecordBuffer is None, reason="_cjournal not built or switched off"
)


@pytest.fixture(params=["python", pytest.param("c", marks=C_BUFFER)])
def each_record_buffer(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The test runs once with the Python buffer (here and in the SMSCs it starts as
    subprocesses) and once with the C one."""
    if request.param == "python":
        monkeypatch.setattr(journal_records, "CRecordBuffer", None)
        monkeypatch.setenv("SMSIM_NO_CJOURNAL", "1")
    yield request.param
