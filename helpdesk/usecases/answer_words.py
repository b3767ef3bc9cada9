"""Yes or no in the region's languages: how the desk reads an expert's or a requester's one-word answer.

Only the first line counts, and only its first words: "Да, могу помочь" is yes, a long letter that
happens to say "no" somewhere is neither (staff read it on the ticket). The words are data; add a
language's usual pair here and nothing else changes.
"""

from __future__ import annotations

import re
from typing import Literal

Answer = Literal["yes", "no"]

# Lower case; apostrophes normalised to "'" before the look-up.
WORDS: dict[Answer, frozenset[str]] = {
    "yes": frozenset(
        {
            "yes",
            "y",
            "ok",
            "sure",
            "accept",
            "agree",
            "agreed",  # en
            "да",
            "конечно",
            "согласен",
            "согласна",
            "могу",  # ru
            "иә",
            "ия",
            "йә",  # kk
            "ооба",
            "ова",  # ky
            "ha",
            "xa",
            "ҳа",
            "хa",  # uz, tg
            "ayo",
            "оре",
            "бале",  # tg
            "hawa",  # tk
            "bəli",
            "beli",
            "hə",  # az
            "այո",  # hy
            "так",  # uk, be
            "დიახ",
            "კი",  # ka
            "тийм",  # mn
        }
    ),
    "no": frozenset(
        {
            "no",
            "n",
            "decline",
            "cannot",
            "can't",  # en
            "нет",
            "не",
            "отказ",
            "отказываюсь",
            "немогу",  # ru, tg, bg
            "жоқ",  # kk
            "жок",  # ky
            "yo'q",
            "yoq",
            "йўқ",  # uz
            "ýok",
            "yok",  # tk
            "xeyr",
            "yox",  # az
            "ոչ",  # hy
            "ні",  # uk
            "არა",  # ka
            "үгүй",  # mn
        }
    ),
}
_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "‘": "'", "`": "'", "ʻ": "'"})


def read_answer(text: str) -> Answer | None:
    """ "yes" or "no" when the first non-empty line begins with one of the words, else None."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    words = _WORD_RE.findall(first.translate(_APOSTROPHES).lower())
    if not words:
        return None
    if words[:2] == ["не", "могу"] or words[:2] == ["can", "not"]:
        return "no"
    for answer, known in WORDS.items():
        if words[0] in known:
            return answer
    return None
