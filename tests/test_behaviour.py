"""The behaviour model: what campaign texts ask, and how a population of Egyptian
subscribers answers them (rates, digits, delays, nights, STOP) against the config.

Shares are checked within 4.5 standard errors of the configured value over 20k
subscribers: loose enough never to flake for a correct model (the model is
deterministic, so a pass is a pass for good), tight enough to catch a wrong share.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import random
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.config import BehaviourConfig
from simulator.subscribers import vocabulary as V
from simulator.subscribers.behaviour import (
    BehaviourModel,
    QuestionKind,
    Reply,
    ReplyKind,
    analyse,
    is_stop,
    parse_number,
    parse_yes_no,
)
from simulator.subscribers.delivery import CAIRO_OFFSET, mix64
from simulator.subscribers.profile import (
    Availability,
    DelayProfile,
    Digits,
    Operator,
    Responsiveness,
    Script,
    Subscriber,
)

N = 20_000
INDIC = set("٠١٢٣٤٥٦٧٨٩")
T0 = 1_600_000_000.0
#: Midnight in Cairo on the day of T0, and 10:00 that morning.
MIDNIGHT = T0 - (T0 + CAIRO_OFFSET) % 86400
MORNING = MIDNIGHT + 10 * 3600

QUIZ = (
    "مسابقة كورونا - السؤال ٤: ما هي أعراض فيروس كورونا؟ ١) حرارة وكحة وضيق تنفس "
    "٢) ألم في الأسنان ٣) حكة في الجلد. أرسل رقم الإجابة الصحيحة إلى 1442"
)
CONFIRM = "هل ذهب أطفالك إلى المدرسة هذا الأسبوع؟ ردي بنعم أو لا"
RATE = "قيمي خدمة صرف تكافل وكرامة في مكتب البريد من ١ إلى ٥"
OPINION = "شاركنا رأيك في خدمات وزارة التضامن الاجتماعي"
VOLUNTEER = "للتطوع مع الجمعيات الأهلية في محافظتك أرسل تطوع إلى 1442"
INFO = "اغسل يديك بالماء والصابون لمدة 20 ثانية على الأقل لحماية أسرتك من كورونا"
ALL_PROMPTS = (QUIZ, CONFIRM, RATE, OPINION, VOLUNTEER, INFO)


def make_sub(
    i: int,
    *,
    script: Script = Script.ARABIC,
    digits: Digits = Digits.ASCII,
    responsiveness: Responsiveness = Responsiveness.EAGER,
    delay: DelayProfile = DelayProfile.NORMAL,
    literate: bool = True,
    opted_out: bool = False,
) -> Subscriber:
    """Subscriber ``i`` with the attributes a test chooses (no population needed)."""
    return Subscriber(
        msisdn=f"2010{i:08d}",
        index=i,
        operator=Operator.VODAFONE,
        prefix_operator=Operator.VODAFONE,
        assigned=True,
        barred=False,
        governorate="Cairo",
        female=True,
        literate=literate,
        script=script,
        digits=digits,
        responsiveness=responsiveness,
        delay_profile=delay,
        availability=Availability.ALWAYS,
        opted_out=opted_out,
        takaful=True,
        karama=False,
        entropy=mix64(i * 7919 + 1),
    )


def subs_like(n: int, **attrs: Any) -> tuple[Subscriber, ...]:
    """``n`` (at most N) subscribers sharing the chosen attributes, built once a session."""
    assert n <= N
    chosen = {k: v for k, v in attrs.items() if v != _MAKE_SUB_DEFAULTS[k]}
    return _population(tuple(sorted(chosen.items())))[:n]


_MAKE_SUB_DEFAULTS = {
    k: v.default for k, v in inspect.signature(make_sub).parameters.items() if k != "i"
}


@functools.cache
def _population(attrs: tuple[tuple[str, Any], ...]) -> tuple[Subscriber, ...]:
    return tuple(make_sub(i, **dict(attrs)) for i in range(N))


@functools.cache
def mixed_subs(n: int, seed: int = 1) -> tuple[Subscriber, ...]:
    """A population mixing every script, digit style, literacy and responsiveness."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        script = rng.choices(list(Script), [0.7, 0.22, 0.08])[0]
        indic = script is Script.ARABIC and rng.random() < 0.55
        out.append(
            make_sub(
                i,
                script=script,
                digits=Digits.ARABIC_INDIC if indic else Digits.ASCII,
                responsiveness=rng.choice(list(Responsiveness)),
                delay=rng.choice(list(DelayProfile)),
                literate=rng.random() < 0.65,
                opted_out=rng.random() < 0.02,
            )
        )
    return tuple(out)


def within(observed: float, expected: float, n: int, z: float = 4.5) -> bool:
    """``observed`` share is within ``z`` standard errors of ``expected`` over ``n``."""
    sd = math.sqrt(max(expected * (1 - expected), 1e-9) / n)
    return abs(observed - expected) <= z * sd + 1e-12


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: a misspelt keyword is one slip away from the real one."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def replies_of(
    model: BehaviourModel, subs: Iterable[Subscriber], text: str, at: float = MORNING
) -> list[list[Reply]]:
    return [model.react(s, text, at, 3) for s in subs]


