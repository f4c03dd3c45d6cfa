"""What Egyptian subscribers write to 1442, by script: constant word lists for the
behaviour model.

Kept apart from the model so scenario authors can read and extend the wording without
touching the logic. Arabic is written as people type it on a phone (Egyptian dialect,
ه for ة and ا for أ as often as not); Franco-Arabic uses "3" for ع, "7" for ح, "2" for
ء/ق, "5" for خ. A repeated entry weighs more (``rng.choice`` picks uniformly).
Number placeholders are ``{n}`` (the number, in the writer's digit style) and
``{m}`` (a scale's maximum).
"""

from __future__ import annotations

from typing import Final

Words = tuple[str, ...]


def wordset(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``: word sets read better as prose."""
    return frozenset(text.split())


# --- quiz answers: {n} is the option number ----------------------------------------------

ANSWER_AR: Final[Words] = (
    "الإجابة {n}",
    "الاجابة {n}",
    "الاجابه {n}",
    "الإجابة رقم {n}",
    "الاجابه رقم {n}",
    "رقم {n}",
    "رقم {n}",
    "رقم{n}",
    "{n} ان شاء الله",
    "الإجابة الصحيحة {n}",
    "{n}.",
    "اختار {n}",
)
ANSWER_FRANCO: Final[Words] = (
    "el egaba {n}",
    "el egaba {n}",
    "el egaba rakam {n}",
    "rakam {n}",
    "rakam {n}",
    "{n} isa",
    "egabty {n}",
)
ANSWER_EN: Final[Words] = (
    "answer {n}",
    "Answer {n}",
    "Answer: {n}",
    "option {n}",
    "number {n}",
    "{n} please",
)

# --- ratings: {n} the score, {m} the scale's maximum -------------------------------------

RATING_AR: Final[Words] = ("{n} من {m}", "تقييمي {n}", "{n} نجوم", "{n} درجات", "اديكم {n}")
RATING_FRANCO: Final[Words] = ("{n} men {m}", "ta2yeemy {n}", "{n} ngoom", "hadelko {n}")
RATING_EN: Final[Words] = ("{n}/{m}", "rating {n}", "{n} stars", "{n} out of {m}")

# --- yes / no --------------------------------------------------------------------------

YES_AR: Final[Words] = ("نعم", "نعم", "نعم", "ايوه", "ايوه", "أيوة", "اه", "نعم اكيد", "ايوا")
NO_AR: Final[Words] = ("لا", "لا", "لا", "لأ", "لاء", "لا شكرا", "لا مش دلوقتي")
YES_FRANCO: Final[Words] = ("aywa", "aywa", "aiwa", "ah", "yes", "Aywa akid", "na3am")
NO_FRANCO: Final[Words] = ("la2", "la2", "la", "laa", "no", "la2 shokran")
YES_EN: Final[Words] = ("yes", "Yes", "YES", "yes please", "Y", "Yes sure")
NO_EN: Final[Words] = ("no", "No", "NO", "no thanks", "N")

#: Words that mean yes / no as the first word of a reply (normalised: ا for أ/إ/آ, ه for
#: ة, ي for ى, lower case). What the model writes plus common variants.
YES_WORDS: Final[frozenset[str]] = wordset(
    """
    نعم ايوه ايوا ايوة اه اوك موافق موافقه اكيد
    yes y yeah yep ok okay aywa aiwa aywah ah na3am akid mowafe2
    """
)
NO_WORDS: Final[frozenset[str]] = wordset(
    """
    لا لاء لاا لالا
    no n nope la2 la laa le2
    """
)

# --- opting out ------------------------------------------------------------------------

STOP_AR: Final[Words] = (
    "إلغاء",
    "الغاء",
    "الغاء",
    "الغاء الاشتراك",
    "إلغاء الاشتراك",
    "ايقاف",
    "إيقاف الرسائل",
    "STOP",
    "stop",
)
STOP_FRANCO: Final[Words] = ("stop", "stop", "STOP", "Stop", "elgha2", "2elgha2")
STOP_EN: Final[Words] = ("STOP", "STOP", "stop", "Stop", "unsubscribe", "stop please")

#: A reply is a STOP when its first word is one of these (normalised) ...
STOP_HEADS: Final[frozenset[str]] = wordset(
    """
    الغاء الغي ايقاف اوقف وقف توقف
    stop stopall unsubscribe cancel end quit elgha2 2elgha2 el8a2
    """
)
#: ... and every other word one of these: "الغاء الاشتراك" stops, "وقف الصرف ليه" asks.
STOP_TAILS: Final[frozenset[str]] = wordset(
    """
    الاشتراك الرسائل الرسايل الخدمه من فضلك لو سمحت
    please pls plz messages sms me all now el eshterak
    """
)

# --- free feedback ---------------------------------------------------------------------

OPENERS_AR: Final[Words] = (
    "السلام عليكم",
    "السلام عليكم ورحمة الله",
    "مساء الخير",
    "صباح الخير",
    "لو سمحتم",
    "شكرا ليكم",
    "يا جماعة",
)
FEEDBACK_AR: Final[Words] = (
    "الخدمة كويسة والحمد لله",
    "شكرا على الرسايل المفيدة",
    "المعلومات دي مفيدة جدا",
    "الحمد لله الفلوس بتوصل في ميعادها",
    "الفلوس اتأخرت الشهر ده",
    "الكارت مش شغال في المكنة",
    "روحت البوستة ومصرفتش",
    "الزحمة كتير قوي عند مكتب البريد",
    "المبلغ مش مكفي مع الغلا",
    "محتاجين زيادة في المعاش",
    "الوحدة الاجتماعية مش بترد علينا",
    "اتشلت من تكافل وكرامة من غير سبب",
    "امتى ميعاد الصرف؟",
    "ازاي اسجل في كرامة؟",
    "عايزة اعرف حالة الطلب بتاعي",
    "الولاد منتظمين في المدرسة",
    "بنتي خدت التطعيم الحمد لله",
    "عندي {n} عيال في المدارس",
    "جوزي متوفي ومحتاجة مساعدة",
    "انا ست كبيرة ومش بعرف اقرا كويس",
    "الاخصائية مجتش عندنا",
    "عايزين مشروع صغير نصرف منه",
    "الدكتور في الوحدة الصحية مش موجود",
    "بنلبس الكمامة وبنغسل ايدينا",
)
CLOSERS_AR: Final[Words] = ("وشكرا", "ربنا يخليكم", "ربنا يكرمكم", "جزاكم الله خيرا", "تحيا مصر")
FEEDBACK_FRANCO: Final[Words] = (
    "el khedma kwayesa el7amdolelah",
    "shokran 3ala el rasayel",
    "el felous et2akharet el shahr da",
    "el kart mesh sha8al",
    "rou7t el bosta we masraftesh",
    "el za7ma kteer 3and el bosta",
    "el mablagh mesh kefaya",
    "me7tageen zeyada fel ma3ash",
    "emta me3ad el sarf?",
    "ezay asagel fe karama?",
    "3ayza a3raf 7alet el talab",
    "el wlad bey roo7o el madrasa",
    "3andy {n} 3eyal",
    "ana mesh fahma el so2al",
    "el ma3lomat mofeda gedan",
)
OPENERS_FRANCO: Final[Words] = ("salam 3alekom", "masa2 el kheer", "saba7 el kheer", "law sama7to")
CLOSERS_FRANCO: Final[Words] = ("shokran", "rabena ye5alikom", "merci", "tahya masr")
FEEDBACK_EN: Final[Words] = (
    "the service is good",
    "thank you for the useful messages",
    "payment is late this month",
    "my card does not work at the post office",
    "when is the payment date?",
    "please increase the pension",
    "how can I register for Karama?",
    "my children go to school every day",
    "I have {n} children at school",
    "the social unit does not answer",
)
OPENERS_EN: Final[Words] = ("Hello", "Good evening", "Hi", "Dear ministry")
CLOSERS_EN: Final[Words] = ("thank you", "God bless you", "thanks", "best regards")

#: Short free text: what someone who barely reads or writes sends back.
SHORT_AR: Final[Words] = ("شكرا", "تمام", "الحمد لله", "كويس", "ماشي", "ربنا يخليكم", "مفيش")
SHORT_FRANCO: Final[Words] = ("shokran", "tamam", "el7amdolelah", "kwayes", "mashy")
SHORT_EN: Final[Words] = ("thanks", "ok", "good", "fine")

#: Unprompted answers to information: thanks, "who is this?", a question back.
UNPROMPTED_AR: Final[Words] = (
    "شكرا",
    "شكرا",
    "شكرا جزيلا",
    "تمام",
    "ربنا يخليكم",
    "حاضر",
    "مين معايا؟",
    "انتوا مين؟",
    "ايه ده؟",
    "امتى الصرف؟",
    "الفلوس نزلت؟",
    "👍",
    "🙏",
)
UNPROMPTED_FRANCO: Final[Words] = (
    "shokran",
    "shokran",
    "tamam",
    "meen m3aya?",
    "eh da?",
    "emta el sarf?",
    "rabena ye5alikom",
    "👍",
)
UNPROMPTED_EN: Final[Words] = ("thanks", "thank you", "ok", "who is this?", "what is this?", "👍")

# --- odd replies -----------------------------------------------------------------------

NONSENSE: Final[Words] = (
    "؟؟",
    "؟",
    "?",
    "...",
    "..",
    "ههههه",
    "ججج",
    "،،",
    "؟!",
    "kkk",
    "hhhh",
    "asd",
    ".",
    "ا",
    "1442",
)
#: Letters to draw nonsense from, by script.
LETTERS_AR: Final[str] = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
LETTERS_LATIN: Final[str] = "abcdefghijklmnopqrstuvwxyz"

#: A first message that is not yet the answer (the second one is).
HESITATION_AR: Final[Words] = ("؟", "ايه ده", "يعني ايه", "مش فاهمة", "استنى")
HESITATION_FRANCO: Final[Words] = ("?", "eh da", "ya3ni eh", "mesh fahma")
HESITATION_EN: Final[Words] = ("?", "what?", "sorry?")
#: A correction's prefix: "sorry, the answer is ..."
CORRECTION_AR: Final[Words] = ("اسفة ", "قصدي ", "لا ", "غلطت ")
CORRECTION_FRANCO: Final[Words] = ("sorry ", "2asdy ", "la2 ")
CORRECTION_EN: Final[Words] = ("sorry ", "I mean ", "correction ")

# --- keyboards, for typos: neighbouring keys on each row -------------------------------

KEYBOARD_ROWS: Final[Words] = (
    # Arabic (PC / phone layout)
    "ضصثقفغعهخحجد",
    "شسيبلاتنمكط",
    "ئءؤرىةوزظ",
    # QWERTY
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    # digits
    "1234567890",
    "١٢٣٤٥٦٧٨٩٠",
)
#: Spelling slips of people who write little: hamza and ta marbuta dropped, ى for ي.
SPELLING_AR: Final[tuple[tuple[str, str], ...]] = (
    ("ة", "ه"),
    ("أ", "ا"),
    ("إ", "ا"),
    ("ي", "ى"),
    ("ى", "ي"),
    ("ذ", "ز"),
    ("ث", "س"),
    ("ظ", "ض"),
)

# --- texting 1442 unprompted ------------------------------------------------------------

#: Keywords heard on TV or from a neighbour, sent as the whole message.
TV_KEYWORDS_AR: Final[Words] = (
    "تطوع",
    "تطوع",
    "اشترك",
    "مسابقة",
    "مسابقه",
    "كورونا",
    "وعي",
    "تكافل",
    "كرامة",
    "معاش",
)
TV_KEYWORDS_LATIN: Final[Words] = ("JOIN", "join", "COVID", "quiz", "Takaful", "karama")
HELP_AR: Final[Words] = ("مساعدة", "مساعده", "مساعدة", "استفسار", "مساعدة من فضلك")
HELP_LATIN: Final[Words] = ("help", "HELP", "Help", "mosa3da", "info")
PAYMENT_Q_AR: Final[Words] = (
    "امتى صرف تكافل وكرامة؟",
    "امتى صرف تكافل وكرامة الشهر ده",
    "الفلوس نزلت ولا لسه؟",
    "ميعاد صرف شهر {n} امتى",
    "هو الصرف يوم كام؟",
    "ليه مصرفتش الشهر ده؟",
    "عايزة اسجل في تكافل وكرامة",
    "ازاي اقدم على معاش؟",
)
PAYMENT_Q_FRANCO: Final[Words] = (
    "emta el sarf?",
    "el felous nezlet?",
    "me3ad sarf shahr {n} emta",
    "ezay a2adem fe karama?",
    "leh masraftesh el shahr da?",
)
PAYMENT_Q_EN: Final[Words] = (
    "when is the payment?",
    "is the money out?",
    "how do I apply for Karama?",
    "payment date for month {n}?",
)
