"""All configuration in one typed place: the SMSC's operators, accounts and policies.

``smsim smsc`` runs on the defaults below with no file at all (one operator on
127.0.0.1:2775, account ``rapidpro``/``secret``); ``--config FILE`` reads TOML whose
tables mirror these models. Validation errors name the file and the field.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SMPP_PORT = 2775
SHORT_CODE = "1442"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MessageIdFormat(StrEnum):
    """How message ids look: Kannel's ``msg-id-type`` must be set to match."""

    DECIMAL = "decimal"
    HEX = "hex"
    UUID = "uuid"


class ReceiptIdFormat(StrEnum):
    """The id inside receipts; real SMSCs sometimes answer in hex and receipt in decimal."""

    SAME = "same"
    DECIMAL = "decimal"
    HEX = "hex"


class ReceiptConfig(_Model):
    """The fixed receipt policy: every message reaches ``stat`` after ``delay`` seconds."""

    delay: Annotated[float, Field(ge=0)] = 0.2
    stat: str = "DELIVRD"
    err: Annotated[int, Field(ge=0, le=999)] = 0
    #: Add receipted_message_id / message_state / network_error_code TLVs to receipts.
    tlvs: bool = True

    @model_validator(mode="after")
    def _known_stat(self) -> ReceiptConfig:
        from simulator.smpp.constants import STAT_STATE

        if self.stat not in STAT_STATE:
            raise ValueError(f"stat {self.stat!r} is not one of {sorted(STAT_STATE)}")
        return self


class AddressingConfig(_Model):
    """TON/NPI the operator uses on deliver_sm (MO and receipts); operators differ."""

    short_code_ton: Annotated[int, Field(ge=0, le=6)] = 3
    short_code_npi: Annotated[int, Field(ge=0, le=18)] = 0
    handset_ton: Annotated[int, Field(ge=0, le=6)] = 1
    handset_npi: Annotated[int, Field(ge=0, le=18)] = 1


class AccountConfig(_Model):
    system_id: Annotated[str, Field(min_length=1, max_length=15)] = "rapidpro"
    password: Annotated[str, Field(max_length=8)] = "secret"
    #: Most simultaneous binds of this account (all bind types together).
    max_binds: Annotated[int, Field(ge=1)] = 16
    #: Submits per second across all the account's binds; 0 = unlimited.
    tps: Annotated[float, Field(ge=0)] = 0
    #: Submits one bind may have unanswered before ESME_RMSGQFUL.
    window: Annotated[int, Field(ge=1)] = 100
    #: Client IPs allowed to bind (empty: any).
    allowed_ips: list[str] = Field(default_factory=list)
    #: Short codes whose MO this account receives.
    short_codes: list[str] = Field(default_factory=lambda: [SHORT_CODE])


class OperatorConfig(_Model):
    name: str = "egypt"
    host: str = DEFAULT_HOST
    port: Annotated[int, Field(ge=0, le=65535)] = DEFAULT_SMPP_PORT
    #: The system_id the SMSC names itself with in bind responses.
    smsc_system_id: Annotated[str, Field(max_length=15)] = "smsim"
    accounts: list[AccountConfig] = Field(default_factory=lambda: [AccountConfig()])
    message_id_format: MessageIdFormat = MessageIdFormat.DECIMAL
    receipt_id_format: ReceiptIdFormat = ReceiptIdFormat.SAME
    addressing: AddressingConfig = Field(default_factory=AddressingConfig)
    receipt: ReceiptConfig = Field(default_factory=ReceiptConfig)
    #: Seconds to hold each response (simulates a slow SMSC); 0 answers at once.
    response_latency: Annotated[float, Field(ge=0)] = 0
    #: Largest command_length accepted; larger gets generic_nack and a closed connection.
    max_pdu_size: Annotated[int, Field(ge=64, le=16 * 1024 * 1024)] = 65536
    #: Requests the SMSC keeps unanswered on one bind (deliver_sm to the client).
    deliver_window: Annotated[int, Field(ge=1)] = 10
    enquire_link_interval: Annotated[float, Field(gt=0)] | None = 30.0
    inactivity_timeout: Annotated[float, Field(gt=0)] | None = 300.0
    response_timeout: Annotated[float, Field(gt=0)] = 30.0
    #: Seconds before a deliver_sm refused or unanswered by the client is tried again.
    redelivery_delay: Annotated[float, Field(ge=0)] = 1.0
    #: Concatenation for long MO: udh8, udh16, sar or payload.
    mo_concat: str = "udh8"

    @model_validator(mode="after")
    def _unique_accounts(self) -> OperatorConfig:
        ids = [a.system_id for a in self.accounts]
        if len(set(ids)) != len(ids):
            raise ValueError(f"operator {self.name}: duplicate system_id in accounts")
        if self.mo_concat not in ("udh8", "udh16", "sar", "payload"):
            raise ValueError("mo_concat must be one of udh8, udh16, sar, payload")
        return self


class SmscConfig(_Model):
    operators: list[OperatorConfig] = Field(default_factory=lambda: [OperatorConfig()])
    #: Reassembled MT messages kept for inspection (tests, demo, the control API).
    mt_log_size: Annotated[int, Field(ge=0)] = 10_000
    #: Seconds an incomplete concatenated MT waits for its missing parts.
    reassembly_timeout: Annotated[float, Field(gt=0)] = 300.0
    #: Use uvloop when it is installed.
    uvloop: bool = True

    @model_validator(mode="after")
    def _unique_operators(self) -> SmscConfig:
        names = [o.name for o in self.operators]
        if len(set(names)) != len(names):
            raise ValueError("duplicate operator names")
        ports = [(o.host, o.port) for o in self.operators if o.port]
        if len(set(ports)) != len(ports):
            raise ValueError("two operators listen on the same host and port")
        return self


class ConfigError(Exception):
    """A configuration file that can't be used; the message names the file and field."""


def load_config(path: str | Path | None) -> SmscConfig:
    """Read ``path`` (TOML) or return the defaults when ``path`` is None."""
    if path is None:
        return SmscConfig()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        return SmscConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"{path}: {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc
