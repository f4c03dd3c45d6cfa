"""The flow engine and the seed campaigns: quiz scoring, triggers, opt-out, timeouts, loader."""

from __future__ import annotations

import copy
import dataclasses
import random
import re
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.platform.campaigns import CAMPAIGNS_DIR, FlowLoadError, load_flows, parse_flows
from simulator.platform.flows import (
    ContactChanged,
    Effect,
    FlowDef,
    FlowEngine,
    Handling,
    MsgHandled,
    RunChanged,
    SendMsg,
    first_word,
    numbers,
    prize_draw,
    reachable,
)
from simulator.platform.model import Contact, FlowRun

T0 = 1_600_000_000.0
MINUTE = 60.0
DAY = 86_400.0

FLOWS = load_flows()
BY_FILE: dict[str, list[FlowDef]] = {}
for _flow in FLOWS:
    BY_FILE.setdefault(_flow.source, []).append(_flow)
QUIZ = BY_FILE["covid_quiz.yaml"][0]
CONDITIONALITY = BY_FILE["conditionality.yaml"][0]
VOLUNTEER = BY_FILE["volunteer_call.yaml"][0]
SERVICES = BY_FILE["services_info.yaml"][0]
FEEDBACK = BY_FILE["feedback_survey.yaml"][0]
NOT_UNDERSTOOD = BY_FILE["not_understood.yaml"][0]
#: The shipped flows without the catch-all: what is not understood goes to the inbox.
INBOX_FLOWS = [f for f in FLOWS if not f.catch_all]

AR_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def engine(flows: list[FlowDef] | None = None, seed: int = 1) -> FlowEngine:
    return FlowEngine(FLOWS if flows is None else flows, rng=random.Random(seed))


def contact(i: int = 1, **kw: Any) -> Contact:
    return Contact(i, f"c-{i}", f"tel:+2010{i:08d}", **kw)


def sends(effects: list[Effect]) -> list[str]:
    return [e.text for e in effects if isinstance(e, SendMsg)]


def handled(effects: list[Effect]) -> MsgHandled:
    first = effects[0]
    assert isinstance(first, MsgHandled)
    return first


def runs(effects: list[Effect]) -> list[FlowRun]:
    return [e.run for e in effects if isinstance(e, RunChanged)]


def raw_answer_key() -> list[int]:
    """The answer key read straight from the YAML, not through the loader."""
    doc = yaml.safe_load((CAMPAIGNS_DIR / "covid_quiz.yaml").read_text(encoding="utf-8"))
    return [n["question"]["correct"] for n in doc["nodes"] if "question" in n]


# --- the quiz ---------------------------------------------------------------------------


def test_quiz_answer_key_is_machine_readable() -> None:
    key = raw_answer_key()
    assert len(key) == 10
    assert QUIZ.answer_key == {f"q{i}": c for i, c in enumerate(key, 1)}
    assert all(len(q.options) == 3 and 1 <= q.correct <= 3 for q in QUIZ.questions)
    assert len(set(key)) == 3  # not every answer is the same option


def test_quiz_end_to_end_one_contact() -> None:
    eng = engine()
    c = contact(name="Mona")
    key = raw_answer_key()
    now = T0
    effects = eng.handle_message(c, "مسابقة", now)
    assert handled(effects) == MsgHandled(c.id, Handling.TRIGGERED, QUIZ.uuid)
    texts = sends(effects)
    assert len(texts) == 2 and "200 ألف جنيه" in texts[0] and texts[1].startswith("السؤال الأول")
    assert "\n1- " in texts[1] and "\n3- " in texts[1]
    assert c.fields["quiz_score"] == 0

    wrong = {k: (k % 3) + 1 for k in (1, 2, 3)}  # an option that is not the right one
    # (reply, counts as right?) — ASCII and Arabic-Indic digits, words around them
    plan = [
        (str(key[0]), True),
        (f"الاجابة {str(wrong[key[1]]).translate(AR_DIGITS)}", False),
        (f"رقم {str(key[2]).translate(AR_DIGITS)}", True),
        ("مش عارف", None),  # invalid: re-asked
        (f"{key[3]} ان شاء الله", True),
        (str(wrong[key[4]]), False),
        (str(key[5]).translate(AR_DIGITS), True),
        ("5", None),  # a number but no option: invalid
        (f"answer {key[6]}", True),
        (str(key[7]), True),
        (f"el egaba {wrong[key[8]]}", False),
        (f"{str(key[9]).translate(AR_DIGITS)}.", True),
    ]
    expected_score = sum(1 for _, right in plan if right)
    question = 1
    for text, right in plan:
        now += MINUTE
        effects = eng.handle_message(c, text, now)
        assert handled(effects).handling is Handling.RESUMED
        out = sends(effects)
        run = eng.active_run(c.id) or runs(effects)[-1]
        if right is None:
            assert out == ["عذرًا، من فضلك أرسل رقم الإجابة الصحيحة فقط: 1 أو 2 أو 3"]
            assert run.values[f"q{question}"]["category"] == "other"
            continue
        result = run.values[f"q{question}"]
        assert result["category"] == ("correct" if right else "wrong"), text
        assert result["input"] == text
        assert result["value"] in {"1", "2", "3"}  # the option, in ASCII
        question += 1
        if question <= 10:
            assert len(out) == 1 and out[0].startswith("السؤال")
    assert question == 11
    assert eng.active_run(c.id) is None
    final = runs(effects)[-1]
    assert final.exit_type == "completed" and final.responded
    assert c.fields["quiz_score"] == expected_score == 7
    assert out == [
        f"انتهت المسابقة. عدد إجاباتك الصحيحة {expected_score} من 10. شكرًا لمشاركتك، "
        "ويمكنك المحاولة مرة أخرى بإرسال كلمة مسابقة."
    ]
    assert "quiz_full_score" not in c.groups
    assert isinstance(effects[-1], ContactChanged)
    # the run's path went through every question's wait node, twice for q4 and q7
    waits = Counter(node for node, _ in final.path if node.endswith(".wait"))
    assert waits["q4.wait"] == 2 and waits["q7.wait"] == 2 and len(waits) == 10

    # playing again resets the score; a full score joins the prize group
    eng.handle_message(c, "quiz", now)
    assert c.fields["quiz_score"] == 0
    for answer in key:
        effects = eng.handle_message(c, str(answer), now)
    assert c.fields["quiz_score"] == 10
    assert c.groups == ["quiz_full_score"]
    assert "10 أسئلة من 10" in sends(effects)[0]


def answer_text(rng: random.Random, option: int) -> str:
    digits = str(option) if rng.random() < 0.5 else str(option).translate(AR_DIGITS)
    style = rng.choice(["{n}", "{n}", "الإجابة {n}", "رقم{n}", "el egaba {n}", "Answer: {n}"])
    return style.format(n=digits)


def test_quiz_thousand_contacts_scored_exactly() -> None:
    eng = engine(seed=7)
    rng = random.Random(2024)
    key = raw_answer_key()
    people = [contact(i) for i in range(1, 1001)]
    expected: dict[int, int] = {}
    now = T0
    for c in people:
        eng.handle_message(c, rng.choice(["مسابقة", "مسابقه", "Quiz", "كورونا", "COVID"]), now)
        expected[c.id] = 0
    for q in range(10):
        now += 10 * MINUTE
        for c in people:
            if rng.random() < 0.1:  # nonsense first: re-asked, not scored
                effects = eng.handle_message(c, rng.choice(["؟", "ايه ده", "hhh", "7", ""]), now)
                assert sends(effects) == ["عذرًا، من فضلك أرسل رقم الإجابة الصحيحة فقط: 1 أو 2 أو 3"]
            # mostly right, so that some get all ten (a uniform guess almost never does)
            option = key[q] if rng.random() < 0.85 else rng.randint(1, 3)
            expected[c.id] += option == key[q]
            eng.handle_message(c, answer_text(rng, option), now)
    assert eng.waiting == 0
    scores = {c.id: c.fields["quiz_score"] for c in people}
    assert scores == expected
    assert 50 < Counter(scores.values())[10] < 500  # some full scores, not everyone
    full = [c for c in people if "quiz_full_score" in c.groups]
    assert sorted(c.id for c in full) == sorted(i for i, s in expected.items() if s == 10)

    winners = prize_draw(full, 3, random.Random(5))
    assert len({w.id for w in winners}) == min(3, len(full))
    assert all(w in full for w in winners)
    assert prize_draw(list(reversed(full)), 3, random.Random(5)) == winners
    assert prize_draw(full, 10_000, random.Random(5)) != [] and len(
        prize_draw(full, 10_000, random.Random(5))
    ) == len(full)


def test_prize_draw_skips_blocked_and_rejects_negative() -> None:
    pool = [contact(i) for i in range(10)]
    pool[3].blocked = True
    drawn = prize_draw(pool, 9, random.Random(1))
    assert len(drawn) == 9 and pool[3] not in drawn
    with pytest.raises(ValueError):
        prize_draw(pool, -1, random.Random(1))


# --- triggers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["مسابقة", "مسابقه", "مسـابقة", "مُسابقة", "مسابقة!", "  مسابقة يا جماعة", "QUIZ", "Quiz now"],
)
def test_keyword_variants_start_the_quiz(text: str) -> None:
    eng = engine()
    c = contact()
    effects = eng.handle_message(c, text, T0)
    assert handled(effects).handling is Handling.TRIGGERED
    assert handled(effects).flow_uuid == QUIZ.uuid


@pytest.mark.parametrize(
    "text", ["عايزة مسابقة", "please quiz", "quizzes", "مسابقات", "", "   ", "١٤٤٢"]
)
def test_keyword_only_as_the_first_whole_word(text: str) -> None:
    effects = engine(INBOX_FLOWS).handle_message(contact(), text, T0)
    assert effects == [MsgHandled(1, Handling.UNHANDLED)]
    # The shipped catch-all answers it instead, and starts nothing else.
    eng = engine()
    effects = eng.handle_message(contact(), text, T0)
    assert handled(effects) == MsgHandled(1, Handling.CAUGHT, NOT_UNDERSTOOD.uuid)
    assert sends(effects) == [
        "عذرًا، لم نفهم رسالتك. أرسل كلمة خدمات لعرض قائمة خدمات الوزارة على 1442."
    ]
    assert eng.active_run(1) is None  # the catch-all's run ended: it waits for nothing


def test_the_catch_all_only_takes_what_no_run_and_no_keyword_takes() -> None:
    eng = engine()
    c = contact()
    eng.handle_message(c, "خدمات", T0)  # the services menu waits for a number
    effects = eng.handle_message(c, "خجمات", T0 + 1)  # a typo: the waiting run's "other"
    assert handled(effects) == MsgHandled(c.id, Handling.RESUMED, SERVICES.uuid)
    assert sends(effects) == ["عذرًا، أرسل رقم الخدمة فقط: 1 أو 2 أو 3"]
    effects = eng.handle_message(c, "مسابقة", T0 + 2)  # a keyword beats the catch-all
    assert handled(effects) == MsgHandled(c.id, Handling.TRIGGERED, QUIZ.uuid)
    eng.handle_message(c, "الغاء", T0 + 3)  # so does an opt-out
    assert c.stopped and eng.active_run(c.id) is None
    effects = eng.handle_message(c, "؟؟", T0 + 4)  # opted back in, and caught
    assert not c.stopped
    assert handled(effects) == MsgHandled(c.id, Handling.CAUGHT, NOT_UNDERSTOOD.uuid)


def test_two_catch_all_flows_are_refused() -> None:
    twin = dataclasses.replace(NOT_UNDERSTOOD, uuid=str(uuid.uuid4()), name="Twin")
    with pytest.raises(ValueError, match="two catch-all flows"):
        engine([*FLOWS, twin])


def test_arabic_keywords_of_each_campaign() -> None:
    eng = engine()
    cases = {
        "تطوع": VOLUNTEER,
        "Volunteer": VOLUNTEER,
        "خدمات": SERVICES,
        "مساعده": SERVICES,
        "كرامه": SERVICES,
        "رأي": FEEDBACK,
        "راى": FEEDBACK,  # alef-hamza and alef-maqsura both normalised: راي
        "وعي": BY_FILE["way_awareness.yaml"][0],
        "JOIN": BY_FILE["way_awareness.yaml"][0],
    }
    for i, (text, flow) in enumerate(cases.items()):
        assert eng.flow_for_keyword(text) is flow, text
        effects = eng.handle_message(contact(100 + i), text, T0)
        assert handled(effects).handling is Handling.TRIGGERED


DIGIT_FLOW = """
uuid: 6500a45c-6e5f-4cc4-bbf3-e426f0b0dd55
name: Digit keyword
keywords: ["1"]
expire_after_minutes: 60
nodes:
  - id: ask
    actions: [{send: "pick"}]
    wait: {}
    router:
      result: pick
      cases: [{has_number_eq: 1, category: One, next: done}]
      other: done
  - id: done
    actions: [{send: "got @results.pick (@results.pick.category)"}]
"""


def test_arabic_indic_one_does_not_trigger_but_satisfies_number_tests() -> None:
    flows = parse_flows(DIGIT_FLOW)
    eng = engine(flows)
    assert handled(eng.handle_message(contact(1), "١", T0)).handling is Handling.UNHANDLED
    effects = eng.handle_message(contact(2), "1", T0)
    assert handled(effects).handling is Handling.TRIGGERED and sends(effects) == ["pick"]
    # inside the flow, ١ is the number 1 (RapidPro's number tests accept it)
    effects = eng.handle_message(contact(2), "١", T0)
    assert handled(effects).handling is Handling.RESUMED
    assert sends(effects) == ["got 1 (One)"]
    # the same goes for the extended (Persian) digits
    eng.handle_message(contact(3), "1", T0)
    assert sends(eng.handle_message(contact(3), "۱", T0)) == ["got 1 (One)"]


def test_number_and_word_helpers() -> None:
    assert numbers("الإجابة ٢") == [(2.0, "2")]
    assert numbers("رقم2 او 3") == [(2.0, "2"), (3.0, "3")]
    assert numbers("1,000 جنيه") == [(1000.0, "1000")]
    assert numbers("٢٫٥") == [(2.5, "2.5")]
    assert numbers("رقم-2") == [(2.0, "2")]
    assert numbers("-2") == [(-2.0, "-2")]
    assert numbers("لا يوجد") == []
    assert first_word("  إلغاء الاشتراك") == "الغاء"
    assert first_word("مسـابقة") == "مسابقه"
    assert first_word("١") == "١" != first_word("1")


# --- interruption ---------------------------------------------------------------------------


def test_other_flows_keyword_interrupts_the_waiting_run() -> None:
    eng = engine()
    c = contact()
    eng.handle_message(c, "مسابقة", T0)
    eng.handle_message(c, "1", T0 + 1)
    quiz_run = eng.active_run(c.id)
    assert quiz_run is not None and quiz_run.waiting_node == "q2.wait"

    effects = eng.handle_message(c, "تطوع", T0 + 2)
    assert handled(effects) == MsgHandled(c.id, Handling.TRIGGERED, VOLUNTEER.uuid)
    old, new = runs(effects)
    assert old is quiz_run and old.exit_type == "interrupted" and old.exited_on == T0 + 2
    assert new.flow_uuid == VOLUNTEER.uuid and new.waiting_node == "ask_governorate"
    assert eng.active_run(c.id) is new
    assert sends(effects)[0].startswith("شكرًا لرغبتك في التطوع")

    # the same flow's keyword while waiting is a reply, not a restart
    effects = eng.handle_message(c, "تطوع", T0 + 3)
    assert handled(effects).handling is Handling.RESUMED
    assert eng.active_run(c.id) is new and new.values["governorate"]["category"] == "Unknown"


def test_volunteer_registration() -> None:
    eng = engine()
    c = contact()
    eng.handle_message(c, "volunteer", T0)
    assert sends(eng.handle_message(c, "محافظة الأقصر", T0)) == ["كم عمرك؟ أرسل السن بالأرقام."]
    assert sends(eng.handle_message(c, "مش فاكرة", T0))[0].startswith("عذرًا")
    effects = eng.handle_message(c, "عندي ٣٤ سنة", T0)
    assert c.fields == {"volunteer_governorate": "الاقصر", "volunteer_age": "34"}
    assert c.groups == ["volunteers"]
    assert "محافظة الاقصر" in sends(effects)[0]
    assert runs(effects)[-1].values["governorate"]["category"] == "Known"


def test_conditionality_yes_no_and_unclear_follow_up() -> None:
    eng = engine()
    c = contact()
    effects = eng.start(c, CONDITIONALITY.uuid, T0)
    assert "80%" in sends(effects)[0]
    unclear = eng.handle_message(c, "الحمد لله", T0 + 60)
    assert sends(unclear)[0].startswith("عذرًا، لم نفهم ردكم")
    effects = eng.handle_message(c, "أيوة", T0 + 120)  # أيوة normalises to ايوه
    assert c.fields["conditionality_school"] == "yes"
    assert "زيارات المتابعة الصحية" in sends(effects)[0]
    effects = eng.handle_message(c, "لأ", T0 + 180)
    assert c.fields["conditionality_health"] == "no"
    assert sends(effects)[-1] == "شكرًا لتواصلكم مع وزارة التضامن الاجتماعي على 1442."
    assert runs(effects)[-1].exit_type == "completed"


