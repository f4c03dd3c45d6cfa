"""The sans-IO USSD session rules and the SMPP TLV mapping, with time passed in."""

from __future__ import annotations

import pytest

from simulator.config import AddressingConfig, UssdConfig, UssdEndBy
from simulator.smpp.constants import Status, Tag, UssdServiceOp
from simulator.smpp.errors import SmppError
from simulator.smpp.pdu import SubmitSm, decode_pdu
from simulator.smpp.text import encode_ucs2
from simulator.ussd.mapping import (
    decode_session_info,
    encode_session_info,
    network_pdu,
    read_submit,
)
from simulator.ussd.session import Release, ScreenStatus, Turn, UssdSessions, screen_fits

A, B = "201001234567", "201201234567"
CFG = UssdConfig(session_timeout=180, app_timeout=10, screen_timeout=60)


def test_a_dialogue_alternates_turns_and_completes() -> None:
    s = UssdSessions(CFG)
    session = s.dial(A, "*1442#", 0.0)
    assert session is not None and session.turn == "app"
    assert s.screen(A, "1 status\n2 payment", False, 1.0)[0] is ScreenStatus.SHOWN
    assert session.turn is Turn.USER
    assert s.answer(A, "2", 5.0) is session and str(session.turn) == "app"
    assert s.screen(A, "Next payment 15/1", True, 5.5)[0] is ScreenStatus.FINAL
    assert s.get(A) is None and session.release is Release.COMPLETED
    assert session.inputs == ["2"] and session.steps == 2
    assert s.counters.released["completed"] == 1 and s.counters.open_total == 0


def test_one_session_per_subscriber_others_unaffected() -> None:
    s = UssdSessions(CFG)
    assert s.dial(A, "*1442#", 0.0) is not None
    assert s.dial(A, "*1442#", 1.0) is None
    assert s.counters.busy == 1
    assert s.dial(B, "*1442#", 1.0) is not None
    assert len(s) == 2


def test_platform_too_slow_is_released_at_app_timeout_not_before() -> None:
    s = UssdSessions(CFG)
    s.dial(A, "*1442#", 0.0)
    assert s.next_due() == 10.0
    assert s.expire(9.99) == []
    (released,) = s.expire(10.0)
    assert released.release is Release.APP_TIMEOUT and s.get(A) is None
    # a screen arriving after the release finds no session
    assert s.screen(A, "late", False, 10.5)[0] is ScreenStatus.NO_SESSION


def test_subscriber_too_slow_is_released_at_screen_timeout() -> None:
    s = UssdSessions(CFG)
    s.dial(A, "*1442#", 0.0)
    s.screen(A, "menu", False, 2.0)
    assert s.expire(61.9) == []
    (released,) = s.expire(62.0)
    assert released.release is Release.SCREEN_TIMEOUT
    assert s.answer(A, "1", 63.0) is None


def test_session_timer_caps_the_whole_dialogue() -> None:
    s = UssdSessions(CFG)
    s.dial(A, "*1442#", 0.0)
    t = 0.0
    while t < 170:  # each step well within both turn timeouts
        assert s.screen(A, "menu", False, t + 1)[0] is ScreenStatus.SHOWN
        assert s.answer(A, "1", t + 30) is not None
        t += 30
    assert s.expire(179.9) == []
    (released,) = s.expire(180.0)
    assert released.release is Release.SESSION_TIMEOUT


def test_answered_turns_leave_only_stale_timers() -> None:
    s = UssdSessions(CFG)
    s.dial(A, "*1442#", 0.0)
    s.screen(A, "menu", False, 1.0)
    s.answer(A, "1", 2.0)
    s.screen(A, "bye", True, 3.0)
    assert s.expire(1000.0) == [] and s.next_due() is None


def test_screens_out_of_turn_wrong_number_or_too_long_are_refused() -> None:
    s = UssdSessions(CFG)
    session = s.dial(A, "*1442#", 0.0)
    assert session is not None
    assert s.screen(A, "x", False, 0.1, number=session.number + 1)[0] is ScreenStatus.WRONG_SESSION
    assert s.screen(A, "x" * 183, False, 0.1)[0] is ScreenStatus.TOO_LONG
    assert s.screen(A, "x" * 182, False, 0.1)[0] is ScreenStatus.SHOWN
    assert s.screen(A, "again", False, 0.2)[0] is ScreenStatus.NOT_AWAITED
    assert s.counters.screens_refused == 3


def test_screen_limit_counts_septets_and_ucs2_units() -> None:
    assert screen_fits("a" * 182) and not screen_fits("a" * 183)
    assert not screen_fits("{" * 92)  # an extension character takes two septets
    assert screen_fits("ك" * 80) and not screen_fits("ك" * 81)


def test_session_numbers_wrap_at_one_octet() -> None:
    s = UssdSessions(CFG)
    numbers = []
    for i in range(257):
        session = s.dial(f"2010{i:08d}", "*1442#", 0.0)
        assert session is not None
        numbers.append(session.number)
    assert numbers[:3] == [0, 1, 2] and numbers[255] == 255 and numbers[256] == 0


# --- SMPP mapping -----------------------------------------------------------------------------


def test_session_info_round_trip_and_bad_length() -> None:
    assert encode_session_info(7, 3, True) == b"\x07\x07"
    assert decode_session_info(b"\x07\x07") == (7, 3, True)
    with pytest.raises(SmppError) as err:
        decode_session_info(b"\x07")
    assert err.value.status == Status.ESME_RINVPARLEN


