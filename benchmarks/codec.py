"""Codec benchmark: our sans-IO core against aiosmpplib, smpp34 and smpplib, side by side.

    .venv/bin/python benchmarks/codec.py [--quick] [--repeat N]

Prints ops/s per codec and operation (best of N repeats, with the spread between the best
and the worst repeat) and the ratio ours / peer. Not a test: nothing here asserts a speed.

What each cell measures (one thread, the GC left on, as in a server):

* encode: build the PDU object from field values and serialize it to bytes. Every codec
  gets the same pre-encoded short_message bytes (UDH + UCS-2), so text encoding is timed
  for nobody; aiosmpplib is handed them through ``set_encoded_message``, its own path for
  segments. TLV values are given the way each API takes them (smpp34 wants raw bytes).
* decode: bytes to an object, then read every mandatory field and the TLVs once. smpp34
  decodes lazily (a field becomes a Python object only when read: bare ``decode`` is ~3x
  faster than decode + reading the fields), so reading them is what makes the rows
  equivalent; the same read is done for every codec.
* After each repeat the last result is checked (decoded destination address or
  message_id equals the input; every encoder's bytes decode, with our decoder, to the
  reference PDU), so no cell times a no-op or a wrong answer.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosmpplib
import smpp34
import smpplib.client
import smpplib.smpp
from aiosmpplib import NPI, TON, OptionalParam, PhoneNumber
from aiosmpplib.state import MESSAGE_STATE, RECEIPTED_MESSAGE_ID
from rich.console import Console
from rich.table import Table

from simulator.smpp.constants import Tag
from simulator.smpp.pdu import (
    BindTransmitter,
    DeliverSm,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    decode_pdu,
)
from simulator.smpp.session import PduReceived, Role, Session

# --- the traffic: what Kannel sends the 1442 platform's SMSC and gets back ------------------

SRC, SRC_TON, SRC_NPI = "1442", 3, 0
DST, DST_TON, DST_NPI = "201012345678", 1, 1
# 67 UCS-2 characters after a 6-octet concatenation UDH (ref 0x2A, part 1 of 2): 140 octets.
TEXT = "مرحبا بك في خدمة ١٤٤٢. رصيدك الحالي ٢٥ جنيه. للاستعلام أرسل رصيد إلى ١٤٤٢ مجانا"[:67]
UDH = bytes((0x05, 0x00, 0x03, 0x2A, 0x02, 0x01))
SM = UDH + TEXT.encode("utf-16-be")
MSG_ID = "1718000000000001"
RECEIPT_TEXT = (
    f"id:{MSG_ID} sub:001 dlvrd:001 submit date:2406101200 done date:2406101200"
    " stat:DELIVRD err:000 text:"
)
RECEIPT_SM = RECEIPT_TEXT.encode("ascii")
MSG_STATE_DELIVERED = 2
SEQ = 7
PIPELINE = 100

SUBMIT = SubmitSm(
    sequence_number=SEQ,
    source_addr_ton=SRC_TON,
    source_addr_npi=SRC_NPI,
    source_addr=SRC,
    dest_addr_ton=DST_TON,
    dest_addr_npi=DST_NPI,
    destination_addr=DST,
    esm_class=0x40,  # UDHI
    registered_delivery=1,
    data_coding=8,  # UCS-2
    short_message=SM,
)
SUBMIT_RESP = SubmitSmResp(sequence_number=SEQ, message_id=MSG_ID)
RECEIPT = DeliverSm(
    sequence_number=SEQ,
    source_addr_ton=DST_TON,
    source_addr_npi=DST_NPI,
    source_addr=DST,
    dest_addr_ton=SRC_TON,
    dest_addr_npi=SRC_NPI,
    destination_addr=SRC,
    esm_class=0x04,  # SMSC delivery receipt
    short_message=RECEIPT_SM,
    tlvs={Tag.RECEIPTED_MESSAGE_ID: MSG_ID, Tag.MESSAGE_STATE: MSG_STATE_DELIVERED},
)
SUBMIT_B = SUBMIT.encode()
RESP_B = SUBMIT_RESP.encode()
RECEIPT_B = RECEIPT.encode()
assert len(SM) == 140

OPS = (
    ("encode submit_sm", "enc_submit"),
    ("decode submit_sm", "dec_submit"),
    ("encode submit_sm_resp", "enc_resp"),
    ("decode submit_sm_resp", "dec_resp"),
    ("encode deliver_sm receipt", "enc_receipt"),
    ("decode deliver_sm receipt", "dec_receipt"),
)
LIBS = ("ours", "aiosmpplib", "smpp34", "smpplib")


@dataclass
class Case:
    """One timed statement. ``stmt`` runs in a loop and must leave its result in ``r``."""

    stmt: str
    ns: dict[str, Any]
    check: Callable[[Any], None]
    per_call: int = 1  # PDUs handled by one run of stmt
    note: str = ""


@dataclass
class NotAvailable:
    reason: str


@dataclass
class Result:
    best: float  # ops/s
    worst: float
    runs: list[float] = field(default_factory=list)


# --- checks: run once per repeat, outside the timed loop -----------------------------------


def _fail(what: str, got: Any, want: Any) -> None:
    raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def _same_as(reference: Pdu) -> Callable[[Any], None]:
    """The bytes decode, with our decoder, to ``reference`` (any sequence, any TLV order)."""

    def check(data: Any) -> None:
        pdu = decode_pdu(bytes(data))
        pdu.sequence_number = reference.sequence_number
        if pdu != reference:
            _fail("encoded PDU", pdu, reference)

    return check


def _eq(what: str, get: Callable[[Any], Any], want: Any) -> Callable[[Any], None]:
    def check(r: Any) -> None:
        got = get(r)
        if got != want:
            _fail(what, got, want)

    return check


def _all(*checks: Callable[[Any], None]) -> Callable[[Any], None]:
    def check(r: Any) -> None:
        for c in checks:
            c(r)

    return check


# Reading every field once after a decode (see the module docstring). ``d`` is the object.
SM_FIELDS = [
    "service_type",
    "source_addr_ton",
    "source_addr_npi",
    "source_addr",
    "dest_addr_ton",
    "dest_addr_npi",
    "destination_addr",
    "esm_class",
    "protocol_id",
    "priority_flag",
    "schedule_delivery_time",
    "validity_period",
    "registered_delivery",
    "replace_if_present_flag",
    "data_coding",
    "sm_default_msg_id",
    "short_message",
]


def _read(obj: str, names: list[str], extra: str = "") -> str:
    items = [f"{obj}.{n}" for n in names]
    if extra:
        items.append(extra)
    return f"r = ({', '.join(items)})"


# --- our core ----------------------------------------------------------------------------


def ours() -> dict[str, Case | NotAvailable]:
    ns: dict[str, Any] = {
        "SubmitSm": SubmitSm,
        "SubmitSmResp": SubmitSmResp,
        "DeliverSm": DeliverSm,
        "decode_pdu": decode_pdu,
        "SM": SM,
        "RSM": RECEIPT_SM,
        "MSG_ID": MSG_ID,
        "T_RID": int(Tag.RECEIPTED_MESSAGE_ID),
        "T_STATE": int(Tag.MESSAGE_STATE),
        "SUBMIT_B": SUBMIT_B,
        "RESP_B": RESP_B,
        "RECEIPT_B": RECEIPT_B,
    }
    read_sm = _read("d", [*SM_FIELDS, "tlvs"])
    return {
        "enc_submit": Case(
            "r = SubmitSm(sequence_number=7, source_addr_ton=3, source_addr_npi=0,"
            " source_addr='1442', dest_addr_ton=1, dest_addr_npi=1,"
            " destination_addr='201012345678', esm_class=0x40, registered_delivery=1,"
            " data_coding=8, short_message=SM).encode()",
            ns,
            _same_as(SUBMIT),
        ),
        "dec_submit": Case(
            f"d = decode_pdu(SUBMIT_B); {read_sm}",
            ns,
            _eq("destination_addr", lambda r: r[6], DST),
        ),
        "enc_resp": Case(
            "r = SubmitSmResp(sequence_number=7, message_id=MSG_ID).encode()",
            ns,
            _same_as(SUBMIT_RESP),
        ),
        "dec_resp": Case(
            "d = decode_pdu(RESP_B); r = (d.sequence_number, d.command_status, d.message_id)",
            ns,
            _eq("message_id", lambda r: r[2], MSG_ID),
        ),
        "enc_receipt": Case(
            "r = DeliverSm(sequence_number=7, source_addr_ton=1, source_addr_npi=1,"
            " source_addr='201012345678', dest_addr_ton=3, dest_addr_npi=0,"
            " destination_addr='1442', esm_class=0x04, short_message=RSM,"
            " tlvs={T_RID: MSG_ID, T_STATE: 2}).encode()",
            ns,
            _same_as(RECEIPT),
        ),
        "dec_receipt": Case(
            f"d = decode_pdu(RECEIPT_B); {read_sm}",
            ns,
            _all(
                _eq("destination_addr", lambda r: r[6], SRC),
                _eq("receipted_message_id", lambda r: r[-1][Tag.RECEIPTED_MESSAGE_ID], MSG_ID),
                _eq("message_state", lambda r: r[-1][Tag.MESSAGE_STATE], 2),
            ),
        ),
    }


def _bound_session() -> Session:
    """An SMSC-side session with a bound transmitter, as the server holds it."""
    session = Session(Role.SMSC, enquire_link_interval=None)
    (event,) = session.receive_data(BindTransmitter(sequence_number=1, system_id="kannel").encode())
    assert isinstance(event, PduReceived)
    session.send(event.pdu.response(system_id="smsim"))
    session.data_to_send()
    assert session.can_transmit
    return session


def session_case() -> Case:
    """Session.receive_data on one buffer holding 100 pipelined submit_sm (a full window)."""
    buf = b"".join(
        SubmitSm(
            sequence_number=seq,
            source_addr_ton=SRC_TON,
            source_addr_npi=SRC_NPI,
            source_addr=SRC,
            dest_addr_ton=DST_TON,
            dest_addr_npi=DST_NPI,
            destination_addr=DST,
            esm_class=0x40,
            registered_delivery=1,
            data_coding=8,
            short_message=SM,
        ).encode()
        for seq in range(2, 2 + PIPELINE)
    )

    def check(events: list[Any]) -> None:
        if len(events) != PIPELINE or not all(isinstance(e, PduReceived) for e in events):
            _fail("events", [type(e).__name__ for e in events[:3]], "100 x PduReceived")
        if events[-1].pdu.destination_addr != DST:
            _fail("destination_addr", events[-1].pdu.destination_addr, DST)

    # The same 100 sequence numbers come back each round, so the inbound-window set stays
    # at 100 entries; nothing is answered, so nothing piles up in the output queue.
    return Case(
        "r = receive(BUF)",
        {"receive": _bound_session().receive_data, "BUF": buf},
        check,
        per_call=PIPELINE,
    )


# --- aiosmpplib ----------------------------------------------------------------------------


def aio() -> dict[str, Case | NotAvailable]:
    ns: dict[str, Any] = {
        "SubmitSm": aiosmpplib.SubmitSm,
        "SubmitSmResp": aiosmpplib.SubmitSmResp,
        "DeliverSm": aiosmpplib.DeliverSm,
        "parse_header": aiosmpplib.SmppMessage.parse_header,
        "PhoneNumber": PhoneNumber,
        "OptionalParam": OptionalParam,
        "NETSPEC": TON.NETWORK_SPECIFIC,
        "INTL": TON.INTERNATIONAL,
        "NPI_UNK": NPI.UNKNOWN,
        "ISDN": NPI.ISDN,
        "T_RID": RECEIPTED_MESSAGE_ID,
        "T_STATE": MESSAGE_STATE,
        "TEXT": TEXT,
        "SM": SM,
        "RTEXT": RECEIPT_TEXT,
        "RSM": RECEIPT_SM,
        "MSG_ID": MSG_ID,
        "SUBMIT_B": SUBMIT_B,
        "RESP_B": RESP_B,
        "RECEIPT_B": RECEIPT_B,
    }
    # Its field names differ: addresses are PhoneNumber objects, data_coding is `encoding`,
    # the TLVs are `optional_params`, times are datetime/timedelta.
    fields = [
        "service_type",
        "source",
        "destination",
        "esm_class",
        "protocol_id",
        "priority_flag",
        "schedule_delivery_time",
        "validity_period",
        "registered_delivery",
        "replace_if_present_flag",
        "encoding",
        "sm_default_msg_id",
        "short_message",
        "optional_params",
    ]
    read_sm = _read("d", fields)
    # The ESME's receive path: parse_header on the first 16 octets, then from_pdu with the
    # ESME's default alphabet. from_pdu also decodes the text (UCS-2 / GSM 03.38) and turns
    # the UDH into SAR optional params: part of what its API returns, so it is timed.
    dec = "d = {cls}.from_pdu({b}, parse_header({b}[:16]), 'gsm0338'); "
    return {
        "enc_submit": Case(
            "m = SubmitSm(sequence_num=7, short_message=TEXT,"
            " source=PhoneNumber('1442', NETSPEC, NPI_UNK),"
            " destination=PhoneNumber('201012345678', INTL, ISDN),"
            " esm_class=0x40, registered_delivery=1, encoding='ucs2');"
            " m.set_encoded_message(SM); r = m.pdu()",
            ns,
            _same_as(SUBMIT),
        ),
        "dec_submit": Case(
            dec.format(cls="SubmitSm", b="SUBMIT_B") + read_sm,
            ns,
            _all(
                _eq("destination", lambda r: r[2].number, DST),
                _eq("short_message", lambda r: r[12], TEXT),
            ),
        ),
        "enc_resp": Case(
            "r = SubmitSmResp(sequence_num=7, message_id=MSG_ID).pdu()",
            ns,
            _same_as(SUBMIT_RESP),
        ),
        "dec_resp": Case(
            dec.format(cls="SubmitSmResp", b="RESP_B")
            + "r = (d.sequence_num, d.command_status, d.message_id)",
            ns,
            _eq("message_id", lambda r: r[2], MSG_ID),
        ),
        "enc_receipt": Case(
            "m = DeliverSm(sequence_num=7, short_message=RTEXT,"
            " source=PhoneNumber('201012345678', INTL, ISDN),"
            " destination=PhoneNumber('1442', NETSPEC, NPI_UNK), esm_class=0x04,"
            " registered_delivery=0,"  # its default is 1
            " optional_params=[OptionalParam(T_RID, MSG_ID), OptionalParam(T_STATE, 2)]);"
            " m.set_encoded_message(RSM); r = m.pdu()",
            ns,
            _same_as(RECEIPT),
        ),
        "dec_receipt": Case(
            dec.format(cls="DeliverSm", b="RECEIPT_B") + read_sm,
            ns,
            _all(
                _eq("destination", lambda r: r[2].number, SRC),
                _eq(
                    "TLVs",
                    lambda r: {p.tag: p.value for p in r[13]},
                    {RECEIPTED_MESSAGE_ID: MSG_ID, MESSAGE_STATE: 2},
                ),
            ),
        ),
    }


# --- smpp34 --------------------------------------------------------------------------------


def s34() -> dict[str, Case | NotAvailable]:
    ns: dict[str, Any] = {
        "SubmitSm": smpp34.SubmitSm,
        "DeliverSm": smpp34.DeliverSm,
        "Tlv": smpp34.Tlv,
        "decode": smpp34.decode,
        "SM": SM,
        "RSM": RECEIPT_SM,
        "MSG_ID": MSG_ID,
        "T_RID": smpp34.TLV_RECEIPTED_MESSAGE_ID,  # type: ignore[attr-defined]
        "T_STATE": smpp34.TLV_MESSAGE_STATE,  # type: ignore[attr-defined]
        "SUBMIT_B": SUBMIT_B,
        "RESP_B": RESP_B,
        "RECEIPT_B": RECEIPT_B,
    }
    # Lazy: each getter builds its Python object on access, so every field is read. TLVs
    # come back as Tlv(tag, raw bytes); materialize them as (tag, value) pairs.
    read_sm = _read("d", SM_FIELDS, "[(t.tag, t.value) for t in d.tlvs]")
    return {
        "enc_submit": Case(
            "r = SubmitSm('1442', '201012345678', SM, source_addr_ton=3, source_addr_npi=0,"
            " dest_addr_ton=1, dest_addr_npi=1, esm_class=0x40, registered_delivery=1,"
            " data_coding=8, sequence_number=7).encode()",
            ns,
            _same_as(SUBMIT),
        ),
        "dec_submit": Case(
            f"d = decode(SUBMIT_B); {read_sm}",
            ns,
            _eq("destination_addr", lambda r: r[6], DST),
        ),
        "enc_resp": NotAvailable(
            "smpp34's Python API has no submit_sm_resp to build: its SubmitSmResp is only"
            " the result of Smsc.submit_sm ('cannot create ... instances'); the Rust"
            " server encodes the answer itself."
        ),
        "dec_resp": Case(
            "d = decode(RESP_B);"
            " r = (d.sequence_number, d.command_status, d.body[:-1].decode('latin-1'))",
            ns,
            _eq("message_id", lambda r: r[2], MSG_ID),
            note="decode() returns a RawPdu for submit_sm_resp (typed classes exist only"
            " for submit_sm and deliver_sm): header parsed in Rust, message_id cut out of"
            " .body in Python.",
        ),
        "enc_receipt": Case(
            "r = DeliverSm('201012345678', '1442', RSM, source_addr_ton=1,"
            " source_addr_npi=1, dest_addr_ton=3, dest_addr_npi=0, esm_class=0x04,"
            " tlvs=[Tlv(T_RID, MSG_ID.encode('latin-1') + b'\\0'), Tlv(T_STATE, b'\\x02')],"
            " sequence_number=7).encode()",
            ns,
            _same_as(RECEIPT),
        ),
        "dec_receipt": Case(
            f"d = decode(RECEIPT_B); {read_sm}",
            ns,
            _all(
                _eq("destination_addr", lambda r: r[6], SRC),
                _eq(
                    "TLVs",
                    lambda r: dict(r[-1]),
                    {
                        int(Tag.RECEIPTED_MESSAGE_ID): MSG_ID.encode() + b"\0",
                        int(Tag.MESSAGE_STATE): b"\x02",
                    },
                ),
            ),
        ),
    }


# --- smpplib -------------------------------------------------------------------------------


def spl() -> dict[str, Case | NotAvailable]:
    # make_pdu/parse_pdu take the client only for its sequence counter (the default dummy
    # client has no next_sequence()); the library's own generator stands in for it.
    ns: dict[str, Any] = {
        "make": smpplib.smpp.make_pdu,
        "parse": smpplib.smpp.parse_pdu,
        "gen": smpplib.client.SimpleSequenceGenerator(),
        "SM": SM,
        "RSM": RECEIPT_SM,
        "MSG_ID": MSG_ID,
        "SUBMIT_B": SUBMIT_B,
        "RESP_B": RESP_B,
        "RECEIPT_B": RECEIPT_B,
    }
    # Strings decode to bytes (it never turns them into str); TLVs become attributes.
    read_sm = _read("d", [*SM_FIELDS, "receipted_message_id", "message_state"])
    return {
        "enc_submit": Case(
            "r = make('submit_sm', client=gen, source_addr_ton=3, source_addr_npi=0,"
            " source_addr='1442', dest_addr_ton=1, dest_addr_npi=1,"
            " destination_addr='201012345678', esm_class=0x40, registered_delivery=1,"
            " data_coding=8, short_message=SM).generate()",
            ns,
            _same_as(SUBMIT),
        ),
        "dec_submit": Case(
            f"d = parse(SUBMIT_B, client=gen); {_read('d', SM_FIELDS)}",
            ns,
            _eq("destination_addr", lambda r: r[6], DST.encode()),
        ),
        "enc_resp": Case(
            "r = make('submit_sm_resp', client=gen, message_id=MSG_ID).generate()",
            ns,
            _same_as(SUBMIT_RESP),
        ),
        "dec_resp": Case(
            "d = parse(RESP_B, client=gen); r = (d.sequence, d.status, d.message_id)",
            ns,
            _eq("message_id", lambda r: r[2], MSG_ID.encode()),
        ),
        "enc_receipt": Case(
            "r = make('deliver_sm', client=gen, source_addr_ton=1, source_addr_npi=1,"
            " source_addr='201012345678', dest_addr_ton=3, dest_addr_npi=0,"
            " destination_addr='1442', esm_class=0x04, short_message=RSM,"
            " receipted_message_id=MSG_ID, message_state=2).generate()",
            ns,
            _same_as(RECEIPT),
        ),
        "dec_receipt": Case(
            f"d = parse(RECEIPT_B, client=gen); {read_sm}",
            ns,
            _all(
                _eq("destination_addr", lambda r: r[6], SRC.encode()),
                _eq("receipted_message_id", lambda r: r[-2], MSG_ID.encode()),
                _eq("message_state", lambda r: r[-1], 2),
            ),
        ),
    }


# --- timing --------------------------------------------------------------------------------


def _compile(case: Case) -> Callable[[int], tuple[float, Any]]:
    """A function running ``stmt`` n times with every name it uses bound as a local."""
    lines = ["def _bench(_n):"]
    lines += [f"    {name} = _ns[{name!r}]" for name in case.ns]
    lines += [
        "    r = None",
        "    _t0 = _perf()",
        "    for _ in _range(_n):",
        f"        {case.stmt}",
        "    return _perf() - _t0, r",
    ]
    namespace: dict[str, Any] = {"_ns": case.ns, "_perf": time.perf_counter, "_range": range}
    exec("\n".join(lines), namespace)
    return namespace["_bench"]  # type: ignore[no-any-return]


class Timed:
    """One case, calibrated to run about ``target`` seconds a repeat."""

    def __init__(self, case: Case, target: float) -> None:
        self.case = case
        self.bench = bench = _compile(case)
        elapsed, r = bench(1)
        case.check(r)  # before any timing: a wrong codec never gets a number
        n = 1
        while elapsed < target / 4:
            n *= 2 if elapsed * 8 > target else 8
            elapsed, r = bench(n)
        self.n = max(1, int(n * target / max(elapsed, 1e-9)))
        self.runs: list[float] = []

    def run(self) -> None:
        gc.collect()
        elapsed, r = self.bench(self.n)
        self.case.check(r)
        self.runs.append(self.n * self.case.per_call / elapsed)

    def result(self) -> Result:
        return Result(max(self.runs), min(self.runs), self.runs)


def measure_all(
    cases: dict[Any, Case], repeat: int, target: float, progress: Callable[[str], None]
) -> dict[Any, Result]:
    """Round-robin: repeat k of every case runs before repeat k+1 of any, so a burst of
    load from elsewhere on the machine costs each cell one repeat, not all of its repeats."""
    timed = {}
    for key, case in cases.items():
        progress(f"calibrating {key}")
        timed[key] = Timed(case, target)
    for k in range(repeat):
        progress(f"repeat {k + 1}/{repeat}")
        for t in timed.values():
            t.run()
    return {key: t.result() for key, t in timed.items()}


# --- output --------------------------------------------------------------------------------


def _rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def _cell(res: Result | NotAvailable | None, mark: str = "") -> str:
    if res is None:
        return "—"
    if isinstance(res, NotAvailable):
        return "n/a"
    spread = (res.best - res.worst) / res.best * 100
    return f"{_rate(res.best)}{mark} ±{spread:.0f}%"


def _ratio(a: Result | NotAvailable | None, b: Result | NotAvailable | None) -> str:
    if not isinstance(a, Result) or not isinstance(b, Result):
        return "—"
    x = a.best / b.best
    return f"{x:.2f}×" if x < 10 else f"{x:.0f}×"


def machine() -> str:
    libs = ", ".join(f"{p} {version(p)}" for p in ("aiosmpplib", "smpp34", "smpplib"))
    return (
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} vCPU, "
        f"Python {platform.python_version()} ({platform.machine()}), {libs}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    parser.add_argument("--repeat", type=int, help="timed repeats per cell (default 7, quick 3)")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 7)
    target = 0.015 if args.quick else 0.25  # seconds per repeat

    console = Console()
    if not console.is_terminal:
        console = Console(width=180)  # piped into a file: keep the table on one line a row
    console.print(f"[bold]SMPP codec benchmark[/]  {machine()}")
    console.print(
        f"best of {repeat} repeats of ~{target * 1000:.0f} ms; ±: (best − worst) / best; "
        "ratio: ours ÷ peer (>1: ours is faster)"
    )
    suites = {"ours": ours(), "aiosmpplib": aio(), "smpp34": s34(), "smpplib": spl()}
    results: dict[Any, Result | NotAvailable] = {}
    cases: dict[Any, Case] = {}
    notes: list[str] = []
    for label, op in OPS:
        for lib in LIBS:
            case = suites[lib][op]
            if isinstance(case, NotAvailable):
                results[op, lib] = case
                notes.append(f"{lib}, {label}: n/a. {case.reason}")
                continue
            cases[op, lib] = case
            if case.note:
                notes.append(f"† {lib}, {label}: {case.note}")
    cases["session"] = session_case()
    t0 = time.perf_counter()
    with console.status("measuring") as status:
        results.update(measure_all(cases, repeat, target, status.update))
    session = results["session"]

    table = Table(title="ops/s, one thread (higher is better)")
    table.add_column("operation")
    for lib in LIBS:
        table.add_column(lib, justify="right")
    for lib in LIBS[1:]:
        table.add_column(f"ours÷{lib}", justify="right")
    for label, op in OPS:
        row = [label]
        for lib in LIBS:
            case = suites[lib][op]
            mark = "†" if isinstance(case, Case) and case.note else ""
            row.append(_cell(results[op, lib], mark))
        row += [_ratio(results[op, "ours"], results[op, lib]) for lib in LIBS[1:]]
        table.add_row(*row)
    table.add_row(
        f"Session.receive_data, {PIPELINE} pipelined submit_sm (PDUs/s)",
        _cell(session),
        *(["—"] * 6),
    )
    console.print(table)
    for note in notes:
        console.print(note, soft_wrap=True)
    console.print(f"[dim]{time.perf_counter() - t0:.1f} s[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
