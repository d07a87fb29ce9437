"""Which inbound texts opt their sender out of SMS, or back in: the one place it is decided.

Pure: no Flask, no SQL. The webhook path asks `change_for` what an inbound
text means; the send path refuses a number the store holds as opted out.

A text is compared as a whole after normalising width and case (NFKC, so
`ＳＴＯＰ` is `STOP`) and dropping punctuation and spacing (`"Stop."`, `STOP!`,
`opt-out`, `Opt Out`). Opting out also holds when an unambiguous word (STOP,
STOPALL, UNSUBSCRIBE, REVOKE, OPTOUT/OPT OUT) opens a longer text (`Stop
texting me`): a wrong opt-out costs a message, a missed one breaks the law.
CANCEL, END and QUIT open ordinary sentences (`Cancel my appointment`), so
they count only as the whole text; so do the opt-in words, so `Yes, see you
at 5` never re-subscribes anyone.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

OPT_OUT = "opt_out"
OPT_IN = "opt_in"
Change = Literal["opt_out", "opt_in"]

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
# Words that mean "opt out" even at the head of a longer text.
UNAMBIGUOUS_OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "REVOKE", "OPTOUT"})

_NOT_WORD = re.compile(r"[\W_]+")


def words(text: str) -> list[str]:
    """The text's words, upper-cased, width-folded, without punctuation or invisible marks."""
    folded = unicodedata.normalize("NFKC", text).upper()
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return [word for word in _NOT_WORD.split(visible) if word]


def change_for(text: str | None) -> Change | None:
    """`"opt_out"`, `"opt_in"` or None for an inbound SMS's text."""
    tokens = words(text or "")
    if not tokens:
        return None
    whole = "".join(tokens)
    if whole in OPT_OUT_KEYWORDS:
        return OPT_OUT
    if whole in OPT_IN_KEYWORDS:
        return OPT_IN
    head = "OPTOUT" if tokens[:2] == ["OPT", "OUT"] else tokens[0]
    if head in UNAMBIGUOUS_OPT_OUT:
        return OPT_OUT
    return None
