"""All configuration in one typed place: the SMSC's operators, accounts and policies.

``smsim smsc`` runs on the defaults below with no file at all (one operator on
127.0.0.1:2775, account ``rapidpro``/``secret``); ``--config FILE`` reads TOML whose
tables mirror these models. Validation errors name the file and the field.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from simulator.smpp.constants import Status, status_code

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


_Ton = Annotated[int, Field(ge=0, le=6)]
_Npi = Annotated[int, Field(ge=0, le=18)]


class AddressingConfig(_Model):
    """TON/NPI the operator uses on deliver_sm (MO and receipts), and the TON/NPI it
    expects on submits; operators differ."""

    short_code_ton: _Ton = 3
    short_code_npi: _Npi = 0
    handset_ton: _Ton = 1
    handset_npi: _Npi = 1
    #: TON/NPI a submit's source_addr (the short code) may carry, else ESME_RINVSRCTON /
    #: ESME_RINVSRCNPI; empty: any.
    submit_source_ton: list[_Ton] = Field(default_factory=list)
    submit_source_npi: list[_Npi] = Field(default_factory=list)
    #: TON/NPI a submit's destination (a handset) may carry, else ESME_RINVDSTTON /
    #: ESME_RINVDSTNPI (per destination in submit_multi_resp); empty: any.
    submit_dest_ton: list[_Ton] = Field(default_factory=list)
    submit_dest_npi: list[_Npi] = Field(default_factory=list)


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
    #: ``host:port`` of an ESME that listens for outbind (SMPP 3.4 2.2.1): while receipts
    #: or MO wait and no receiver of this account is bound, the SMSC connects there,
    #: sends outbind (its smsc_system_id and this account's password) and serves the
    #: bind_receiver that follows. Empty: never.
    outbind: str = ""
    #: Seconds between outbind attempts while the ESME can't be reached or doesn't bind.
    outbind_retry: Annotated[float, Field(gt=0)] = 5.0
    #: SHA-256 fingerprints (hex, colons allowed) of the client certificates this account
    #: binds with. Empty: any client. Set: binds only over TLS, with a client certificate
    #: (``tls.client_ca_file`` on the operator) that is one of these; others get
    #: ESME_RBINDFAIL.
    tls_client_cert_sha256: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _outbind_address(self) -> AccountConfig:
        if self.outbind:
            host, sep, port = self.outbind.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"outbind {self.outbind!r} is not host:port")
        return self

    @field_validator("tls_client_cert_sha256")
    @classmethod
    def _fingerprints(cls, value: list[str]) -> list[str]:
        pins = [p.replace(":", "").strip().lower() for p in value]
        for pin in pins:
            if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
                raise ValueError(f"{pin!r} is not a SHA-256 fingerprint in hex")
        return pins

    @property
    def outbind_address(self) -> tuple[str, int] | None:
        if not self.outbind:
            return None
        host, _, port = self.outbind.rpartition(":")
        return host.strip("[]"), int(port)


class UssdEndBy(StrEnum):
    """How the platform's submit_sm says "last screen": operators differ."""

    #: ussd_service_op PSSR response (17) or PSSD response (16) ends; USSR request (2)
    #: continues (the 3GPP mapping most SMSCs follow).
    SERVICE_OP = "service_op"
    #: The end-of-session bit of its_session_info ends, whatever the service op.
    SESSION_INFO = "session_info"
    #: Either says so.
    EITHER = "either"


class UssdDialIn(StrEnum):
    """Where the PSSR indication carries what the subscriber dialled."""

    #: short_message holds "*1442#", destination_addr the short code (1442).
    SHORT_MESSAGE = "short_message"
    #: short_message is empty; destination_addr is "*1442#" as dialled.
    DESTINATION = "destination"


class UssdTransport(StrEnum):
    """How the network reaches the USSD application."""

    SMPP = "smpp"  # deliver_sm / submit_sm on the accounts' binds
    HTTP = "http"  # an aggregator's callback POSTs to ``url`` (CON / END answers)


