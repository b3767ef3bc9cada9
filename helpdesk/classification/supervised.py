"""The third scorer: a linear model learned from labelled requests, for targets (and off-topic) and core functions.

The lexicon and TF-IDF know each target by what is written about it; this scorer knows it by how people
ask about it: the words of a few thousand labelled requests (knowledge/data/training/, see its README) and
each target's official texts. Multinomial logistic regression over the request's content stems (Russian
lemmas, English Snowball, as the lexicon reads them), each stem counted once and the request scaled to
unit length, so a long mail is not more certain than a short one that says the same. Trained by
training.py (NumPy, at development time) and shipped as weights; here only the pure-Python reading, so
the service needs no NumPy. Pure and deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from helpdesk.classification.text import STOPWORDS, Stemmer, words

OFF_TOPIC = 0  # the class of a message that is not a request for the Centre


def stems(text: str, stemmer: Stemmer) -> frozenset[str]:
    """A request's content stems, each once: what the scorer reads."""
    return frozenset(
        s for w in words(text) if w not in STOPWORDS and len(w) >= 3 and not (s := stemmer.stem(w)).isdigit()
    )


class LinearModel:
    """Softmax over classes of bias + (sum of the request's feature weights) / sqrt(number of features).

    Weights are sparse: a feature keeps only the classes it moves noticeably (training.py prunes the rest).
    """

    def __init__(
        self,
        classes: Sequence[int],
        bias: Sequence[float],
        weights: dict[str, tuple[tuple[int, float], ...]],
    ) -> None:
        self.classes = tuple(classes)
        self.bias = tuple(bias)
        self.weights = weights

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "bias": list(self.bias),
            "weights": {f: [list(w) for w in ws] for f, ws in self.weights.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearModel:
        weights = {f: tuple((int(i), float(w)) for i, w in ws) for f, ws in data["weights"].items()}
        return cls(data["classes"], data["bias"], weights)

    def probabilities(self, features: Iterable[str]) -> dict[int, float]:
        """P(class | request); empty when no feature of the request was ever seen in training."""
        sums = [0.0] * len(self.classes)
        known = 0
        for f in features:
            ws = self.weights.get(f)
            if ws is None:
                continue  # a word no training request used says nothing either way
            known += 1
            for i, w in ws:
                sums[i] += w
        if not known:
            return {}
        scale = 1.0 / math.sqrt(known)
        z = [b + s * scale for b, s in zip(self.bias, sums, strict=True)]
        top = max(z)
        exp = [math.exp(v - top) for v in z]
        total = sum(exp)
        return {c: e / total for c, e in zip(self.classes, exp, strict=True)}


@dataclass(frozen=True, slots=True)
class SupervisedScores:
    targets: dict[int, float]  # P(target | request), over the 23 targets and OFF_TOPIC
    core_functions: dict[int, float]  # P(core function | request), over the 11 functions

    @property
    def off_topic(self) -> float:
        return self.targets.get(OFF_TOPIC, 0.0)


class SupervisedScorer:
    """A trained model pair (targets with off-topic, core functions); share freely (read-only)."""

    def __init__(self, stemmer: Stemmer, targets: LinearModel, core_functions: LinearModel) -> None:
        self.stemmer = stemmer
        self.targets = targets
        self.core_functions = core_functions

    def scores(self, text: str) -> SupervisedScores:
        feats = stems(text, self.stemmer)
        return SupervisedScores(self.targets.probabilities(feats), self.core_functions.probabilities(feats))

    def to_json(self) -> dict[str, Any]:
        return {"targets": self.targets.to_json(), "core_functions": self.core_functions.to_json()}

    @classmethod
    def from_json(cls, stemmer: Stemmer, data: dict[str, Any]) -> SupervisedScorer:
        targets, core_functions = data["targets"], data["core_functions"]
        return cls(stemmer, LinearModel.from_json(targets), LinearModel.from_json(core_functions))