def test_services_menu_by_number_and_word() -> None:
    eng = engine()
    for i, (reply, expected) in enumerate(
        [("٢", "الإقراض متناهي الصغر"), ("معاش", "المعاشات والتأمينات"), ("3", "مشروطية")]
    ):
        c = contact(i)
        eng.handle_message(c, "خدمات", T0)
        assert sends(eng.handle_message(c, reply, T0))[0].startswith(expected)
    c = contact(9)
    eng.handle_message(c, "help", T0)
    assert sends(eng.handle_message(c, "؟", T0)) == ["عذرًا، أرسل رقم الخدمة فقط: 1 أو 2 أو 3"]
    assert sends(eng.handle_message(c, "؟؟", T0))[0].startswith("لم نتمكن")
    assert eng.active_run(c.id) is None


def test_feedback_rating_then_free_text() -> None:
    eng = engine()
    c = contact()
    eng.start(c, FEEDBACK.uuid, T0)
    effects = eng.handle_message(c, "تقييمي ٤ من ٥", T0)
    assert c.fields["service_rating"] == "4" and "ملاحظة" in sends(effects)[0]
    effects = eng.handle_message(c, "الزحمة كتير قوي عند مكتب البريد", T0)
    run = runs(effects)[-1]
    assert run.values["rating"]["category"] == "Good"
    assert run.values["feedback"]["value"] == "الزحمة كتير قوي عند مكتب البريد"
    assert run.exit_type == "completed"


# --- opt-out ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "word", ["STOP", "stop", "Stop please", "إلغاء", "الغاء الاشتراك", "وقف", "unsubscribe"]
)
def test_opt_out_stops_interrupts_and_confirms(word: str) -> None:
    eng = engine()
    c = contact()
    eng.handle_message(c, "مسابقة", T0)
    effects = eng.handle_message(c, word, T0 + 5)
    assert handled(effects).handling is Handling.OPTED_OUT
    assert c.stopped and eng.active_run(c.id) is None
    assert runs(effects)[0].exit_type == "interrupted"
    assert sends(effects) == [
        "تم إلغاء اشتراكك في رسائل منصة 1442 لوزارة التضامن الاجتماعي. "
        "لإعادة الاشتراك أرسل أي رسالة إلى 1442."
    ]
    assert isinstance(effects[-1], ContactChanged) and effects[-1].contact is c


def test_stopped_contact_re_opts_in_by_writing() -> None:
    eng = engine()
    c = contact(language="eng")
    effects = eng.handle_message(c, "STOP", T0)
    assert sends(effects)[0].startswith("You are unsubscribed")
    assert eng.handle_message(c, "stop", T0 + 1) == [MsgHandled(c.id, Handling.OPTED_OUT)]
    assert eng.start(c, QUIZ.uuid, T0 + 2) == []  # stopped contacts are not started
    effects = eng.handle_message(c, "hello", T0 + 3)
    assert not c.stopped
    assert handled(effects) == MsgHandled(c.id, Handling.CAUGHT, NOT_UNDERSTOOD.uuid)
    assert effects[-1] == ContactChanged(c)
    eng.handle_message(c, "وقف", T0 + 4)
    effects = eng.handle_message(c, "مسابقة", T0 + 5)  # re-opt-in and the keyword works
    assert not c.stopped and handled(effects).handling is Handling.TRIGGERED
    assert eng.active_run(c.id) is not None


def test_blocked_contact_is_ignored() -> None:
    eng = engine()
    c = contact(blocked=True)
    assert eng.handle_message(c, "مسابقة", T0) == [MsgHandled(c.id, Handling.IGNORED)]
    assert eng.start(c, QUIZ.uuid, T0) == []


# --- time: timeouts and expiry ----------------------------------------------------------


def test_wait_timeout_then_expiry_via_tick() -> None:
    eng = engine()
    c = contact()
    eng.start(c, CONDITIONALITY.uuid, T0)
    run = eng.active_run(c.id)
    assert run is not None and run.wait_timeout_on == T0 + DAY
    assert run.expires_on == T0 + 3 * DAY
    assert eng.tick(T0 + DAY - 1) == []
    effects = eng.tick(T0 + DAY + 30)
    assert sends(effects) == ["لم يصلنا ردكم بعد. هل يحضر أبناؤكم المدرسة بانتظام؟ أرسل نعم أو لا"]
    assert run.waiting_node == "school_remind" and run.wait_timeout_on is None
    # the reminder's wait restarted the expiry: not expired 3 days after the start
    assert run.expires_on == T0 + 4 * DAY
    assert eng.tick(T0 + 3 * DAY + 1) == []
    assert eng.active_run(c.id) is run
    effects = eng.tick(T0 + 10 * DAY)
    assert effects == [RunChanged(run)]
    assert run.exit_type == "expired" and run.exited_on == T0 + 4 * DAY
    assert eng.active_run(c.id) is None and eng.waiting == 0
    # a reply after expiry is not an answer any more
    assert handled(eng.handle_message(c, "نعم", T0 + 11 * DAY)).handling is Handling.CAUGHT


