"""What a subscriber is: every attribute derives from (seed, MSISDN), nothing is stored.

This module is the contract between the population (which derives profiles), the
behaviour model (which decides replies from a profile) and the delivery policy (which
decides a message's fate from a profile and the time).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Operator(StrEnum):
    """Egyptian mobile operators, by their national prefix (01X)."""

    VODAFONE = "vodafone"  # 010
    ETISALAT = "etisalat"  # 011 (e&)
    ORANGE = "orange"  # 012
    WE = "we"  # 015


PREFIX_OPERATOR = {
    "10": Operator.VODAFONE,
    "11": Operator.ETISALAT,
    "12": Operator.ORANGE,
    "15": Operator.WE,
}
OPERATOR_PREFIX = {op: prefix for prefix, op in PREFIX_OPERATOR.items()}


class Script(StrEnum):
    """How a subscriber writes: Arabic script, Franco-Arabic (Arabic in Latin letters and
    digits, "3" for ع), or English."""

    ARABIC = "arabic"
    FRANCO = "franco"
    ENGLISH = "english"


class Digits(StrEnum):
    ARABIC_INDIC = "arabic_indic"  # ٠١٢٣٤٥٦٧٨٩
    ASCII = "ascii"


class Responsiveness(StrEnum):
    """How readily someone replies when a message asks a question."""

    EAGER = "eager"
    NORMAL = "normal"
    RARE = "rare"
    NEVER = "never"


class DelayProfile(StrEnum):
    """How long someone takes to reply once the message is on their handset."""

    FAST = "fast"  # seconds to a couple of minutes
    NORMAL = "normal"  # minutes to an hour
    SLOW = "slow"  # hours


class Availability(StrEnum):
    """The handset over the day."""

    ALWAYS = "always"  # on, in coverage
    NIGHT_OFF = "night_off"  # switched off at night
    OFTEN_OFF = "often_off"  # off or out of coverage for long stretches
    DEAD = "dead"  # SIM never used: everything expires


@dataclass(slots=True, frozen=True)
class Subscriber:
    """One subscriber as derived from (seed, MSISDN).

    ``msisdn`` is international without '+' (``2010XXXXXXXX``). ``index`` is the position
    in the population (-1 for a number outside it). ``operator`` serves the number (it
    differs from ``prefix_operator`` when the number was ported). ``assigned`` False: the
    number is not in service (messages fail as UNDELIV). ``barred``: messages are
    REJECTD.
    """

    msisdn: str
    index: int
    operator: Operator
    prefix_operator: Operator
    assigned: bool
    barred: bool
    governorate: str
    female: bool
    literate: bool
    script: Script
    digits: Digits
    responsiveness: Responsiveness
    delay_profile: DelayProfile
    availability: Availability
    opted_out: bool
    takaful: bool
    karama: bool
    #: 64 bits from the (seed, MSISDN) hash that no attribute used: per-subscriber
    #: randomness for the behaviour model (seed its RNG with this and the message).
    entropy: int
