"""A second, independent scorer: TF-IDF over stemmed words and character n-grams, one document a target.

Trained only on what the knowledge base says of each target (official text, the CBD's Russian, Kazakh
and Kyrgyz translations, titles, every vocabulary phrase in every language), never on labelled
requests. Character n-grams reach word forms and compounds the lexicon's phrases do not list
(экосистемных, ko'kalamzorlashtirish); the lexicon stays the judge of abstention and this scorer only
re-weighs targets (classifier.py, fused by score).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable

from helpdesk.classification.text import STOPWORDS, Stemmer, words
from knowledge.models import KnowledgeBase, Target

_NGRAMS = (4,)  # 3-, 4- and 5-grams together were 6x slower to build and query, and no better on dev
# Character n-grams are many and each says little: a whole stemmed word counts as much as several.
_WORD_WEIGHT = 2.0


def _features(text: str, stemmer: Stemmer) -> Counter[str]:
    out: Counter[str] = Counter()
    for w in words(text):
        if w in STOPWORDS or len(w) < 3:
            continue
        out["w:" + stemmer.stem(w)] += _WORD_WEIGHT
        padded = f" {w} "
        for n in _NGRAMS:
            for i in range(len(padded) - n + 1):
                out[padded[i : i + n]] += 1
    return out


def _documents(target: Target) -> Iterable[str]:
    yield target.official_text_en
    yield target.title_en
    yield target.title_ru
    yield from target.reference_texts
    for tier in (target.strong, target.terms):
        for phrases in tier.values():
            yield from phrases


class TfidfScorer:
    """Cosine similarity of a request to each target's document. Share freely (read-only after build)."""

    def __init__(self, kb: KnowledgeBase, stemmer: Stemmer) -> None:
        self.stemmer = stemmer
        counts = {n: _features(" . ".join(_documents(t)), stemmer) for n, t in kb.targets.items()}
        df: Counter[str] = Counter()
        for c in counts.values():
            df.update(c.keys())
        total = len(counts)
        # A feature every target shares tells nothing; one in a single target tells most.
        self._idf = {f: math.log((1 + total) / (1 + d)) for f, d in df.items()}
        self._index: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for n, c in counts.items():
            # A feature in more than half the targets says little and costs a long posting list.
            vec = {f: (1 + math.log(v)) * self._idf[f] for f, v in c.items() if df[f] <= total // 2}
            norm = math.sqrt(sum(x * x for x in vec.values())) or 1.0
            for f, x in vec.items():
                self._index[f].append((n, x / norm))
        self._index = dict(self._index)

    def similarities(self, text: str) -> dict[int, float]:
        query = _features(text, self.stemmer)
        vec = {f: (1 + math.log(v)) * self._idf[f] for f, v in query.items() if f in self._index}
        norm = math.sqrt(sum(x * x for x in vec.values()))
        if not norm:
            return {}
        out: dict[int, float] = defaultdict(float)
        for f, x in vec.items():
            for n, y in self._index[f]:
                out[n] += x * y / norm
        return dict(out)