def test_reply_after_a_missed_tick_sees_the_timeout_first() -> None:
    eng = engine()
    c = contact()
    eng.start(c, CONDITIONALITY.uuid, T0)
    effects = eng.handle_message(c, "نعم", T0 + DAY + 60)  # nobody called tick()
    assert handled(effects).handling is Handling.RESUMED
    texts = sends(effects)
    assert texts[0].startswith("لم يصلنا ردكم بعد")  # the reminder, as of the timeout
    assert "زيارات المتابعة الصحية" in texts[1]
    assert c.fields["conditionality_school"] == "yes"
    run = eng.active_run(c.id)
    assert run is not None and ("school_remind", T0 + DAY) in run.path


def test_tick_outcome_does_not_depend_on_tick_frequency() -> None:
    def play(step: float) -> list[tuple[int, str]]:
        eng = engine(seed=3)
        people = [contact(i) for i in range(30)]
        for i, c in enumerate(people):
            eng.start(c, CONDITIONALITY.uuid, T0 + i * 600)
        out: list[tuple[int, str]] = []
        t = T0
        while t < T0 + 8 * DAY:
            t += step
            out += [(e.contact_id, e.text) for e in eng.tick(t) if isinstance(e, SendMsg)]
        assert eng.waiting == 0
        return out

    fine, coarse = play(300.0), play(2 * DAY)
    assert len(fine) == 30 and sorted(fine) == sorted(coarse)


def test_heap_stays_small_under_interrupts() -> None:
    eng = engine()
    people = [contact(i) for i in range(200)]
    for round_ in range(60):
        for c in people:
            eng.start(c, CONDITIONALITY.uuid, T0 + round_)  # interrupts the previous run
    assert eng.waiting == 200
    assert eng.scheduled < 200 * 2 + 4096 + 1


def test_restart_participants_false_skips_past_participants() -> None:
    eng = engine()
    c = contact()
    assert eng.start(c, FEEDBACK.uuid, T0) != []
    assert eng.start(c, FEEDBACK.uuid, T0 + 1, restart_participants=False) == []
    effects = eng.start(c, FEEDBACK.uuid, T0 + 2)
    assert [r.exit_type for r in runs(effects)] == ["interrupted", None]
    other = contact(2)
    assert eng.start(other, FEEDBACK.uuid, T0, restart_participants=False) != []


def test_restore_a_persisted_run() -> None:
    eng = engine()
    c = contact()
    eng.handle_message(c, "مسابقة", T0)
    eng.handle_message(c, "1", T0)
    saved = copy.deepcopy(eng.active_run(c.id))
    assert saved is not None
    fresh = engine(seed=99)
    fresh.restore(c, saved)
    effects = fresh.handle_message(c, "3", T0 + 1)
    assert sends(effects)[0].startswith("السؤال الثالث")
    assert fresh.active_run(c.id) is saved and "q2" in saved.values
    assert fresh.tick(T0 + 4 * DAY) == [RunChanged(saved)]


def test_run_uuids_come_from_the_seeded_rng() -> None:
    def uuids(seed: int) -> list[str]:
        eng = engine(seed=seed)
        return [runs(eng.start(contact(i), QUIZ.uuid, T0))[0].uuid for i in range(5)]

    assert uuids(1) == uuids(1) != uuids(2)
    assert len(set(uuids(1))) == 5


# --- templates, random routers ----------------------------------------------------------

TEMPLATE_FLOW = """
uuid: 08a63131-5f66-4bbe-9392-deae1349165f
name: Templates
keywords: [hi]
expire_after_minutes: 60
nodes:
  - id: greet
    actions:
      - set_field: {field: visits, value: 41}
      - increment: {field: visits}
      - send: "Hi @contact.name (@fields.visits), mail me @@ x@y.org"
    wait: {}
    router:
      result: mood
      cases:
        - {has_phrase: "very good", category: Great, next: split}
        - {has_all_words: "not bad", category: Fine, next: split}
        - {regex: "^\\\\d{14}$", category: Id, next: split}
      other: split
  - id: split
    actions: [{save_result: {name: echo, value: "@input!", category: Echo}}]
    router:
      random: true
      cases: [{category: A, next: end_a}, {category: B, next: end_b}]
  - id: end_a
    actions: [{send: "A @results.mood.category @results.echo"}]
  - id: end_b
    actions: [{send: "B @results.mood.category @results.echo"}]
"""


