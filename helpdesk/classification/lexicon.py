"""A compiled phrase index: finds vocabulary phrases in a token stream, robust to inflection and typos.

A phrase is stemmed into a tuple of stems. A text token reaches a vocabulary stem by, in order:
an exact stem; a longer text stem that starts with a vocabulary stem (Russian derivations:
"пастбищн" reaches "пастбищ"); a text stem that is a slightly shorter start of a vocabulary stem;
a Latin word transliterated to Russian; a fuzzy match (rapidfuzz ratio) for typos. Multi-word
phrases match when all their stems occur within a small window, in any order.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from helpdesk.classification.text import STOPWORDS, Stemmer, Token, is_cyrillic, transliterate, words

EXACT, PREFIX, TRANSLIT, FUZZY = 1.0, 0.9, 0.85, 0.75
_MIN_PREFIX_CYR = 5
_MIN_PREFIX_LAT = 6
# Armenian inflects by suffixes on short roots (գայլ, գայլերը): a shorter start is still one word.
_MIN_PREFIX_OTHER = 4
_ARMENIAN = re.compile(r"[\u0531-\u0587]")
_MIN_FUZZY = 6
_FUZZY_CUTOFF = 85.0
_WINDOW_SLACK = 2


@dataclass(frozen=True, slots=True)
class Entry:
    label: Hashable
    phrase: str
    stems: tuple[str, ...]
    weight: float


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry
    surface: str
    quality: float
    position: int
    end: int = -1  # last position of a multi-word match
    count: int = 1  # how often a single-word phrase occurs: a repeated word is the subject

    @property
    def span(self) -> tuple[int, int]:
        return self.position, max(self.position, self.end)

    @property
    def evidence(self) -> str:
        if self.quality >= EXACT or self.surface == self.entry.phrase.lower():
            return self.surface
        return f"{self.surface} ≈ {self.entry.phrase}"


class Lexicon:
    def __init__(self, stemmer: Stemmer) -> None:
        self.stemmer = stemmer
        self.entries: list[Entry] = []
        self._by_stem: dict[str, list[int]] = defaultdict(list)
        self._shorter: dict[str, str] = {}
        self._buckets: dict[str, list[str]] = {}
        self._resolved: dict[tuple[str, bool], tuple[tuple[str, float], ...]] = {}
        self._longest = 0
        self._frozen = False

    def phrase_stems(self, phrase: str) -> tuple[str, ...]:
        return tuple(self.stemmer.stem(w) for w in words(phrase) if w not in STOPWORDS)

    def add(self, label: Hashable, phrase: str, weight: float) -> None:
        if self._frozen:
            raise RuntimeError("lexicon is frozen")
        stems = self.phrase_stems(phrase)
        if not stems:
            return
        # "how do we" shrinks to "how" once function words go: it must not keep a whole phrase's weight.
        weight *= min(1.0, len(stems) / len(words(phrase)) * 1.5)
        index = len(self.entries)
        self.entries.append(Entry(label, phrase, stems, weight))
        for stem in set(stems):
            self._by_stem[stem].append(index)

    def freeze(self) -> None:
        buckets: dict[str, list[str]] = defaultdict(list)
        for stem in self._by_stem:
            if len(stem) >= _MIN_FUZZY - 1:
                buckets[stem[0]].append(stem)
            # Shorter starts of a vocabulary stem: "заповедн" (заповедного) reaches "заповедник".
            for cut in (1, 2):
                head = stem[:-cut]
                if len(head) >= 7 and head not in self._by_stem:
                    self._shorter.setdefault(head, stem)
        self._buckets = {k: sorted(v) for k, v in buckets.items()}
        self._by_stem = dict(self._by_stem)
        self._longest = max(map(len, self._by_stem), default=0)
        self._frozen = True

    def vocabulary_size(self) -> int:
        return len(self._by_stem)

    def _lookup(self, stem: str, fuzzy: bool, prefix: bool = True) -> tuple[str, float] | None:
        if stem in self._by_stem:
            return stem, EXACT
        if is_cyrillic(stem):
            min_prefix = _MIN_PREFIX_CYR
        elif _ARMENIAN.search(stem):
            min_prefix = _MIN_PREFIX_OTHER
        else:
            min_prefix = _MIN_PREFIX_LAT
        # Only starts as long as some vocabulary stem can match: a 100,000-letter "word" in a hostile
        # mail must not cost 100,000 slices and look-ups.
        for cut in range(min(len(stem) - 1, self._longest), min_prefix - 1, -1) if prefix else ():
            if stem[:cut] in self._by_stem:
                return stem[:cut], PREFIX
        if prefix and stem in self._shorter:
            return self._shorter[stem], PREFIX
        # A typo changes a letter or two: a word far longer than any vocabulary stem is not one.
        if fuzzy and _MIN_FUZZY <= len(stem) <= self._longest + 4:
            bucket = self._buckets.get(stem[0])
            if bucket:
                found = process.extractOne(stem, bucket, scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF)
                # Without starts (English), a typo keeps the length within a letter: "investig" is not a
                # misspelt "invest".
                if found is not None and (prefix or abs(len(found[0]) - len(stem)) <= 1):
                    return found[0], FUZZY
        return None

    def resolve(self, token: Token, english: bool = False) -> tuple[tuple[str, float], ...]:
        """Vocabulary stems this token stands for, with a match quality; memoised per surface word.

        In an English text a Latin word is only itself (or a typo of a word): Snowball already joins its
        forms, and a start ("reservoir" as "reserve") or a Russian reading ("complain" as "компании") is
        another word. Agglutinating Latin-script languages (Uzbek, Azerbaijani) and Russian typed in Latin
        keep both.
        """
        key = (token.surface, english)
        cached = self._resolved.get(key)
        if cached is not None:
            return cached
        latin_english = english and not is_cyrillic(token.surface)
        found: list[tuple[str, float]] = []
        direct = self._lookup(token.stem, fuzzy=True, prefix=not latin_english)
        if direct is not None:
            found.append(direct)
        if (
            (direct is None or direct[1] < EXACT)
            and not is_cyrillic(token.surface)
            and not latin_english
            and len(token.surface) > 3
        ):
            ru = self.stemmer.stem_russian(transliterate(token.surface))
            via = self._lookup(ru, fuzzy=len(ru) >= 7)
            if via is not None:
                found.append((via[0], min(via[1], TRANSLIT)))
        result = tuple(found)
        if len(self._resolved) < 200_000:
            self._resolved[key] = result
        return result

    def scan(self, tokens: list[Token], english: bool = False) -> list[Hit]:
        """Every vocabulary phrase found in the tokens (each phrase once, at its best match)."""
        # stem -> [(position, quality, surface)]
        seen: dict[str, list[tuple[int, float, str]]] = defaultdict(list)
        candidates: set[int] = set()
        for token in tokens:
            for stem, quality in self.resolve(token, english):
                seen[stem].append((token.position, quality, token.surface))
                candidates.update(self._by_stem[stem])
        hits: list[Hit] = []
        for index in candidates:
            entry = self.entries[index]
            if len(entry.stems) == 1:
                occ = seen[entry.stems[0]]
                pos, quality, surface = max(occ, key=lambda p: (p[1], -p[0]))
                hits.append(Hit(entry, surface, quality, pos, pos, len({p[0] for p in occ})))
                continue
            hit = _window_match(entry, seen)
            if hit is not None:
                hits.append(hit)
        return hits


def _window_match(entry: Entry, seen: dict[str, list[tuple[int, float, str]]]) -> Hit | None:
    occurrences = []
    for stem in entry.stems:
        occ = seen.get(stem)
        if not occ:
            return None
        occurrences.append(occ)
    limit = len(entry.stems) - 1 + _WINDOW_SLACK
    for anchor, quality, surface in occurrences[0]:
        span_lo = span_hi = anchor
        worst = quality
        parts = [(anchor, surface)]
        for occ in occurrences[1:]:
            best = min(occ, key=lambda p: abs(p[0] - anchor))
            span_lo, span_hi = min(span_lo, best[0]), max(span_hi, best[0])
            worst = min(worst, best[1])
            parts.append((best[0], best[2]))
        if span_hi - span_lo <= limit:
            surface_text = " ".join(s for _, s in sorted(set(parts)))
            return Hit(entry, surface_text, worst, span_lo, span_hi)
    return None