class UssdConfig(_Model):
    """USSD over SMPP on one operator: the network's limits and its TLV conventions.

    The timers are the network's, in real seconds (like the SMPP keep-alive timers): a
    simulated person's think time is on the simulated clock and is converted.
    """

    enabled: bool = True
    #: Service codes this operator routes to the accounts' binds (as dialled).
    service_codes: list[str] = Field(default_factory=lambda: ["*1442#"])
    #: The whole dialogue may last this long, then the network releases it (GSM: 180 s).
    session_timeout: Annotated[float, Field(gt=0)] = 180.0
    #: The platform must answer each indication / confirm within this, else the network
    #: releases the session ("platform too slow").
    app_timeout: Annotated[float, Field(gt=0)] = 10.0
    #: The handset must answer each screen within this, else the session is released.
    screen_timeout: Annotated[float, Field(gt=0)] = 60.0
    #: Characters on one screen in GSM 7-bit (160 octets: 182 septets; an extension
    #: character counts two) and in UCS-2 (160 octets: 80 characters, Arabic).
    max_screen_chars: Annotated[int, Field(ge=1, le=182)] = 182
    max_screen_ucs2_chars: Annotated[int, Field(ge=1, le=80)] = 80
    #: What the subscriber's input comes back as: USSR confirm (18), or PSSR indication
    #: (1) again on SMSCs that send every step as an indication.
    reply_op: Annotated[int, Field(ge=0, le=19)] = 18
    end_by: UssdEndBy = UssdEndBy.SERVICE_OP
    dial_in: UssdDialIn = UssdDialIn.SHORT_MESSAGE
    #: Send its_session_info on deliver_sm and require it on submit_sm; off, sessions are
    #: told apart by the handset alone.
    session_info: bool = True
    #: service_type on deliver_sm (some SMSCs say "USSD").
    service_type: Annotated[str, Field(max_length=5)] = "USSD"
    #: A release (timeout, abandon) is told to the platform as a PSSR indication with the
    #: end bit set and empty text; off, the platform is not told.
    notify_release: bool = True
    transport: UssdTransport = UssdTransport.SMPP
    #: HTTP transport: the application's callback URL (Africa's Talking style).
    url: str = ""
    #: HTTP transport: ``networkCode`` sent (MCC+MNC; Egypt 602: 01 Orange, 02 Vodafone,
    #: 03 Etisalat, 04 WE).
    network_code: str = "60202"

    @model_validator(mode="after")
    def _reply_op(self) -> UssdConfig:
        if self.reply_op not in (1, 18):
            raise ValueError("reply_op must be 18 (USSR confirm) or 1 (PSSR indication)")
        if self.transport is UssdTransport.HTTP and not self.url.startswith(
            ("http://", "https://")
        ):
            raise ValueError("transport http needs url = http(s)://...")
        return self


class TlsConfig(_Model):
    """SMPP over TLS: a second listener of the operator, beside the plain one.

    Real operators put SMPP behind TLS (or a VPN) once it leaves their network; a
    gateway's TLS settings are tested here, not only its SMPP.
    """

    #: Port of the TLS listener (on the operator's host); None: no TLS listener, 0: any.
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    #: PEM certificate chain and private key; both empty: a self-signed certificate for
    #: ``hostnames`` is generated (once) into ``state_dir`` and its path logged.
    cert_file: str = ""
    key_file: str = ""
    #: Where generated certificates are kept; empty: $XDG_STATE_HOME/smsim/tls
    #: (~/.local/state/smsim/tls).
    state_dir: str = ""
    #: Names and addresses the generated certificate is valid for.
    hostnames: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1", "::1"])
    #: Seconds a client has to finish the TLS handshake before it is dropped.
    handshake_timeout: Annotated[float, Field(gt=0)] = 10.0
    #: Mutual TLS: PEM file of the CA certificates client certificates must chain to.
    #: Empty: no client certificate is asked for.
    client_ca_file: str = ""
    #: With ``client_ca_file``: a client that presents no certificate fails the
    #: handshake. Off: one is asked for and verified when presented (an account's
    #: ``tls_client_cert_sha256`` can still insist).
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("tls: cert_file and key_file go together")
        if self.require_client_cert and not self.client_ca_file:
            raise ValueError("tls: require_client_cert needs client_ca_file")
        return self