# --- analyse ------------------------------------------------------------------------------

K = QuestionKind
CAMPAIGN = [
    # COVID quiz: numbered options, both digit styles, Arabic and English markers
    (QUIZ, K.NUMBERED, 3),
    (
        "س٢: كم مرة يجب غسل اليدين؟\n1- مرة واحدة في اليوم\n2- بعد لمس الأسطح وقبل الأكل\n3- لا داعي لغسلهما",
        K.NUMBERED,
        3,
    ),
    (
        "سؤال 7 في مسابقة التوعية: ما المسافة الآمنة بينك وبين الآخرين؟ (1) نصف متر (2) متر ونصف على الأقل (3) لا يهم. اضغط رقم الإجابة",
        K.NUMBERED,
        3,
    ),
    (
        "Quiz Q3: How does coronavirus spread? 1. Droplets from coughing 2. Mobile phone networks 3. Sunlight. Reply with the number of the right answer.",
        K.NUMBERED,
        3,
    ),
    (
        "المسابقة: أي من هذه يحمي من العدوى؟ 1) الكمامة 2) المضاد الحيوي 3) الأعشاب. رد ب1 أو 2 أو 3",
        K.NUMBERED,
        3,
    ),
    ("ما هو أفضل وقت للتواصل معك؟ ١- الصبح ٢- الضهر ٣- بالليل ٤- أي وقت", K.NUMBERED, 4),
    ("للموافقة على تحديث بياناتك اضغط ١ وللرفض اضغط ٢", K.NUMBERED, 2),
    ("أرسل 1 لمعرفة موعد صرف تكافل وكرامة", K.NUMBERED, 1),
    ("Reply 1 for Yes, 2 for No", K.NUMBERED, 2),
    # Takaful conditionality reminders: confirm with نعم
    (
        "تذكير من وزارة التضامن الاجتماعي: انتظام أطفالك في المدرسة بنسبة حضور ٨٠٪ شرط لاستمرار دعم تكافل. للتأكيد أرسل نعم",
        K.YES_NO,
        None,
    ),
    (CONFIRM, K.YES_NO, None),
    ("هل تم تطعيم طفلك في الوحدة الصحية؟ (نعم / لا)", K.YES_NO, None),
    ("Did your family receive the Takaful payment this month? Reply YES or NO", K.YES_NO, None),
    ("Are your children enrolled in school? Y/N", K.YES_NO, None),
    ("ميعاد متابعة الحامل في الوحدة الصحية يوم ١٥. هل ستحضرين؟", K.YES_NO, None),
    # service ratings
    (RATE, K.RATING, 5),
    ("Rate the service at the social unit 1-5", K.RATING, 5),
    ("ما مدى رضاك عن تعامل الأخصائي الاجتماعي؟ أرسل رقم من 1 الى 10", K.RATING, 10),
    ("كيف تقيّم خدمة الخط الساخن (1=سيء ... 5=ممتاز)؟", K.RATING, 5),
    ("قيم الخدمة: 1- سيئة 2- مقبولة 3- جيدة 4- جيدة جدا 5- ممتازة", K.RATING, 5),
    ("On a scale of 0 to 10, how likely are you to recommend 1442 to a friend?", K.RATING, 10),
    # citizens' feedback
    (OPINION, K.FREE_TEXT, None),
    ("اكتبي لنا ما هي أكبر مشكلة تواجهك في صرف المعاش؟", K.FREE_TEXT, None),
    ("Please reply with your opinion about the payment service", K.FREE_TEXT, None),
    ("ما رأيك في رسائل التوعية عن النظافة والصحة؟", K.FREE_TEXT, None),
    # volunteers, contests, services: send a word
    (VOLUNTEER, K.KEYWORD, "تطوع"),
    ("Text JOIN to 1442 to volunteer with local NGOs", K.KEYWORD, "JOIN"),
    ("للاشتراك في مسابقة كورونا بجوائز قيمتها 200 ألف جنيه أرسل مسابقة", K.KEYWORD, "مسابقة"),
    ("ابعتي كلمة (كرامة) على 1442 لمعرفة حالة طلبك", K.KEYWORD, "كرامة"),
    ("Send the word HELP to 1442 for information", K.KEYWORD, "HELP"),
    # awareness and information: nothing asked (opt-out footers are not keywords)
    (INFO, K.NONE, None),
    ("اغسل يديك بالماء والصابون. للإلغاء أرسل إلغاء", K.NONE, None),
    ("هل تعلم أن التطعيم يحمي طفلك من شلل الأطفال والحصبة؟", K.NONE, None),
    (
        "صرف دعم تكافل وكرامة لشهر مارس من 1 إلى 5 من الشهر في مكاتب البريد. للاستفسار اتصل بـ 1442",
        K.NONE,
        None,
    ),
    ("نصائح للوقاية: ١- ارتداء الكمامة ٢- غسل اليدين ٣- التباعد الاجتماعي", K.NONE, None),
    (
        "Wear a mask in crowded places. This text is free of charge. Reply STOP to opt out",
        K.NONE,
        None,
    ),
    # the seed articles' own sentences: information
    (
        "أطلقت نيفين القباج وزيرة التضامن الاجتماعي منصة التواصل التفاعلي للوزارة عبر الهاتف المحمول من خلال رقم 1442.",
        K.NONE,
        None,
    ),
    (
        "المنصة تعتمد على إرسال واستقبال رسائل قصيرة على التليفون المحمول مجانًا بين الوزارة والمواطنين المستهدفين.",
        K.NONE,
        None,
    ),
    (
        "توعية المواطنين ب12 رسالة لوعي، كما يمكن استخدامها للدعوة للتطوع والتنسيق بين الجمعيات الأهلية.",
        K.NONE,
        None,
    ),
]


