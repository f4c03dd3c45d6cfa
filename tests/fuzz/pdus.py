"""Valid PDUs of every command, and the ways a hostile or broken peer mangles them.

The valid side builds on ``tests/test_pdu.py``'s field strategies (each mandatory
field from the codec's own dataclass metadata, TLVs typed by ``TLV_KINDS``) and adds
strings at their spec maximum, so the edges are hit without relying on luck. The
mutations work on the encoded bytes: flipped octets, truncation, a lying or absurd
command_length, C-strings that lose their NUL, TLVs whose length lies, integer TLVs of
the wrong width, unknown command_ids, junk spliced in.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
from collections.abc import Callable

from hypothesis import strategies as st

from simulator.smpp.constants import HEADER_SIZE, RESPONSE_BIT, CommandId, Tag
from simulator.smpp.pdu import PDU_CLASSES, Pdu
from simulator.smpp.tlv import CSTR, OCTETS, TLV_KINDS
from tests.test_pdu import _field_strategy, _tlvs

ALL_CLASSES: list[type[Pdu]] = list(PDU_CLASSES.values())
REQUEST_CLASSES = [c for c in ALL_CLASSES if not c.command_id & RESPONSE_BIT]


def _cstr_at_edges(maxlen: int) -> st.SearchStrategy[str]:
    """Empty, exactly the maximum, or anything in between (never a NUL)."""
    char = st.characters(min_codepoint=1, max_codepoint=255)
    return st.one_of(
        st.just(""),
        st.text(char, min_size=maxlen - 1, max_size=maxlen - 1),
        st.text(char, max_size=maxlen - 1),
    )


def _field(f: dataclasses.Field[object]) -> st.SearchStrategy[object]:
    kind = f.metadata["kind"]
    if kind == "cstr":
        return _cstr_at_edges(f.metadata["max"])
    if kind == "sm":
        return st.one_of(st.binary(max_size=255), st.binary(min_size=255, max_size=255))
    return _field_strategy(f)


def pdu_of(cls: type[Pdu], *, seq: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[Pdu]:
    """Any structurally valid ``cls``: every mandatory field in range, typed TLVs."""
    fields = {f.name: _field(f) for f in dataclasses.fields(cls) if "kind" in f.metadata}
    return st.builds(
        cls,
        sequence_number=seq if seq is not None else st.integers(1, 0x7FFFFFFF),
        # Requests carry 0 on the wire; responses any status, vendor range included.
        command_status=st.just(0)
        if not cls.command_id & RESPONSE_BIT
        else st.one_of(st.just(0), st.integers(1, 0x4FF)),
        tlvs=_tlvs,
        **fields,
    )


def any_pdu(seq: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[Pdu]:
    return st.one_of([pdu_of(c, seq=seq) for c in ALL_CLASSES])


_ANY = any_pdu()

_C = CommandId
#: What each side sends in a real session: weighted in so that sequences such as
#: "unbind, then submit_sm" in one read come up often, not once in thousands.
ESME_SENDS = [
    PDU_CLASSES[c]
    for c in (
        _C.BIND_TRANSCEIVER,
        _C.BIND_TRANSMITTER,
        _C.BIND_RECEIVER,
        _C.UNBIND,
        _C.ENQUIRE_LINK,
        _C.SUBMIT_SM,
        _C.DATA_SM,
        _C.SUBMIT_MULTI,
        _C.QUERY_SM,
        _C.CANCEL_SM,
        _C.REPLACE_SM,
        _C.DELIVER_SM_RESP,
        _C.GENERIC_NACK,
    )
]
SMSC_SENDS = [
    PDU_CLASSES[c]
    for c in (
        _C.DELIVER_SM,
        _C.DATA_SM,
        _C.ALERT_NOTIFICATION,
        _C.UNBIND,
        _C.ENQUIRE_LINK,
        _C.OUTBIND,
        _C.SUBMIT_SM_RESP,
        _C.GENERIC_NACK,
    )
]


def sent_by(
    classes: list[type[Pdu]], seq: st.SearchStrategy[int] | None = None
) -> st.SearchStrategy[Pdu]:
    """Valid PDUs of the commands one side sends."""
    return st.one_of([pdu_of(c, seq=seq) for c in classes])


# --- mutations ------------------------------------------------------------------------------

#: (name, function(raw, draw) -> bytes). Every function returns a whole "frame": the
#: bytes a peer sends for one PDU, which may lie about its own length.
Mutation = Callable[[bytes, st.DrawFn], bytes]


_U32 = st.integers(0, 0xFFFFFFFF)
_NONZERO_U32 = st.integers(1, 0xFFFFFFFF)
_TAGS = [*sorted(TLV_KINDS), 0x1400, 0xFFFF]
_INT_TAGS = [t for t, k in TLV_KINDS.items() if k not in (CSTR, OCTETS)]
_KNOWN_IDS = [int(c) for c in CommandId]


def _pick(draw: st.DrawFn, lo: int, hi: int) -> int:
    """An integer in lo..hi from one shared strategy: building a strategy per draw
    (their bounds change with every PDU) cost most of the run's time."""
    return lo + draw(_U32) % (hi - lo + 1)


