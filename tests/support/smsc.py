"""Helpers shared by the SMSC tests: a one-operator config on a free port, a wait, a submit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from simulator.config import OperatorConfig, ReceiptConfig, SmscConfig
from simulator.smpp.pdu import SubmitSm


def config(**op: object) -> SmscConfig:
    """One operator on any free port, receipts due after 10 ms unless told otherwise."""
    op.setdefault("port", 0)
    op.setdefault("receipt", ReceiptConfig(delay=0.01))
    return SmscConfig(operators=[OperatorConfig(**op)])  # type: ignore[arg-type]


async def until(pred: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def sm(dest: str = "201001234567", **kw: object) -> SubmitSm:
    """A submit_sm from 1442 (TON 3) to a handset (TON 1/NPI 1), receipt asked."""
    kw.setdefault("registered_delivery", 1)
    kw.setdefault("short_message", b"hello")
    kw.setdefault("source_addr_ton", 3)
    kw.setdefault("dest_addr_ton", 1)
    kw.setdefault("dest_addr_npi", 1)
    return SubmitSm(source_addr="1442", destination_addr=dest, **kw)  # type: ignore[arg-type]