def _swap_digits(text: str) -> str:
    """The same text with ASCII and Arabic-Indic digits exchanged."""
    return text.translate(str.maketrans("0123456789٠١٢٣٤٥٦٧٨٩", "٠١٢٣٤٥٦٧٨٩0123456789"))


@pytest.mark.parametrize("digits", ["as written", "swapped"])
@pytest.mark.parametrize(("text", "kind", "detail"), CAMPAIGN)
def test_analyse_campaign_texts(
    text: str, kind: QuestionKind, detail: int | str | None, digits: str
) -> None:
    if digits == "swapped":
        text = _swap_digits(text)
    q = analyse(text)
    assert q.kind is kind, text
    if kind is K.NUMBERED:
        assert q.options == detail
    elif kind is K.RATING:
        assert q.rating_max == detail
        assert q.rating_min == (0 if "0 to 10" in text or "٠ to ١٠" in text else 1)
    elif kind is K.KEYWORD:
        assert q.keyword == detail
    else:
        assert (q.options, q.rating_max, q.keyword) == (0, 0, None)


def test_table_covers_every_kind_in_both_scripts() -> None:
    kinds = Counter(kind for _, kind, _ in CAMPAIGN)
    assert set(kinds) == set(QuestionKind)
    assert len(CAMPAIGN) >= 25
    assert all(n >= 3 for n in kinds.values())


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_analyse_and_react_never_fail(text: str) -> None:
    q = analyse(text)
    assert q.options >= 0 and q.rating_max >= 0
    assert (q.kind is K.NUMBERED) == (q.options > 0)
    assert (q.keyword is not None) == (q.kind is K.KEYWORD)
    if q.keyword is not None:
        assert q.keyword.isalpha()
    model = BehaviourModel()
    sub = make_sub(len(text))
    assert model.react(sub, text, T0, 0) == model.react(sub, text, T0, 0)


def test_model_caches_analysis_in_a_bounded_cache() -> None:
    model = BehaviourModel(cache_size=8)
    texts = [f"سؤال {i}: هل استلمت الدعم؟ ردي بنعم أو لا" for i in range(40)] + [QUIZ]
    for t in texts:
        assert model.question(t) == analyse(t)
    assert model.cached == 8
    model.react(make_sub(1), QUIZ, T0, 0)
    assert model.cached == 8
    assert model.question(QUIZ).options == 3


def test_bad_answer_key_regex_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="answer_keys"):
        BehaviourModel(BehaviourConfig(answer_keys={"(أعراض": 1}))


# --- determinism -------------------------------------------------------------------------


def test_same_inputs_same_replies_and_no_global_random() -> None:
    subs = mixed_subs(500)
    state = random.getstate()
    one, two = BehaviourModel(), BehaviourModel()
    random.seed(1)
    first = [one.react(s, t, T0, 5) for s in subs for t in ALL_PROMPTS]
    random.seed(2)
    second = [two.react(s, t, T0, 5) for s in subs for t in ALL_PROMPTS]
    assert first == second
    random.seed(3)
    before = random.getstate()
    BehaviourModel().react(subs[0], QUIZ, T0, 5)
    assert random.getstate() == before
    random.setstate(state)
    assert sum(1 for r in first if r) > 200


def test_replies_depend_on_message_number_and_text() -> None:
    model = BehaviourModel()
    subs = subs_like(300)
    by_seq = [[model.react(s, OPINION, T0, seq) for s in subs] for seq in (0, 1)]
    assert by_seq[0] != by_seq[1]
    other = OPINION + " "
    assert [model.react(s, OPINION, T0, 0) for s in subs] != [
        model.react(s, other, T0, 0) for s in subs
    ]


