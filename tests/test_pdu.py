"""The PDU codec: known bytes, round trips of every PDU type, and hostile input."""

from __future__ import annotations

import contextlib
import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.smpp.constants import CommandId, Status, Tag
from simulator.smpp.errors import SmppError
from simulator.smpp.pdu import (
    PDU_CLASSES,
    BindTransceiver,
    DeliverSm,
    MultiDest,
    Pdu,
    SubmitMulti,
    SubmitSm,
    SubmitSmResp,
    UnsuccessSme,
    decode_pdu,
)
from simulator.smpp.tlv import CSTR, OCTETS, TLV_KINDS


def test_every_smpp34_command_is_known() -> None:
    assert set(PDU_CLASSES) == {int(c) for c in CommandId}


#: SMPP 3.4 section 5.1.3, copied from the spec's table: every command_status it defines.
SPEC_STATUSES = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN",
    0x03: "ESME_RINVCMDID", 0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND",
    0x06: "ESME_RINVPRTFLG", 0x07: "ESME_RINVREGDLVFLG", 0x08: "ESME_RSYSERR",
    0x0A: "ESME_RINVSRCADR", 0x0B: "ESME_RINVDSTADR", 0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL", 0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID",
    0x11: "ESME_RCANCELFAIL", 0x13: "ESME_RREPLACEFAIL", 0x14: "ESME_RMSGQFUL",
    0x15: "ESME_RINVSERTYP", 0x33: "ESME_RINVNUMDESTS", 0x34: "ESME_RINVDLNAME",
    0x40: "ESME_RINVDESTFLAG", 0x42: "ESME_RINVSUBREP", 0x43: "ESME_RINVESMCLASS",
    0x44: "ESME_RCNTSUBDL", 0x45: "ESME_RSUBMITFAIL", 0x48: "ESME_RINVSRCTON",
    0x49: "ESME_RINVSRCNPI", 0x50: "ESME_RINVDSTTON", 0x51: "ESME_RINVDSTNPI",
    0x53: "ESME_RINVSYSTYP", 0x54: "ESME_RINVREPFLAG", 0x55: "ESME_RINVNUMMSGS",
    0x58: "ESME_RTHROTTLED", 0x61: "ESME_RINVSCHED", 0x62: "ESME_RINVEXPIRY",
    0x63: "ESME_RINVDFTMSGID", 0x64: "ESME_RX_T_APPN", 0x65: "ESME_RX_P_APPN",
    0x66: "ESME_RX_R_APPN", 0x67: "ESME_RQUERYFAIL", 0xC0: "ESME_RINVOPTPARSTREAM",
    0xC1: "ESME_ROPTPARNOTALLWD", 0xC2: "ESME_RINVPARLEN", 0xC3: "ESME_RMISSINGOPTPARAM",
    0xC4: "ESME_RINVOPTPARAMVAL", 0xFE: "ESME_RDELIVERYFAILURE", 0xFF: "ESME_RUNKNOWNERR",
}  # fmt: skip

#: SMPP 3.4 section 5.3.2: tag -> value type (1/2/4: integer of that size, "c": C-octet
#: string, "o": octet string).
SPEC_TLVS = {
    0x0005: 1, 0x0006: 1, 0x0007: 1, 0x0008: 2, 0x000D: 1, 0x000E: 1, 0x000F: 1,
    0x0010: 1, 0x0017: 4, 0x0019: 1, 0x001D: "c", 0x001E: "c", 0x0030: 1, 0x0201: 1,
    0x0202: "o", 0x0203: "o", 0x0204: 2, 0x0205: 1, 0x020A: 2, 0x020B: 2, 0x020C: 2,
    0x020D: 1, 0x020E: 1, 0x020F: 1, 0x0210: 1, 0x0302: 1, 0x0303: "o", 0x0304: 1,
    0x0381: "o", 0x0420: 1, 0x0421: 1, 0x0422: 1, 0x0423: "o", 0x0424: "o", 0x0425: 1,
    0x0426: 1, 0x0427: 1, 0x0501: 1, 0x1201: 1, 0x1203: 2, 0x1204: 1, 0x130C: "o",
    0x1380: 1, 0x1383: "o",
}  # fmt: skip


def test_the_full_command_status_table() -> None:
    assert {int(s): s.name for s in Status} == SPEC_STATUSES


def test_every_standard_tlv_is_typed() -> None:
    kinds = {k: {CSTR: "c", OCTETS: "o"}.get(v, v) for k, v in TLV_KINDS.items()}
    assert kinds == SPEC_TLVS
    assert {int(t) for t in Tag} == set(SPEC_TLVS)


