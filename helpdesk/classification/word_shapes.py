"""What the supervised scorer reads of a word beside its stem: its root, as a few prefixes.

Kazakh, Kyrgyz, Uzbek, Azerbaijani, Turkmen and Tajik build words by chains of suffixes
("аймақтарында": region-PLURAL-POSSESSIVE-LOCATIVE; "yerlarning"), so no two forms of a word meet as
whole words, and neither the Russian dictionary nor Snowball knows them. Their roots come first, so the
first letters of a word are what its forms share. The word is first reduced to a plain Latin skeleton
(Cyrillic and Latin spellings, Turkic letters, apostrophes), so Uzbek in either script, and the roots
Kazakh, Kyrgyz, Uzbek and Azerbaijani share, meet too. Pure; memoised by the caller's set of words.
"""

from __future__ import annotations

# One Latin skeleton for the region's Cyrillic and Latin alphabets: each letter to the plain letters it
# sounds like. Vowel harmony pairs (ә/а, ө/о, ү/у, і/ы) meet, as Uzbek, which has none, writes them.
_SKELETON = str.maketrans(
    {
        "а": "a", "ә": "a", "ə": "a", "ä": "a", "б": "b", "в": "v", "г": "g", "ғ": "g", "ğ": "g",
        "д": "d", "е": "e", "ё": "yo", "э": "e", "ж": "j", "җ": "j", "з": "z", "и": "i", "й": "y",
        "і": "i", "ı": "i", "ы": "i", "ӣ": "i", "к": "k", "қ": "q", "л": "l", "м": "m", "н": "n",
        "ң": "n", "ň": "n", "о": "o", "ө": "o", "ö": "o", "п": "p", "р": "r", "с": "s", "т": "t",
        "у": "u", "ү": "u", "ұ": "u", "ў": "o", "ӯ": "u", "ü": "u", "ф": "f", "х": "x", "ҳ": "h",
        "һ": "h", "ц": "ts", "ч": "ch", "ҷ": "j", "ç": "ch", "ш": "sh", "ş": "sh", "щ": "sh",
        "ъ": "", "ь": "", "ю": "yu", "я": "ya", "ý": "y", "ž": "j", "w": "v",
    }
)  # fmt: skip
# Prefix lengths read, chosen by cross-validation per national language (bench/national_cv.py).
PREFIXES = (4, 5, 6)
MIN_WORD = 4  # shorter words are mostly particles and postpositions


def skeleton(word: str) -> str:
    """The word (lower case, apostrophes already dropped by text.words) in plain Latin letters."""
    return word.translate(_SKELETON)


def root_features(word: str) -> list[str]:
    """The prefixes a word's forms share: "^" + its first 4, 5 and 6 skeleton letters (when longer)."""
    s = skeleton(word)
    if len(s) < MIN_WORD:
        return []
    return [f"^{s[:n]}" for n in PREFIXES if len(s) > n or n == PREFIXES[0]]
