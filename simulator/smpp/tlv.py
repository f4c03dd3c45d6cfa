"""Optional parameters (TLVs): the standard tags typed, unknown tags kept as raw bytes.

Values are ``int`` for integer TLVs, ``str`` for C-octet strings and ``bytes`` for octet
strings and unknown tags, so a PDU can be forwarded with parameters this code never heard
of, byte for byte.
"""

from __future__ import annotations

from struct import pack, unpack_from

from .constants import Status, Tag
from .errors import SmppError

TlvValue = int | str | bytes

U8, U16, U32, CSTR, OCTETS = 1, 2, 4, -1, 0

#: Kind of each standard tag: 1/2/4 = unsigned int of that width, -1 = C string, 0 = octets.
TLV_KINDS: dict[int, int] = {
    Tag.DEST_ADDR_SUBUNIT: U8,
    Tag.DEST_NETWORK_TYPE: U8,
    Tag.DEST_BEARER_TYPE: U8,
    Tag.DEST_TELEMATICS_ID: U16,
    Tag.SOURCE_ADDR_SUBUNIT: U8,
    Tag.SOURCE_NETWORK_TYPE: U8,
    Tag.SOURCE_BEARER_TYPE: U8,
    Tag.SOURCE_TELEMATICS_ID: U8,
    Tag.QOS_TIME_TO_LIVE: U32,
    Tag.PAYLOAD_TYPE: U8,
    Tag.ADDITIONAL_STATUS_INFO_TEXT: CSTR,
    Tag.RECEIPTED_MESSAGE_ID: CSTR,
    Tag.MS_MSG_WAIT_FACILITIES: U8,
    Tag.PRIVACY_INDICATOR: U8,
    Tag.SOURCE_SUBADDRESS: OCTETS,
    Tag.DEST_SUBADDRESS: OCTETS,
    Tag.USER_MESSAGE_REFERENCE: U16,
    Tag.USER_RESPONSE_CODE: U8,
    Tag.SOURCE_PORT: U16,
    Tag.DESTINATION_PORT: U16,
    Tag.SAR_MSG_REF_NUM: U16,
    Tag.LANGUAGE_INDICATOR: U8,
    Tag.SAR_TOTAL_SEGMENTS: U8,
    Tag.SAR_SEGMENT_SEQNUM: U8,
    Tag.SC_INTERFACE_VERSION: U8,
    Tag.CALLBACK_NUM_PRES_IND: U8,
    Tag.CALLBACK_NUM_ATAG: OCTETS,
    Tag.NUMBER_OF_MESSAGES: U8,
    Tag.CALLBACK_NUM: OCTETS,
    Tag.DPF_RESULT: U8,
    Tag.SET_DPF: U8,
    Tag.MS_AVAILABILITY_STATUS: U8,
    Tag.NETWORK_ERROR_CODE: OCTETS,
    Tag.MESSAGE_PAYLOAD: OCTETS,
    Tag.DELIVERY_FAILURE_REASON: U8,
    Tag.MORE_MESSAGES_TO_SEND: U8,
    Tag.MESSAGE_STATE: U8,
    Tag.USSD_SERVICE_OP: U8,
    Tag.DISPLAY_TIME: U8,
    Tag.SMS_SIGNAL: U16,
    Tag.MS_VALIDITY: U8,
    Tag.ALERT_ON_MESSAGE_DELIVERY: OCTETS,
    Tag.ITS_REPLY_TYPE: U8,
    Tag.ITS_SESSION_INFO: OCTETS,
}

#: SMPP 3.4's tables disagree on source_telematics_id (1 octet in 5.3.2.9's value, 2
#: in its length; smpplib sends 2): read either, write 1.
_EITHER_WIDTH = frozenset({Tag.SOURCE_TELEMATICS_ID})

_INT_FORMATS = {U8: ">B", U16: ">H", U32: ">I"}


def decode_tlvs(data: bytes, pos: int, end: int) -> dict[int, TlvValue]:
    """Decode the TLV stream ``data[pos:end]``; a later duplicate of a tag wins."""
    tlvs: dict[int, TlvValue] = {}
    kinds = TLV_KINDS
    while pos < end:
        if end - pos < 4:
            raise SmppError(Status.ESME_RINVOPTPARSTREAM, f"{end - pos} stray bytes after TLVs")
        tag, length = unpack_from(">HH", data, pos)
        pos += 4
        stop = pos + length
        if stop > end:
            raise SmppError(
                Status.ESME_RINVOPTPARSTREAM,
                f"TLV 0x{tag:04X} length {length} runs past the PDU",
            )
        kind = kinds.get(tag, OCTETS)
        if kind == OCTETS:
            tlvs[tag] = data[pos:stop]
        elif kind == CSTR:
            raw = data[pos:stop]
            if raw.endswith(b"\0"):
                raw = raw[:-1]
            tlvs[tag] = raw.decode("latin-1")
        else:
            if length != kind and not (tag in _EITHER_WIDTH and 1 <= length <= 2):
                raise SmppError(
                    Status.ESME_RINVPARLEN,
                    f"TLV 0x{tag:04X} has length {length}, expected {kind}",
                )
            tlvs[tag] = int.from_bytes(data[pos:stop], "big")
        pos = stop
    return tlvs


def encode_tlvs(tlvs: dict[int, TlvValue]) -> bytes:
    """Encode TLVs in insertion order."""
    out = []
    for tag, value in tlvs.items():
        raw = encode_tlv_value(tag, value)
        out.append(pack(">HH", tag, len(raw)))
        out.append(raw)
    return b"".join(out)


def encode_tlv_value(tag: int, value: TlvValue) -> bytes:
    kind = TLV_KINDS.get(tag, OCTETS)
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1") + b"\0"
    if kind in _INT_FORMATS:
        if value > 0xFF and tag in _EITHER_WIDTH:
            return pack(">H", value)
        return pack(_INT_FORMATS[kind], value)
    raise TypeError(f"TLV 0x{tag:04X} needs bytes or str, got int {value}")
