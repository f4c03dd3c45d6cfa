"""The *1442# menu: screens as data, and one pure walk from the inputs to the screen.

Both transports call ``MENU.walk(inputs, msisdn, now)``: an HTTP aggregator sends the
whole path each time (``1*0*2``), the SMPP side keeps the inputs of its open session.
Stateless and deterministic, so a screen can be checked from its path alone. Every
screen fits one USSD screen in UCS-2 (80 characters, ``test_ussd_platform`` checks).

Programme status and payment dates come from a stand-in registry derived from the
number (the real platform would ask the ministry's database).
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from enum import StrEnum
from hashlib import blake2b
from typing import Final

from simulator.subscribers.behaviour import parse_number


class Kind(StrEnum):
    MENU = "menu"  # numbered options; 0 goes back
    INFO = "info"  # a last screen
    NUMBER = "number"  # asks a number in a range
    TEXT = "text"  # asks free text
    CONFIRM = "confirm"  # 1 yes / 2 no


@dataclass(frozen=True, slots=True)
class Node:
    key: str
    kind: Kind
    text: str
    #: MENU: child keys for options 1..n (labels are in ``text``).
    options: tuple[str, ...] = ()
    #: NUMBER / TEXT / CONFIRM(yes): where the answer leads; CONFIRM(no): ``no``.
    next: str = ""
    no: str = ""
    low: int = 1
    high: int = 1
    #: What accepting the answer records (``Screen.action``).
    action: str = ""


@dataclass(frozen=True, slots=True)
class Screen:
    """What to show; ``end``: the last screen. ``action``/``value``: something the
    subscriber asked for (volunteer registration, a message to the ministry)."""

    text: str
    end: bool
    node: str
    action: str = ""
    value: str = ""


INVALID: Final = "خطأ، اختر:\n"
BACK: Final = "0"

_NODES: Final = (
    Node(
        "root",
        Kind.MENU,
        "١٤٤٢ تكافل وكرامة\n1 حالتي\n2 موعد الصرف\n3 المشروطية\n4 تطوع\n5 كلمنا",
        options=("status", "payment", "conditionality", "volunteer", "talk"),
    ),
    Node("status", Kind.INFO, "{status}"),
    Node("payment", Kind.INFO, "موعد الصرف القادم {payment}\nمن مكاتب البريد وماكينات الصراف"),
    Node(
        "conditionality",
        Kind.MENU,
        "المشروطية\n1 الحضور المدرسي\n2 متابعة الصحة\n0 رجوع",
        options=("school", "health"),
    ),
    Node("school", Kind.INFO, "حضور ٨٠٪ من أيام الدراسة لكل طفل شرط لاستمرار الدعم"),
    Node("health", Kind.INFO, "متابعة صحة الأم والأطفال دون ٦ سنوات بالوحدة الصحية كل ٣ شهور"),
    Node(
        "volunteer",
        Kind.NUMBER,
        "تطوع معنا\nاكتب رقم محافظتك من 1 إلى 27\n0 رجوع",
        next="volunteer_confirm",
        low=1,
        high=27,
    ),
    Node(
        "volunteer_confirm",
        Kind.CONFIRM,
        "تسجيلك متطوعا في المحافظة {value}؟\n1 نعم\n2 لا",
        next="volunteer_done",
        no="volunteer_cancelled",
        action="volunteer",
    ),
    Node("volunteer_done", Kind.INFO, "تم تسجيلك متطوعا، سنتواصل معك. شكرا"),
    Node("volunteer_cancelled", Kind.INFO, "لم يتم التسجيل. شكرا"),
    Node("talk", Kind.TEXT, "اكتب رسالتك للوزارة\n0 رجوع", next="talk_done", action="feedback"),
    Node("talk_done", Kind.INFO, "وصلتنا رسالتك وسنرد عليك برسالة قصيرة. شكرا"),
)

_STATUSES: Final = (
    "تكافل: مستحق، الصرف مستمر",
    "كرامة: مستحق، الصرف مستمر",
    "طلبك تحت المراجعة",
    "تكافل: الصرف موقوف لعدم استيفاء المشروطية",
    "رقمك غير مسجل في البرنامج، توجه للوحدة الاجتماعية",
)


def programme_status(msisdn: str) -> str:
    """The stand-in registry: a stable status per number (most are paid)."""
    h = int.from_bytes(blake2b(msisdn.encode(), digest_size=4).digest(), "big") % 100
    index = 0 if h < 60 else 1 if h < 80 else 2 if h < 90 else 3 if h < 95 else 4
    return _STATUSES[index]


def next_payment(now: float) -> str:
    """The 15th of this month, or of the next once it has passed (DD/MM/YYYY)."""
    t = time.gmtime(now)
    year, month = t.tm_year, t.tm_mon
    if t.tm_mday >= 15:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    day = min(15, calendar.monthrange(year, month)[1])
    return f"{day:02d}/{month:02d}/{year}"


class Menu:
    """Nodes by key, and the walk from inputs to a screen."""

    __slots__ = ("nodes",)

    def __init__(self, nodes: tuple[Node, ...] = _NODES) -> None:
        self.nodes = {n.key: n for n in nodes}

    def walk(self, inputs: list[str], msisdn: str, now: float) -> Screen:
        """The screen after ``inputs`` from the top (0 goes back a level); a wrong input
        shows the same screen again, prefixed with "invalid choice"."""
        stack = ["root"]
        value = ""
        invalid = False
        for raw in inputs:
            node = self.nodes[stack[-1]]
            answer = raw.strip()
            number = parse_number(answer)
            invalid = False
            if node.kind is Kind.INFO:
                break  # nothing follows a last screen
            if answer == BACK and len(stack) > 1 and node.kind is not Kind.CONFIRM:
                stack.pop()
                continue
            if node.kind is Kind.MENU:
                if number is not None and 1 <= number <= len(node.options):
                    stack.append(node.options[number - 1])
                else:
                    invalid = True
            elif node.kind is Kind.NUMBER:
                if number is not None and node.low <= number <= node.high:
                    value = str(number)
                    stack.append(node.next)
                else:
                    invalid = True
            elif node.kind is Kind.TEXT:
                if answer:
                    value = answer
                    stack.append(node.next)
                else:
                    invalid = True
            elif node.kind is Kind.CONFIRM:
                if number in (1, 2):
                    stack.append(node.next if number == 1 else node.no)
                else:
                    invalid = True
        node = self.nodes[stack[-1]]
        text = node.text
        if "{" in text:
            text = text.format(
                status=programme_status(msisdn), payment=next_payment(now), value=value
            )
        if invalid:
            text = INVALID + text
        action = ""
        if node.kind is Kind.INFO and len(stack) > 1:
            parent = self.nodes[stack[-2]]
            if parent.action and node.key == parent.next:
                action = parent.action
        return Screen(text, node.kind is Kind.INFO, node.key, action, value if action else "")


MENU: Final = Menu()
