"""Which of the region's languages a request is written in: letters only one language uses, then words.

Recognised: ru, en and the national languages kk, ky, uz-Latn, uz-Cyrl, tg, tk, az, hy, be. The desk
answers only in Russian or English (helpdesk/language.py); this tells staff and the evaluation what the
requester wrote, so a request in Kazakh is not taken for Russian with typos.
"""

from __future__ import annotations

import re
from collections import Counter

# Letters that, within the region, belong to one language (or a few): each found letter is a vote.
# Order is data: a letter shared by two languages votes for both.
_LETTERS: dict[str, str] = {
    "kk": "әұіһғқңөү",
    "ky": "ңөү",
    "tg": "ҷӣӯҳғқ",
    "uz-Cyrl": "ўқғҳ",
    "be": "ўі",
    "az": "əğışçöü",
    "tk": "äňžýşçöü",
    "hy": "".join(chr(c) for c in range(0x0531, 0x0588)),
}
# A letter that only one language has decides more than a shared one.
_UNIQUE_WEIGHT = 3.0
_OWNERS = Counter(ch for letters in _LETTERS.values() for ch in set(letters))

# Frequent words, in the form they take after normalisation (lower case, apostrophes dropped).
_WORDS: dict[str, frozenset[str]] = {
    "kk": frozenset(
        "және бойынша үшін бар ма жоқ керек туралы біз сіз қалай қандай жоқпа сәлем рахмет "
        "rahmet alyndy salem".split()
    ),
    "ky": frozenset(
        "жана боюнча үчүн барбы керек тууралуу биз сиз кантип кандай саламатсызбы рахмат".split()
    ),
    "uz-Latn": frozenset(
        "va uchun bormi kerak haqida biz siz qanday bilan boyicha mumkin iltimos assalomu alaykum salom "
        "rahmat yordam hurmatli qilish bizning sizning kimga nima yoki emas boladi".split()
    ),
    "uz-Cyrl": frozenset(
        "ва учун борми керак ҳақида биз сиз қандай билан бўйича мумкин илтимос раҳмат".split()
    ),
    "tg": frozenset("ва барои дар оид аз ба кӣ чӣ мо шумо лозим аст ҳаст мешавад ташаккур".split()),
    # Azerbaijani and Turkmen are often typed without their letters (ucun for üçün): those forms too.
    "az": frozenset(
        "və üçün varmı lazımdır haqqında biz siz necə ilə üzrə salam təşəkkür "
        "ve ucun varmi lazim lazimdir haqqinda nece necedir ile uzre tesekkur yoxdur bizim sizin hansi "
        "kime".split()
    ),
    "tk": frozenset("üçin barmy gerek hakda nähili bilen boýunça sag boluň ucin nahili boyunca".split()),
    "be": frozenset("і ў што ці ёсць патрэбны патрэбна дзякуй дзень калі ласка гэта якія".split()),
    "ru": frozenset("и в на что как для есть ли нужен нужна здравствуйте спасибо это по".split()),
    "en": frozenset("the and for is are we need how what which please thanks hello our".split()),
}
_WORD = re.compile(r"[^\W\d_]+")
_APOSTROPHES = str.maketrans({"'": "", "’": "", "ʻ": "", "ʼ": "", "‘": "", "`": ""})
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[a-zəğışçöüäňžý]")
NATIONAL = ("kk", "ky", "uz-Latn", "uz-Cyrl", "tg", "tk", "az", "hy", "be")


def recognise_language(text: str) -> str:
    """The best-supported language code; "ru" or "en" when nothing national shows."""
    lowered = text.lower()
    votes: Counter[str] = Counter()
    for lang, letters in _LETTERS.items():
        for ch in letters:
            n = lowered.count(ch)
            if n:
                votes[lang] += n * (_UNIQUE_WEIGHT if _OWNERS[ch] == 1 else 1.0)
    tokens = _WORD.findall(lowered.translate(_APOSTROPHES))
    for token in tokens:
        for lang, vocabulary in _WORDS.items():
            if token in vocabulary:
                votes[lang] += 2.0
    # Turkic Latin letters also occur in Azerbaijani and Turkmen words typed in Uzbek spelling: a
    # script the text is not written in casts no vote.
    cyrillic = len(_CYRILLIC.findall(lowered))
    latin = len(_LATIN.findall(lowered))
    for lang in ("uz-Cyrl", "ky", "tg", "be", "ru"):
        if cyrillic < latin / 3:
            votes.pop(lang, None)
    for lang in ("uz-Latn", "az", "tk", "en"):
        if latin < cyrillic / 3:
            votes.pop(lang, None)
    national = [(votes[lang], lang) for lang in NATIONAL if votes[lang] > 0]
    if national:
        best_votes, best = max(national)
        base = max(votes["ru"], votes["en"])
        # A Russian request with one Kazakh greeting is still Russian for most of its words.
        if best_votes >= 2.0 and best_votes >= 0.6 * base:
            return best
    if latin > cyrillic:
        return "en"
    return "ru" if cyrillic else "en"
