"""How a subscriber answers what 1442 sends: recognise the question, then decide whether,
when and what to reply.

Pure and deterministic: ``BehaviourModel.react`` decides the replies to a message a
handset receives, and the same (subscriber, message number, text) always gives the same
replies, so a load test can be replayed. The SMSC asks it in two steps, ``timing`` at
arrival (whether and when) and ``reply_text`` when each reply is due (what), which
together are ``react``. ``analyse`` reads the question type from the
wording itself (numbered options, yes/no, a rating scale, "send WORD", an opinion) in
Arabic or English with either digit style, so new campaigns need no code. ``is_stop``,
``parse_number`` and ``parse_yes_no`` read replies the way the platform's flows do.
"""

from __future__ import annotations

import math
import random
import re
import struct
from dataclasses import dataclass
from enum import StrEnum
from hashlib import blake2b
from typing import Final, Protocol

from simulator.config import BehaviourConfig

from . import vocabulary as V
from .delivery import CAIRO_OFFSET, c_draw_unit, mix64, unit
from .profile import DelayProfile, Digits, Responsiveness, Script, Subscriber

__all__ = [
    "BehaviourModel",
    "Prompt",
    "Question",
    "QuestionKind",
    "Reply",
    "ReplyKind",
    "ReplyModel",
    "analyse",
    "is_stop",
    "parse_number",
    "parse_yes_no",
]

_M64: Final = (1 << 64) - 1


_TO_UNIT: Final = 1.0 / (1 << 53)
_M32: Final = (1 << 32) - 1
_TO_UNIT32: Final = 1.0 / (1 << 32)
#: A 64-byte digest as eight doubles in [1, 2): each 64-bit lane keeps 52 random bits as
#: its mantissa under the exponent of 1.0 (one big-int AND and OR for the eight, where
#: converting each word to a float in Python cost ~1.2 µs a block).
_EIGHT_DOUBLES: Final = struct.Struct("<8d")
_MANTISSAS: Final = int.from_bytes(struct.pack("<8Q", *[(1 << 52) - 1] * 8), "little")
_ONES: Final = int.from_bytes(struct.pack("<8Q", *[0x3FF0000000000000] * 8), "little")