def test_templates_word_tests_and_random_split() -> None:
    flows = parse_flows(TEMPLATE_FLOW)
    eng = engine(flows, seed=11)
    c = contact(name="Mona")
    assert sends(eng.handle_message(c, "hi", T0)) == ["Hi Mona (42), mail me @ x@y.org"]
    effects = eng.handle_message(c, "Very  GOOD indeed", T0)
    assert sends(effects)[0].split(" ", 1)[1] == "Great Very  GOOD indeed!"
    for text, category in [("not that bad", "Fine"), ("29001011234567", "Id"), ("meh", "Other")]:
        eng.handle_message(c, "hi", T0)
        assert sends(eng.handle_message(c, text, T0))[0].split()[1] == category
    picks: Counter[str] = Counter()
    for i in range(200):
        p = contact(1000 + i)
        eng.handle_message(p, "hi", T0)
        picks[sends(eng.handle_message(p, "x", T0))[0][0]] += 1
    assert set(picks) == {"A", "B"} and min(picks.values()) > 60


# --- the shipped campaigns ----------------------------------------------------------------


def test_every_campaign_file_loads_and_every_node_is_reachable() -> None:
    assert sorted(BY_FILE) == [
        "conditionality.yaml",
        "covid_quiz.yaml",
        "feedback_survey.yaml",
        "not_understood.yaml",
        "services_info.yaml",
        "volunteer_call.yaml",
        "way_awareness.yaml",
    ]
    for flow in FLOWS:
        seen = {flow.start}
        todo = [flow.start]
        while todo:  # walk the graph here rather than trusting the loader's check
            node = flow.nodes[todo.pop()]
            for nxt in node.exits():
                assert nxt in flow.nodes, (flow.name, node.id, nxt)
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert seen == set(flow.nodes), (flow.name, set(flow.nodes) - seen)
        assert reachable(flow) == seen
    assert len({f.uuid for f in FLOWS}) == len(FLOWS)


def test_way_awareness_twelve_addressable_messages() -> None:
    series = sorted(
        (f for f in BY_FILE["way_awareness.yaml"] if f.meta.get("index", 0) >= 1),
        key=lambda f: f.meta["index"],
    )
    assert [f.meta["index"] for f in series] == list(range(1, 13))
    assert {f.meta["topic"] for f in series} == {"health", "hygiene", "population", "drugs"}
    eng = engine()
    texts = set()
    for f in series:
        effects = eng.start(contact(), f.uuid, T0)
        (text,) = sends(effects)
        assert text.startswith("وعي |") and runs(effects)[0].exit_type == "completed"
        texts.add(text)
    assert len(texts) == 12


def test_every_flow_sends_arabic_text() -> None:
    arabic = re.compile("[\u0600-\u06ff]")
    for flow in FLOWS:
        eng = engine()
        texts = sends(eng.start(contact(), flow.uuid, T0))
        assert texts and all(arabic.search(t) for t in texts), flow.name


# --- loader errors ----------------------------------------------------------------------

GOOD = """
uuid: 1a91e271-daf8-47f1-905a-9a5e63751800
name: Good
keywords: [alpha]
expire_after_minutes: 60
nodes:
  - id: ask
    actions: [{send: "?"}]
    wait: {}
    router:
      cases: [{has_text: true, category: Text, next: done}]
      other: done
  - id: done
    actions: [{send: "ok"}]
"""


def load_one(tmp_path: Path, text: str, name: str = "bad.yaml") -> FlowLoadError:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(FlowLoadError) as info:
        load_flows(tmp_path)
    return info.value