def test_source_telematics_id_of_either_width_is_read() -> None:
    for raw, value in ((b"\x00\x10\x00\x01\x07", 7), (b"\x00\x10\x00\x02\x00\x07", 7)):
        data = DeliverSm().encode() + raw
        data = struct.pack(">I", len(data)) + data[4:]
        assert decode_pdu(data).tlvs == {Tag.SOURCE_TELEMATICS_ID: value}
    wide = DeliverSm(tlvs={Tag.SOURCE_TELEMATICS_ID: 0x1234})
    assert decode_pdu(wide.encode()) == wide


def test_bind_transceiver_bytes_match_the_spec_layout() -> None:
    pdu = BindTransceiver(sequence_number=1, system_id="rapidpro", password="secret")
    body = b"rapidpro\0secret\0\0" + bytes((0x34, 0, 0)) + b"\0"
    assert pdu.encode() == struct.pack(">IIII", 16 + len(body), 9, 0, 1) + body


def test_submit_sm_known_bytes_decode() -> None:
    body = (
        b"\0"  # service_type
        + bytes((3, 0))
        + b"1442\0"
        + bytes((1, 1))
        + b"201001234567\0"
        + bytes((0x40, 0, 0))
        + b"\0\0"
        + bytes((1, 0, 8, 0))
        + bytes((4,))
        + "سل".encode("utf-16-be")
        + struct.pack(">HH", Tag.SAR_MSG_REF_NUM, 2)
        + b"\x01\x02"
    )
    data = struct.pack(">IIII", 16 + len(body), 4, 0, 99) + body
    pdu = decode_pdu(data)
    assert isinstance(pdu, SubmitSm)
    assert pdu.sequence_number == 99
    assert (pdu.source_addr, pdu.source_addr_ton, pdu.destination_addr) == (
        "1442",
        3,
        "201001234567",
    )
    assert pdu.esm_class == 0x40 and pdu.data_coding == 8 and pdu.registered_delivery == 1
    assert pdu.short_message.decode("utf-16-be") == "سل"
    assert pdu.tlvs == {Tag.SAR_MSG_REF_NUM: 0x0102}
    assert pdu.encode() == data


def test_response_builds_with_sequence() -> None:
    req = SubmitSm(sequence_number=41)
    resp = req.response(message_id="abc")
    assert isinstance(resp, SubmitSmResp)
    assert (resp.sequence_number, resp.message_id, resp.command_status) == (41, "abc", 0)


def test_error_response_without_body_decodes() -> None:
    data = struct.pack(">IIII", 16, CommandId.SUBMIT_SM_RESP, Status.ESME_RTHROTTLED, 5)
    pdu = decode_pdu(data)
    assert isinstance(pdu, SubmitSmResp)
    assert pdu.command_status == Status.ESME_RTHROTTLED and pdu.message_id == ""


def test_vendor_status_survives() -> None:
    data = struct.pack(">IIII", 17, CommandId.SUBMIT_SM_RESP, 0x401, 5) + b"\0"
    assert decode_pdu(data).command_status == 0x401


def test_unknown_tlv_passes_through_byte_for_byte() -> None:
    pdu = DeliverSm(tlvs={0x1401: b"\x00\xffvendor", Tag.MESSAGE_STATE: 2})
    again = decode_pdu(pdu.encode())
    assert again.tlvs == {0x1401: b"\x00\xffvendor", Tag.MESSAGE_STATE: 2}


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        ("source_addr", "1" * 21, Status.ESME_RINVSRCADR),
        ("destination_addr", "2" * 21, Status.ESME_RINVDSTADR),
        ("service_type", "abcdef", Status.ESME_RINVSERTYP),
        ("validity_period", "0" * 17, Status.ESME_RINVEXPIRY),
    ],
)
def test_overlong_fields_earn_their_status(field: str, value: str, status: int) -> None:
    pdu = SubmitSm(sequence_number=3, short_message=b"x" * 30, **{field: value})
    with pytest.raises(SmppError) as err:
        decode_pdu(pdu.encode())
    assert err.value.status == status
    assert err.value.sequence_number == 3
    assert err.value.command_id == CommandId.SUBMIT_SM


def test_sm_length_past_end_is_invmsglen() -> None:
    data = bytearray(SubmitSm(short_message=b"hello").encode())
    data[-6] = 200  # sm_length
    with pytest.raises(SmppError) as err:
        decode_pdu(bytes(data))
    assert err.value.status == Status.ESME_RINVMSGLEN


def test_truncated_tlv_is_invoptparstream() -> None:
    data = SubmitSm().encode() + struct.pack(">HH", 0x0424, 10) + b"abc"
    data = struct.pack(">I", len(data)) + data[4:]
    with pytest.raises(SmppError) as err:
        decode_pdu(data)
    assert err.value.status == Status.ESME_RINVOPTPARSTREAM