def test_replies_do_not_depend_on_python_hash_seed() -> None:
    """The text's hash seeds the RNG: Python's own hash() differs per process."""
    code = (
        "from simulator.subscribers.behaviour import BehaviourModel\n"
        "from simulator.subscribers.profile import *\n"
        "def sub(i):\n"
        "    return Subscriber('2010', i, Operator.VODAFONE, Operator.VODAFONE, True, False,\n"
        "        'Cairo', True, i % 4 > 0, list(Script)[i % 3], list(Digits)[i % 2],\n"
        "        Responsiveness.EAGER, DelayProfile.FAST, Availability.ALWAYS, False, True,\n"
        "        False, i * 0x9E3779B97F4A7C15 % 2**64)\n"
        "m = BehaviourModel()\n"
        f"print([m.react(sub(i), t, 1.6e9, 1) for i in range(80) for t in {ALL_PROMPTS!r}])\n"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")
    ]
    outs = {run.communicate(timeout=60)[0] for run in runs}
    assert all(run.returncode == 0 for run in runs)
    assert len(outs) == 1
    assert outs.pop().count("Reply(") > 100


# --- who replies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "responsiveness", [Responsiveness.EAGER, Responsiveness.NORMAL, Responsiveness.RARE]
)
def test_reply_rate_follows_responsiveness(responsiveness: Responsiveness) -> None:
    cfg = BehaviourConfig()
    model = BehaviourModel(cfg)
    subs = subs_like(N, responsiveness=responsiveness)
    replied = sum(1 for r in replies_of(model, subs, QUIZ) if r)
    assert within(replied / N, cfg.reply_probability[responsiveness.value], N)


