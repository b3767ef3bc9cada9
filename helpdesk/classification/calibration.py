"""Scores as probabilities: monotone logistic maps fitted on the training corpus + development part only.

The coefficients below are written by bench/calibrate_classifier.py (cross-validated on those, the
supervised scorer's evidence out of fold, then fitted on all of them; never on the frozen part). Every
weight has the sign its evidence must have, so more evidence for a target never lowers its probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Logistic:
    weights: tuple[float, ...]
    bias: float

    def __call__(self, features: tuple[float, ...]) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, features, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def target_features(value: float, best: float) -> tuple[float, float]:
    """A listed target's fused value and its share of the best one's."""
    return (math.log1p(value), value / best if best > 0 else 0.0)


# The supervised scorer's off-topic probability is read as log-odds against the corpus's share of
# off-topic messages: its probabilities are small (a softmax over 24 classes), and what separates a request
# from an offer is 0.02 against 0.2, which a linear weight on the probability hardly tells apart (out of
# fold: Russian abstention 0.88 -> 0.94 and false abstention 0.095 -> 0.069 by this alone).
OFF_TOPIC_SHARE = 0.1
_ODDS_CLIP = 1e-3


# The scorer's opinion counts fully from this many known words on, for less below: two known words of a
# short request ("saxaul Aralkum") or one of four (Russian typed in Latin) say less than a sentence does.
# Chosen out of fold against the share of known words and both together (bench/calibrate_classifier.py).
OPINION_WORDS = 4


def opinion_weight(known: int) -> float:
    """How much the supervised scorer's off-topic opinion counts, by how many of the words it knew."""
    return min(known, OPINION_WORDS) / OPINION_WORDS


# In a national language the scorer is often unsure of everything (its largest probability 0.12-0.16, and
# off-topic, the largest class, often that one): an opinion that flat says "unsure", not "off-topic", and
# counts in proportion to its largest probability up to this (out of fold: national false abstention
# 0.103 -> 0.081, national abstention, en and ru unchanged; 0.2-0.5 tried).
NATIONAL_SURE = 0.4


def national_certainty(largest: float) -> float:
    """How much a national request's off-topic opinion counts, by the scorer's largest probability."""
    return min(1.0, largest / NATIONAL_SURE)


def off_topic_odds(off_topic: float | None, weight: float = 1.0) -> float:
    """log(p / (1 - p)) - log(share / (1 - share)), times the opinion's weight (opinion_weight): 0 when the
    scorer says no more than the corpus's share, or nothing (None: it knew no word)."""
    if off_topic is None:
        return 0.0
    p = min(max(off_topic, _ODDS_CLIP), 1.0 - _ODDS_CLIP)
    return weight * (math.log(p / (1.0 - p)) - math.log(OFF_TOPIC_SHARE / (1.0 - OFF_TOPIC_SHARE)))


def topic_features(
    target: float,
    domain: float,
    similarity: float,
    noise: float,
    greeting: float,
    off_topic: float | None = None,
    national: bool = False,
    weight: float = 1.0,
    largest: float = 1.0,
) -> tuple[float, ...]:
    """The whole evidence on whether a message is a request for the Centre.

    target: the best target's lexicon (and staff example) value; domain: general domain words; similarity:
    the best TF-IDF similarity to a target's texts; noise: auto-reply, spam, housekeeping and off-topic
    cues; greeting: greetings and thanks; off_topic: the supervised scorer's probability that it is not a
    request (supervised.py), None without that scorer or when it knows none of the words, and weight how
    much that opinion counts (opinion_weight), largest the scorer's largest probability (a national request's
    opinion counts by national_certainty); national: the
    request is in a national language, where the lexicon's evidence is thin and the scorer's on-topic
    probability counts again (its own weight), else a Kazakh request with no Russian or English term is
    set aside.
    """
    # A greeting says the same once or thrice ("Здравствуйте! ... Спасибо"): its presence is counted.
    return (
        math.log1p(target),
        math.log1p(domain),
        similarity,
        math.log1p(noise),
        min(greeting, 0.6),
        off_topic_odds(off_topic, weight * (national_certainty(largest) if national else 1.0)),
        float(national),
        (1.0 - off_topic) if national and off_topic else 0.0,
    )


# P(a listed target is one of the request's labels | its value, its share of the best).
TARGET = Logistic((1.73, 1.369), -2.757)
# P(the message is a request for the Centre | the whole evidence); under ON_TOPIC_MIN it is unclassified.
ON_TOPIC = Logistic((1.014, 0.386, 0.021, -0.584, -0.931, -1.666, 0.196, 0.365), -0.37)
ON_TOPIC_MIN = 0.5