class SecurityConfig(_Model):
    """What one operator's listeners take from clients before refusing them."""

    #: Wrong passwords (and unknown system_ids, counted against the source IP) within
    #: ``bind_failure_window`` seconds that lock the source IP and the system_id out...
    bind_failures: Annotated[int, Field(ge=1)] = 5
    bind_failure_window: Annotated[float, Field(gt=0)] = 60.0
    #: Connections from one IP closed for junk before a bind (``errors_before_bind`` used
    #: up, a command_length out of range) within ``bind_failure_window`` seconds that lock
    #: the IP out too; 0: junk never locks. A client that binds forgets its IP's count.
    junk_connections: Annotated[int, Field(ge=0)] = 5
    #: ...for this many seconds. 0: never lock. A locked IP's new connections are closed
    #: as they are accepted (nothing read, no log line but one when the lock begins and
    #: one when it ends); a locked system_id's binds are answered ESME_RBINDFAIL.
    lockout: Annotated[float, Field(ge=0)] = 300.0
    lockout_per_ip: bool = True
    #: Off by default: on, anyone who sends ``bind_failures`` wrong passwords for the
    #: platform's system_id locks the real platform out of new binds.
    lockout_per_system_id: bool = False
    #: Open connections one client IP may hold on this operator (plain and TLS
    #: together); 0: no limit. The n+1th is closed at once.
    max_connections_per_ip: Annotated[int, Field(ge=0)] = 0
    #: Seconds a connection may stay open without a successful bind; 0: no limit.
    bind_timeout: Annotated[float, Field(ge=0)] = 0
    #: Protocol errors and refused requests a connection may make before it binds: the
    #: last one closes it (junk costs one connection, not a log line per PDU). 0: no limit.
    errors_before_bind: Annotated[int, Field(ge=0)] = 3


