"""Example requests without personal data: what was asked, never who asked or how to reach them.

Removed: the requester's own name and address (known from the ticket), email addresses, phone numbers,
links (a link can carry a name or a token; a report has no use for them), Telegram @handles, greetings and
self-introductions ("Dear Ms …", "Меня зовут …"), and everything from the sign-off on (signatures).
What is left is cut to a few hundred characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

LIMIT = 280
HIDDEN = "[…]"

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
URL = re.compile(
    r"(?:https?://|ftp://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|uz|kz|kg|tj|tm|ru|by|am|az|info)/\S*",
    re.IGNORECASE,
)
# Seven or more digits with the usual separators: phone numbers, not years or percentages.
PHONE = re.compile(r"(?<![\w])(?!\d{4}\s*[-–]\s*\d{4}\b)\+?\d(?:[\s().-]*\d){6,}")
HANDLE = re.compile(r"(?<![\w@])@\w{3,}")
# Up to three capitalised words or initials: "Aziza Karimova", "A. K. Petrov"; a full stop ends the name.
NAME = r"(?:[A-ZА-ЯЁ][\w'-]+|[A-ZА-ЯЁ]\.)(?:\s+(?:[A-ZА-ЯЁ][\w'-]+|[A-ZА-ЯЁ]\.)){0,2}"
HONORIFIC = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|Prof|г-н|г-жа|господин|госпожа|проф|д-р)\.?\s+" + NAME,
    re.UNICODE,
)
INTRODUCTION = re.compile(
    # Case-insensitive keywords, but only capitalised words after them are taken for a name.
    r"\b(?i:my name is|i am|i'm|this is|меня зовут|я\s*[-—–]|с вами|пишет|пишу вам,?)\s+" + NAME,
    re.UNICODE,
)
GREETING_LINE = re.compile(
    r"^\s*(?i:dear|hello|hi|good (?:morning|afternoon|day)|уважаем\w*|здравствуйте|добрый (?:день|вечер)"
    # "Здравствуйте, Азиза!": the name after the greeting goes too.
    r"|привет\w*)\b[^,!.:\n]*[,!.:]?(?:\s*" + NAME + r"\s*[,!.:])?",
    re.MULTILINE,
)
SIGN_OFF = re.compile(
    r"(?:^|(?<=[.!?])[ \t]+)\s*(?:--\s*$|best regards|kind regards|regards|sincerely|yours|thank you,"
    r"|thanks,|с уважением|всего доброго|спасибо,|с наилучшими)",
    re.IGNORECASE | re.MULTILINE,
)
QUOTED = re.compile(r"^\s*>.*$", re.MULTILINE)
SPACES = re.compile(r"\s+")


def _name_parts(known: Iterable[str]) -> list[str]:
    parts: set[str] = set()
    for value in known:
        value = value.strip()
        if not value:
            continue
        parts.add(value)
        if "@" in value:
            parts.add(value.split("@", 1)[0])
            continue
        parts.update(word for word in re.split(r"[\s,.]+", value) if len(word) >= 3 and not word.isdigit())
    return sorted(parts, key=len, reverse=True)


def anonymise(text: str, known: Iterable[str] = (), limit: int = LIMIT) -> str:
    """`text` without personal data; `known` are the requester's name, address, handle as stored."""
    match = SIGN_OFF.search(text)
    if match:
        text = text[: match.start()]
    text = QUOTED.sub("", text)
    text = GREETING_LINE.sub("", text)
    text = EMAIL.sub(HIDDEN, text)
    text = URL.sub(HIDDEN, text)
    text = PHONE.sub(HIDDEN, text)
    text = HANDLE.sub(HIDDEN, text)
    text = HONORIFIC.sub(HIDDEN + " ", text)
    text = INTRODUCTION.sub(HIDDEN + " ", text)
    for part in _name_parts(known):
        text = re.sub(rf"(?<!\w){re.escape(part)}\w*", HIDDEN, text, flags=re.IGNORECASE)
    text = SPACES.sub(" ", text).strip(" ,;:-—")
    text = re.sub(rf"(?:{re.escape(HIDDEN)}\s*)+", HIDDEN + " ", text).strip()
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return text
