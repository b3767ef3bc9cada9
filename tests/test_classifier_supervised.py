"""The supervised scorer (issue #15, round 3): learned from labelled requests, fused with the lexicon and
TF-IDF."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpdesk.classification import Classifier, build_classifier
from helpdesk.classification.classifier import LexiconClassifier
from helpdesk.classification.evaluate import LabelledItem, read_labelled
from helpdesk.classification.supervised import OFF_TOPIC, SupervisedScorer
from helpdesk.classification.text import Stemmer
from helpdesk.classification.training import PRUNE, packaged_model, train, trained_model, training_set
from knowledge import load_knowledge_base

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


@pytest.fixture(scope="module")
def classifier(kb) -> Classifier:
    return build_classifier(kb)


def test_the_packaged_model_is_the_one_its_training_data_gives() -> None:
    # Stale weights would silently classify with a corpus that is no longer there: after changing
    # knowledge/data/training/, a target's texts or the fit, run
    # `python -m helpdesk.classification.write_model`.
    fresh, shipped = trained_model(), packaged_model()
    for part in ("targets", "core_functions"):
        assert fresh[part]["classes"] == shipped[part]["classes"], part
        assert fresh[part]["bias"] == pytest.approx(shipped[part]["bias"], abs=0.01), part
        assert fresh[part]["weights"].keys() == shipped[part]["weights"].keys(), part
        for feature, weights in fresh[part]["weights"].items():
            pairs = shipped[part]["weights"][feature]
            got = dict(zip(pairs[::2], pairs[1::2], strict=True))
            want = dict(zip(weights[::2], weights[1::2], strict=True))
            # A weight at the pruning edge may fall either side of it on another machine's arithmetic.
            for c in want.keys() | got.keys():
                if abs(want.get(c, 0.0)) < PRUNE + 0.01 and abs(got.get(c, 0.0)) < PRUNE + 0.01:
                    continue
                assert want.get(c, 0.0) == pytest.approx(got.get(c, 0.0), abs=0.01), (part, feature, c)


def _items() -> list[LabelledItem]:
    # Written for this test: two subjects the official texts do not word this way, and off-topic chat.
    texts = [
        ("beekeepers lose hives to mites and want advice on healthy apiaries", (11,), (2,)),
        ("our apiary cooperative needs a trainer on hive care and pollinator forage", (11,), (7,)),
        ("honey yields fell; which bee forage plants should villages sow", (11,), (2,)),
        ("the customs post seized falcons again, who can train the officers", (5,), (7,)),
        ("traders smuggle falcons across the border, we need identification guides", (5,), (2,)),
        ("falcon smuggling at the airport: looking for an expert on seized birds", (5,), (5,)),
        ("see you at lunch on friday", (), ()),
        ("the printer on the second floor is jammed again", (), ()),
        ("happy birthday to our accountant", (), ()),
    ]
    return [LabelledItem(f"t{i}", "en", text, t, c, None) for i, (text, t, c) in enumerate(texts)]


def test_training_is_reproducible_and_learns_what_it_was_shown(kb) -> None:
    first = train(kb, Stemmer(), _items(), official=0.0)
    again = train(kb, Stemmer(), _items(), official=0.0)
    assert first.to_json() == again.to_json()
    scorer = SupervisedScorer.from_json(Stemmer(), first.to_json())
    bees = scorer.scores("Our hives are dying, how do other beekeepers keep bees healthy?")
    assert max(bees.targets, key=bees.targets.__getitem__) == 11
    falcons = scorer.scores("Falcons smuggled through the airport again")
    assert max(falcons.targets, key=falcons.targets.__getitem__) == 5
    chat = scorer.scores("lunch on friday with the accountant?")
    assert max(chat.targets, key=chat.targets.__getitem__) == OFF_TOPIC
    # A request in words no training request used gets no opinion, not a guess.
    assert scorer.scores("zzz qqq").targets == {}


def test_a_request_worded_without_any_lexicon_term_gets_its_target(kb, classifier) -> None:
    # Access and benefit-sharing (target 13) without "genetic resources", "Nagoya" or "benefit-sharing".
    text = (
        "Which rules apply when a foreign company wants to collect medicinal plants here "
        "and patent a drug from them?"
    )
    assert 13 not in LexiconClassifier(kb).weigh(text).target_raw
    best = classifier.classify(text).targets[0]
    assert best.target == 13
    assert any("like labelled requests" in e for e in best.evidence)


@pytest.mark.parametrize(
    "text",
    [
        "My laptop will not connect to the office printer after the update, what should I do?",
        "Could you help me book a hotel in Tashkent for my holiday in May?",
        "Подскажите, как получить справку о зарплате в бухгалтерии и какой у вас график работы?",
    ],
)
def test_off_topic_messages_are_set_aside_with_the_scorers_evidence(classifier, text) -> None:
    result = classifier.classify(text)
    assert result.unclassified and not result.targets


def test_the_scorer_moves_a_message_the_lexicon_alone_would_take(kb, classifier) -> None:
    text = "My laptop will not connect to the office printer after the update, what should I do?"
    assert not LexiconClassifier(kb).classify(text).unclassified
    assert classifier.classify(text).unclassified


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", text.lower()))


def test_no_evaluation_item_is_in_the_training_data() -> None:
    # The development and frozen parts measure what the scorer learned; a request it trained on would
    # measure its memory. Word for word (any order) or nearly: 60% of the words in common.
    training = [_words(item.text) for item in training_set()]
    exact = set(training)
    for path in sorted(DATA.glob("classify_*.jsonl")):
        for item in read_labelled(path):
            words = _words(item.text)
            assert words not in exact, (path.name, item.id)
            assert not any(len(words & t) >= 0.6 * len(words | t) for t in training), (path.name, item.id)
