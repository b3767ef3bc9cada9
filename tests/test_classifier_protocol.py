"""Another classifier plugs into triage, the evaluator and `helpdesk classify` without changing them."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from helpdesk.classification import (
    Classification,
    Classifier,
    CoreFunctionScore,
    LabelledExample,
    TargetScore,
)
from helpdesk.classification.evaluate import LabelledItem, evaluate, meets_goals
from helpdesk.commands import classify as classify_command
from helpdesk.triage import Triage, packaged_triage
from knowledge import KnowledgeBase, load_knowledge_base

Labels = tuple[tuple[int, ...], tuple[int, ...]]


class KeywordClassifier:
    """The first known word of a text names its targets and core functions; a staff example's first word
    becomes a known word. Deliberately unlike the lexicon classifier, so the tests see whose answer it is."""

    def __init__(self, words: Mapping[str, Labels], learned: Mapping[str, Labels] | None = None) -> None:
        self.words = dict(words)
        self.learned = dict(learned or {})

    def classify(self, text: str, id: str | None = None) -> Classification:
        known = {**self.words, **self.learned}
        for word in text.lower().split():
            if word in known:
                targets, core_functions = known[word]
                evidence = (f"keyword {word}",)
                return Classification(
                    "en",
                    tuple(TargetScore(t, round(1.0 - 0.1 * i, 1), evidence) for i, t in enumerate(targets)),
                    tuple(CoreFunctionScore(c, 0.5, evidence) for c in core_functions),
                    None,
                    False,
                    id,
                )
        return Classification("en", (), (), None, True, id)

    def with_examples(self, examples: Iterable[LabelledExample]) -> KeywordClassifier:
        learned = {ex.text.lower().split()[0]: (ex.targets, ex.core_functions) for ex in examples}
        return KeywordClassifier(self.words, learned)


# Karez (qanat) irrigation named as biosafety: an answer no real classifier would give.
WORDS: dict[str, Labels] = {"karez": ((17,), (11,)), "saiga": ((5, 4), (1,))}


def keyword_classifier() -> Classifier:
    return KeywordClassifier(WORDS)  # type-checked against the protocol here


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge_base()


def test_triage_classifies_and_matches_with_the_plugged_classifier(kb: KnowledgeBase) -> None:
    text = "karez tunnels in our oasis are collapsing"
    # The desk's own classifier answers differently, so a triage ignoring its classifier would fail here.
    assert packaged_triage().classify(text).target_numbers != [17]

    triage = Triage(kb, keyword_classifier())
    classification = triage.classify(text)
    assert classification.target_numbers == [17]
    assert classification.targets[0].evidence == ("keyword karez",)

    assessment = triage.assess(classification, language="en")
    assert assessment.classification_json()["targets"][0]["target"] == 17
    roster = {e.id: e for e in kb.experts}
    assert assessment.experts and 17 in roster[assessment.experts[0]["expert"]].targets
    assert assessment.resources


def test_triage_passes_staff_examples_to_the_plugged_classifier_and_keeps_it(kb: KnowledgeBase) -> None:
    triage = Triage(kb, keyword_classifier())
    correction = LabelledExample("kyariz irrigation tunnels", (10, 11), (9,), "#1")
    learned = triage.with_examples([correction])
    assert learned.classify("our kyariz collapsed").target_numbers == [10, 11]
    assert triage.classify("our kyariz collapsed").unclassified  # the original is untouched
    # Corrections replace the previous ones: the desk always rebuilds from all of them.
    assert learned.with_examples([]).classify("our kyariz collapsed").unclassified

    one_expert = tuple(e for e in kb.experts if e.id == "ex-033")
    with_roster = learned.with_experts(one_expert)
    assert with_roster.classify("our kyariz collapsed").target_numbers == [10, 11]
    assessment = with_roster.assess(with_roster.classify("karez"), language="en")
    assert [e["expert"] for e in assessment.experts] == ["ex-033"]


def test_evaluator_scores_the_plugged_classifier() -> None:
    items = [
        LabelledItem("a", "en", "karez tunnels", (17,), (11,), None),  # top-1, core function, Party right
        LabelledItem("b", "en", "saiga census", (4, 5), (3,), "KZ"),  # top-1 right; core function, Party not
        LabelledItem("c", "en", "hello", (), (), None),  # off-topic, abstained
        LabelledItem("d", "ru", "сайгаки", (4,), (3,), None),  # on-topic, abstained
        LabelledItem("e", "ru", "поливы karez", (10,), (9,), None),  # wrong target
    ]
    report = evaluate(keyword_classifier(), items)
    by = report["by_language"]
    assert by["en"] == {
        "items": 3, "on_topic": 2, "off_topic": 1, "top1": 1.0, "recall3": 1.0, "cf_top1": 0.5,
        "abstention": 1.0, "false_abstention": 0.0, "party_accuracy": 0.6667,
    }  # fmt: skip
    assert by["ru"] == {
        "items": 2, "on_topic": 2, "off_topic": 0, "top1": 0.0, "recall3": 0.0, "cf_top1": 0.0,
        "abstention": 0.0, "false_abstention": 0.5, "party_accuracy": 1.0,
    }  # fmt: skip
    assert by["overall"]["top1"] == 0.5 and by["overall"]["false_abstention"] == 0.25
    assert report["confusions"]["ru"] == {"4->none": 1, "10->17": 1}
    assert meets_goals(report) == {"en": False, "ru": False}


@pytest.fixture
def cli_with_keyword_classifier(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The command caches its classifier per knowledge base directory: start and end with an empty cache
    # so neither this test nor the next one sees the other's classifier.
    classify_command._classifier.cache_clear()
    monkeypatch.setattr(classify_command, "build_classifier", lambda kb: keyword_classifier())
    try:
        yield
    finally:
        classify_command._classifier.cache_clear()


@pytest.mark.usefixtures("cli_with_keyword_classifier")
def test_classify_command_runs_the_factorys_classifier_with_staff_examples(tmp_path: Path) -> None:
    examples = tmp_path / "examples.jsonl"
    examples.write_text(
        json.dumps({"id": "x1", "text": "kyariz irrigation", "targets": [10], "core_functions": [9]}) + "\n",
        encoding="utf-8",
    )
    args = argparse.Namespace(
        text=None, eval=None, format="text", misses=False, kb=None, examples=str(examples)
    )
    stdin = io.StringIO('{"id": "q1", "text": "karez repair"}\n{"id": "q2", "text": "the kyariz is dry"}\n')
    out = io.StringIO()
    assert classify_command.run(args, stdin=stdin, stdout=out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["id"], [t["target"] for t in line["targets"]]) for line in lines] == [
        ("q1", [17]),
        ("q2", [10]),
    ]