def test_int_tlv_with_wrong_length_is_invparlen() -> None:
    data = DeliverSm().encode() + struct.pack(">HH", Tag.MESSAGE_STATE, 2) + b"\0\2"
    data = struct.pack(">I", len(data)) + data[4:]
    with pytest.raises(SmppError) as err:
        decode_pdu(data)
    assert err.value.status == Status.ESME_RINVPARLEN


def test_submit_multi_round_trip_with_lists() -> None:
    pdu = SubmitMulti(
        sequence_number=9,
        source_addr="1442",
        dests=[MultiDest("201001234567", 1, 1), MultiDest(dl_name="takaful")],
        short_message=b"hi",
    )
    assert decode_pdu(pdu.encode()) == pdu
    resp = pdu.response(message_id="7", unsuccess_smes=[UnsuccessSme("2011", 1, 1, 0x0B)])
    assert decode_pdu(resp.encode()) == resp


def test_bad_dest_flag() -> None:
    data = bytearray(SubmitMulti(dests=[MultiDest("2010", 1, 1)]).encode())
    flag_at = 16 + 1 + 2 + 1 + 1  # header, service_type, ton/npi, empty source, count
    data[flag_at] = 7
    with pytest.raises(SmppError) as err:
        decode_pdu(bytes(data))
    assert err.value.status == Status.ESME_RINVDESTFLAG


# --- property tests -------------------------------------------------------------------------


def _cstr(maxlen: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=maxlen - 1)


def _tlv_value(tag: int) -> st.SearchStrategy[int | str | bytes]:
    kind = TLV_KINDS.get(tag, OCTETS)
    if kind == OCTETS:
        return st.binary(max_size=40)
    if kind == CSTR:
        return _cstr(65)
    return st.integers(0, 2 ** (8 * kind) - 1)


_tags = st.sampled_from([*sorted(TLV_KINDS), 5120, 8528, 16383])
_tlvs = st.dictionaries(_tags, st.none(), max_size=4).flatmap(
    lambda d: st.fixed_dictionaries({t: _tlv_value(t) for t in d})
)


def _field_strategy(f: dataclasses.Field[object]) -> st.SearchStrategy[object]:
    kind = f.metadata["kind"]
    if kind == "u8":
        return st.integers(0, 255)
    if kind == "cstr":
        return _cstr(f.metadata["max"])
    if kind == "sm":
        return st.binary(max_size=255)
    if kind == "dests":
        sme = st.builds(MultiDest, _cstr(21), st.integers(0, 255), st.integers(0, 255))
        dl = st.builds(lambda n: MultiDest(dl_name=n), _cstr(21))
        return st.lists(st.one_of(sme, dl), max_size=5)
    if kind == "unsuccess":
        return st.lists(
            st.builds(
                UnsuccessSme,
                _cstr(21),
                st.integers(0, 255),
                st.integers(0, 255),
                st.integers(0, 2**32 - 1),
            ),
            max_size=5,
        )
    raise AssertionError(kind)


def _pdus() -> st.SearchStrategy[Pdu]:
    def for_class(cls: type[Pdu]) -> st.SearchStrategy[Pdu]:
        kwargs = {
            f.name: _field_strategy(f) for f in dataclasses.fields(cls) if "kind" in f.metadata
        }
        return st.builds(
            cls,
            sequence_number=st.integers(1, 0x7FFFFFFF),
            command_status=st.integers(0, 0x4FF),
            tlvs=_tlvs,
            **kwargs,
        )

    return st.one_of([for_class(c) for c in PDU_CLASSES.values()])


@settings(max_examples=600, deadline=None)
@given(_pdus())
def test_every_pdu_round_trips(pdu: Pdu) -> None:
    data = pdu.encode()
    assert struct.unpack_from(">I", data)[0] == len(data)
    assert decode_pdu(data) == pdu


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_only_raises_its_own_error_on_garbage(data: bytes) -> None:
    with contextlib.suppress(SmppError):
        decode_pdu(data)


@settings(max_examples=800, deadline=None)
@given(_pdus(), st.data())
def test_corrupted_pdus_only_raise_smpp_error(pdu: Pdu, data: st.DataObject) -> None:
    raw = bytearray(pdu.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(4, len(raw) - 1)) if len(raw) > 4 else 0
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(16, len(raw)))
    body = bytes(raw[:cut])
    body = struct.pack(">I", len(body)) + body[4:]
    try:
        decode_pdu(body)
    except SmppError as exc:
        assert exc.status > 0
