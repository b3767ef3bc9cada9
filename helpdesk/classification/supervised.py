"""The third scorer: naive Bayes trained on labelled requests, for targets (and off-topic) and core functions.

The lexicon and TF-IDF know each target by what is written about it; this scorer knows it by how people
ask about it: the words of hundreds of labelled requests (knowledge/data/training/, see its README) and
each target's official texts. Trained when the classifier is built (counting, tens of milliseconds), so
it can never be stale against its corpus. Pure and deterministic after training.

Multinomial naive Bayes over the request's content stems (Russian lemmas, English Snowball, as the lexicon
reads them), each stem counted once; uniform class priors (the corpus's mix of targets says nothing about
the next request); a request's primary label counts fully, its other labels less; the log-likelihood is
averaged over the request's stems and sharpened into probabilities, so a long mail is not more certain
than a short one that says the same.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from helpdesk.classification.evaluate import LabelledItem
from helpdesk.classification.text import STOPWORDS, Stemmer, words
from knowledge.models import KnowledgeBase

OFF_TOPIC = 0  # the class of a message that is not a request for the Centre
# Chosen by k-fold cross-validation on the training corpus + development part (bench/tune_fusion.py).
SECONDARY_LABEL = 0.5
OFFICIAL_TEXT_WEIGHT = 1.0
ALPHA = 0.1
SHARPNESS = 4.0


def stems(text: str, stemmer: Stemmer) -> frozenset[str]:
    """A request's content stems, each once: what the scorer reads."""
    return frozenset(
        s for w in words(text) if w not in STOPWORDS and len(w) >= 3 and not (s := stemmer.stem(w)).isdigit()
    )


@dataclass(frozen=True, slots=True)
class Document:
    features: frozenset[str]
    labels: dict[int, float]  # class -> weight of this document for it


class NaiveBayes:
    """Multinomial naive Bayes with sparse weights: a feature stores only the classes that saw it.

    log P(f | c) = default[c] + delta[f][c]; a class that never saw f keeps its default.
    """

    def __init__(
        self,
        classes: Sequence[int],
        default: Sequence[float],
        deltas: dict[str, tuple[tuple[int, float], ...]],
    ) -> None:
        self.classes = tuple(classes)
        self._default = list(default)
        self._deltas = deltas

    @classmethod
    def train(cls, documents: Iterable[Document], classes: Sequence[int], alpha: float = ALPHA) -> NaiveBayes:
        slot = {c: i for i, c in enumerate(classes)}
        counts: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(slot))
        totals = [0.0] * len(slot)
        for doc in documents:
            for c, weight in doc.labels.items():
                i = slot[c]
                totals[i] += weight * len(doc.features)
                for f in doc.features:
                    counts[f][i] += weight
        size = len(counts) or 1
        # log P(f | c) = log(n + alpha) - log(N + alpha V) = default + log(1 + n / alpha).
        default = [round(math.log(alpha) - math.log(t + alpha * size), 5) for t in totals]
        deltas = {
            f: tuple((i, round(math.log(1.0 + n / alpha), 5)) for i, n in enumerate(row) if n > 0)
            for f, row in sorted(counts.items())
        }
        return cls(classes, default, deltas)

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "default": self._default,
            "deltas": {f: [list(d) for d in ds] for f, ds in self._deltas.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NaiveBayes:
        deltas = {f: tuple((int(i), float(d)) for i, d in ds) for f, ds in data["deltas"].items()}
        return cls(data["classes"], data["default"], deltas)

    def log_likelihood(self, features: Iterable[str]) -> tuple[list[float], int]:
        """Per class, the log-likelihood summed over the known features; and how many were known."""
        scores = [0.0] * len(self.classes)
        known = 0
        for f in features:
            deltas = self._deltas.get(f)
            if deltas is None:
                continue  # a word no training request used says nothing either way
            known += 1
            for i, d in deltas:
                scores[i] += d
        return [s + known * d for s, d in zip(scores, self._default, strict=True)], known

    def probabilities(self, features: Iterable[str], sharpness: float = SHARPNESS) -> dict[int, float]:
        scores, known = self.log_likelihood(features)
        if not known:
            return {}
        mean = [s / known * sharpness for s in scores]
        top = max(mean)
        exp = [math.exp(m - top) for m in mean]
        total = sum(exp)
        return {c: e / total for c, e in zip(self.classes, exp, strict=True)}


@dataclass(frozen=True, slots=True)
class SupervisedScores:
    targets: dict[int, float]  # P(target | request), over the 23 targets and OFF_TOPIC
    core_functions: dict[int, float]  # P(core function | request), over the 11 functions

    @property
    def off_topic(self) -> float:
        return self.targets.get(OFF_TOPIC, 0.0)


def _labels(numbers: Sequence[int], secondary: float) -> dict[int, float]:
    out: dict[int, float] = {}
    for rank, n in enumerate(numbers):
        out.setdefault(n, 1.0 if rank == 0 else secondary)
    return out


def train(
    kb: KnowledgeBase,
    stemmer: Stemmer,
    training: Iterable[LabelledItem],
    *,
    secondary: float = SECONDARY_LABEL,
    official: float = OFFICIAL_TEXT_WEIGHT,
    alpha: float = ALPHA,
) -> SupervisedScorer:
    """The scorer trained on these labelled requests and the knowledge base's target texts."""
    target_docs: list[Document] = []
    cf_docs: list[Document] = []
    for item in training:
        feats = stems(item.text, stemmer)
        if not feats:
            continue
        target_docs.append(Document(feats, _labels(item.targets, secondary) or {OFF_TOPIC: 1.0}))
        if item.targets and item.core_functions:
            cf_docs.append(Document(feats, _labels(item.core_functions, secondary)))
    if official:
        for n, t in kb.targets.items():
            text = " . ".join((t.official_text_en, t.title_en, t.title_ru, *t.reference_texts))
            target_docs.append(Document(stems(text, stemmer), {n: official}))
    return SupervisedScorer(
        stemmer,
        NaiveBayes.train(target_docs, (OFF_TOPIC, *sorted(kb.targets)), alpha),
        NaiveBayes.train(cf_docs, sorted(kb.core_functions), alpha),
    )


class SupervisedScorer:
    """A trained model pair (targets with off-topic, core functions); share freely (read-only)."""

    def __init__(self, stemmer: Stemmer, targets: NaiveBayes, core_functions: NaiveBayes) -> None:
        self.stemmer = stemmer
        self.targets = targets
        self.core_functions = core_functions
        self.sharpness = SHARPNESS

    def scores(self, text: str) -> SupervisedScores:
        feats = stems(text, self.stemmer)
        return SupervisedScores(
            self.targets.probabilities(feats, self.sharpness),
            self.core_functions.probabilities(feats, self.sharpness),
        )

    def to_json(self) -> dict[str, Any]:
        return {"targets": self.targets.to_json(), "core_functions": self.core_functions.to_json()}

    @classmethod
    def from_json(cls, stemmer: Stemmer, data: dict[str, Any]) -> SupervisedScorer:
        return cls(
            stemmer, NaiveBayes.from_json(data["targets"]), NaiveBayes.from_json(data["core_functions"])
        )
