"""Every SMPP 3.4 PDU as a typed dataclass, with a codec generated from the field lists.

Each PDU class lists its mandatory fields in wire order (``cstr``/``u8``/``sm`` markers
carry the spec's maximum length and the command_status that a bad value earns). At import
time a straight-line encoder and decoder is generated for each class, so the hot path is
a handful of ``bytes.find``/slice operations with no per-field interpretation: this is
what lets one process answer tens of thousands of submit_sm a second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from struct import Struct
from typing import Any, ClassVar, TypeVar

from .constants import HEADER_SIZE, RESPONSE_BIT, CommandId, Status
from .errors import SmppError
from .tlv import TlvValue, decode_tlvs, encode_tlvs

_HEADER = Struct(">IIII")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from

_T = TypeVar("_T", bound="Pdu")


def cstr(maxlen: int, status: int = Status.ESME_RUNKNOWNERR) -> Any:
    """A C-octet string field; ``maxlen`` counts the terminating NUL, as the spec does."""
    return field(default="", metadata={"kind": "cstr", "max": maxlen, "status": int(status)})


def u8(default: int = 0) -> Any:
    return field(default=default, metadata={"kind": "u8"})


def short_message() -> Any:
    """sm_length + short_message: the length octet is derived, never stored."""
    return field(default=b"", metadata={"kind": "sm"})


def _special(kind: str) -> Any:
    return field(default_factory=list, metadata={"kind": kind})


@dataclass(slots=True)
class MultiDest:
    """One submit_multi destination: an SME address, or a distribution list name."""

    addr: str = ""
    ton: int = 0
    npi: int = 0
    dl_name: str | None = None


@dataclass(slots=True)
class UnsuccessSme:
    """One submit_multi_resp entry naming a destination that failed, and why."""

    addr: str = ""
    ton: int = 0
    npi: int = 0
    error_status: int = 0


@dataclass(slots=True)
class Pdu:
    """Fields every PDU has. Subclasses add their mandatory fields in wire order."""

    sequence_number: int = 0
    command_status: int = 0
    tlvs: dict[int, TlvValue] = field(default_factory=dict)

    command_id: ClassVar[int]
    response_class: ClassVar[type[Pdu] | None] = None
    _decode_body: ClassVar[Callable[[bytes, int, int, int, int], Any]]
    _encode_body: ClassVar[Callable[[Any], bytes]]

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    @property
    def name(self) -> str:
        return CommandId(self.command_id).name.lower()

    def response(self, status: int = 0, **fields: Any) -> Pdu:
        """The response to this request, carrying its sequence number."""
        cls = self.response_class
        if cls is None:
            raise TypeError(f"{self.name} has no response")
        return cls(sequence_number=self.sequence_number, command_status=status, **fields)

    def tlv_int(self, tag: int) -> int | None:
        value = self.tlvs.get(tag)
        return value if isinstance(value, int) else None

    def tlv_str(self, tag: int) -> str | None:
        value = self.tlvs.get(tag)
        return value if isinstance(value, str) else None

    def tlv_bytes(self, tag: int) -> bytes | None:
        value = self.tlvs.get(tag)
        return value if isinstance(value, bytes) else None

    def encode(self) -> bytes:
        """The whole PDU on the wire, header included."""
        body = type(self)._encode_body(self)
        return (
            _pack_header(
                HEADER_SIZE + len(body), self.command_id, self.command_status, self.sequence_number
            )
            + body
        )


# --- requests and responses, in the order of the spec's chapter 4 -------------------------


@dataclass(slots=True)
class GenericNack(Pdu):
    command_id: ClassVar[int] = CommandId.GENERIC_NACK


@dataclass(slots=True)
class BindResp(Pdu):
    system_id: str = cstr(16, Status.ESME_RINVSYSID)


@dataclass(slots=True)
class BindTransmitterResp(BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(slots=True)
class BindReceiverResp(BindResp):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER_RESP


@dataclass(slots=True)
class BindTransceiverResp(BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(slots=True)
class Bind(Pdu):
    system_id: str = cstr(16, Status.ESME_RINVSYSID)
    password: str = cstr(9, Status.ESME_RINVPASWD)
    system_type: str = cstr(13, Status.ESME_RINVSYSTYP)
    interface_version: int = u8(0x34)
    addr_ton: int = u8()
    addr_npi: int = u8()
    address_range: str = cstr(41, Status.ESME_RBINDFAIL)


@dataclass(slots=True)
class BindTransmitter(Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER
    response_class: ClassVar[type[Pdu] | None] = BindTransmitterResp


@dataclass(slots=True)
class BindReceiver(Bind):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER
    response_class: ClassVar[type[Pdu] | None] = BindReceiverResp


@dataclass(slots=True)
class BindTransceiver(Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER
    response_class: ClassVar[type[Pdu] | None] = BindTransceiverResp


@dataclass(slots=True)
class Outbind(Pdu):
    command_id: ClassVar[int] = CommandId.OUTBIND
    system_id: str = cstr(16, Status.ESME_RINVSYSID)
    password: str = cstr(9, Status.ESME_RINVPASWD)


@dataclass(slots=True)
class UnbindResp(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND_RESP


@dataclass(slots=True)
class Unbind(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND
    response_class: ClassVar[type[Pdu] | None] = UnbindResp


@dataclass(slots=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK_RESP


@dataclass(slots=True)
class EnquireLink(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK
    response_class: ClassVar[type[Pdu] | None] = EnquireLinkResp


@dataclass(slots=True)
class MessageIdResp(Pdu):
    message_id: str = cstr(65, Status.ESME_RINVMSGID)


@dataclass(slots=True)
class SubmitSmResp(MessageIdResp):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM_RESP


@dataclass(slots=True)
class DeliverSmResp(MessageIdResp):
    command_id: ClassVar[int] = CommandId.DELIVER_SM_RESP


@dataclass(slots=True)
class DataSmResp(MessageIdResp):
    command_id: ClassVar[int] = CommandId.DATA_SM_RESP


@dataclass(slots=True)
class ShortMessagePdu(Pdu):
    """submit_sm and deliver_sm share one body layout (SMPP 3.4 4.4.1, 4.6.1)."""

    service_type: str = cstr(6, Status.ESME_RINVSERTYP)
    source_addr_ton: int = u8()
    source_addr_npi: int = u8()
    source_addr: str = cstr(21, Status.ESME_RINVSRCADR)
    dest_addr_ton: int = u8()
    dest_addr_npi: int = u8()
    destination_addr: str = cstr(21, Status.ESME_RINVDSTADR)
    esm_class: int = u8()
    protocol_id: int = u8()
    priority_flag: int = u8()
    schedule_delivery_time: str = cstr(17, Status.ESME_RINVSCHED)
    validity_period: str = cstr(17, Status.ESME_RINVEXPIRY)
    registered_delivery: int = u8()
    replace_if_present_flag: int = u8()
    data_coding: int = u8()
    sm_default_msg_id: int = u8()
    short_message: bytes = short_message()


@dataclass(slots=True)
class SubmitSm(ShortMessagePdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM
    response_class: ClassVar[type[Pdu] | None] = SubmitSmResp


@dataclass(slots=True)
class DeliverSm(ShortMessagePdu):
    command_id: ClassVar[int] = CommandId.DELIVER_SM
    response_class: ClassVar[type[Pdu] | None] = DeliverSmResp


@dataclass(slots=True)
class SubmitMultiResp(Pdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_MULTI_RESP
    message_id: str = cstr(65, Status.ESME_RINVMSGID)
    unsuccess_smes: list[UnsuccessSme] = _special("unsuccess")


@dataclass(slots=True)
class SubmitMulti(Pdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_MULTI
    response_class: ClassVar[type[Pdu] | None] = SubmitMultiResp
    service_type: str = cstr(6, Status.ESME_RINVSERTYP)
    source_addr_ton: int = u8()
    source_addr_npi: int = u8()
    source_addr: str = cstr(21, Status.ESME_RINVSRCADR)
    dests: list[MultiDest] = _special("dests")
    esm_class: int = u8()
    protocol_id: int = u8()
    priority_flag: int = u8()
    schedule_delivery_time: str = cstr(17, Status.ESME_RINVSCHED)
    validity_period: str = cstr(17, Status.ESME_RINVEXPIRY)
    registered_delivery: int = u8()
    replace_if_present_flag: int = u8()
    data_coding: int = u8()
    sm_default_msg_id: int = u8()
    short_message: bytes = short_message()


@dataclass(slots=True)
class DataSm(Pdu):
    command_id: ClassVar[int] = CommandId.DATA_SM
    response_class: ClassVar[type[Pdu] | None] = DataSmResp
    service_type: str = cstr(6, Status.ESME_RINVSERTYP)
    source_addr_ton: int = u8()
    source_addr_npi: int = u8()
    source_addr: str = cstr(65, Status.ESME_RINVSRCADR)
    dest_addr_ton: int = u8()
    dest_addr_npi: int = u8()
    destination_addr: str = cstr(65, Status.ESME_RINVDSTADR)
    esm_class: int = u8()
    registered_delivery: int = u8()
    data_coding: int = u8()


@dataclass(slots=True)
class QuerySmResp(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM_RESP
    message_id: str = cstr(65, Status.ESME_RINVMSGID)
    final_date: str = cstr(17, Status.ESME_RUNKNOWNERR)
    message_state: int = u8()
    error_code: int = u8()


@dataclass(slots=True)
class QuerySm(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM
    response_class: ClassVar[type[Pdu] | None] = QuerySmResp
    message_id: str = cstr(65, Status.ESME_RINVMSGID)
    source_addr_ton: int = u8()
    source_addr_npi: int = u8()
    source_addr: str = cstr(21, Status.ESME_RINVSRCADR)


@dataclass(slots=True)
class CancelSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM_RESP


@dataclass(slots=True)
class CancelSm(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM
    response_class: ClassVar[type[Pdu] | None] = CancelSmResp
    service_type: str = cstr(6, Status.ESME_RINVSERTYP)
    message_id: str = cstr(65, Status.ESME_RINVMSGID)
    source_addr_ton: int = u8()
    source_addr_npi: int = u8()
    source_addr: str = cstr(21, Status.ESME_RINVSRCADR)
    dest_addr_ton: int = u8()
    dest_addr_npi: int = u8()
    destination_addr: str = cstr(21, Status.ESME_RINVDSTADR)


@dataclass(slots=True)
class ReplaceSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM_RESP


@dataclass(slots=True)
class ReplaceSm(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM
    response_class: ClassVar[type[Pdu] | None] = ReplaceSmResp
    message_id: str = cstr(65, Status.ESME_RINVMSGID)
    source_addr_ton: int = u8()
    source_addr_npi: int = u8()
    source_addr: str = cstr(21, Status.ESME_RINVSRCADR)
    schedule_delivery_time: str = cstr(17, Status.ESME_RINVSCHED)
    validity_period: str = cstr(17, Status.ESME_RINVEXPIRY)
    registered_delivery: int = u8()
    sm_default_msg_id: int = u8()
    short_message: bytes = short_message()


@dataclass(slots=True)
class AlertNotification(Pdu):
    command_id: ClassVar[int] = CommandId.ALERT_NOTIFICATION
    source_addr_ton: int = u8()
    source_addr_npi: int = u8()
    source_addr: str = cstr(65, Status.ESME_RINVSRCADR)
    esme_addr_ton: int = u8()
    esme_addr_npi: int = u8()
    esme_addr: str = cstr(65, Status.ESME_RINVSRCADR)


PDU_CLASSES: dict[int, type[Pdu]] = {}
BIND_CLASSES = (BindTransmitter, BindReceiver, BindTransceiver)


# --- the generated codec ------------------------------------------------------------------


def _fields_of(cls: type[Pdu]) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if "kind" in f.metadata]


def _compile(cls: type[Pdu]) -> None:
    """Generate ``_decode_body``/``_encode_body`` for one class (straight-line code)."""
    fields = _fields_of(cls)
    dec = [
        "def _decode_body(data, pos, end, seq, status):",
        "    obj = _new(cls)",
        "    obj.sequence_number = seq",
        "    obj.command_status = status",
    ]
    enc = ["def _encode_body(obj):", "    return b''.join(("]
    i = 0
    while i < len(fields):
        f = fields[i]
        kind = f.metadata["kind"]
        if kind == "u8":
            run = [f.name]
            while i + 1 < len(fields) and fields[i + 1].metadata["kind"] == "u8":
                i += 1
                run.append(fields[i].name)
            n = len(run)
            dec.append(f"    if pos + {n} > end: raise _trunc({run[0]!r})")
            for k, name in enumerate(run):
                dec.append(f"    obj.{name} = data[pos + {k}]")
            dec.append(f"    pos += {n}")
            enc.append(f"        bytes(({', '.join('obj.' + r for r in run)},)),")
        elif kind == "cstr":
            mx, st = f.metadata["max"], f.metadata["status"]
            # Empty strings (service_type, schedule/validity) are the common case; a NUL
            # found past ``end`` belongs to the next PDU of a pipelined buffer.
            dec += [
                "    if pos < end and not data[pos]:",
                f"        obj.{f.name} = ''",
                "        pos += 1",
                "    else:",
                f"        j = data.find(b'\\0', pos, pos + {mx})",
                "        if j < 0 or j >= end:",
                f"            raise _bad_cstr(data, pos, end, {mx}, {st}, {f.name!r})",
                f"        obj.{f.name} = data[pos:j].decode('latin-1')",
                "        pos = j + 1",
            ]
            enc += [f"        obj.{f.name}.encode('latin-1'),", "        b'\\0',"]
        elif kind == "sm":
            dec += [
                "    if pos >= end: raise _trunc('sm_length')",
                "    n = data[pos]",
                "    pos += 1",
                "    if pos + n > end: raise _bad_sm(n, end - pos)",
                f"    obj.{f.name} = data[pos:pos + n]",
                "    pos += n",
            ]
            enc += [f"        _sm_length(obj.{f.name}),", f"        obj.{f.name},"]
        else:
            dec.append(f"    obj.{f.name}, pos = _decode_{kind}(data, pos, end)")
            enc.append(f"        _encode_{kind}(obj.{f.name}),")
        i += 1
    dec += [
        "    obj.tlvs = _decode_tlvs(data, pos, end) if pos < end else {}",
        "    return obj",
    ]
    enc += ["        _encode_tlvs(obj.tlvs) if obj.tlvs else b'',", "    ))"]
    namespace: dict[str, Any] = {
        "cls": cls,
        "_new": object.__new__,
        "_trunc": _trunc,
        "_bad_cstr": _bad_cstr,
        "_bad_sm": _bad_sm,
        "_sm_length": _sm_length,
        "_decode_tlvs": decode_tlvs,
        "_encode_tlvs": encode_tlvs,
        "_decode_dests": _decode_dests,
        "_encode_dests": _encode_dests,
        "_decode_unsuccess": _decode_unsuccess,
        "_encode_unsuccess": _encode_unsuccess,
    }
    exec("\n".join(dec) + "\n\n" + "\n".join(enc), namespace)
    cls._decode_body = staticmethod(namespace["_decode_body"])
    cls._encode_body = staticmethod(namespace["_encode_body"])


def _trunc(name: str) -> SmppError:
    return SmppError(Status.ESME_RINVCMDLEN, f"PDU ends inside mandatory field {name}")


def _bad_cstr(data: bytes, pos: int, end: int, mx: int, status: int, name: str) -> SmppError:
    if end - pos < mx:
        return SmppError(Status.ESME_RINVCMDLEN, f"PDU ends inside mandatory field {name}")
    return SmppError(status, f"{name} has no NUL within its {mx} octets")


def _bad_sm(n: int, left: int) -> SmppError:
    return SmppError(Status.ESME_RINVMSGLEN, f"sm_length {n} but only {left} octets follow")


def _sm_length(sm: bytes) -> bytes:
    if len(sm) > 255:
        raise ValueError(f"short_message of {len(sm)} octets: use message_payload")
    return bytes((len(sm),))


def _read_cstr(data: bytes, pos: int, end: int, mx: int, status: int, name: str) -> tuple[str, int]:
    j = data.find(b"\0", pos, min(end, pos + mx))
    if j < 0:
        raise _bad_cstr(data, pos, end, mx, status, name)
    return data[pos:j].decode("latin-1"), j + 1


def _decode_dests(data: bytes, pos: int, end: int) -> tuple[list[MultiDest], int]:
    if pos >= end:
        raise _trunc("number_of_dests")
    count = data[pos]
    pos += 1
    dests = []
    for _ in range(count):
        if pos >= end:
            raise _trunc("dest_address")
        flag = data[pos]
        pos += 1
        if flag == 1:
            if pos + 2 > end:
                raise _trunc("dest_address")
            ton, npi = data[pos], data[pos + 1]
            addr, pos = _read_cstr(data, pos + 2, end, 21, Status.ESME_RINVDSTADR, "dest_addr")
            dests.append(MultiDest(addr, ton, npi))
        elif flag == 2:
            name, pos = _read_cstr(data, pos, end, 21, Status.ESME_RINVDLNAME, "dl_name")
            dests.append(MultiDest(dl_name=name))
        else:
            raise SmppError(Status.ESME_RINVDESTFLAG, f"dest_flag {flag} is neither 1 nor 2")
    return dests, pos


def _encode_dests(dests: list[MultiDest]) -> bytes:
    out = [bytes((len(dests),))]
    for d in dests:
        if d.dl_name is not None:
            out.append(b"\x02" + d.dl_name.encode("latin-1") + b"\0")
        else:
            out.append(bytes((1, d.ton, d.npi)) + d.addr.encode("latin-1") + b"\0")
    return b"".join(out)


def _decode_unsuccess(data: bytes, pos: int, end: int) -> tuple[list[UnsuccessSme], int]:
    if pos >= end:
        raise _trunc("no_unsuccess")
    count = data[pos]
    pos += 1
    smes = []
    for _ in range(count):
        if pos + 2 > end:
            raise _trunc("unsuccess_sme")
        ton, npi = data[pos], data[pos + 1]
        addr, pos = _read_cstr(data, pos + 2, end, 21, Status.ESME_RINVDSTADR, "dest_addr")
        if pos + 4 > end:
            raise _trunc("error_status_code")
        smes.append(UnsuccessSme(addr, ton, npi, int.from_bytes(data[pos : pos + 4], "big")))
        pos += 4
    return smes, pos


def _encode_unsuccess(smes: list[UnsuccessSme]) -> bytes:
    out = [bytes((len(smes),))]
    for s in smes:
        out.append(
            bytes((s.ton, s.npi))
            + s.addr.encode("latin-1")
            + b"\0"
            + s.error_status.to_bytes(4, "big")
        )
    return b"".join(out)


def _register() -> None:
    for cls in (
        GenericNack,
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        EnquireLink,
        EnquireLinkResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        SubmitMulti,
        SubmitMultiResp,
        DataSm,
        DataSmResp,
        QuerySm,
        QuerySmResp,
        CancelSm,
        CancelSmResp,
        ReplaceSm,
        ReplaceSmResp,
        AlertNotification,
    ):
        _compile(cls)
        PDU_CLASSES[cls.command_id] = cls


_register()


# --- whole-PDU entry points ---------------------------------------------------------------


def decode_header(data: bytes, pos: int = 0) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) at ``pos``."""
    return _unpack_header(data, pos)


