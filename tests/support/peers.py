"""Shared pieces of the interoperability tests with third-party SMPP clients.

The texts are literals on purpose: every assertion in test_interop_*.py compares what a
client or the SMSC decoded with one of these originals, never with our own codec's output.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from simulator.config import OperatorConfig, ReceiptConfig, SmscConfig

SYSTEM_ID = "rapidpro"
PASSWORD = "secret"
SHORT_CODE = "1442"
HANDSET = "201001234567"  # Vodafone, international format (TON 1 / NPI 1)
OTHER_HANDSET = "201201234567"  # Orange

#: Conditionality reminder in GSM 7-bit, with characters whose septet differs from ASCII
#: ("@" is 0x00, "£" 0x01, "_" 0x11) and extension-table ones ("{", "}", "€" take two).
GSM_TEXT = "Takaful & Karama: confirm school attendance {March} for your children @ 1442, reply 1=yes 2=no. Free_of_charge £0 €0"

#: COVID-19 awareness quiz question: 196 Arabic characters, 3 UCS-2 parts of <= 67.
QUIZ_QUESTION = (
    "السؤال الثالث من مسابقة التوعية بفيروس كورونا: ما أفضل طريقة لحماية أسرتك من العدوى؟ "
    "أرسل رقم الإجابة الصحيحة إلى 1442 مجانا: ١- غسل اليدين بالماء والصابون "
    "٢- ارتداء الكمامة في الزحام ٣- كل ما سبق"
)

#: Short Arabic replies, as citizens send them.
MO_YES = "نعم"
MO_ARABIC_ONE = "١"  # Arabic-Indic digit one: an answer to the quiz
#: Franco-Arabic ("3" for ع) fits GSM 7-bit, extension characters included.
MO_FRANCO = "3ayez a3raf mo3ad el sarf {Takaful} @ 1442 - 100€?"

#: Citizen feedback, 142 Arabic characters: 3 UCS-2 parts when the SMSC splits it.
MO_FEEDBACK = (
    "أنا مستفيدة من برنامج تكافل وكرامة في محافظة أسيوط، ولم يصلني الدعم النقدي "
    "لهذا الشهر حتى الآن، أرجو إفادتي بموعد الصرف وشكرا لكم على المتابعة"
)

assert len(QUIZ_QUESTION) == 196 and len(MO_FEEDBACK) == 142


def smsc_config(**op: object) -> SmscConfig:
    """One operator on a free port (never 2775), receipts 10 ms after submit."""
    op.setdefault("port", 0)
    op.setdefault("receipt", ReceiptConfig(delay=0.01))
    return SmscConfig(operators=[OperatorConfig(**op)])  # type: ignore[arg-type]


def wait_until(pred: Callable[[], bool], timeout: float = 5.0, step: float = 0.01) -> None:
    """Blocking poll for tests that drive a blocking client (the SMSC runs in a thread)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)
