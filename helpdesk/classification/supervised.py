"""The third scorer: a linear model learned from labelled requests, for targets (with off-topic) and core
functions.

The lexicon and TF-IDF know each target by what is written about it; this scorer knows it by how people
ask about it: the words of a few thousand labelled requests (knowledge/data/training/, see its README) and
each target's official texts. Multinomial logistic regression over the request's content stems (Russian
lemmas, English Snowball, as the lexicon reads them), each stem counted once and the request scaled to
unit length, so a long mail is not more certain than a short one that says the same. Trained by
training.py (NumPy, at development time) and shipped as weights; here only the pure-Python reading, so
the service needs no NumPy. Pure and deterministic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from helpdesk.classification.language_id import NATIONAL, recognise_language
from helpdesk.classification.text import STOPWORDS, Stemmer, words
from helpdesk.classification.word_shapes import root_features
from knowledge.models import KnowledgeBase

OFF_TOPIC = 0  # the class of a message that is not a request for the Centre
ROOTS_FOR_ALL = False  # roots of every request's words, not only of national-language ones
CF_PAIRS = True  # the core-function model also reads neighbouring words (core_function_features)


def stems(text: str, stemmer: Stemmer, ignored: frozenset[str] = frozenset()) -> frozenset[str]:
    """A request's content stems, each once: what the scorer reads.

    In a national language each word's roots (word_shapes.py) are read too: the stem of an agglutinated
    word is one form of it, which the next request rarely repeats.
    """
    content = [w for w in words(text) if w not in STOPWORDS and len(w) >= 3]
    out = {s for w in content if not (s := stemmer.stem(w)).isdigit() and s not in ignored}
    if ROOTS_FOR_ALL or recognise_language(text) in NATIONAL:
        out.update(f for w in content if stemmer.stem(w) not in ignored for f in root_features(w))
    return frozenset(out)


def word_pairs(text: str, stemmer: Stemmer) -> frozenset[str]:
    """Neighbouring words, function words kept, as one feature each ("who+can", "кто+мочь").

    What a request asks for (an expert, examples, a course) is often said by the words the stems leave out:
    "who can", "examples of", "кто может", "есть ли опыт".
    """
    stemmed = [stemmer.stem(w) for w in words(text)]
    return frozenset(f"{a}+{b}" for a, b in itertools.pairwise(stemmed))


def core_function_features(text: str, content: frozenset[str], stemmer: Stemmer) -> frozenset[str]:
    """What the core-function model reads: the content stems, and with CF_PAIRS the word pairs."""
    return content | word_pairs(text, stemmer) if CF_PAIRS else content


def greeting_stems(kb: KnowledgeBase, stemmer: Stemmer) -> frozenset[str]:
    """Words of greetings and thanks (noise.yaml), which the scorer does not read.

    The abstention weighs a greeting once, as its own evidence (calibration.topic_features); read here too,
    they would count again, as off-topic words (most off-topic training messages are thank-yous), and set
    aside a short request between a greeting and a thank-you.
    """
    return frozenset(
        stemmer.stem(w)
        for phrases in kb.noise.get("greeting", {}).values()
        for phrase in phrases
        for w in words(phrase)
        if w not in STOPWORDS
    )


class LinearModel:
    """Softmax over classes of bias + (sum of the request's feature weights) / sqrt(number of features).

    Weights are sparse: a feature keeps only the classes it moves noticeably (training.py prunes the rest),
    as a flat list of class positions and weights ([3, 0.52, 7, -0.41]): the file's JSON is read as it is,
    which keeps the classifier's build short.
    """

    def __init__(
        self,
        classes: Sequence[int],
        bias: Sequence[float],
        weights: dict[str, list[float]],
    ) -> None:
        self.classes = tuple(classes)
        self.bias = tuple(bias)
        self.weights = weights

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "bias": list(self.bias),
            "weights": self.weights,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearModel:
        return cls(data["classes"], data["bias"], data["weights"])

    def probabilities(self, features: Iterable[str]) -> dict[int, float]:
        """P(class | request); empty when no feature of the request was ever seen in training."""
        sums = [0.0] * len(self.classes)
        known = 0
        for f in features:
            ws = self.weights.get(f)
            if ws is None:
                continue  # a word no training request used says nothing either way
            known += 1
            pairs = iter(ws)
            for i, w in zip(pairs, pairs, strict=True):
                sums[int(i)] += w
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
    # How many of the request's features the target model was trained on: an opinion from one or two
    # known words is worth less than one from a sentence (calibration.opinion_weight).
    known: int = 0

    @property
    def off_topic(self) -> float:
        return self.targets.get(OFF_TOPIC, 0.0)


class SupervisedScorer:
    """A trained model pair (targets with off-topic, core functions); share freely (read-only)."""

    def __init__(
        self,
        stemmer: Stemmer,
        targets: LinearModel,
        core_functions: LinearModel,
        ignored: frozenset[str] = frozenset(),
    ) -> None:
        self.stemmer = stemmer
        self.targets = targets
        self.core_functions = core_functions
        self.ignored = ignored  # greeting_stems(): what training left out, scoring leaves out too

    def scores(self, text: str) -> SupervisedScores:
        feats = stems(text, self.stemmer, self.ignored)
        known = sum(f in self.targets.weights for f in feats)
        cf_feats = core_function_features(text, feats, self.stemmer)
        return SupervisedScores(
            self.targets.probabilities(feats), self.core_functions.probabilities(cf_feats), known
        )

    def to_json(self) -> dict[str, Any]:
        return {"targets": self.targets.to_json(), "core_functions": self.core_functions.to_json()}

    @classmethod
    def from_json(
        cls, stemmer: Stemmer, data: dict[str, Any], ignored: frozenset[str] = frozenset()
    ) -> SupervisedScorer:
        targets, core_functions = data["targets"], data["core_functions"]
        return cls(stemmer, LinearModel.from_json(targets), LinearModel.from_json(core_functions), ignored)