class OperatorConfig(_Model):
    name: str = "egypt"
    host: str = DEFAULT_HOST
    port: Annotated[int, Field(ge=0, le=65535)] = DEFAULT_SMPP_PORT
    #: The system_id the SMSC names itself with in bind responses.
    smsc_system_id: Annotated[str, Field(max_length=15)] = "smsim"
    #: The SMSC's local time zone (IANA name): receipts' submit and done dates are in it
    #: (SMPP 3.4 Appendix B), daylight saving time included.
    timezone: str = "Africa/Cairo"
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
    #: USSD over SMPP: limits and TLV conventions (``*1442#``).
    ussd: UssdConfig = Field(default_factory=UssdConfig)
    #: SMPP over TLS (a second listener) and its certificate.
    tls: TlsConfig = Field(default_factory=TlsConfig)
    #: Bind lock-out, connections per client IP, bind timeout.
    security: SecurityConfig = Field(default_factory=SecurityConfig)

    @model_validator(mode="after")
    def _unique_accounts(self) -> OperatorConfig:
        ids = [a.system_id for a in self.accounts]
        if len(set(ids)) != len(ids):
            raise ValueError(f"operator {self.name}: duplicate system_id in accounts")
        if self.mo_concat not in ("udh8", "udh16", "sar", "payload"):
            raise ValueError("mo_concat must be one of udh8, udh16, sar, payload")
        try:
            ZoneInfo(self.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone") from None
        return self


def _shares(value: dict[str, float], what: str) -> dict[str, float]:
    total = sum(value.values())
    if not value or any(v < 0 for v in value.values()) or abs(total - 1.0) > 1e-6:
        raise ValueError(f"{what}: shares must be >= 0 and sum to 1 (got {total:g})")
    return value


class PopulationConfig(_Model):
    """Who the subscribers are. Every attribute of a number derives from (seed, MSISDN)."""

    #: Put simulated people behind the numbers (``smsim smsc`` turns this on unless told
    #: ``--no-subscribers``); off, every message gets the operator's fixed receipt policy.
    enabled: bool = False

    #: Takaful and Karama lines: one SIM per beneficiary family.
    size: Annotated[int, Field(ge=1, le=400_000_000)] = 3_500_000
    seed: int = 1442
    #: Share of the population on each operator's prefix (010, 011, 012, 015).
    operator_shares: dict[str, float] = Field(
        default_factory=lambda: {"vodafone": 0.40, "orange": 0.25, "etisalat": 0.22, "we": 0.13}
    )
    #: Numbers moved to another operator (number portability): the prefix misleads.
    ported_share: Annotated[float, Field(ge=0, le=1)] = 0.03
    #: Numbers in the list that are not in service: UNDELIV.
    unassigned_share: Annotated[float, Field(ge=0, le=1)] = 0.02
    #: Lines barred by the operator: REJECTD.
    barred_share: Annotated[float, Field(ge=0, le=1)] = 0.005
    female_share: Annotated[float, Field(ge=0, le=1)] = 0.75
    literacy: Annotated[float, Field(ge=0, le=1)] = 0.65
    script_mix: dict[str, float] = Field(
        default_factory=lambda: {"arabic": 0.70, "franco": 0.22, "english": 0.08}
    )
    #: Of those writing Arabic script, the share typing Arabic-Indic digits (١ not 1).
    arabic_indic_digits: Annotated[float, Field(ge=0, le=1)] = 0.55
    responsiveness_mix: dict[str, float] = Field(
        default_factory=lambda: {"eager": 0.20, "normal": 0.45, "rare": 0.20, "never": 0.15}
    )
    delay_mix: dict[str, float] = Field(
        default_factory=lambda: {"fast": 0.35, "normal": 0.45, "slow": 0.20}
    )
    availability_mix: dict[str, float] = Field(
        default_factory=lambda: {"always": 0.62, "night_off": 0.25, "often_off": 0.10, "dead": 0.03}
    )
    opted_out_share: Annotated[float, Field(ge=0, le=1)] = 0.01
    takaful_share: Annotated[float, Field(ge=0, le=1)] = 0.80
    karama_share: Annotated[float, Field(ge=0, le=1)] = 0.20
    #: Messages (MT and MO) kept for inspection, in one ring over all subscribers...
    history_size: Annotated[int, Field(ge=0)] = 1_000_000
    #: ...and at most this many of them per subscriber (``received`` / ``sent``).
    history_per_subscriber: Annotated[int, Field(ge=0, le=1000)] = 8
    #: SMSC listener (operator name in ``operators``) that carries the MO of each serving
    #: operator, when it is not named after it; unnamed and unmapped: the first listener.
    listeners: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_mixes(self) -> PopulationConfig:
        from simulator.subscribers.profile import (
            Availability,
            DelayProfile,
            Operator,
            Responsiveness,
            Script,
        )

        for name, mix, enum in (
            ("operator_shares", self.operator_shares, Operator),
            ("script_mix", self.script_mix, Script),
            ("responsiveness_mix", self.responsiveness_mix, Responsiveness),
            ("delay_mix", self.delay_mix, DelayProfile),
            ("availability_mix", self.availability_mix, Availability),
        ):
            _shares(mix, name)
            unknown = set(mix) - {e.value for e in enum}
            if unknown:
                raise ValueError(f"{name}: unknown {sorted(unknown)}")
        unknown = set(self.listeners) - {e.value for e in Operator}
        if unknown:
            raise ValueError(f"listeners: unknown operators {sorted(unknown)}")
        return self


class DeliveryConfig(_Model):
    """How the network delivers MT to handsets (simulated seconds)."""

    #: Median network delay to a handset that is on, and its spread (lognormal sigma).
    network_delay: Annotated[float, Field(gt=0)] = 3.0
    network_delay_sigma: Annotated[float, Field(ge=0)] = 0.6
    #: SMSC retry schedule for a handset that is off: seconds after submission.
    retry_schedule: list[float] = Field(
        default_factory=lambda: [
            60.0,
            300.0,
            900.0,
            1800.0,
            3600.0,
            7200.0,
            14400.0,
            28800.0,
            57600.0,
            86400.0,
            172800.0,
        ]
    )
    #: Default validity period when the submit gives none (3 days).
    validity: Annotated[float, Field(gt=0)] = 3 * 86400
    #: Error codes in receipts (err:NNN) for the failure outcomes (GSM MAP causes).
    err_unassigned: int = 1  # unknown subscriber
    err_barred: int = 13  # call barred
    err_absent: int = 27  # absent subscriber (expired)


#: Relative unprompted MO activity by Cairo hour, 0..23.
_DAILY_SHAPE = (
    0.25, 0.12, 0.06, 0.04, 0.04, 0.08, 0.25, 0.6, 0.9, 1.0, 1.0, 1.0,
    1.0, 1.0, 0.95, 0.95, 1.0, 1.1, 1.2, 1.4, 1.8, 2.0, 1.5, 0.7,
)  # fmt: skip


class UssdBehaviourConfig(_Model):
    """How simulated people use a USSD menu (``simulator.ussd.people``), per screen."""

    #: Reading a screen and typing, simulated seconds: lognormal median and sigma; people
    #: who barely read take ``illiterate_factor`` times longer.
    think_median: Annotated[float, Field(gt=0)] = 7.0
    think_sigma: Annotated[float, Field(ge=0)] = 0.6
    illiterate_factor: Annotated[float, Field(ge=1)] = 1.8
    #: Shares of screens on which the subscriber cancels, walks away without answering
    #: (the network's screen timer releases it), goes back (when 0 is offered), or
    #: presses a key that is not an option.
    abandon_share: Annotated[float, Field(ge=0, le=1)] = 0.03
    silent_share: Annotated[float, Field(ge=0, le=1)] = 0.02
    back_share: Annotated[float, Field(ge=0, le=1)] = 0.06
    wrong_key_share: Annotated[float, Field(ge=0, le=1)] = 0.03
    #: Relative weights of the first menu's options (status, payment date,
    #: conditionality, volunteer, talk to us); options beyond the list weigh 1.
    first_choice: list[float] = Field(default_factory=lambda: [0.35, 0.35, 0.12, 0.08, 0.10])


class BehaviourConfig(_Model):
    """How subscribers answer; scenarios tune this (see simulator.subscribers.behaviour)."""

    #: Probability of replying to a question, by responsiveness.
    reply_probability: dict[str, float] = Field(
        default_factory=lambda: {"eager": 0.95, "normal": 0.6, "rare": 0.15, "never": 0.0}
    )
    #: Probability of a reply to a message that asks nothing (a thank-you, a question back).
    unprompted_reply_probability: Annotated[float, Field(ge=0, le=1)] = 0.03
    #: Chance a quiz answer is the right one when the answer key is known.
    knowledge: Annotated[float, Field(ge=0, le=1)] = 0.7
    #: Answer keys: a regex matched against a question's text -> the right option (1-based).
    answer_keys: dict[str, int] = Field(default_factory=dict)
    #: Shares of odd replies among replies: STOP / إلغاء, empty, nonsense, typo, long text.
    stop_share: Annotated[float, Field(ge=0, le=1)] = 0.01
    empty_share: Annotated[float, Field(ge=0, le=1)] = 0.01
    nonsense_share: Annotated[float, Field(ge=0, le=1)] = 0.02
    typo_share: Annotated[float, Field(ge=0, le=1)] = 0.03
    long_share: Annotated[float, Field(ge=0, le=1)] = 0.02
    #: Median reply delay (simulated seconds) and lognormal sigma, by delay profile.
    delay_median: dict[str, float] = Field(
        default_factory=lambda: {"fast": 20.0, "normal": 600.0, "slow": 4 * 3600.0}
    )
    delay_sigma: Annotated[float, Field(ge=0)] = 1.0
    #: Unprompted MO to 1442 (a keyword heard on TV), per subscriber per day, shaped by hour.
    spontaneous_per_day: Annotated[float, Field(ge=0)] = 0.0
    #: Relative unprompted activity for each Cairo hour 0..23 (only ratios matter): quiet
    #: at night, a peak after the evening TV slots.
    spontaneous_shape: list[float] = Field(default_factory=lambda: list(_DAILY_SHAPE))
    #: How people navigate USSD menus.
    ussd: UssdBehaviourConfig = Field(default_factory=UssdBehaviourConfig)

    @model_validator(mode="after")
    def _check_shape(self) -> BehaviourConfig:
        shape = self.spontaneous_shape
        if len(shape) != 24 or min(shape) < 0 or sum(shape) <= 0:
            raise ValueError("spontaneous_shape: 24 hourly weights, >= 0, not all zero")
        return self


DEFAULT_CONTROL_PORT = 8775


class ControlConfig(_Model):
    """The control API and Prometheus metrics, served from the SMSC process itself.

    Off for an ``SmscServer`` built in code (tests, the scenario runner); ``smsim smsc``
    turns it on unless the file says ``enabled = false`` or ``--control-port 0``.
    """

    enabled: bool = False
    host: str = DEFAULT_HOST
    port: Annotated[int, Field(ge=0, le=65535)] = DEFAULT_CONTROL_PORT
    #: Required as ``Authorization: Token <token>`` when set; when empty, env
    #: SMSIM_CONTROL_TOKEN, or one generated at start when ``host`` is not loopback.
    token: str = ""
    #: Serve /metrics (Prometheus text exposition).
    metrics: bool = True


class JournalConfig(_Model):
    """The message journal: what was accepted, receipted and injected, in checksummed
    binary frames, so ``smsim audit`` can prove after a run (or a crash) that nothing was
    lost, and a restarted SMSC recovers what it had not delivered.

    Off unless the file says so or ``smsim smsc --journal DIR``.
    """

    enabled: bool = False
    #: Directory of the journal files (created when missing).
    path: Path = Path("journal")
    #: Start a new file once the current one reaches this many bytes.
    rotate_bytes: Annotated[int, Field(ge=4096)] = 64 * 1024 * 1024
    #: Seconds between batches written by the journal's thread (the window a crash loses).
    flush_interval: Annotated[float, Field(gt=0, le=10)] = 0.1
    #: When written batches are forced to disk. Each batch reaches the kernel as it is
    #: written, which is what a ``kill -9`` of the SMSC cannot take away; the policy says
    #: what a crash of the machine may: ``interval`` (default): ``fdatasync`` at most every
    #: ``fsync_interval`` s (that long), a group commit as databases do it; ``batch``: each
    #: batch written ``O_DSYNC`` (nothing written is lost; a disk flush every
    #: ``flush_interval``); ``never``: whenever the OS flushes (~30 s on Linux).
    fsync: Literal["never", "interval", "batch"] = "interval"
    fsync_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    #: At start, queue again what the journal in ``path`` says an earlier run accepted
    #: and never delivered (receipts, MO), for the next receiver bound.
    recover: bool = True


class FaultKind(StrEnum):
    """What an operator's SMSC does wrong (``FaultRule.kind``)."""

    #: A share of submits (submit_sm, data_sm, submit_multi) refused with ``status``:
    #: ESME_RTHROTTLED storms, ESME_RSYSERR / ESME_RMSGQFUL bursts, any chosen status.
    SUBMIT_ERROR = "submit_error"
    #: Binds refused with ``status`` (default ESME_RBINDFAIL) while the rule is on.
    BIND_REFUSE = "bind_refuse"
    #: At ``start`` (and each ``every`` seconds): drop binds, with an unbind or without.
    BIND_DROP = "bind_drop"
    #: At ``start`` every bind is cut; for ``duration`` new connections are closed at once.
    OUTAGE = "outage"
    #: A share of responses held ``delay`` seconds (a latency spike).
    RESPONSE_DELAY = "response_delay"
    #: enquire_link answered ``delay`` seconds late, or never (``drop``).
    ENQUIRE_LINK = "enquire_link"
    #: Receipts queued ``delay`` seconds after they came due.
    RECEIPT_DELAY = "receipt_delay"
    #: A share of receipts delivered twice.
    RECEIPT_DUPLICATE = "receipt_duplicate"
    #: Messages to ``numbers`` end in ``stat`` with ``err`` (a range that always fails).
    RECEIPT_FAIL = "receipt_fail"
    #: At ``start`` (and each ``every``): ``count`` malformed PDUs (``form``) to each bind.
    MALFORMED = "malformed"


#: The kinds that act once at ``start`` (then each ``every``) rather than while on.
FAULT_ACTIONS = frozenset({FaultKind.BIND_DROP, FaultKind.OUTAGE, FaultKind.MALFORMED})


class FaultRule(_Model):
    """One fault: what, when (seconds after the SMSC started, or after the rule was added
    through the control API), for whom (operator, account, destination numbers)."""

    kind: FaultKind
    #: Shown in logs, the control API and /metrics; default ``<kind>-<n>``.
    name: str = ""
    start: Annotated[float, Field(ge=0)] = 0.0
    #: Seconds the rule stays on; None: until removed (an outage needs one).
    duration: Annotated[float, Field(gt=0)] | None = None
    #: Repeat a one-shot kind (bind_drop, outage, malformed) every this many seconds.
    every: Annotated[float, Field(gt=0)] | None = None
    #: Share of the matching traffic hit (drawn from the rule's seeded generator).
    share: Annotated[float, Field(ge=0, le=1)] = 1.0
    #: SMPP status name (``ESME_RTHROTTLED``) or number, for submit_error / bind_refuse.
    status: Annotated[
        str | int | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {"enum": [s.name for s in Status]},
                    {"type": "integer", "minimum": 0, "maximum": 0xFFFFFFFF},
                    {"type": "null"},
                ]
            }
        ),
    ] = None
    operator: str | None = None
    account: str | None = None
    #: Destination numbers: prefixes (``2015``, ``015``) or ranges ``LO-HI`` of numbers, in
    #: any form gateways send; empty: every number.
    numbers: list[str] = Field(default_factory=list)
    #: Seconds for response_delay, enquire_link, receipt_delay.
    delay: Annotated[float, Field(ge=0)] = 0.0
    #: enquire_link: never answered.
    drop: bool = False
    #: bind_drop: end binds with an unbind instead of cutting the connection.
    unbind: bool = False
    #: receipt_fail: the final state and network error code.
    stat: Literal["UNDELIV", "REJECTD", "EXPIRED", "DELETED", "UNKNOWN"] = "UNDELIV"
    err: Annotated[int, Field(ge=0, le=999)] = 1
    #: malformed: how many PDUs per bind and what is wrong with them.
    count: Annotated[int, Field(ge=1, le=1000)] = 1
    form: Literal["unknown_command", "bad_body", "bad_length", "truncated"] = "bad_body"

    @field_validator("status")
    @classmethod
    def _status(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            status_code(value)  # ValueError names it
        return value

    @model_validator(mode="after")
    def _sense(self) -> FaultRule:
        if self.kind is FaultKind.OUTAGE and self.duration is None:
            raise ValueError("an outage needs a duration")
        if self.every is not None and self.kind not in FAULT_ACTIONS:
            raise ValueError(f"every is for bind_drop, outage and malformed, not {self.kind}")
        if self.numbers and self.kind not in (FaultKind.SUBMIT_ERROR, FaultKind.RECEIPT_FAIL):
            raise ValueError("numbers is for submit_error and receipt_fail")
        return self


class FaultsConfig(_Model):
    """Faults from the start (``[[faults.rules]]``); the control API and scenarios' chaos
    schedules add more at run time. Seeded: the same seed hits the same messages."""

    seed: int = 1442
    rules: list[FaultRule] = Field(default_factory=list)


class SmscConfig(_Model):
    """The whole simulator's configuration: one TOML file, one typed tree."""

    operators: list[OperatorConfig] = Field(default_factory=lambda: [OperatorConfig()])
    population: PopulationConfig = Field(default_factory=PopulationConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    behaviour: BehaviourConfig = Field(default_factory=BehaviourConfig)
    #: Simulated seconds per real second (receipt dates, reply delays, validity).
    time_scale: Annotated[float, Field(gt=0)] = 1.0
    #: The reference platform (``smsim platform``) reads its table from the same file.
    platform: PlatformConfig = Field(default_factory=lambda: PlatformConfig())
    #: Reassembled MT messages kept for inspection (tests, demo, the control API).
    mt_log_size: Annotated[int, Field(ge=0)] = 10_000
    #: Seconds an incomplete concatenated MT waits for its missing parts.
    reassembly_timeout: Annotated[float, Field(gt=0)] = 300.0
    #: Use uvloop when it is installed.
    uvloop: bool = True
    #: The control API (inject, look up, steer) and /metrics.
    control: ControlConfig = Field(default_factory=ControlConfig)
    #: The durable message journal (``smsim audit`` reads it).
    journal: JournalConfig = Field(default_factory=JournalConfig)
    #: A graceful stop (SIGTERM, ``SmscServer.stop``) refuses new submits and keeps
    #: delivering queued receipts and MO to bound receivers for at most this many
    #: seconds, then unbinds each client ...
    shutdown_drain: Annotated[float, Field(ge=0)] = 5.0
    #: ... and waits at most this many seconds for their unbind_resp before closing.
    shutdown_unbind_timeout: Annotated[float, Field(ge=0)] = 2.0
    #: Fault injection: what the operators' SMSCs do wrong, and when.
    faults: FaultsConfig = Field(default_factory=FaultsConfig)

    @model_validator(mode="after")
    def _unique_operators(self) -> SmscConfig:
        names = [o.name for o in self.operators]
        if len(set(names)) != len(names):
            raise ValueError("duplicate operator names")
        ports = [(o.host, o.port) for o in self.operators if o.port]
        ports += [(o.host, o.tls.port) for o in self.operators if o.tls.port]
        if len(set(ports)) != len(ports):
            raise ValueError("two operators listen on the same host and port")
        missing = set(self.population.listeners.values()) - set(names)
        if missing:
            raise ValueError(f"population.listeners: no operator named {sorted(missing)}")
        return self


class SmppBindConfig(_Model):
    """One SMPP bind of the platform to an operator's SMSC."""

    operator: str = "egypt"
    host: str = DEFAULT_HOST
    port: Annotated[int, Field(ge=1, le=65535)] = DEFAULT_SMPP_PORT
    system_id: str = "rapidpro"
    password: str = "secret"
    #: submit_sm the platform keeps unanswered on this bind.
    window: Annotated[int, Field(ge=1)] = 10
    #: Prefixes (national, e.g. "010") routed through this bind; empty: everything else.
    prefixes: list[str] = Field(default_factory=list)
    #: TON/NPI of the short code (source of MT) and of handsets (destination): operators
    #: differ (1442 as TON 3, 0 or 6).
    short_code_ton: Annotated[int, Field(ge=0, le=6)] = 3
    short_code_npi: Annotated[int, Field(ge=0, le=18)] = 0
    handset_ton: Annotated[int, Field(ge=0, le=6)] = 1
    handset_npi: Annotated[int, Field(ge=0, le=18)] = 1
    #: Seconds a submit_sm may stay unanswered before it counts as failed (and is re-sent).
    response_timeout: Annotated[float, Field(gt=0)] = 30.0
    enquire_link_interval: Annotated[float, Field(gt=0)] = 30.0
    #: Seconds the bind sends nothing after an ESME_RTHROTTLED (Kannel's
    #: throttling-sleep-time); the refused message is re-sent by the retry policy.
    throttle_pause: Annotated[float, Field(ge=0)] = 1.0


class KannelChannelConfig(_Model):
    """Kannel mode: the platform speaks RapidPro courier's HTTP contract with Kannel."""

    sendsms_url: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    username: str = "rp_kannel"
    password: str = "rp_pass"
    #: The channel uuid in courier's paths: /c/kn/{uuid}/receive and /status.
    channel_uuid: str = "1442-0000-kannel"
    #: Base URL Kannel reaches the platform on (for dlr-url).
    callback_base: str = "http://127.0.0.1:8000"
    #: sendsms requests in flight at once (Kannel's smsbox answers each after queueing).
    concurrency: Annotated[int, Field(ge=1)] = 32
    #: Seconds to wait for sendsms to answer.
    timeout: Annotated[float, Field(gt=0)] = 10.0


class PlatformConfig(_Model):
    """The reference 1442 platform (``smsim platform``)."""

    api_host: str = DEFAULT_HOST
    api_port: Annotated[int, Field(ge=0, le=65535)] = 8000
    #: API token; None: taken from SMSIM_API_TOKEN, or generated and printed.
    api_token: str | None = None
    database: str = "platform.sqlite3"
    short_code: str = SHORT_CODE
    #: "smpp" (binds with aiosmpplib) or "kannel" (courier's HTTP contract).
    mode: str = "smpp"
    binds: list[SmppBindConfig] = Field(default_factory=lambda: [SmppBindConfig()])
    kannel: KannelChannelConfig = Field(default_factory=KannelChannelConfig)
    #: Messages per second per channel, as RapidPro's channel ``tps`` (0: unthrottled).
    tps: Annotated[float, Field(ge=0)] = 10.0
    #: Each SMS part counts against the TPS, as with RapidPro.
    count_segments: bool = True
    #: Attempts before an errored message is failed for good (RapidPro: 3).
    max_attempts: Annotated[int, Field(ge=1)] = 3
    #: Seconds before an errored message is sent again.
    retry_delay: Annotated[float, Field(ge=0)] = 5.0
    #: Broadcast recipients queued per batch (RapidPro batches broadcasts).
    broadcast_batch: Annotated[int, Field(ge=1)] = 500
    #: Directory of flow definitions (YAML); None: the shipped seed campaigns.
    flows_dir: str | None = None
    #: Seed of the flow engine's randomness (run uuids, random splits): same seed, same run.
    seed: int = 1442
    #: Seconds between two looks at wait timeouts and run expiries.
    tick_interval: Annotated[float, Field(gt=0)] = 1.0

    @model_validator(mode="after")
    def _mode(self) -> PlatformConfig:
        if self.mode not in ("smpp", "kannel"):
            raise ValueError("mode must be smpp or kannel")
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