class _HashRandom(random.Random):
    """``random.Random``'s methods (choice, gauss, sample...) over draws from a hash of
    the seed: ``reset`` costs nothing, where seeding the Mersenne Twister fills 624
    words (~3 µs, more than the rest of a reply), and every eight draws cost one
    BLAKE2b of (seed, counter). ``random.Random`` takes every other draw from ``random``
    (``_randbelow`` overridden, no ``getrandbits``)."""

    _key: bytes
    _blocks: int
    _buf: list[float]
    gauss_next: float | None  # random.Random's, set by ``gauss``

    def seed(self, a: object = None, version: int = 2) -> None:
        self.reset(a if isinstance(a, int) else 0)

    def reset(self, seed: int) -> None:
        """Start the stream of ``seed`` (64 bits) again."""
        self._key = (seed & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
        self._blocks = 0
        self._buf = []
        self.gauss_next = None

    def _randbelow(self, n: int) -> int:
        """``random.Random``'s integer draws (choice, randint, sample, shuffle...) as one
        float draw scaled, without the rejection test and modulo its own does in
        Python around each draw (bias below n / 2**53)."""
        return int(self.random() * n)

    def random(self) -> float:
        buf = self._buf
        if not buf:
            digest = blake2b(
                self._key, digest_size=64, salt=self._blocks.to_bytes(8, "little")
            ).digest()
            self._blocks += 1
            bits = int.from_bytes(digest, "little") & _MANTISSAS | _ONES
            buf.extend(_EIGHT_DOUBLES.unpack(bits.to_bytes(64, "little")))
        return buf.pop() - 1.0  # 52 random bits in [0, 1)


_GOLDEN: Final = 0x9E3779B97F4A7C15
#: ``unit(mix64(entropy ^ salt ^ seq * _GOLDEN))`` in C when built (``_ctraits``).
_draw_unit = c_draw_unit
#: Mixed into a reply's seed for the stream of its delays (``BehaviourModel._when``).
_WHEN: Final = 0x2545F4914F6CDD1D
#: Replies that would land in this Cairo-local window wait for the morning (hours).
NIGHT_START: Final = 1.0
NIGHT_END: Final = 7.0
#: After the night, replies come within 4 h of waking, about 45 min on average (an
#: exponential truncated at 4 h: nothing piles up at the cut).
_WAKE_MEAN: Final = 2700.0
_WAKE_SPAN: Final = 1.0 - math.exp(-4 * 3600.0 / _WAKE_MEAN)
_NIGHT_FROM: Final = NIGHT_START * 3600
_NIGHT_TO: Final = NIGHT_END * 3600
_TWO_PI_32: Final = 2.0 * math.pi / (1 << 32)
_WAKE_UNIT32: Final = _WAKE_SPAN / (1 << 32)


class QuestionKind(StrEnum):
    NUMBERED = "numbered"  # pick an option by its number
    YES_NO = "yes_no"
    RATING = "rating"  # a score on a scale
    FREE_TEXT = "free_text"  # an opinion in words
    KEYWORD = "keyword"  # "send WORD to 1442"
    NONE = "none"  # information only


@dataclass(slots=True, frozen=True)
class Question:
    """What a message asks. ``options`` counts numbered options (NUMBERED only);
    ``rating_max``/``rating_min`` bound the scale (RATING only); ``keyword`` is the word
    to send as written in the message (KEYWORD only)."""

    kind: QuestionKind
    options: int = 0
    rating_max: int = 0
    keyword: str | None = None
    rating_min: int = 1


class ReplyKind(StrEnum):
    ANSWER = "answer"  # a quiz option: the right one when an answer key is known
    WRONG_ANSWER = "wrong_answer"
    YES = "yes"
    NO = "no"
    RATING = "rating"
    FEEDBACK = "feedback"  # free text (also thanks / questions back to information)
    KEYWORD = "keyword"
    STOP = "stop"
    EMPTY = "empty"
    NONSENSE = "nonsense"
    TYPO = "typo"  # the intended reply with a slip of the thumb
    LONG = "long"  # a multi-part text (> 160 characters)


@dataclass(slots=True, frozen=True)
class Reply:
    """One MO: sent ``delay`` simulated seconds after the message was received.

    ``value`` is the number meant (ANSWER, WRONG_ANSWER, RATING) so tests and reports can
    check what the platform parsed; None otherwise.
    """

    delay: float
    text: str
    kind: ReplyKind
    value: int | None = None


class _ReplyDraft:
    """Same slots as ``Reply``, not frozen (see ``population._Draft``): ~0.3 µs less a
    reply than the frozen dataclass's ``__init__``."""

    __slots__ = Reply.__slots__

    def __init__(self, delay: float, text: str, kind: ReplyKind, value: int | None) -> None:
        self.delay = delay
        self.text = text
        self.kind = kind
        self.value = value


if set(Reply.__slots__) != {"delay", "text", "kind", "value"}:  # pragma: no cover
    raise ImportError("behaviour._ReplyDraft no longer matches Reply's fields")


def _reply(delay: float, text: str, kind: ReplyKind, value: int | None = None) -> Reply:
    draft = _ReplyDraft(delay, text, kind, value)
    draft.__class__ = Reply  # type: ignore[assignment]
    return draft  # type: ignore[return-value]


class ReplyModel(Protocol):
    """What the SMSC's subscriber engine needs from a behaviour model: plug in another
    (a scenario's scripted answers, a recorded trace) by passing it to
    ``SubscriberEngine(behaviour=...)``. ``BehaviourModel`` is the default; the engine
    asks it (and a subclass keeping its ``react``) ``timing`` and ``reply_text`` instead,
    and any other model ``react``, its replies then kept whole until due."""

    def react(self, sub: Subscriber, text: str, received_at: float, seq: int) -> list[Reply]:
        """The replies ``sub`` sends to ``text`` received at ``received_at``."""
        ...

    def spontaneous_text(self, sub: Subscriber, rng: random.Random) -> str:
        """What ``sub`` texts 1442 unprompted."""
        ...


# --- normalisation -------------------------------------------------------------------------

#: Marks that change no meaning: harakat, superscript alef, tatweel, direction marks, BOM.
_MARKS_RE: Final = re.compile(
    "[\u064b-\u065f\u0670\u0640\u200b-\u200f\u061c\u202a-\u202e\u2066-\u2069\ufeff]+"
)
#: One character for one, so a match in the folded text slices the cleaned one. Applied
#: with str.replace: str.translate looks every character up in a dict, 10x slower here.
_FOLD_PAIRS: Final = tuple(
    zip(
        "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹أإآٱىةؤئ\u00a0",
        "01234567890123456789اااايهوي ",
        strict=True,
    )
)
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PUNCT_RE: Final = re.compile(r"[!?.,;:\"'()\[\]{}*_\-–—/\\|؟،؛«»“”‘’…]+")
_TO_INDIC: Final = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_TATWEEL_AFTER_DIGIT: Final = re.compile(r"(\d)\u0640")


def _fold(text: str) -> str:
    """ASCII digits, bare alef, ي for ى, ه for ة, lower case: what matching needs."""
    if not text.isascii():
        for a, b in _FOLD_PAIRS:
            if a in text:
                text = text.replace(a, b)
    lower = text.lower()
    return lower if len(lower) == len(text) else text.translate(_ASCII_LOWER)


def _clean(text: str) -> tuple[str, str]:
    """(text without invisible marks, the same folded for matching): same length."""
    if "\u0640" in text:
        text = _TATWEEL_AFTER_DIGIT.sub(r"\1-", text)
    clean = _MARKS_RE.sub("", text)
    return clean, _fold(clean)


def _words(text: str) -> list[str]:
    return _PUNCT_RE.sub(" ", _fold(_MARKS_RE.sub("", text))).split()


# --- reading replies (the platform reuses these) -------------------------------------------

#: A number standing alone: not glued to Latin letters, where Franco uses digits as letters
#: ("la2", "3ala"). ``\d`` is Unicode: ١٢٣ and ۱۲۳ match, and int() reads them.
_NUMBER: Final = re.compile(r"(?<![A-Za-z\d])\d+(?![A-Za-z\d])")


def parse_number(text: str) -> int | None:
    """The first number in a reply, in ASCII or Arabic-Indic digits ("٢", "رقم ٢",
    "el egaba 2", "Answer: 2"), as RapidPro's number tests read it; None when there is
    none. Digits inside Franco words ("la2") are letters, not numbers."""
    m = _NUMBER.search(text)
    return int(m.group()) if m else None


def is_stop(text: str) -> bool:
    """Whether a reply opts out: STOP, إلغاء / الغاء (الاشتراك), ايقاف, unsubscribe...

    The whole text must be the request: "وقف الصرف ليه؟" asks why payment stopped.
    """
    words = _words(text)
    if not words or len(words) > 4 or words[0] not in V.STOP_HEADS:
        return False
    return all(w in V.STOP_TAILS for w in words[1:])


_NOT: Final = frozenset({"مش", "غير", "not"})


def parse_yes_no(text: str) -> bool | None:
    """True for نعم / ايوه / aywa / yes, False for لا / la2 / no (and "مش موافق"), read
    from the first word; None otherwise."""
    words = _words(text)
    if not words:
        return None
    first = words[0]
    if first in _NOT and len(words) > 1 and words[1] in V.YES_WORDS:
        return False
    if first in V.YES_WORDS:
        return True
    if first in V.NO_WORDS:
        return False
    return None


# --- recognising questions ------------------------------------------------------------------

# Patterns run on folded text: ASCII digits, ا for أ/إ/آ, ي for ى, ه for ة, lower case.
_AR_SEND: Final = (
    r"(?:ارسل|ابعت|ابعث|اكتب|اضغط|اختار|اختر|اجب|جاوب|رد)(?:ي|وا|و)?(?:لنا|لينا)?"
    r"|(?:يرجي|برجاء|رجاء|الرجاء|يمكنك|يمكنكم|يمكنكي)\s+(?:ارسال|الرد|كتابه)"
)
_EN_SEND: Final = r"(?:reply|send|text|sms|press|type|answer|respond|choose|select|enter|dial)"
#: Any instruction to reply (with a number, a word, a score).
_SEND: Final = rf"(?<!\w)[وف]?(?:{_AR_SEND}|{_EN_SEND})(?!\w)"
#: Instructions to send a word: not the choice verbs ("اختر واحدة", "اضغط هنا").
_KW_SEND: Final = (
    r"(?<!\w)[وف]?(?:(?:ارسل|ابعت|ابعث|اكتب|رد)(?:ي|وا|و)?(?:لنا|لينا)?"
    r"|(?:يرجي|برجاء|رجاء|الرجاء|يمكنك|يمكنكم|يمكنكي)\s+(?:ارسال|الرد|كتابه)"
    r"|reply|send|text|sms|type)(?!\w)"
)
_SEND_RE: Final = re.compile(_SEND)

#: "السؤال ٣:" / "س٣" / "Question 3" name the question, not an option.
_QUESTION_NUMBER_RE: Final = re.compile(
    r"(?<!\w)(?:ال)?(?:سوال|question|q|س)\s*(?:رقم\s*|no\.?\s*)?\d{1,2}(?!\d)"
)
#: List markers: "1) ", "(1) ", "1- ", "1. ", "1: ", "1/ ".
_MARKER_RE: Final = re.compile(r"(?<![\w.,])[(\[]?(\d{1,2})\s?[)\]\-–.:/](?!\d)")
#: An instruction carrying a number: "اضغط 1", "ارسل رقم ١", "رد ب1", "reply with 1".
_VERB_NUMBER_RE: Final = re.compile(
    _SEND
    + r"\s*(?:(?:with|the|a|number|no\.?|option|ب?الرقم|ب?رقم|ب)\s*)*[:\-]?\s*\(?(\d{1,2})(?!\d)"
)
_DIGIT_RE: Final = re.compile(r"\d")
_SMALL_NUMBER_RE: Final = re.compile(r"(?<![\d.])(\d{1,2})(?![\d.]\d|\d)")
#: Something asks for a choice (list markers alone may be tips, not options).
_CHOICE_CONTEXT_RE: Final = re.compile(
    r"[؟?]|(?<!\w)(?:ب?رقم|الرقم|ب?الاجابه|اجابتك|الاختيار|اختيارك|اختر\w*|اختار\w*|اجب\w*"
    r"|جاوب\w*|answer|option|choose|select|number|press|اضغط\w*)(?!\w)"
)

_RANGE_RE: Final = re.compile(
    r"(?<!\w)(?:من|from|between|بين)\s*(\d{1,2})\s*(?:\([^)]{0,25}\)\s*)?"
    r"(?:الي|ل|-|–|to|and|و|حتي|لحد|لغايه)\s*(\d{1,2})(?!\d)"
    r"|(?<![\d\w])(\d{1,2})\s*(?:-|–|to)\s*(\d{1,2})(?![\d\w])"
    r"|(?<!\d)([01])\s*=\s*[^\d=]{1,25}?(\d{1,2})\s*="
)
_RATING_WORD_RE: Final = re.compile(
    r"(?<!\w)[وف]?(?:قيم(?:ي|وا)?|[تي]قيم(?:ي|ين|وا|ون)?|تقييم\w*|rate|rating|scale|score|درجه|نجوم|نجمه"
    r"|رضا\w*|راضي\w*|satisf\w*|stars?)(?!\w)"
)
#: A send verb leading to a range: "ارسل رقم من 1 الى 5", "reply with a number from 1 to 5".
_SEND_RANGE_RE: Final = re.compile(_SEND + r"(?:\s+\S+){0,3}?\s+(?:من|from|between|بين)\s*\(?\d")

_YES_NO_HINT_RE: Final = re.compile("نعم|ايوه|y")
_YES_NO_RE: Final = re.compile(
    r"(?<!\w)ب?(?:نعم|ايوه)\s*(?:[/\\|\-،,]|او|ام|or|و)\s*ب?لا(?!\w)"
    r"|(?<!\w)ب?لا\s*(?:[/\\|\-،,]|او|ام|or)\s*ب?نعم(?!\w)"
    r"|(?<!\w)yes\s*(?:[/\\|\-,]|or)\s*no(?!\w)"
    r"|(?<!\w)no\s*(?:[/\\|\-,]|or)\s*yes(?!\w)"
    r"|(?<!\w)y\s*/\s*n(?!\w)"
)

_QUOTES: Final = "\"'«»“”‘’([<"
#: "ارسل تطوع", "ابعتي كلمة (تطوع)", "text JOIN"; or "كلمة تطوع" after any send verb.
_KEYWORD_RE: Final = re.compile(
    _KW_SEND + r"\s*[:\-]?\s*"
    r"(?:(?P<mark>ب?كلمه|ب?الكلمه|(?:the\s+)?(?:key)?word)\s*[:\-]?\s*)?"
    r"[\"'«»“”‘’(\[<]?\s*"
    r"(?P<word>[^\W\d_]{1,20})"
    r"|(?<!\w)(?P<mark2>ب?كلمه|ب?الكلمه|(?:key)?word)\s*[:\-]?\s*[\"'«»“”‘’(\[<]?\s*"
    r"(?P<word2>[^\W\d_]{1,20})"
)
_SHORT_CODE_NEAR_RE: Final = re.compile(r"\s*(?:\S+\s+){0,3}1442(?!\d)")
_SENTENCE_END: Final = frozenset(".!،,؛;:؟?\n)»”’\"'")
#: Words after a send verb that are not a keyword.
_FUNCTION_WORDS: Final = V.wordset(
    """
    رساله رسالتك الرساله لنا الينا لينا علي الي ل ب من في الرقم رقم برقم بالرقم الاجابه اجابه
    اجابتك بالاجابه الاجابات حرف الحرف كلمه الكلمه مجانا الان فورا اليوم دلوقتي علينا عليها
    عليه هنا رسايل الرسايل برساله
    your us with the a an to back message number answer free now today word keyword sms this
    it below following letter in at on for by and or me here link is are was
    """
)
_OPINION_RE: Final = re.compile(
    r"(?<!\w)[وفب]?(?:راي(?:ك|كي|كم)|ارايكم|اقتراح(?:ك|كي|كم|اتك|اتكم|اتكي)"
    r"|ملاحظات(?:ك|كي|كم)|شكو(?:اك|اكم|تك|تكم)|تعليق(?:ك|كي|كم|اتك|اتكم)|تجرب(?:تك|تكم|تكي)"
    r"|احكي(?:لنا)?|قوليلنا|قولولنا|قولنا|اخبرنا|اخبرينا|عرفنا|عرفينا|استفسار(?:ك|كم|اتك|اتكم)"
    r"|سوالك|اسمك)(?!\w)"
    r"|(?<!\w)(?:your\s+(?:opinion|feedback|views?|thoughts|suggestions?|comments?|experience"
    r"|story|question)|tell\s+us|what\s+do\s+you\s+think|in\s+your\s+own\s+words"
    r"|share\s+your)(?!\w)"
)
#: Sentences and what ends them (split, not scanned: a scan is quadratic in long texts).
_SENTENCE_RE: Final = re.compile(r"([.!\n؟?])")
_WH_RE: Final = re.compile(
    r"(?<!\w)[وف]?(?:ما\s+(?:هي|هو|هم|الذي|اللي)|ماذا|ايه|ازاي|كيف|ليه|لماذا|امتي|متي|فين|اين"
    r"|مين|كم|what|how|why|when|where|which|who)(?!\w)|^\s*[وف]?ما(?!\w)"
)
_DID_YOU_KNOW_RE: Final = re.compile(
    r"(?<!\w)[وف]?هل\s+(?:تعلم|تعلمي|تعلمين|تعرف|تعرفي|تعرفين)(?!\w)|did\s+you\s+know"
)


def _option_run(numbers: set[int]) -> int:
    """Options counted as 1, 2, 3... without a gap: stray numbers (a date, 80%) don't
    extend the run."""
    n = 0
    while n + 1 in numbers:
        n += 1
    return n


def _keyword(clean: str, norm: str) -> tuple[str | None, bool, bool]:
    """(the keyword as written, yes/no is asked, an opinion is asked) from "send WORD"
    or "the word WORD" (called only when the text has a send verb).

    A Latin word must look like a keyword (capitals, quoted, "word X", or followed by
    the short code or the sentence's end): "this text is free" names no keyword.
    """
    opinion = yes_no = False
    for m in _KEYWORD_RE.finditer(norm):
        group = "word" if m.group("word") is not None else "word2"
        word = m.group(group)
        start, end = m.span(group)
        if word.startswith("ب") and len(word) > 2:
            base = word[1:]
            if base in V.YES_WORDS or base in V.NO_WORDS or base in V.STOP_HEADS:
                word, start = base, start + 1
        if word in V.STOP_HEADS:
            continue  # the opt-out footer: "للإلغاء أرسل إلغاء"
        if word in V.YES_WORDS or word in V.NO_WORDS:
            yes_no = True
            continue
        if word in _FUNCTION_WORDS or len(word) < 2:
            continue
        if _OPINION_RE.fullmatch(word):
            opinion = True
            continue
        original = clean[start:end]
        if word.isascii() and not (
            original.isupper()
            or m.group("mark") is not None
            or group == "word2"
            or (start > 0 and norm[start - 1] in _QUOTES)
            or end == len(norm)
            or norm[end] in _SENTENCE_END
            or _SHORT_CODE_NEAR_RE.match(norm, end)
        ):
            continue
        return original, yes_no, opinion
    return None, yes_no, opinion


def analyse(text: str) -> Question:
    """The question a message asks, read from its wording (see QuestionKind).

    Precedence: a rating scale, numbered options, an explicit yes/no, "send WORD", an
    opinion or wh-question, any other question (yes/no), else information. Patterns that
    need a digit or a send verb run only when there is one (personalised texts miss the
    cache, so analysis is kept cheap too).
    """
    clean, scan = _clean(text)
    send = _SEND_RE.search(scan) is not None
    numbers: set[int] = set()
    verb_numbers: set[int] = set()
    marker_run = 0
    scale = None
    if _DIGIT_RE.search(scan):
        scan = _QUESTION_NUMBER_RE.sub(lambda m: " " * len(m.group()), scan)
        numbers = {int(m.group(1)) for m in _MARKER_RE.finditer(scan)}
        marker_run = _option_run(numbers)
        if send:
            for m in _VERB_NUMBER_RE.finditer(scan):
                verb_numbers.add(int(m.group(1)))
                window = scan[m.end() : m.end() + 80]
                verb_numbers.update(int(n.group(1)) for n in _SMALL_NUMBER_RE.finditer(window))
        scale = _rating_range(scan)

    if scale is not None or marker_run >= 3:
        rating_word = _RATING_WORD_RE.search(scan) is not None
        if scale is not None and (rating_word or (send and _SEND_RANGE_RE.search(scan))):
            return Question(QuestionKind.RATING, rating_max=scale[1], rating_min=scale[0])
        if rating_word and scale is None and not verb_numbers:
            return Question(QuestionKind.RATING, rating_max=marker_run)

    verb_run = _option_run(verb_numbers)
    run = _option_run(numbers | verb_numbers)
    if verb_run >= 1 or (run >= 2 and _CHOICE_CONTEXT_RE.search(scan)):
        return Question(QuestionKind.NUMBERED, options=max(run, verb_run))

    if _YES_NO_HINT_RE.search(scan) and _YES_NO_RE.search(scan):
        return Question(QuestionKind.YES_NO)
    keyword, yes_no, opinion = _keyword(clean, scan) if send else (None, False, False)
    if keyword is not None:
        return Question(QuestionKind.KEYWORD, keyword=keyword)
    if yes_no:
        return Question(QuestionKind.YES_NO)
    if opinion or _OPINION_RE.search(scan):
        return Question(QuestionKind.FREE_TEXT)
    asks = False
    if "?" in scan or "؟" in scan:
        parts = _SENTENCE_RE.split(scan)
        for sentence, end in zip(parts[::2], parts[1::2], strict=False):
            if end not in "?؟" or _DID_YOU_KNOW_RE.search(sentence):
                continue
            if _WH_RE.search(sentence):
                return Question(QuestionKind.FREE_TEXT)
            asks = True
    return Question(QuestionKind.YES_NO if asks else QuestionKind.NONE)


def _rating_range(norm: str) -> tuple[int, int] | None:
    """(low, high) of a scale such as "من ١ إلى ٥", "1-10", "(1=bad ... 5=excellent)"."""
    for m in _RANGE_RE.finditer(norm):
        g = m.groups()
        lo_s, hi_s = (g[0], g[1]) if g[0] else (g[2], g[3]) if g[2] else (g[4], g[5])
        lo, hi = int(lo_s), int(hi_s)
        if lo in (0, 1) and 3 <= hi <= 10:
            return lo, hi
    return None


# --- writing replies ----------------------------------------------------------------------


def _neighbours() -> dict[str, str]:
    out: dict[str, str] = {}
    for row in V.KEYBOARD_ROWS:
        for i, ch in enumerate(row):
            out[ch] = row[max(0, i - 1) : i] + row[i + 1 : i + 2]
    return out


_NEIGHBOURS: Final = _neighbours()
_DIGITS: Final = frozenset("0123456789٠١٢٣٤٥٦٧٨٩")


def _typo(rng: random.Random, text: str) -> str:
    """A slip of the thumb: a neighbouring key (a neighbouring digit when there is one), a
    doubled letter, or a dropped one. Never returns ``text`` unchanged."""
    if not text:
        return "."
    digits = [i for i, c in enumerate(text) if c in _DIGITS]
    x = rng.random()
    if digits and x < 0.6:
        i = rng.choice(digits)
        out = text[:i] + rng.choice(_NEIGHBOURS[text[i]]) + text[i + 1 :]
    else:
        keys = [i for i, c in enumerate(text) if c in _NEIGHBOURS]
        i = rng.choice(keys) if keys else rng.randrange(len(text))
        if x < 0.8 and text[i] in _NEIGHBOURS:
            out = text[:i] + rng.choice(_NEIGHBOURS[text[i]]) + text[i + 1 :]
        elif x < 0.93 or len(text) < 3:
            out = text[: i + 1] + text[i:]
        else:
            out = text[:i] + text[i + 1 :]
    return out if out != text else text + text[-1]


def _num(n: int, indic: bool) -> str:
    s = str(n)
    return s.translate(_TO_INDIC) if indic else s


def _rating_weights(lo: int, hi: int) -> tuple[float, ...]:
    """Cumulative weights of a J-shaped score: many top marks, some bottom ones."""
    k = hi - lo + 1
    w = [0.3 / max(1, k - 3)] * k
    w[-1], w[-2], w[0] = 0.4, 0.2, 0.1
    if k == 3:
        w[1] = 0.2 + 0.3
    total = sum(w)
    cum, acc = [], 0.0
    for x in w:
        acc += x / total
        cum.append(acc)
    cum[-1] = 1.0
    return tuple(cum)


@dataclass(slots=True, frozen=True)
class Prompt:
    """What a reply's text depends on of the message it answers: equal for the
    personalised copies of one question, so the replies waiting to be written
    (``BehaviourModel.timing``) share one rather than keep each its message's text."""

    question: Question
    right: int | None  # the right option, from an answer key
    rating_cum: tuple[float, ...]


@dataclass(slots=True, frozen=True)
class _Plan:
    """All that depends on the text only, computed once per distinct text."""

    question: Question
    salt: int  # a stable 64-bit hash of the text (Python's hash() is salted per run)
    prompt: Prompt


@dataclass(slots=True, frozen=True)
class _Style:
    """Word lists for one script."""

    answer: tuple[str, ...]
    rating: tuple[str, ...]
    yes: tuple[str, ...]
    no: tuple[str, ...]
    stop: tuple[str, ...]
    openers: tuple[str, ...]
    feedback: tuple[str, ...]
    closers: tuple[str, ...]
    short: tuple[str, ...]
    unprompted: tuple[str, ...]
    hesitation: tuple[str, ...]
    correction: tuple[str, ...]
    payment: tuple[str, ...]
    help: tuple[str, ...]
    letters: str
    comma: str  # between greeting, body and closing; after a question mark, a space
    and_: str  # between two things said


_STYLES: Final = {
    Script.ARABIC: _Style(
        V.ANSWER_AR, V.RATING_AR, V.YES_AR, V.NO_AR, V.STOP_AR, V.OPENERS_AR,
        V.FEEDBACK_AR, V.CLOSERS_AR, V.SHORT_AR, V.UNPROMPTED_AR, V.HESITATION_AR,
        V.CORRECTION_AR, V.PAYMENT_Q_AR, V.HELP_AR, V.LETTERS_AR, "، ", " و",
    ),
    Script.FRANCO: _Style(
        V.ANSWER_FRANCO, V.RATING_FRANCO, V.YES_FRANCO, V.NO_FRANCO, V.STOP_FRANCO,
        V.OPENERS_FRANCO, V.FEEDBACK_FRANCO, V.CLOSERS_FRANCO, V.SHORT_FRANCO,
        V.UNPROMPTED_FRANCO, V.HESITATION_FRANCO, V.CORRECTION_FRANCO, V.PAYMENT_Q_FRANCO,
        V.HELP_LATIN, V.LETTERS_LATIN, ", ", " w ",
    ),
    Script.ENGLISH: _Style(
        V.ANSWER_EN, V.RATING_EN, V.YES_EN, V.NO_EN, V.STOP_EN, V.OPENERS_EN, V.FEEDBACK_EN,
        V.CLOSERS_EN, V.SHORT_EN, V.UNPROMPTED_EN, V.HESITATION_EN, V.CORRECTION_EN,
        V.PAYMENT_Q_EN, V.HELP_LATIN, V.LETTERS_LATIN, ", ", " and ",
    ),
}  # fmt: skip

_ODD_KINDS: Final = (
    ReplyKind.STOP,
    ReplyKind.EMPTY,
    ReplyKind.NONSENSE,
    ReplyKind.TYPO,
    ReplyKind.LONG,
)
_TWO_PART_KINDS: Final = frozenset(
    {QuestionKind.NUMBERED, QuestionKind.RATING, QuestionKind.YES_NO, QuestionKind.KEYWORD}
)
#: Beyond this many characters a reply is "long" (one GSM-7 SMS; Arabic needs 3 parts).
LONG_REPLY: Final = 160


#: Enum members as module constants for the per-message code (a class attribute
#: lookup of an enum member costs ~80 ns).
_D_ARABIC_INDIC: Final = Digits.ARABIC_INDIC
_Q_FREE_TEXT: Final = QuestionKind.FREE_TEXT
_Q_KEYWORD: Final = QuestionKind.KEYWORD
_Q_NONE: Final = QuestionKind.NONE
_Q_NUMBERED: Final = QuestionKind.NUMBERED
_Q_RATING: Final = QuestionKind.RATING
_Q_YES_NO: Final = QuestionKind.YES_NO
_R_ANSWER: Final = ReplyKind.ANSWER
_R_EMPTY: Final = ReplyKind.EMPTY
_R_FEEDBACK: Final = ReplyKind.FEEDBACK
_R_KEYWORD: Final = ReplyKind.KEYWORD
_R_NO: Final = ReplyKind.NO
_R_NONSENSE: Final = ReplyKind.NONSENSE
_R_RATING: Final = ReplyKind.RATING
_R_STOP: Final = ReplyKind.STOP
_R_TYPO: Final = ReplyKind.TYPO
_R_WRONG_ANSWER: Final = ReplyKind.WRONG_ANSWER
_R_YES: Final = ReplyKind.YES
_RESP_NEVER: Final = Responsiveness.NEVER
_S_ARABIC: Final = Script.ARABIC
_S_FRANCO: Final = Script.FRANCO


class BehaviourModel:
    """Decides each subscriber's replies to each message; see ``react``.

    Knobs not in BehaviourConfig (defaults suit the 1442 population):
    ``yes_share``: yes among yes/no answers. ``digit_slip``: replies typed in the other
    digit style than the subscriber's usual one. ``bare_share`` / ``bare_share_illiterate``:
    answers that are the number alone. ``double_share``: replies sent as two messages
    (a "?" or a slip, then the answer). ``opted_out_stop`` / ``never_stop``: chance that
    an opted-out / never-responsive subscriber sends STOP (None: config.stop_share).
    ``illiterate_typo_factor`` / ``illiterate_long_factor`` scale those shares for people
    who barely write. ``cache_size``: distinct texts whose analysis is kept.
    """

    __slots__ = (
        "_bare",
        "_cache_size",
        "_config",
        "_delay_mu",
        "_digit_slip",
        "_double",
        "_double_p",
        "_keys",
        "_never_stop",
        "_odd",
        "_odd_two",
        "_opted_out_stop",
        "_plans",
        "_prompts",
        "_reply_p",
        "_rng",
        "_sigma",
        "_unprompted_p",
        "_yes_share",
    )

    def __init__(
        self,
        config: BehaviourConfig | None = None,
        *,
        yes_share: float = 0.75,
        digit_slip: float = 0.02,
        bare_share: float = 0.55,
        bare_share_illiterate: float = 0.85,
        double_share: float = 0.01,
        opted_out_stop: float = 0.05,
        never_stop: float | None = None,
        illiterate_typo_factor: float = 2.0,
        illiterate_long_factor: float = 0.25,
        cache_size: int = 4096,
    ) -> None:
        cfg = config or BehaviourConfig()
        self._config = cfg
        self._reply_p = {r: cfg.reply_probability.get(r.value, 0.0) for r in Responsiveness}
        self._unprompted_p = cfg.unprompted_reply_probability
        self._delay_mu = {
            p: math.log(max(cfg.delay_median.get(p.value, 600.0), 1e-3)) for p in DelayProfile
        }
        self._sigma = cfg.delay_sigma
        self._yes_share = yes_share
        self._digit_slip = digit_slip
        self._bare = (bare_share_illiterate, bare_share)
        self._double = double_share
        self._opted_out_stop = opted_out_stop
        self._never_stop = cfg.stop_share if never_stop is None else never_stop
        odd: list[tuple[float, ...]] = []
        for literate in (False, True):
            typo = cfg.typo_share * (1.0 if literate else illiterate_typo_factor)
            long = cfg.long_share * (1.0 if literate else illiterate_long_factor)
            shares = (cfg.stop_share, cfg.empty_share, cfg.nonsense_share, typo, long)
            acc, cum = 0.0, []
            for s in shares:
                acc += s
                cum.append(acc)
            odd.append(tuple(cum))
        self._odd = (odd[0], odd[1])
        # A two-part reply is decided with the delays (``_when``), before the text says
        # whether the reply is odd: it has chance double_share * (1 - odd share), and the
        # odd kinds are drawn among the other replies scaled up to keep their shares.
        double_p = [double_share * max(0.0, 1.0 - shares[-1]) for shares in odd]
        two = [
            tuple(c / (1.0 - p) if p < 1 else c for c in shares)
            for shares, p in zip(odd, double_p, strict=True)
        ]
        self._double_p = (double_p[0], double_p[1])
        self._odd_two = (two[0], two[1])
        keys = []
        for pattern, option in cfg.answer_keys.items():
            try:
                keys.append((re.compile(pattern), option))
            except re.error as exc:
                raise ValueError(f"answer_keys: bad regex {pattern!r}: {exc}") from exc
        self._keys = tuple(keys)
        self._cache_size = max(1, cache_size)
        self._plans: dict[str, _Plan] = {}
        self._prompts: dict[Prompt, Prompt] = {}
        self._rng = _HashRandom(0)

    # --- per text ---------------------------------------------------------------------------

    def question(self, text: str) -> Question:
        """``analyse(text)``, from the cache."""
        return self._plan(text).question

    def _plan(self, text: str) -> _Plan:
        plan = self._plans.get(text)
        if plan is not None:
            return plan
        q = analyse(text)
        right = None
        if q.kind is _Q_NUMBERED and self._keys:
            folded = _clean(text)[1]
            for pattern, option in self._keys:
                if pattern.search(text) or pattern.search(folded):
                    right = option
                    break
        salt = int.from_bytes(
            blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
        )
        cum = _rating_weights(q.rating_min, q.rating_max) if q.kind is _Q_RATING else ()
        prompt = Prompt(q, right, cum)
        prompts = self._prompts
        if len(prompts) >= self._cache_size:
            prompts.clear()  # fewer shared, none wrong
        prompt = prompts.setdefault(prompt, prompt)
        plan = _Plan(q, salt, prompt)
        plans = self._plans
        if len(plans) >= self._cache_size:
            del plans[next(iter(plans))]  # oldest first: broadcasts repeat the newest
        plans[text] = plan
        return plan

    @property
    def cached(self) -> int:
        """Distinct texts analysed and kept."""
        return len(self._plans)

    # --- per message ------------------------------------------------------------------------

    def react(self, sub: Subscriber, text: str, received_at: float, seq: int) -> list[Reply]:
        """The replies ``sub`` sends to ``text`` received at ``received_at`` (simulated Unix
        seconds), ``seq`` being the subscriber's message number. Deterministic in
        (sub.entropy, seq, text); delays also depend on ``received_at`` (nights).
        ``timing`` then ``reply_text`` give the same, the text drawn only when due."""
        plan = self._plan(text)
        seed, answers = self._first_draw(sub, plan, seq)
        if not answers:
            return []
        delays = self._when(sub, plan, seed, received_at)
        what = self._what(sub, plan.prompt, seed, len(delays) == 2)
        return [_reply(d, t, k, v) for d, (t, k, v) in zip(delays, what, strict=True)]

    def timing(
        self, sub: Subscriber, text: str, received_at: float, seq: int
    ) -> tuple[Prompt, int, tuple[float, ...]] | None:
        """When ``react``'s replies go, without their texts: (what ``reply_text`` writes
        them from: the message's prompt and a seed; their delays in order: one, or two
        for a two-part reply), or None when there are none. At time x1 most replies wait
        longer than a test runs (hours at night): the engine writes a text when due."""
        plan = self._plans.get(text) or self._plan(text)
        seed, answers = self._first_draw(sub, plan, seq)
        if not answers:
            return None
        return plan.prompt, seed, self._when(sub, plan, seed, received_at)

    def reply_text(
        self, sub: Subscriber, prompt: Prompt, seed: int, part: int
    ) -> tuple[str, ReplyKind]:
        """The text and kind of the reply ``timing`` gave (``prompt``, ``seed``) for:
        ``part`` 0 when it gave one delay, 1 and 2 for the two parts of a two-part reply;
        as ``react`` writes it."""
        what = self._what(sub, prompt, seed, part > 0)
        out, kind, _ = what[part - 1] if part else what[0]
        return out, kind

    def _when(
        self, sub: Subscriber, plan: _Plan, seed: int, received_at: float
    ) -> tuple[float, ...]:
        """The delays of the replies of ``seed``: one, or two for a two-part reply (a "?"
        or a slip, then the answer), from draws of their own (``seed`` mixed with
        ``_WHEN``), so that they never depend on how many draws the text takes.

        Drawn at every arrival, where the text is drawn only when due: two splitmix64
        hashes, each two 32-bit uniforms (a BLAKE2b block of ``_HashRandom`` cost 1.4 µs,
        the whole of this ~1 µs): a lognormal by Box-Muller from the first, whether the
        reply comes in two parts and the wait after the night from the second."""
        x = ((seed ^ _WHEN) + _GOLDEN) & _M64  # mix64, inlined
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        x ^= x >> 31
        y = (x + _GOLDEN) & _M64  # the next one, from the first
        y = ((y ^ (y >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        y = ((y ^ (y >> 27)) * 0x94D049BB133111EB) & _M64
        y ^= y >> 31
        # (0, 1] for the radius: its log is finite; 32 bits reach 6.7 standard deviations.
        z = math.sqrt(-2.0 * math.log(((x >> 32) + 1) * _TO_UNIT32)) * math.cos(
            (x & _M32) * _TWO_PI_32
        )
        d = math.exp(self._delay_mu[sub.delay_profile] + self._sigma * z)
        local = (received_at + d + CAIRO_OFFSET) % 86400.0  # _after_night, inlined
        if _NIGHT_FROM <= local < _NIGHT_TO:
            d += _NIGHT_TO - local - _WAKE_MEAN * math.log(1.0 - (y & _M32) * _WAKE_UNIT32)
        if (
            plan.question.kind in _TWO_PART_KINDS
            and (y >> 32) * _TO_UNIT32 < self._double_p[sub.literate]
            and not sub.opted_out
            and sub.responsiveness is not _RESP_NEVER
        ):
            rng = self._rng  # one in a hundred: the second part's draws from a stream
            rng.reset(y)
            return d, _after_night(rng, received_at, d + rng.lognormvariate(4.1, 0.7))  # ~1 min
        return (d,)

    def _what(
        self, sub: Subscriber, prompt: Prompt, seed: int, double: bool
    ) -> list[tuple[str, ReplyKind, int | None]]:
        """(text, kind, value) of each reply of ``seed``, two when ``_when`` made it a
        two-part reply: the opted-out and never-responsive only send STOP."""
        rng = self._rng
        rng.reset(seed)  # a stream of its own per reply, without a new generator
        style = _STYLES[sub.script]
        if sub.opted_out or sub.responsiveness is _RESP_NEVER:
            return [(rng.choice(style.stop), _R_STOP, None)]
        q = prompt.question
        indic = (sub.digits is _D_ARABIC_INDIC) != (rng.random() < self._digit_slip)
        if not double:
            x = rng.random()
            odd = (self._odd_two if q.kind in _TWO_PART_KINDS else self._odd)[sub.literate]
            if x < odd[-1]:  # an odd reply (a few in a hundred): which one
                for kind, threshold in zip(_ODD_KINDS, odd, strict=True):
                    if x < threshold:
                        out = self._odd_text(rng, sub, style, prompt, indic, kind)
                        return [(out, kind, None)]
        out, kind, value = self._answer(rng, sub, style, prompt, indic)
        if double:
            if q.kind in (_Q_NUMBERED, _Q_RATING) and rng.random() < 0.5:
                first, first_kind = _typo(rng, out), _R_TYPO
                out = rng.choice(style.correction) + out
            else:
                first, first_kind = rng.choice(style.hesitation), _R_NONSENSE
            return [(first, first_kind, None), (out, kind, value)]
        return [(out, kind, value)]

    def silent(self, sub: Subscriber, text: str, seq: int) -> bool:
        """Whether ``react(sub, text, t, seq)`` is empty whatever ``t``: its first draw,
        without the generator. The engine asks at submission so that a message nobody
        will answer needs no arrival at the handset."""
        return not self.answers(sub.entropy, sub.opted_out, sub.responsiveness, text, seq)

    def answers(
        self, entropy: int, opted_out: bool, responsiveness: Responsiveness, text: str, seq: int
    ) -> bool:
        """``not silent`` from the three attributes it reads (the SMSC's hot path has
        them before any ``Subscriber`` is built)."""
        plan = self._plans.get(text) or self._plan(text)
        if _draw_unit is not None:  # the same draw in C: ~0.5 µs less a message
            u = _draw_unit(entropy, plan.salt, seq)
        else:
            x = (entropy ^ plan.salt ^ (seq * _GOLDEN)) & _M64
            x = (x + _GOLDEN) & _M64  # mix64, inlined
            x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
            u = ((x ^ (x >> 31)) >> 11) * _TO_UNIT  # unit, inlined
        if opted_out:
            return u < self._opted_out_stop
        if responsiveness is _RESP_NEVER:
            return u < self._never_stop
        if plan.question.kind is _Q_NONE:
            return u < self._unprompted_p
        return u < self._reply_p[responsiveness]

    def _first_draw(self, sub: Subscriber, plan: _Plan, seq: int) -> tuple[int, bool]:
        """(the reply's seed, whether ``sub`` answers at all): opted-out and never-
        responsive people only to send STOP, the others by responsiveness (or the
        unprompted probability when the message asks nothing)."""
        seed = mix64((sub.entropy ^ plan.salt ^ (seq * _GOLDEN)) & _M64)
        u = unit(seed)
        responsiveness = sub.responsiveness
        if sub.opted_out or responsiveness is _RESP_NEVER:
            return seed, u < (self._opted_out_stop if sub.opted_out else self._never_stop)
        if plan.question.kind is _Q_NONE:
            return seed, u < self._unprompted_p
        return seed, u < self._reply_p[responsiveness]

    # --- what -------------------------------------------------------------------------------

    def _answer(
        self, rng: random.Random, sub: Subscriber, style: _Style, plan: Prompt, indic: bool
    ) -> tuple[str, ReplyKind, int | None]:
        """The reply meant: an option, yes/no, a score, the keyword or some words."""
        q = plan.question
        kind = q.kind
        if kind is _Q_NUMBERED:
            options = max(q.options, plan.right or 0)
            if plan.right is None:
                n, rk = 1 + int(rng.random() * options), _R_ANSWER
            elif rng.random() < self._config.knowledge or options < 2:
                n, rk = plan.right, _R_ANSWER
            else:
                n = 1 + int(rng.random() * (options - 1))
                n, rk = (n + 1 if n >= plan.right else n), _R_WRONG_ANSWER
            return self._number_text(rng, sub, style.answer, n, 0, indic), rk, n
        if kind is _Q_RATING:
            cum, x = plan.rating_cum, rng.random()
            i = 0
            while cum[i] < x:
                i += 1
            n = q.rating_min + i
            text = self._number_text(rng, sub, style.rating, n, q.rating_max, indic)
            return text, _R_RATING, n
        if kind is _Q_YES_NO:
            if rng.random() < self._yes_share:
                return rng.choice(style.yes), _R_YES, None
            return rng.choice(style.no), _R_NO, None
        if kind is _Q_KEYWORD:
            assert q.keyword is not None
            return _keyword_variant(rng, q.keyword, sub.literate), _R_KEYWORD, None
        if kind is _Q_FREE_TEXT:
            return self._feedback(rng, sub, style, indic, long=False), _R_FEEDBACK, None
        return rng.choice(style.unprompted), _R_FEEDBACK, None

    def _number_text(
        self,
        rng: random.Random,
        sub: Subscriber,
        templates: tuple[str, ...],
        n: int,
        top: int,
        indic: bool,
    ) -> str:
        if rng.random() < self._bare[sub.literate]:
            return _num(n, indic)
        return rng.choice(templates).format(n=_num(n, indic), m=_num(top, indic))

    def _feedback(
        self, rng: random.Random, sub: Subscriber, style: _Style, indic: bool, *, long: bool
    ) -> str:
        """Free text: a phrase or two (a word when illiterate), or > 160 chars when long."""
        if not long and not sub.literate and rng.random() < 0.6:
            return rng.choice(style.short)
        text = ""
        if long or (sub.literate and rng.random() < 0.35):
            text = rng.choice(style.openers)
        if long:
            # Phrases in a random order until past LONG_REPLY: a Fisher-Yates shuffle
            # stopped there (a whole ``sample`` drew for every phrase, used or not).
            pool = list(style.feedback)
            n = len(pool)
            for i in range(n):
                j = i + int(rng.random() * (n - i))
                pool[i], pool[j] = pool[j], pool[i]
                text = _then(text, pool[i], style.and_ if i else style.comma)
                if len(text) > LONG_REPLY:
                    break
        else:
            bodies = rng.sample(style.feedback, 1 + (sub.literate and rng.random() < 0.4))
            for i, body in enumerate(bodies):
                text = _then(text, body, style.and_ if i else style.comma)
        if long or (sub.literate and rng.random() < 0.3):
            text = _then(text, rng.choice(style.closers), style.comma)
        text = text.replace("{n}", _num(rng.randint(2, 6), indic))
        if not sub.literate and sub.script is _S_ARABIC:
            text = _misspell(rng, text)
        return text

    def _odd_text(
        self,
        rng: random.Random,
        sub: Subscriber,
        style: _Style,
        plan: Prompt,
        indic: bool,
        kind: ReplyKind,
    ) -> str:
        if kind is _R_STOP:
            return rng.choice(style.stop)
        if kind is _R_EMPTY:
            return ""
        if kind is _R_NONSENSE:
            if rng.random() < 0.7:
                return rng.choice(V.NONSENSE)
            if rng.random() < 0.5:
                return rng.choice(style.letters) * rng.randint(2, 5)
            return "".join(rng.choice(style.letters) for _ in range(rng.randint(2, 6)))
        if kind is _R_TYPO:
            return _typo(rng, self._answer(rng, sub, style, plan, indic)[0])
        # LONG: the answer, then everything else on the subscriber's mind.
        body = self._feedback(rng, sub, style, indic, long=True)
        if plan.question.kind in (_Q_FREE_TEXT, _Q_NONE):
            return body
        return _then(self._answer(rng, sub, style, plan, indic)[0], body, style.comma)

    def spontaneous_text(self, sub: Subscriber, rng: random.Random) -> str:
        """What someone texts 1442 unprompted: a keyword heard on TV, a question about the
        payment date, "help" / "مساعدة", or a complaint."""
        style = _STYLES[sub.script]
        indic = sub.digits is _D_ARABIC_INDIC
        x = rng.random()
        if x < 0.35:
            arabic = sub.script is _S_ARABIC or (sub.script is _S_FRANCO and rng.random() < 0.5)
            word = rng.choice(V.TV_KEYWORDS_AR if arabic else V.TV_KEYWORDS_LATIN)
            return _keyword_variant(rng, word, sub.literate)
        if x < 0.65:
            return rng.choice(style.payment).replace("{n}", _num(rng.randint(1, 12), indic))
        if x < 0.85:
            help_words = V.HELP_AR if sub.script is _S_ARABIC else V.HELP_LATIN
            return rng.choice(help_words)
        return self._feedback(rng, sub, style, indic, long=False)


def _after_night(rng: random.Random, at: float, delay: float) -> float:
    """``delay``, or longer when it would end in the Cairo night: then the reply goes
    out after waking (07:00 plus a truncated exponential, under 4 h)."""
    local = (at + delay + CAIRO_OFFSET) % 86400.0
    if _NIGHT_FROM <= local < _NIGHT_TO:
        delay += _NIGHT_TO - local - _WAKE_MEAN * math.log(1.0 - rng.random() * _WAKE_SPAN)
    return delay


def _then(text: str, more: str, sep: str) -> str:
    """``text`` followed by ``more``; after a question mark a space is punctuation enough."""
    if not text:
        return more
    return text + (" " if text[-1] in "?؟" else sep) + more


def _keyword_variant(rng: random.Random, word: str, literate: bool) -> str:
    """The keyword as typed: mostly exact, else lower case or misspelt."""
    x = rng.random()
    if x < (0.7 if literate else 0.45):
        return word
    if word.isascii():
        if x < 0.85:
            return word.lower() if word != word.lower() else word.upper()
        return _typo(rng, word)
    y = rng.random()
    if y < 0.4:
        slipped = _misspell(rng, word, always=True)
        if slipped != word:
            return slipped
    if y < 0.6 and not word.startswith("ال"):
        return "ال" + word
    if y < 0.75:
        return word + " من فضلك"
    return _typo(rng, word)


def _misspell(rng: random.Random, text: str, *, always: bool = False) -> str:
    """Spelling of someone who writes little: ة→ه, أ→ا, ي↔ى..."""
    for a, b in V.SPELLING_AR:
        if a in text and (always or rng.random() < 0.5):
            text = text.replace(a, b)
            if always:
                break
    return text