def test_information_gets_the_unprompted_rate() -> None:
    cfg = BehaviourConfig(unprompted_reply_probability=0.05)
    model = BehaviourModel(cfg)
    subs = subs_like(N // 2, responsiveness=Responsiveness.NORMAL)
    out = replies_of(model, subs, INFO)
    assert within(sum(1 for r in out if r) / len(subs), 0.05, len(subs))
    kinds = Counter(r.kind for rs in out for r in rs)
    assert kinds[ReplyKind.FEEDBACK] > kinds[ReplyKind.STOP]
    assert ReplyKind.ANSWER not in kinds and ReplyKind.KEYWORD not in kinds


@pytest.mark.parametrize("who", ["never", "opted_out"])
def test_silent_subscribers_only_ever_stop(who: str) -> None:
    cfg = BehaviourConfig(stop_share=0.02)
    model = BehaviourModel(cfg, opted_out_stop=0.05)
    if who == "never":
        subs = subs_like(N // 2, responsiveness=Responsiveness.NEVER)
    else:
        subs = subs_like(N // 2, opted_out=True)
    out = [r for i, s in enumerate(subs) for r in model.react(s, ALL_PROMPTS[i % 6], MORNING, 0)]
    assert {r.kind for r in out} == {ReplyKind.STOP}
    assert all(is_stop(r.text) for r in out)
    assert within(len(out) / len(subs), 0.02 if who == "never" else 0.05, len(subs))


def test_stop_share_and_every_stop_is_a_stop() -> None:
    cfg = BehaviourConfig(stop_share=0.1)
    model = BehaviourModel(cfg)
    subs = mixed_subs(N)
    subs = [s for s in subs if s.responsiveness is not Responsiveness.NEVER and not s.opted_out]
    out = [rs for rs in replies_of(model, subs, VOLUNTEER) if rs]
    stops = [r for rs in out for r in rs if r.kind is ReplyKind.STOP]
    assert within(len(stops) / len(out), 0.1, len(out))
    assert all(is_stop(r.text) for r in stops)
    assert {r.text for r in stops} >= {"STOP", "الغاء", "إلغاء"}


def test_nothing_but_a_stop_reads_as_stop() -> None:
    """The SMSC opts a number out on is_stop(): a feedback text must never trigger it."""
    cfg = BehaviourConfig(
        typo_share=0.2, nonsense_share=0.1, long_share=0.1, answer_keys={"أعراض": 1}
    )
    model = BehaviourModel(cfg)
    subs = mixed_subs(3000, seed=7)
    seen = Counter()
    for s in subs:
        for t in ALL_PROMPTS:
            for r in model.react(s, t, MORNING, 1):
                seen[r.kind] += 1
                assert is_stop(r.text) == (r.kind is ReplyKind.STOP), r
    assert len(seen) == len(ReplyKind)


# --- what they reply ----------------------------------------------------------------------


@pytest.mark.parametrize("knowledge", [0.7, 0.3])
def test_right_answers_follow_knowledge(knowledge: float) -> None:
    cfg = BehaviourConfig(knowledge=knowledge, answer_keys={r"أعراض\s+فيروس": 1})
    model = BehaviourModel(cfg)
    subs = mixed_subs(N)
    answers = [
        r
        for rs in replies_of(model, subs, QUIZ)
        for r in rs
        if r.kind in (ReplyKind.ANSWER, ReplyKind.WRONG_ANSWER)
    ]
    right = [r for r in answers if r.kind is ReplyKind.ANSWER]
    assert within(len(right) / len(answers), knowledge, len(answers))
    assert {r.value for r in right} == {1}
    assert {r.value for r in answers if r.kind is ReplyKind.WRONG_ANSWER} == {2, 3}
    for r in answers:
        assert parse_number(r.text) == r.value, r


def test_answer_key_matches_english_text_and_folded_arabic() -> None:
    cfg = BehaviourConfig(knowledge=1.0, answer_keys={"coronavirus spread": 1, "اعراض": 2})
    model = BehaviourModel(cfg)
    english = "How does coronavirus spread? 1. Droplets 2. Phones 3. Sunlight. Reply 1, 2 or 3"
    for text, right in ((english, 1), (QUIZ, 2)):  # QUIZ writes أعراض, the key اعراض
        values = {
            r.value
            for s in mixed_subs(400)
            for r in model.react(s, text, T0, 0)
            if r.kind in (ReplyKind.ANSWER, ReplyKind.WRONG_ANSWER)
        }
        assert values == {right}


def test_without_a_key_answers_spread_over_the_options() -> None:
    model = BehaviourModel()
    subs = subs_like(6000)
    out = [r for rs in replies_of(model, subs, QUIZ) for r in rs]
    assert ReplyKind.WRONG_ANSWER not in {r.kind for r in out}
    values = Counter(r.value for r in out if r.kind is ReplyKind.ANSWER)
    assert set(values) == {1, 2, 3}
    total = sum(values.values())
    assert all(within(v / total, 1 / 3, total) for v in values.values())


@pytest.mark.parametrize("digits", [Digits.ARABIC_INDIC, Digits.ASCII])
def test_digits_follow_the_subscriber(digits: Digits) -> None:
    slip = 0.02
    model = BehaviourModel(digit_slip=slip)
    subs = subs_like(N // 2, digits=digits) + subs_like(N // 2, digits=digits, literate=False)
    numeric = [
        r
        for t in (QUIZ, RATE)
        for rs in replies_of(model, subs[: N // 2] if t == QUIZ else subs[N // 2 :], t)
        for r in rs
        if r.kind in (ReplyKind.ANSWER, ReplyKind.WRONG_ANSWER, ReplyKind.RATING)
    ]
    indic = sum(1 for r in numeric if INDIC & set(r.text)) / len(numeric)
    expected = 1 - slip if digits is Digits.ARABIC_INDIC else slip
    assert within(indic, expected, len(numeric))
    for r in numeric:
        assert parse_number(r.text) == r.value, r


def test_ratings_are_on_the_scale_and_mostly_high() -> None:
    model = BehaviourModel()
    subs = mixed_subs(N)[: N // 2]
    for text, lo, hi in ((RATE, 1, 5), ("On a scale of 0 to 10, rate the hotline", 0, 10)):
        ratings = [
            r for rs in replies_of(model, subs, text) for r in rs if r.kind is ReplyKind.RATING
        ]
        values = Counter(r.value for r in ratings)
        assert set(values) == set(range(lo, hi + 1))
        assert values.most_common(1)[0][0] == hi
        assert values[hi] > values[lo] > 0
        for r in ratings:
            assert parse_number(r.text) == r.value, r


def test_yes_no_replies_in_every_script() -> None:
    model = BehaviourModel(yes_share=0.75)
    subs = mixed_subs(N)[: N // 2]
    out = [
        r
        for rs in replies_of(model, subs, CONFIRM)
        for r in rs
        if r.kind in (ReplyKind.YES, ReplyKind.NO)
    ]
    yes = [r for r in out if r.kind is ReplyKind.YES]
    assert within(len(yes) / len(out), 0.75, len(out))
    for r in out:
        assert parse_yes_no(r.text) is (r.kind is ReplyKind.YES), r
    texts = {r.text for r in out}
    assert {"نعم", "ايوه", "aywa", "yes", "لا", "la2", "no"} <= texts


def test_keyword_replies_are_mostly_the_instructed_word() -> None:
    model = BehaviourModel()
    shares = {}
    for literate in (True, False):
        subs = subs_like(6000, literate=literate)
        kws = [
            r.text
            for rs in replies_of(model, subs, VOLUNTEER)
            for r in rs
            if r.kind is ReplyKind.KEYWORD
        ]
        shares[literate] = sum(1 for k in kws if k == "تطوع") / len(kws)
        assert all(
            edit_distance(k.removeprefix("ال").removesuffix(" من فضلك"), "تطوع") <= 1 for k in kws
        )
    assert 0.6 < shares[True] < 0.85
    assert 0.35 < shares[False] < shares[True]
    latin = [
        r.text
        for s in mixed_subs(4000)
        for r in model.react(s, "Text JOIN to 1442", T0, 0)
        if r.kind is ReplyKind.KEYWORD
    ]
    assert "join" in latin and "JOIN" in latin


def test_odd_replies_in_their_configured_shares() -> None:
    cfg = BehaviourConfig(
        stop_share=0.02, empty_share=0.03, nonsense_share=0.04, typo_share=0.05, long_share=0.06
    )
    model = BehaviourModel(cfg, illiterate_typo_factor=2.0, illiterate_long_factor=0.25)
    for literate in (True, False):
        subs = subs_like(N // 2, literate=literate)
        out = [rs for rs in replies_of(model, subs, OPINION) if rs]
        firsts = Counter(rs[0].kind for rs in out)
        n = len(out)
        typo, long = (0.05, 0.06) if literate else (0.10, 0.015)
        for kind, share in (
            (ReplyKind.STOP, 0.02),
            (ReplyKind.EMPTY, 0.03),
            (ReplyKind.NONSENSE, 0.04),
            (ReplyKind.TYPO, typo),
            (ReplyKind.LONG, long),
        ):
            assert within(firsts[kind] / n, share, n), (literate, kind)
        for rs in out:
            for r in rs:
                if r.kind is ReplyKind.EMPTY:
                    assert r.text == ""
                elif r.kind is ReplyKind.LONG:
                    assert len(r.text) > 160
                else:
                    assert r.text.strip()


def test_long_replies_carry_the_answer_first() -> None:
    cfg = BehaviourConfig(
        stop_share=0, empty_share=0, nonsense_share=0, typo_share=0, long_share=1.0
    )
    model = BehaviourModel(cfg, illiterate_long_factor=1.0, double_share=0)
    subs = [make_sub(i, script=list(Script)[i % 3]) for i in range(300)]
    longs = [r for rs in replies_of(model, subs, QUIZ) for r in rs]
    assert longs and all(r.kind is ReplyKind.LONG and len(r.text) > 160 for r in longs)
    assert all(parse_number(r.text) in (1, 2, 3) for r in longs)
    arabic = [r.text for r, s in zip(longs, subs, strict=False) if s.script is Script.ARABIC]
    assert any(any("\u0600" <= c <= "\u06ff" for c in t) for t in arabic)


def test_typos_differ_from_what_was_meant() -> None:
    cfg = BehaviourConfig(
        stop_share=0, empty_share=0, nonsense_share=0, typo_share=1.0, long_share=0,
        knowledge=1.0, answer_keys={"أعراض": 2},
    )  # fmt: skip
    model = BehaviourModel(cfg)
    subs = subs_like(3000, literate=True)
    typos = [r.text for rs in replies_of(model, subs, QUIZ) for r in rs]
    assert typos
    parsed = Counter(parse_number(t) for t in typos)
    # the slip hits the digit most of the time: a neighbour (1, 3) or a double (22)
    assert parsed[2] < 0.5 * len(typos)
    assert parsed[1] > 0 and parsed[3] > 0 and parsed[22] > 0


def test_illiterate_subscribers_write_shorter_with_more_bare_digits() -> None:
    model = BehaviourModel()
    stats = {}
    for literate in (True, False):
        subs = subs_like(4000, literate=literate)
        answers = [
            r.text for rs in replies_of(model, subs, QUIZ) for r in rs if r.kind is ReplyKind.ANSWER
        ]
        feedback = [
            r.text
            for rs in replies_of(model, subs, OPINION)
            for r in rs
            if r.kind is ReplyKind.FEEDBACK
        ]
        bare = sum(1 for t in answers if t.strip().isdigit()) / len(answers)
        stats[literate] = (bare, statistics.mean(len(t) for t in feedback))
    assert stats[False][0] > stats[True][0] + 0.15
    assert stats[False][1] < 0.7 * stats[True][1]


def test_two_message_replies_are_rare_and_in_order() -> None:
    model = BehaviourModel(double_share=0.05)
    subs = subs_like(N // 2)
    out = [rs for rs in replies_of(model, subs, QUIZ) if rs]
    doubles = [rs for rs in out if len(rs) == 2]
    assert all(len(rs) <= 2 for rs in out)
    assert doubles
    normal = sum(
        1
        for rs in out
        if rs[-1].kind in (ReplyKind.ANSWER, ReplyKind.WRONG_ANSWER) and len(rs) in (1, 2)
    )
    assert within(len(doubles) / normal, 0.05, normal)
    for first, second in doubles:
        assert first.delay < second.delay
        assert first.kind in (ReplyKind.TYPO, ReplyKind.NONSENSE)
        assert second.kind is ReplyKind.ANSWER
        assert parse_number(second.text) == second.value


# --- when, then what: the engine's lazy path ------------------------------------------------


def _lazily(
    model: BehaviourModel, sub: Subscriber, text: str, at: float, seq: int
) -> list[tuple[float, str, ReplyKind]]:
    """``react``'s replies as the engine gets them: ``timing`` at arrival, each text
    from ``reply_text`` when due; (delay, text, kind) each."""
    when = model.timing(sub, text, at, seq)
    if when is None:
        return []
    prompt, seed, delays = when
    parts = (0,) if len(delays) == 1 else (1, 2)
    return [
        (d, *model.reply_text(sub, prompt, seed, p)) for d, p in zip(delays, parts, strict=True)
    ]


def test_timing_then_reply_text_is_react() -> None:
    model = BehaviourModel(double_share=0.2, opted_out_stop=0.5, never_stop=0.5)
    subs = mixed_subs(3000, seed=7)
    cases = [
        (s, t, MIDNIGHT + (i * 5077.3) % (2 * 86400), i % 5)
        for i, s in enumerate(subs)
        for t in ALL_PROMPTS
    ]
    eager = [[(r.delay, r.text, r.kind) for r in model.react(*c)] for c in cases]
    # The texts written in another order than the delays were drawn, another message's
    # in between: nothing carries over from one call to the next.
    lazy = [_lazily(model, *c) for c in reversed(cases)][::-1]
    assert lazy == eager
    kinds = Counter(r[2] for rs in eager for r in rs)
    doubles = [rs for rs in eager if len(rs) == 2]
    assert len(doubles) > 100 and len(doubles) < 0.25 * sum(map(bool, eager))
    stops = [c[0] for c, rs in zip(cases, eager, strict=True) if rs and rs[0][2] is ReplyKind.STOP]
    assert any(s.opted_out for s in stops)
    assert any(s.responsiveness is Responsiveness.NEVER for s in stops)
    assert kinds[ReplyKind.TYPO] and kinds[ReplyKind.LONG] and kinds[ReplyKind.NONSENSE]


def test_delays_do_not_depend_on_how_the_text_is_written() -> None:
    """The delays come from a stream of their own: knobs that change only the text
    (digit style, bare numbers, yes share) draw other texts at the same times."""
    one = BehaviourModel(double_share=0.1)
    two = BehaviourModel(double_share=0.1, digit_slip=0.5, bare_share=0.0, yes_share=0.1)
    subs = mixed_subs(2000, seed=8)
    at = MIDNIGHT + 4 * 3600
    first = [one.timing(s, t, at, 2) for s in subs for t in ALL_PROMPTS]
    second = [two.timing(s, t, at, 2) for s in subs for t in ALL_PROMPTS]
    assert first == second
    texts = [
        (one.reply_text(s, *w[:2], 0), two.reply_text(s, *w[:2], 0))
        for s, w in zip((s for s in subs for _ in ALL_PROMPTS), first, strict=True)
        if w is not None and len(w[2]) == 1
    ]
    assert sum(a != b for a, b in texts) > 0.2 * len(texts)


def test_personalised_copies_of_a_question_share_one_prompt() -> None:
    """Replies waiting to be written keep the prompt, not the message: a personalised
    quiz to millions keeps one per question, not one text per person."""
    model = BehaviourModel()
    subs = [s for s in subs_like(400) if s.responsiveness is Responsiveness.EAGER]
    prompts = {
        id(w[0])
        for i, s in enumerate(subs)
        if (w := model.timing(s, f"أهلا {NAMES[i % len(NAMES)]}، {QUIZ}", MORNING, 0))
    }
    assert len(prompts) == 1 and model.cached == len(NAMES)  # five texts, one prompt


NAMES = ("منى", "فاطمة", "أحمد", "Mona", "Sara")


def test_two_part_replies_leave_the_odd_shares_as_configured() -> None:
    """Whether a reply comes in two parts is drawn with its delays, before its text:
    the odd kinds keep their configured shares of all replies all the same."""
    cfg = BehaviourConfig(stop_share=0.05, empty_share=0.05, nonsense_share=0, typo_share=0,
                          long_share=0)  # fmt: skip
    model = BehaviourModel(cfg, double_share=0.4)
    out = [rs for rs in replies_of(model, subs_like(N // 2), QUIZ) if rs]
    n = len(out)
    assert within(sum(len(rs) == 2 for rs in out) / n, 0.4 * 0.9, n)
    for kind in (ReplyKind.STOP, ReplyKind.EMPTY):
        assert within(sum(rs[0].kind is kind for rs in out) / n, 0.05, n), kind
    assert all(rs[0].kind in (ReplyKind.TYPO, ReplyKind.NONSENSE) for rs in out if len(rs) == 2)


# --- when --------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", list(DelayProfile))
def test_delay_median_and_spread_per_profile(profile: DelayProfile) -> None:
    cfg = BehaviourConfig(delay_sigma=0.8)
    model = BehaviourModel(cfg)
    subs = subs_like(N, delay=profile)
    delays = [rs[0].delay for rs in replies_of(model, subs, QUIZ, at=MORNING) if rs]
    median = cfg.delay_median[profile.value]
    assert abs(statistics.median(delays) / median - 1) < 0.05
    if profile is not DelayProfile.SLOW:  # slow replies reach the night: upper tail moved
        q84 = statistics.quantiles(delays, n=100)[83]
        assert abs(math.log(q84 / median) - 0.8) < 0.08


def test_no_reply_lands_in_the_cairo_night() -> None:
    model = BehaviourModel(BehaviourConfig(delay_sigma=1.2))
    subs = mixed_subs(N, seed=3)
    landed = []
    for i, s in enumerate(subs):
        at = MIDNIGHT + (i * 4391.7) % (3 * 86400)
        landed.extend(at + r.delay for r in model.react(s, QUIZ, at, 0))
    hours = [((t + CAIRO_OFFSET) % 86400) / 3600 for t in landed]
    assert len(hours) > N // 3
    assert not [h for h in hours if 1 <= h < 7]
    assert sum(1 for h in hours if 7 <= h < 8) > sum(1 for h in hours if 12 <= h < 13)


def test_messages_read_at_night_are_answered_in_the_morning() -> None:
    model = BehaviourModel()
    subs = subs_like(N // 4, delay=DelayProfile.FAST)
    at = MIDNIGHT + 3 * 3600
    out = [r for rs in replies_of(model, subs, QUIZ, at=at) for r in rs]
    assert len(out) > N // 5
    hours = [((at + r.delay + CAIRO_OFFSET) % 86400) / 3600 for r in out]
    assert all(7 <= h <= 11 for h in hours)
    assert statistics.median(hours) < 8
    assert all(r.delay < 8 * 3600 for r in out)
    by_day = [r.delay for rs in replies_of(model, subs, QUIZ) for r in rs]
    assert statistics.median(by_day) < 60  # by day, fast replies come within seconds


# --- reading replies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("١٢٣", 123),
        ("123", 123),
        ("رقم ٢", 2),
        ("رقم٢", 2),
        ("الإجابة ٣", 3),
        ("الاجابه رقم 1", 1),
        ("el egaba 2", 2),
        ("3ala 2", 2),
        ("Answer: 4", 4),
        ("  ٥ ", 5),
        ("٥/٥", 5),
        ("۳", 3),
        ("٢٢", 22),
        ("la2", None),
        ("el egaba 3", 3),
        ("نعم", None),
        ("", None),
    ],
)
def test_parse_number(text: str, number: int | None) -> None:
    assert parse_number(text) == number


@given(
    n=st.integers(min_value=0, max_value=10**6),
    template=st.sampled_from(V.ANSWER_AR + V.ANSWER_FRANCO + V.ANSWER_EN + ("{n}",)),
    indic=st.booleans(),
)
def test_parse_number_reads_every_answer_style(n: int, template: str, indic: bool) -> None:
    digits = str(n).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) if indic else str(n)
    assert parse_number(template.format(n=digits)) == n


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop ",
        "STOP.",
        "إلغاء",
        "الغاء",
        "الغاء الاشتراك",
        "إلغاء الإشتراك",
        "ايقاف",
        "إيقاف الرسائل",
        "unsubscribe",
        "stop please",
        "elgha2",
        "2elgha2",
        "الغي الاشتراك من فضلك",
        *V.STOP_AR,
        *V.STOP_FRANCO,
        *V.STOP_EN,
    ],
)
def test_is_stop(text: str) -> None:
    assert is_stop(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "لا",
        "no",
        "وقف الصرف ليه؟",
        "ليه اتعمل الغاء للكارت",
        "stop sending me the wrong amount",
        "1",
        "تطوع",
        "نعم",
        "stopped",
        "الغاء الاشتراك وكمان عايزة اعرف الصرف امتى",
    ],
)
def test_is_not_stop(text: str) -> None:
    assert not is_stop(text)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("نعم", True),
        ("أيوة", True),
        ("ايوه طبعا", True),
        ("Aywa", True),
        ("YES", True),
        ("موافقة", True),
        ("لأ", False),
        ("لاء", False),
        ("la2", False),
        ("No thanks", False),
        ("مش موافق", False),
        ("", None),
        ("2", None),
        ("تمام", None),
    ],
)
def test_parse_yes_no(text: str, answer: bool | None) -> None:
    assert parse_yes_no(text) is answer


# --- unprompted texts ---------------------------------------------------------------------


def test_spontaneous_texts() -> None:
    model = BehaviourModel()
    subs = mixed_subs(3000, seed=9)
    texts = [model.spontaneous_text(s, random.Random(i)) for i, s in enumerate(subs)]
    again = [model.spontaneous_text(s, random.Random(i)) for i, s in enumerate(subs)]
    assert texts == again
    assert all(t.strip() for t in texts)
    joined = Counter(texts)
    assert joined["تطوع"] > 0 and joined["مساعدة"] > 0
    assert any(t.lower() == "help" for t in texts)
    assert any("الصرف" in t or "صرف" in t or "sarf" in t for t in texts)
    assert len(joined) > 60
    arabic = [t for t, s in zip(texts, subs, strict=True) if s.script is Script.ARABIC]
    assert sum(1 for t in arabic if any("\u0621" <= c <= "\u064a" for c in t)) > 0.95 * len(arabic)
    assert not any(is_stop(t) for t in texts)