def _submit(op: int | None, info: bytes | None, text: str = "menu") -> SubmitSm:
    tlvs: dict[int, int | str | bytes] = {}
    if op is not None:
        tlvs[Tag.USSD_SERVICE_OP] = op
    if info is not None:
        tlvs[Tag.ITS_SESSION_INFO] = info
    return SubmitSm(destination_addr=A, short_message=text.encode(), tlvs=tlvs)


@pytest.mark.parametrize(
    ("op", "info", "status"),
    [
        (UssdServiceOp.PSSR_INDICATION, b"\x00\x00", Status.ESME_RINVOPTPARAMVAL),
        (7, b"\x00\x00", Status.ESME_RINVOPTPARAMVAL),
        (UssdServiceOp.USSR_REQUEST, None, Status.ESME_RMISSINGOPTPARAM),
        (UssdServiceOp.USSR_REQUEST, b"\x00\x00\x00", Status.ESME_RINVPARLEN),
    ],
)
def test_bad_ussd_submits_name_the_right_error(op: int, info: bytes | None, status: int) -> None:
    with pytest.raises(SmppError) as err:
        read_submit(_submit(op, info), CFG)
    assert err.value.status == status


def test_end_of_session_per_operator_convention() -> None:
    ussr_end_bit = _submit(UssdServiceOp.USSR_REQUEST, encode_session_info(1, 0, True))
    pssr = _submit(UssdServiceOp.PSSR_RESPONSE, encode_session_info(1, 0, False))
    by_op = CFG
    by_bit = UssdConfig(end_by=UssdEndBy.SESSION_INFO)
    either = UssdConfig(end_by=UssdEndBy.EITHER)
    assert not read_submit(ussr_end_bit, by_op).final and read_submit(pssr, by_op).final
    assert read_submit(ussr_end_bit, by_bit).final and not read_submit(pssr, by_bit).final
    assert read_submit(ussr_end_bit, either).final and read_submit(pssr, either).final
    # no session info is fine when the convention carries none
    assert read_submit(_submit(2, None), UssdConfig(session_info=False)).number is None


def test_ucs2_screen_is_decoded() -> None:
    pdu = SubmitSm(
        destination_addr=A,
        data_coding=8,
        short_message=encode_ucs2("١ حالتي"),
        tlvs={Tag.USSD_SERVICE_OP: 2, Tag.ITS_SESSION_INFO: b"\x05\x00"},
    )
    screen = read_submit(pdu, CFG)
    assert screen.text == "١ حالتي" and screen.number == 5 and not screen.final


def test_indication_pdu_survives_the_codec_with_its_tlvs() -> None:
    pdu = network_pdu(
        CFG,
        AddressingConfig(),
        msisdn=A,
        service_code="*1442#",
        op=UssdServiceOp.PSSR_INDICATION,
        text="*1442#",
        number=9,
        seq=0,
    )
    back = decode_pdu(pdu.encode())
    assert back.tlvs[Tag.USSD_SERVICE_OP] == 1
    assert back.tlvs[Tag.ITS_SESSION_INFO] == b"\x09\x00"
    assert back.destination_addr == "1442" and back.short_message == b"*1442#"  # type: ignore[attr-defined]
    assert back.service_type == "USSD"  # type: ignore[attr-defined]


def test_ussd_service_op_of_two_octets_is_rinvparlen_in_the_codec() -> None:
    raw = bytearray(_submit(2, b"\x00\x00").encode())
    # rewrite TLV 0x0501 (length 1) into length 2 with one more octet
    i = raw.index(b"\x05\x01\x00\x01")
    raw[i : i + 5] = b"\x05\x01\x00\x02\x00\x02"
    raw[0:4] = len(raw).to_bytes(4, "big")
    with pytest.raises(SmppError) as err:
        decode_pdu(bytes(raw))
    assert err.value.status == Status.ESME_RINVPARLEN


def test_figures_from_two_snapshots() -> None:
    from dataclasses import dataclass, field

    from simulator.smsc.stats import LatencyHistogram
    from simulator.ussd.figures import figures, screen_latency, snapshot

    @dataclass
    class Net:
        sessions: UssdSessions
        screen_latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    net = Net(UssdSessions(CFG))
    s = net.sessions
    s.dial("old", "*1442#", 0.0)
    s.screen("old", "bye", True, 0.5)  # ended before the window: not counted
    start = snapshot([net], 1.0)
    for i in range(10):
        s.dial(f"n{i}", "*1442#", 1.0)
        s.screen(f"n{i}", "menu", False, 1.5)
    for i in range(6):
        s.answer(f"n{i}", "1", 2.0)
        s.screen(f"n{i}", "done", True, 2.5)
    s.abandon("n6", 3.0)
    s.expire(1.5 + 60)  # n7..n9 never answered
    net.screen_latency.observe(0.2)
    f = figures(start, snapshot([net], 11.0))
    assert f.sessions_per_s == 1.0 and f.steps_per_s == 1.6
    assert f.completion_ratio == 0.6 and f.abandoned == 1 and f.timed_out == 3
    assert f.platform_failed == 0 and f.open == 0
    assert screen_latency([net, net]).count == 2
