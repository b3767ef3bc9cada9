"""Scores as probabilities: monotone logistic maps fitted on the development part only.

The coefficients below are written by bench/calibrate_classifier.py (cross-validated on the development
files, then fitted on all of them; never on the frozen part). Every weight has the sign its evidence
must have, so more evidence for a target never lowers its probability.
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


def topic_features(
    target: float,
    domain: float,
    similarity: float,
    noise: float,
    greeting: float,
    off_topic: float = 0.0,
    national: bool = False,
) -> tuple[float, ...]:
    """The whole evidence on whether a message is a request for the Centre.

    target: the best target's lexicon (and staff example) value; domain: general domain words; similarity:
    the best TF-IDF similarity to a target's texts; noise: auto-reply, spam, housekeeping and off-topic
    cues; greeting: greetings and thanks; off_topic: the supervised scorer's probability that it is not a
    request (supervised.py), 0 without that scorer; national: the request is in a national language,
    where the lexicon's evidence is thin and the scorer's on-topic probability counts again (its own
    weight), else a Kazakh request with no Russian or English term is set aside.
    """
    # A greeting says the same once or thrice ("Здравствуйте! ... Спасибо"): its presence is counted.
    return (
        math.log1p(target),
        math.log1p(domain),
        similarity,
        math.log1p(noise),
        min(greeting, 0.6),
        off_topic,
        float(national),
        (1.0 - off_topic) if national and off_topic else 0.0,
    )


# P(a listed target is one of the request's labels | its value, its share of the best).
TARGET = Logistic((1.823, 1.178), -2.765)
# P(the message is a request for the Centre | the whole evidence); under ON_TOPIC_MIN it is unclassified.
ON_TOPIC = Logistic((2.155, 1.068, 0.151, -0.946, -0.766, -2.038, 0.261, 0.516), -1.414)
ON_TOPIC_MIN = 0.5