def decode_pdu(data: bytes, pos: int = 0, end: int | None = None) -> Pdu:
    """Decode the PDU at ``data[pos:end]`` (the caller has framed it by command_length).

    Raises SmppError (never anything else) with the status the peer must be sent and, when
    the header was readable, the command_id and sequence_number to answer.
    """
    if end is None:
        end = len(data)
    if end - pos < HEADER_SIZE:
        raise SmppError(Status.ESME_RINVCMDLEN, f"{end - pos} octets is shorter than a header")
    length, command_id, status, seq = _unpack_header(data, pos)
    if length != end - pos:
        raise SmppError(
            Status.ESME_RINVCMDLEN,
            f"command_length {length} but the PDU has {end - pos} octets",
            command_id=command_id,
            sequence_number=seq,
        )
    cls = PDU_CLASSES.get(command_id)
    if cls is None:
        raise SmppError(
            Status.ESME_RINVCMDID,
            f"unknown command_id 0x{command_id:08X}",
            command_id=command_id,
            sequence_number=seq,
        )
    body = pos + HEADER_SIZE
    if body == end and command_id & RESPONSE_BIT and status:
        # An error response may carry no body at all (SMPP 3.4 section 4.4.2).
        return cls(sequence_number=seq, command_status=status)
    try:
        return cls._decode_body(data, body, end, seq, status)  # type: ignore[no-any-return]
    except SmppError as exc:
        exc.command_id = command_id
        exc.sequence_number = seq
        raise


def encode_pdu(pdu: Pdu) -> bytes:
    return pdu.encode()


def copy_pdu(pdu: _T, **changes: Any) -> _T:
    """A shallow copy with some fields replaced (dataclasses.replace, typed)."""
    return dataclasses.replace(pdu, **changes)
