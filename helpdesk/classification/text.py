"""Turning raw request text into comparable tokens: normalisation, stemming, transliteration, language."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

import pymorphy3
import snowballstemmer

# Apostrophes inside a word (Uzbek o'z, g'alla; English women's) are dropped so both sides agree.
_APOSTROPHES = str.maketrans({"'": "", "’": "", "ʻ": "", "ʼ": "", "‘": "", "`": "", "ё": "е"})
_WORD = re.compile(r"[^\W_]+(?:['’ʻʼ‘`][^\W_]+)*")
_CYRILLIC = re.compile(r"[а-яеәғқңөұүһіҷӣӯҳўҕ]")
_KAZAKH_KYRGYZ = set("әғқңөұүһі")
_TAJIK = set("ҷӣӯҳ")
_UZBEK_CYRILLIC = set("ўқғҳ")

# Function words carry no meaning for matching; they are removed from text and phrases alike.
STOPWORDS = frozenset(
    """
    a an the of and or to in on at by for from with into about as is are was were be been being it its
    this that these those there their they them we our us you your i me my he she his her not no so
    if then than also very just all any some such can could would should will shall may might must
    has have had do does did dear please regards best kind sincerely
    и в во на по с со к ко о об обо от до для из за у а но не ни что чтобы это этот эта эти мы нас нам
    наш наша наши вы вас вам ваш ваша ваши я меня мне он она они их его ее или ли же бы то так тоже
    уже еще был была были быть будет ещё при под над без через между также только очень все всё
    всех весь вся который которые которая которых уважаемые коллеги пожалуйста уважением
    """.split()
)
# Greetings and thanks (здравствуйте, добрый день, спасибо) are not stopwords: they are evidence that a
# message is only a greeting or a thank-you (noise.yaml), weighed with the rest by calibration.ON_TOPIC.

# Latin spellings of Russian, for requests typed without a Cyrillic keyboard ("nuzhen ekspert po ...").
_TRANSLIT = (
    ("shch", "щ"),
    ("sch", "щ"),
    ("zh", "ж"),
    ("kh", "х"),
    ("ts", "ц"),
    ("ch", "ч"),
    ("sh", "ш"),
    ("yu", "ю"),
    ("ya", "я"),
    ("yo", "е"),
    ("ye", "е"),
    ("iy", "ий"),
    ("yy", "ый"),
    ("a", "а"),
    ("b", "б"),
    ("v", "в"),
    ("g", "г"),
    ("d", "д"),
    ("e", "е"),
    ("z", "з"),
    ("i", "и"),
    ("j", "й"),
    ("y", "ы"),
    ("k", "к"),
    ("l", "л"),
    ("m", "м"),
    ("n", "н"),
    ("o", "о"),
    ("p", "п"),
    ("r", "р"),
    ("s", "с"),
    ("t", "т"),
    ("u", "у"),
    ("f", "ф"),
    ("h", "х"),
    ("c", "к"),
    ("w", "в"),
    ("x", "кс"),
    ("q", "к"),
)
_TRANSLIT_RE = re.compile("|".join(src for src, _ in _TRANSLIT))
_TRANSLIT_MAP = dict(_TRANSLIT)

# Words that show a Latin-script text is Uzbek (or another Central Asian language), not English.
_CENTRAL_ASIAN_LATIN = frozenset(
    """
    assalomu alaykum salom rahmat rahmet hurmatli hamkasblar biz bizning bilan uchun kerak bormi yordam
    qishloq viloyat tuman yaxshi ham emas bor yoq haqida boyicha mumkin iltimos sizga sizlar
    """.split()
)
# Frequent Russian words typed in Latin letters.
_RUSSIAN_LATIN = frozenset(
    "nuzhen nuzhna nuzhno est kak gde kto po dlya pomoshch pomogite ekspert zapovednik mozhno "
    "pozhaluysta spasibo zdravstvuyte privet chto eto ili".split()
)


def normalise(text: str) -> str:
    return text.lower().translate(_APOSTROPHES)


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def is_cyrillic(word: str) -> bool:
    return bool(_CYRILLIC.search(word))


def transliterate(word: str) -> str:
    cyr = _TRANSLIT_RE.sub(lambda m: _TRANSLIT_MAP[m.group(0)], word)
    # A word-initial "e" is almost always Russian "э" (ekspert, ekologiya).
    return "э" + cyr[1:] if word.startswith("e") else cyr


_VOWELS = set("аеиоуыэюяё")


def _fleeting_vowel(stem: str) -> str:
    """Drop the vowel that disappears in inflection (список/списка, рынок/рынка, образец/образца).

    Snowball leaves "список" and "списк"; applied to text and vocabulary alike, this makes them meet.
    """
    if len(stem) >= 5 and stem[-2:] in ("ок", "ек", "ец") and stem[-3] not in _VOWELS:
        return stem[:-2] + stem[-1]
    return stem


# English words Snowball would merge with unrelated ones: a conservancy (a community-run area, target 3)
# is not conservation in general, farming (a practice, target 10) is not a farm.
_ENGLISH_KEPT = {
    "conservancy": "conservancy",
    "conservancies": "conservancy",
    "farming": "farming",
}


# Relational adjective suffixes and the noun endings tried for each, in order (экономический is экономика
# before экономия).
_RELATIONAL_ADJECTIVES = (
    ("иальный", ("ия",)),
    ("ический", ("ика", "ия", "")),
)


# pymorphy3 logs where its dictionaries are at INFO on every load: noise in `helpdesk classify` output.
logging.getLogger("pymorphy3").setLevel(logging.WARNING)


@lru_cache(maxsize=1)
def russian_morphology() -> pymorphy3.MorphAnalyzer:
    """pymorphy3 with its packaged dictionaries: one per process (about 20 MB, 0.1 s to load with DAWG2)."""
    return pymorphy3.MorphAnalyzer(lang="ru")


class Stemmer:
    """Russian words by their dictionary lemma (then Snowball), other Cyrillic and Latin words by Snowball.

    The lemma first makes every form of a word meet (куланов/кулан, пестицидов/пестициды), which Snowball
    alone does not always do; a word the dictionary does not know (Kazakh, Tajik, a typo) keeps Snowball.
    Memoised.
    """

    def __init__(self) -> None:
        self._ru = snowballstemmer.stemmer("russian")
        self._en = snowballstemmer.stemmer("english")
        self._morph = russian_morphology()
        self._cache: dict[str, str] = {}

    def stem(self, word: str) -> str:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        if word.isdigit() or len(word) <= 2:
            result = word
        elif is_cyrillic(word):
            result = self.stem_russian(word)
        else:
            result = _ENGLISH_KEPT.get(word) or self._en.stemWord(word)
        if len(self._cache) < 200_000:
            self._cache[word] = result
        return result

    def stem_russian(self, word: str) -> str:
        if self._morph.word_is_known(word):
            # The lemma is the key: Snowball on top of it would merge other words (село and сель, a
            # village and a mudflow; вернуть and вернуться, "return" and an auto-reply's "I'll be back").
            return self._noun_of(self._morph.parse(word)[0].normal_form.replace("ё", "е"))
        return _fleeting_vowel(self._ru.stemWord(word))

    def _noun_of(self, lemma: str) -> str:
        """The noun a relational adjective is made from, when the dictionary has it as a noun lemma.

        "территориальное планирование" and "планирование территории" are the same thing, but Snowball
        leaves "территориальн" and "территор"; so do экологический/экология, генетический/генетика.
        Only these suffixes, and only into a noun the dictionary knows, so ценный never becomes цена.
        """
        for suffix, endings in _RELATIONAL_ADJECTIVES:
            if lemma.endswith(suffix) and len(lemma) > len(suffix) + 2:
                base = lemma[: -len(suffix)]
                for ending in endings:
                    noun = base + ending
                    if not self._morph.word_is_known(noun):
                        continue
                    parse = self._morph.parse(noun)[0]
                    if parse.normal_form == noun and "NOUN" in parse.tag:
                        return noun
        return lemma


@dataclass(frozen=True, slots=True)
class Token:
    surface: str
    stem: str
    position: int


def content_tokens(text: str, stemmer: Stemmer) -> list[Token]:
    out: list[Token] = []
    for w in words(text):
        if w in STOPWORDS:
            continue
        out.append(Token(w, stemmer.stem(w), len(out)))
    return out


def detect_language(text: str) -> str:
    """'ru', 'en' or 'mixed' (Russian with English, or a Central Asian language beside Russian/English).

    Russian typed in Latin letters counts as 'ru'.
    """
    ws = words(text)
    cyr = lat = 0
    national = 0
    rus_latin = 0
    for w in ws:
        if not any(ch.isalpha() for ch in w):
            continue
        if is_cyrillic(w):
            cyr += len(w)
            if _KAZAKH_KYRGYZ & set(w) or _TAJIK & set(w) or _UZBEK_CYRILLIC & set(w):
                national += 1
        else:
            lat += len(w)
            if w in _CENTRAL_ASIAN_LATIN:
                national += 1
            elif w in _RUSSIAN_LATIN:
                rus_latin += 1
    total = cyr + lat
    if total == 0:
        return "en"
    if national:
        return "mixed"
    share_cyr = cyr / total
    if share_cyr >= 0.85:
        return "ru"
    if share_cyr <= 0.15:
        return "ru" if rus_latin >= 2 else "en"
    return "mixed"


def reply_language(language: str) -> str:
    """The language to answer in: Russian for everything except plain English."""
    return "en" if language == "en" else "ru"
