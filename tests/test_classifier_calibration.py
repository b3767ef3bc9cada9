"""Calibrated scores and abstention on the whole evidence (issue #15 item 1)."""

from __future__ import annotations

import bench_modules
import pytest

from helpdesk.classification import Classifier
from helpdesk.classification.calibration import (
    OFF_TOPIC_SHARE,
    ON_TOPIC,
    TARGET,
    off_topic_odds,
    opinion_weight,
    target_features,
    topic_features,
)


@pytest.fixture(scope="module")
def classifier(packaged_classifier: Classifier) -> Classifier:
    return packaged_classifier


def test_a_target_probability_never_falls_as_its_evidence_grows() -> None:
    best = 8.0
    values = [0.3, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0]
    probabilities = [TARGET(target_features(v, best)) for v in values]
    assert probabilities == sorted(probabilities)
    assert all(0.0 < p < 1.0 for p in probabilities)


def test_listed_scores_are_probabilities_in_rank_order(classifier) -> None:
    result = classifier.classify("Snow leopards kill livestock in the Pamir; who has a compensation scheme?")
    scores = [t.score for t in result.targets]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)


def test_noise_and_greetings_only_lower_the_odds_of_a_request() -> None:
    base = ON_TOPIC(topic_features(1.5, 0.0, 0.0, 0.0, 0.0))
    assert ON_TOPIC(topic_features(1.5, 0.0, 0.0, 2.5, 0.0)) < base
    assert ON_TOPIC(topic_features(1.5, 0.0, 0.0, 0.0, 0.6)) < base
    assert ON_TOPIC(topic_features(1.5, 1.0, 0.2, 0.0, 0.0)) > base


@pytest.mark.parametrize(
    "text",
    [
        "Добрый день, спасибо за информацию, всё получили.",
        "Thank you, information received.",
        # Spam stuffed with the Centre's words is still spam.
        "You have won a prize! Claim your biodiversity conservation lottery winnings, click here",
    ],
)
def test_a_thank_you_or_spam_is_set_aside_on_the_whole_evidence(classifier, text) -> None:
    result = classifier.classify(text)
    assert result.unclassified and result.notes and "whole evidence" in result.notes[0]


@pytest.mark.parametrize(
    "text",
    [
        # Offers in the field's own words: the supervised scorer's off-topic opinion (0.1-0.3 here, where a
        # request gets 0.01-0.05) decides, read as log-odds; a linear weight on it took both.
        "Продаём саженцы груши и черешни, районированные сорта, доставка по Ферганской области, звоните",
        "Join our birdwatching holiday in the Tien Shan: 7 days, guide and meals included, book now",
    ],
)
def test_an_offer_in_the_fields_words_is_set_aside(classifier, text) -> None:
    assert classifier.classify(text).unclassified


def test_the_scorers_off_topic_opinion_counts_by_its_odds_and_by_the_words_it_knew() -> None:
    assert off_topic_odds(None) == 0.0 == off_topic_odds(OFF_TOPIC_SHARE)
    assert off_topic_odds(0.3) - off_topic_odds(0.1) > 1.0 and off_topic_odds(0.01) < -2.0
    # One known word of Russian typed in Latin ("nuzhen ekspert po zapovednikam") is a quarter of an opinion.
    assert opinion_weight(1) == 0.25 and opinion_weight(4) == opinion_weight(12) == 1.0
    assert off_topic_odds(0.3, opinion_weight(1)) == pytest.approx(off_topic_odds(0.3) / 4)


@pytest.mark.parametrize(
    "text",
    [
        "Здравствуйте! Нужна методичка по сайгаку. Спасибо",
        "Hello, we need help with poaching. Thanks!",
        "saxaul Aralkum",
        "Could we keep one shared register of bird counts with the neighbours?",
    ],
)
def test_a_short_request_between_greetings_is_still_a_request(classifier, text) -> None:
    assert not classifier.classify(text).unclassified


def test_the_fit_keeps_every_weight_on_its_sign_and_the_anchor_a_request() -> None:
    bench = bench_modules.load("calibrate_classifier")
    # Off-topic rows where the target evidence is high: an unconstrained fit would give it a negative weight.
    rows = [
        ((2.0, 0.0, 0.0, 1.0, 0.0, 0.9, 0.0, 0.0), 0),
        ((0.1, 0.0, 0.0, 0.0, 0.6, 0.5, 1.0, 0.5), 0),
        ((1.0, 1.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0), 1),
    ]
    model = bench.fit(rows, bench.TOPIC_SIGNS, bench.ANCHOR, steps=300)
    assert all(w * s >= 0 for w, s in zip(model.weights, bench.TOPIC_SIGNS, strict=True))
    assert model(bench.ANCHOR) >= 0.5 - 1e-9


def test_megabytes_of_words_after_a_request_are_not_read(classifier) -> None:
    # Attack: a mail of a request followed by 1 MB of words would cost seconds of CPU on the event loop.
    from helpdesk.classification.classifier import MAX_TEXT_CHARS

    request = "Snow leopards kill livestock in the Pamir; who has a compensation scheme? "
    padding = "lorem ipsum dolor sit amet " * (1_000_000 // 27)
    flooded = classifier.classify(request + padding)
    assert flooded == classifier.classify((request + padding)[:MAX_TEXT_CHARS])
    assert flooded.target_numbers[0] == 4