def _junk(draw: st.DrawFn, lo: int, hi: int) -> bytes:
    n = _pick(draw, lo, hi)
    return bytes(_pick(draw, 0, 255) for _ in range(n))


def _fix_length(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw[4:]


def _mandatory_end(raw: bytes) -> int:
    """Where the TLVs start in a valid encoding: past the last mandatory field."""
    from simulator.smpp.pdu import decode_pdu

    pdu = decode_pdu(raw)
    return len(dataclasses.replace(pdu, tlvs={}).encode())


def flip(raw: bytes, draw: st.DrawFn) -> bytes:
    """A few octets anywhere past command_length get another value."""
    out = bytearray(raw)
    for _ in range(_pick(draw, 1, 4)):
        out[_pick(draw, 4, len(out) - 1)] = _pick(draw, 0, 255)
    return bytes(out)


def truncate(raw: bytes, draw: st.DrawFn) -> bytes:
    """The PDU cut short, command_length telling the truth about the cut."""
    return _fix_length(raw[: _pick(draw, HEADER_SIZE, max(HEADER_SIZE, len(raw) - 1))])


def lying_length(raw: bytes, draw: st.DrawFn) -> bytes:
    """command_length off by a little either way: the stream loses its framing."""
    delta = _pick(draw, 1, 48)
    delta = delta - 9 if delta <= 8 else delta - 8  # -8..-1, 1..40
    return struct.pack(">I", max(0, len(raw) + delta)) + raw[4:]


def absurd_length(raw: bytes, draw: st.DrawFn) -> bytes:
    """command_length below a header or above any sane maximum (fatal by the spec)."""
    length = (
        _pick(draw, 0, HEADER_SIZE - 1) if draw(st.booleans()) else _pick(draw, 65537, 2**32 - 1)
    )
    return struct.pack(">I", length) + raw[4:]


def lose_nul(raw: bytes, draw: st.DrawFn) -> bytes:
    """A NUL of the body (a C-string's end, or a zero octet) becomes another octet."""
    nuls = [i for i in range(HEADER_SIZE, len(raw)) if raw[i] == 0]
    if not nuls:
        return flip(raw, draw)
    out = bytearray(raw)
    for _ in range(_pick(draw, 1, 3)):
        out[nuls[_pick(draw, 0, len(nuls) - 1)]] = _pick(draw, 1, 255)
    return bytes(out)


def tlv_lie(raw: bytes, draw: st.DrawFn) -> bytes:
    """A TLV whose length runs past the PDU or stops short of its value."""
    heads = []
    pos = _mandatory_end(raw)
    while pos + 4 <= len(raw):
        heads.append(pos)
        pos += 4 + struct.unpack_from(">H", raw, pos + 2)[0]
    if heads and draw(st.booleans()):
        out = bytearray(raw)
        struct.pack_into(
            ">H", out, heads[_pick(draw, 0, len(heads) - 1)] + 2, _pick(draw, 0, 0xFFFF)
        )
        return bytes(out)
    tag = _TAGS[_pick(draw, 0, len(_TAGS) - 1)]
    head = struct.pack(">HH", tag, _pick(draw, 0, 0xFFFF))
    return _fix_length(raw + head + _junk(draw, 0, 8))


def tlv_wrong_width(raw: bytes, draw: st.DrawFn) -> bytes:
    """An integer TLV of the wrong width, or a C-string/octet TLV of any content."""
    tags = [*_INT_TAGS, Tag.RECEIPTED_MESSAGE_ID, Tag.MESSAGE_PAYLOAD]
    tag = tags[_pick(draw, 0, len(tags) - 1)]
    value = _junk(draw, 0, 9)
    return _fix_length(raw + struct.pack(">HH", tag, len(value)) + value)


def other_command(raw: bytes, draw: st.DrawFn) -> bytes:
    """The body of one command under another command_id (known, unknown, response bit)."""
    how = _pick(draw, 0, 2)
    cid = _KNOWN_IDS[_pick(draw, 0, len(_KNOWN_IDS) - 1)]
    if how == 1:
        cid ^= RESPONSE_BIT
    elif how == 2:
        cid = draw(_U32)
    return raw[:4] + struct.pack(">I", cid) + raw[8:]


def splice(raw: bytes, draw: st.DrawFn) -> bytes:
    """Junk inserted (or appended, where it reads as TLVs), length fixed up."""
    at = _pick(draw, HEADER_SIZE, len(raw))
    return _fix_length(raw[:at] + _junk(draw, 1, 24) + raw[at:])


def drop(raw: bytes, draw: st.DrawFn) -> bytes:
    """Octets removed from the middle of the body, length fixed up."""
    if len(raw) <= HEADER_SIZE:
        return raw
    at = _pick(draw, HEADER_SIZE, len(raw) - 1)
    n = _pick(draw, 1, len(raw) - at)
    return _fix_length(raw[:at] + raw[at + n :])


def status_on_request(raw: bytes, draw: st.DrawFn) -> bytes:
    """A request carrying a non-zero command_status (the spec says 0 or NULL)."""
    return raw[:8] + struct.pack(">I", draw(_NONZERO_U32)) + raw[12:]


MUTATIONS: dict[str, Mutation] = {
    m.__name__: m
    for m in (
        flip,
        truncate,
        lying_length,
        absurd_length,
        lose_nul,
        tlv_lie,
        tlv_wrong_width,
        other_command,
        splice,
        drop,
        status_on_request,
    )
}
#: Mutations after which command_length is still 16..len(frame) and true.
FRAMED = frozenset(MUTATIONS) - {"lying_length", "absurd_length"}


@st.composite
def mutated(
    draw: st.DrawFn,
    pdus: st.SearchStrategy[Pdu] | None = None,
    names: frozenset[str] | None = None,
) -> tuple[str, bytes]:
    """(mutation name, frame): a valid PDU, then one to three mutations."""
    raw = draw(pdus if pdus is not None else _ANY).encode()
    chosen = sorted(names if names is not None else MUTATIONS)
    applied: list[str] = []
    for _ in range(_pick(draw, 1, 3)):
        name = chosen[_pick(draw, 0, len(chosen) - 1)]
        if name == "tlv_lie" and applied:
            name = "flip"  # needs a valid encoding to find the TLVs
        raw = MUTATIONS[name](raw, draw)
        applied.append(name)
    return "+".join(applied), raw


def frames(pdus: st.SearchStrategy[Pdu] | None = None) -> st.SearchStrategy[bytes]:
    """One frame: valid, mutated, or noise."""
    valid = (pdus if pdus is not None else _ANY).map(lambda p: p.encode())
    return st.one_of(
        valid,
        mutated(pdus).map(lambda t: t[1]),
        st.binary(min_size=1, max_size=40),
    )


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given offsets (as TCP may deliver it)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def esme_stream(max_size: int, max_seq: int) -> st.SearchStrategy[list[bytes]]:
    """What an ESME (or something pretending to be one) sends an SMSC: frames of any
    command and of the ESME's own, valid or mutated, with sequence numbers that often
    collide (1..6) and sometimes not (up to ``max_seq``)."""
    seq = st.one_of(st.integers(1, 6), st.integers(1, max_seq))
    return st.lists(
        st.one_of(frames(any_pdu(seq=seq)), frames(sent_by(ESME_SENDS, seq=seq))),
        min_size=1,
        max_size=max_size,
    )
