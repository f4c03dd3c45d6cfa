"""Configuration: defaults, the shipped example, and errors that name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.clock import SimClock
from simulator.config import ConfigError, MessageIdFormat, ReceiptIdFormat, load_config
from simulator.smsc.ids import MessageIds, receipt_id

ROOT = Path(__file__).resolve().parent.parent


def test_no_file_means_defaults() -> None:
    cfg = load_config(None)
    assert cfg.operators[0].port == 2775


def test_example_with_four_operators_loads() -> None:
    cfg = load_config(ROOT / "docs" / "examples" / "operators.toml")
    assert [o.name for o in cfg.operators] == ["vodafone", "orange", "etisalat", "we"]
    assert cfg.operators[1].message_id_format is MessageIdFormat.HEX
    assert cfg.operators[3].addressing.short_code_ton == 6
    assert cfg.operators[0].addressing.submit_dest_ton == [1]
    assert cfg.operators[3].addressing.submit_source_ton == [6]
    assert cfg.operators[2].addressing.submit_source_ton == []  # Etisalat takes any


def test_error_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[operators]]\nport = 99999\n[operators.receipt]\nstat = 'GONE'\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    text = str(err.value)
    assert f"{bad}: operators.0.port" in text
    assert "operators.0.receipt" in text and "GONE" in text


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text("[[operators]]\nprot = 2775\n")
    with pytest.raises(ConfigError, match=r"operators\.0\.prot"):
        load_config(bad)


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "syntax.toml"
    bad.write_text("[[operators]\n")
    with pytest.raises(ConfigError, match=r"syntax\.toml"):
        load_config(bad)


def test_duplicate_ports_refused(tmp_path: Path) -> None:
    bad = tmp_path / "dup.toml"
    bad.write_text("[[operators]]\nname='a'\n[[operators]]\nname='b'\n")
    with pytest.raises(ConfigError, match="same host and port"):
        load_config(bad)


def test_message_ids_are_unique_and_formatted() -> None:
    dec = MessageIds(MessageIdFormat.DECIMAL, start=41)
    assert [dec.next(), dec.next()] == ["41", "42"]
    hexa = MessageIds(MessageIdFormat.HEX, start=255)
    assert hexa.next() == "ff"
    uid = MessageIds(MessageIdFormat.UUID, start=1).next()
    assert uid == "00000000-0000-0000-0000-000000000001"
    assert receipt_id("ff", MessageIdFormat.HEX, ReceiptIdFormat.DECIMAL) == "255"
    assert receipt_id("255", MessageIdFormat.DECIMAL, ReceiptIdFormat.HEX) == "ff"
    assert receipt_id("255", MessageIdFormat.DECIMAL, ReceiptIdFormat.SAME) == "255"


def test_sim_clock_runs_scaled() -> None:
    t = [100.0]
    clock = SimClock(time_scale=60.0, start=1_000_000.0, monotonic=lambda: t[0])
    t[0] += 2.0
    assert clock.now() == pytest.approx(1_000_120.0)
    assert clock.to_real(3600) == pytest.approx(60.0)
    with pytest.raises(ValueError):
        SimClock(time_scale=0)