def test_loader_accepts_the_good_fixture(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    (flow,) = load_flows(tmp_path)
    assert flow.keywords == ("alpha",) and flow.source == "good.yaml"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "category: Text, next: done}",
            "category: Text, next: nowhere}",
            "bad.yaml: flow 'Good': node 'ask': field 'router.cases[0].next': no node named 'nowhere'",
        ),
        ("other: done", "other: gone", "node 'ask': field 'router.other': no node named 'gone'"),
        ("wait: {}", "wait: {timeout_minutes: 5}", "field 'wait.timeout_next': required"),
        (
            "wait: {}",
            "wait: {timeout_minutes: 60, timeout_next: done}",
            "field 'wait.timeout_minutes': 60 is not shorter than expire_after_minutes",
        ),
        ("has_text: true", "has_txt: true", "field 'router.cases[0].has_txt': unknown field"),
        ("has_text: true", "regex: '(('", "field 'router.cases[0].regex': bad regular expression"),
        (
            '{send: "ok"}',
            '{send: "@results.nope"}',
            "node 'done': field 'actions[0].send': no result named 'nope'",
        ),
        ('{send: "ok"}', '{send: "@contact.age"}', "unknown reference '@contact.age'"),
        ('{send: "ok"}', '{shout: "ok"}', "field 'actions[0].shout': unknown action"),
        (
            "keywords: [alpha]",
            "keywords: [two words]",
            "field 'keywords[0]': 'two words' is not a single word",
        ),
        ("keywords: [alpha]", "keywords: [STOP]", "'STOP' is an opt-out word"),
        ("keywords: [alpha]", "catch_all: yes please", "field 'catch_all': true or false"),
        (
            "uuid: 1a91e271-daf8-47f1-905a-9a5e63751800",
            "uuid: nope",
            "field 'uuid': 'nope' is not a UUID",
        ),
        ("expire_after_minutes: 60", "expire_after_minutes: 0", "field 'expire_after_minutes'"),
        (
            "  - id: done",
            "  - id: done\n    next: ask\n  - id: orphan",
            "node 'orphan': field 'id': unreachable",
        ),
        (
            "    wait: {}\n",
            "",
            "node 'ask': field 'router.operand': required for a router without a wait",
        ),
    ],
)
def test_loader_errors_name_file_node_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    error = load_one(tmp_path, GOOD.replace(old, new, 1))
    assert expected in str(error), str(error)
    assert all(e.file == "bad.yaml" for e in error.errors)


def test_loader_rejects_a_loop_without_a_wait(tmp_path: Path) -> None:
    text = GOOD.replace('{send: "ok"}]', '{send: "ok"}]\n    next: again') + (
        "  - id: again\n    next: done\n"
    )
    error = load_one(tmp_path, text)
    assert "loops back without a wait: done -> again -> done" in str(error)


def test_loader_question_errors(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  - id: done",
        "  - id: q1\n    question: {text: x, options: [a, b], correct: 3}\n    next: done\n"
        "  - id: done",
    )
    error = load_one(tmp_path, text)
    assert "node 'q1': field 'question.correct': the right option's number, 1 to 2" in str(error)
    assert "node 'q1': field 'question.score_field'" in str(error)


def test_loader_reports_every_error_and_cross_file_clashes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD, encoding="utf-8")
    error = load_one(tmp_path, GOOD.replace("name: Good", "name: Copy"), "b.yaml")
    message = str(error)
    assert "b.yaml: flow 'Copy': field 'uuid'" in message and "(a.yaml)" in message
    assert "b.yaml: flow 'Copy': field 'keywords': 'alpha' already starts 'Good'" in message
    assert len(error.errors) == 2


def test_loader_refuses_a_second_catch_all_flow(tmp_path: Path) -> None:
    catch_all = GOOD.replace("keywords: [alpha]", "catch_all: true")
    (tmp_path / "a.yaml").write_text(catch_all, encoding="utf-8")
    other = catch_all.replace("name: Good", "name: Other").replace("1a91e271", "2b91e271")
    error = load_one(tmp_path, other, "b.yaml")
    assert str(error) == (
        "b.yaml: flow 'Other': field 'catch_all': 'Good' (a.yaml) is the catch-all flow already"
    )
    (tmp_path / "b.yaml").unlink()
    (flow,) = load_flows(tmp_path)
    assert flow.catch_all and flow.keywords == ()


def test_loader_reports_invalid_yaml_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError, match=r"no \*\.yaml flow files"):
        load_flows(tmp_path)
    error = load_one(tmp_path, "uuid: [unclosed")
    assert str(error).startswith("bad.yaml: not valid YAML")
    with pytest.raises(FlowLoadError, match="a flow file holds a mapping"):
        parse_flows("- 1\n- 2\n")


def test_engine_refuses_clashing_keywords() -> None:
    first = parse_flows(GOOD)
    second = parse_flows(
        GOOD.replace("1a91e271-daf8-47f1-905a-9a5e63751800", "1a91e271-daf8-47f1-905a-9a5e63751801")
    )
    with pytest.raises(ValueError, match="keyword 'alpha' starts both"):
        engine(first + second)
    with pytest.raises(ValueError, match="opt-out word"):
        FlowEngine(first, rng=random.Random(1), opt_out_keywords=["alpha"])
