"""What SMPP 3.4 says a peer must be answered, computed without the session under test.

``split_stream`` frames a byte stream by command_length; ``expectation`` says, for one
frame, whether an answer must come back, which command_ids it may have and which
statuses: the codec's own error status for a request it cannot decode, generic_nack
ESME_RINVCMDID for an unknown command_id, nothing for a response. ``match_answers``
pairs what came back with what was sent and names every mismatch.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from simulator.smpp.constants import HEADER_SIZE, RESPONSE_BIT, CommandId, Status
from simulator.smpp.errors import SmppError
from simulator.smpp.pdu import PDU_CLASSES, Pdu, decode_pdu

#: What a session may refuse a well-formed request with on its own, besides the app's 0.
SESSION_REFUSALS = frozenset({Status.ESME_RINVBNDSTS, Status.ESME_RALYBND, Status.ESME_RMSGQFUL})
_STATUSES = frozenset(int(s) for s in Status)


@dataclass(slots=True)
class Frame:
    data: bytes
    command_id: int
    status: int
    seq: int


@dataclass(slots=True)
class Expectation:
    frame: Frame
    #: An answer must come (False: none may, or one may: see ``optional``).
    required: bool
    optional: bool
    cids: frozenset[int]
    statuses: frozenset[int] | None  # None: any
    decoded: Pdu | None
    error: SmppError | None


def split_stream(data: bytes, max_pdu_size: int) -> tuple[list[Frame], Frame | None, int]:
    """(whole frames, the fatal frame header if one ends the stream, octets left over)."""
    frames: list[Frame] = []
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        length, cid, status, seq = struct.unpack_from(">IIII", data, pos)
        if length < HEADER_SIZE or length > max_pdu_size:
            return frames, Frame(data[pos : pos + HEADER_SIZE], cid, status, seq), 0
        if pos + length > len(data):
            break
        frames.append(Frame(data[pos : pos + length], cid, status, seq))
        pos += length
    return frames, None, len(data) - pos


def completion(tail: bytes, max_pdu_size: int) -> bytes:
    """Octets (zeros) that finish a partial frame at a stream's end, so that every frame
    sent is whole and the peer can be asked for more afterwards."""
    pad = b""
    while tail:
        t = tail + pad
        if len(t) < HEADER_SIZE:
            pad += bytes(HEADER_SIZE - len(t))
            continue
        (length,) = struct.unpack_from(">I", t)
        if length < HEADER_SIZE or length > max_pdu_size or len(t) >= length:
            return pad
        pad += bytes(length - len(t))
    return pad


def whole_stream(sent: list[bytes], max_pdu_size: int) -> tuple[bytes, list[Frame], Frame | None]:
    """The frames as one stream, its last frame completed: (stream, frames, fatal)."""
    stream = b"".join(sent)
    _, _, left = split_stream(stream, max_pdu_size)
    stream += completion(stream[len(stream) - left :], max_pdu_size)
    whole, fatal, left = split_stream(stream, max_pdu_size)
    assert left == 0
    return stream, whole, fatal


def expectation(frame: Frame) -> Expectation:
    cid = frame.command_id
    cls = PDU_CLASSES.get(cid)
    nack = frozenset({int(CommandId.GENERIC_NACK)})
    if cls is None:
        return Expectation(frame, True, False, nack, frozenset({Status.ESME_RINVCMDID}), None, None)
    if cid & RESPONSE_BIT:
        return Expectation(frame, False, False, frozenset(), None, None, None)
    answer = frozenset({cls.response_class.command_id}) if cls.response_class else nack
    try:
        pdu = decode_pdu(frame.data)
    except SmppError as exc:
        assert exc.status in _STATUSES and exc.status, f"undocumented status {exc!r}"
        return Expectation(frame, True, False, answer, frozenset({exc.status}), None, exc)
    if cls.response_class is None:
        # outbind / alert_notification: no answer when the state allows it (the app
        # takes it), generic_nack when it does not.
        return Expectation(frame, False, True, nack, SESSION_REFUSALS, pdu, None)
    return Expectation(frame, True, False, answer, SESSION_REFUSALS | {0}, pdu, None)


def decode_all(data: bytes) -> list[Pdu]:
    """Every PDU a session queued: each must be well formed (decode_pdu raises if not)."""
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append(decode_pdu(data, pos, pos + length))
        pos += length
    return out


def match_answers(
    expected: list[Expectation],
    answers: list[Pdu],
    *,
    require_all: bool = True,
    any_refusal: bool = False,
) -> list[str]:
    """Problems (empty: every answer was due, and every due answer came).

    ``any_refusal``: a well-formed request may be refused with any status (a live SMSC
    checks addresses, passwords, throughput...); what it cannot decode must still get
    the codec's own. ``require_all`` False: answers may be missing (the peer closed).
    """
    problems = []
    taken = [False] * len(expected)

    def fits(exp: Expectation, ans: Pdu, exact: bool) -> bool:
        statuses = None if any_refusal and exp.decoded is not None else exp.statuses
        if exact != (statuses is not None):
            return False
        return (
            (exp.required or exp.optional)
            and exp.frame.seq == ans.sequence_number
            and ans.command_id in exp.cids
            and (statuses is None or ans.command_status in statuses)
        )

    for ans in answers:
        # A frame that needs this very status first, then one that takes any: a
        # malformed enquire_link's error must not be counted as a sound one's answer.
        for exact in (True, False):
            i = next(
                (i for i, e in enumerate(expected) if not taken[i] and fits(e, ans, exact)), -1
            )
            if i >= 0:
                taken[i] = True
                break
        else:
            problems.append(f"unexpected answer {ans!r}")
    for i, exp in enumerate(expected):
        if require_all and exp.required and not taken[i]:
            problems.append(
                f"no answer to 0x{exp.frame.command_id:08X} seq {exp.frame.seq} "
                f"(decoded={exp.decoded!r}, error={exp.error!r}, bytes={exp.frame.data.hex()})"
            )
    return problems
