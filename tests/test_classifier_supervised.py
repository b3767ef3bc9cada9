"""The supervised scorer (issue #15, round 3): learned from labelled requests, fused with the lexicon and
TF-IDF."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from helpdesk.classification import Classifier, training, word_shapes
from helpdesk.classification.classifier import LexiconClassifier
from helpdesk.classification.evaluate import LabelledItem, read_labelled
from helpdesk.classification.model_fingerprint import STALE, fingerprint
from helpdesk.classification.supervised import OFF_TOPIC, SupervisedScorer, greeting_stems
from helpdesk.classification.text import Stemmer
from helpdesk.classification.training import packaged_model, train, training_files, training_set
from knowledge import load_knowledge_base

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


@pytest.fixture(scope="module")
def classifier(packaged_classifier: Classifier) -> Classifier:
    return packaged_classifier


@pytest.fixture(scope="module")
def lexicon_alone(kb) -> LexiconClassifier:
    return LexiconClassifier(kb)


def test_the_packaged_model_was_written_from_the_training_inputs_as_they_are(kb) -> None:
    # Stale weights would silently classify with a corpus that is no longer there. The fingerprint stands
    # for a refit (half a minute of CPU): it covers every input of the fit (model_fingerprint.py).
    assert packaged_model().get("fingerprint") == fingerprint(kb), STALE


def test_the_fingerprint_moves_with_every_kind_of_input(kb, tmp_path, monkeypatch) -> None:
    shipped = fingerprint(kb)
    for f in training_files():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    assert fingerprint(kb, tmp_path) == shipped
    first = sorted(tmp_path.iterdir())[0]
    lines = first.read_text("utf-8").splitlines(keepends=True)
    first.write_text("".join(lines[1:]), encoding="utf-8")  # one training line less
    assert fingerprint(kb, tmp_path) != shipped
    target = kb.targets[11]
    changed = replace(target, official_text_en=target.official_text_en + " Pollinators too.")
    assert fingerprint(replace(kb, targets=MappingProxyType({**kb.targets, 11: changed}))) != shipped
    monkeypatch.setattr(training, "L2", training.L2 * 2)
    assert fingerprint(kb) != shipped
    monkeypatch.undo()
    monkeypatch.setattr(word_shapes, "__file__", str(tmp_path / "word_shapes.py"))
    (tmp_path / "word_shapes.py").write_text("PREFIXES = (3,)\n", encoding="utf-8")
    assert fingerprint(kb) != shipped


def test_the_packaged_model_is_a_fit_of_this_corpus(kb) -> None:
    # The fingerprint proves the inputs, not the weights: a file stamped without fitting, or fitted on
    # another corpus, would pass it. A logistic fit reproduces most of its own training labels (0.97 on
    # every tenth line when written); a third of a second.
    scorer = SupervisedScorer.from_json(Stemmer(), packaged_model(), greeting_stems(kb, Stemmer()))
    sample = training_set()[::10]
    right = 0
    for item in sample:
        scores = scorer.scores(item.text).targets
        best = max(scores, key=scores.__getitem__) if scores else None
        right += best == (item.targets[0] if item.targets else OFF_TOPIC)
    assert right >= 0.9 * len(sample)


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


def test_a_request_worded_without_any_lexicon_term_gets_its_target(lexicon_alone, classifier) -> None:
    # Access and benefit-sharing (target 13) without "genetic resources", "Nagoya" or "benefit-sharing".
    text = (
        "Which rules apply when a foreign company wants to collect medicinal plants here "
        "and patent a drug from them?"
    )
    assert 13 not in lexicon_alone.weigh(text).target_raw
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


def test_the_scorer_moves_a_message_the_lexicon_alone_would_take(lexicon_alone, classifier) -> None:
    text = "My laptop will not connect to the office printer after the update, what should I do?"
    assert not lexicon_alone.classify(text).unclassified
    assert classifier.classify(text).unclassified


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", text.lower()))


NEAR = 0.6  # share of the words in common (of both requests' words) that makes two requests one


def _near(a: frozenset[str], b: frozenset[str]) -> bool:
    return len(a & b) >= NEAR * len(a | b)


def _prefix(words: frozenset[str], order: dict[str, int]) -> list[str]:
    # Two sets with NEAR of their union in common share at least ceil(NEAR * |x|) words, so they share
    # one of each set's first |x| - ceil(NEAR * |x|) + 1 words in any fixed order (rarest first keeps the
    # candidates few). The tolerance only lengthens the prefix: more candidates, never fewer.
    needed = math.ceil(NEAR * len(words) - 1e-9)
    return sorted(words, key=lambda w: (order.get(w, 0), w))[: len(words) - needed + 1]


def test_no_evaluation_item_is_in_the_training_data() -> None:
    # The development and frozen parts measure what the scorer learned; a request it trained on would
    # measure its memory. Word for word (any order) or nearly: 60% of the words in common. The message
    # names the training line to leave out (and list in the training README), not the evaluation item.
    training = [(item.id, _words(item.text)) for item in training_set()]
    exact = {words: id for id, words in training}
    order = Counter(w for _, words in training for w in words)
    by_word: dict[str, list[int]] = defaultdict(list)
    for i, (_, words) in enumerate(training):
        for w in _prefix(words, order):
            by_word[w].append(i)
    for path in sorted(DATA.glob("classify_*.jsonl")):
        for item in read_labelled(path):
            words = _words(item.text)
            assert words not in exact, (path.name, exact.get(words))
            candidates = {i for w in _prefix(words, order) for i in by_word.get(w, ())}
            near = [training[i][0] for i in sorted(candidates) if _near(words, training[i][1])]
            assert not near, (path.name, near)
