"""The second scorer (issue #15 item 3): TF-IDF over the knowledge base's own texts, fused by score."""

from __future__ import annotations

import pytest

from helpdesk.classification.classifier import LexiconClassifier
from helpdesk.classification.text import Stemmer
from helpdesk.classification.tfidf import TfidfScorer
from knowledge import load_knowledge_base


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


def test_the_scorer_finds_a_target_from_wording_the_lexicon_does_not_list(kb) -> None:
    sims = TfidfScorer(kb, Stemmer()).similarities("biotechnologies living modified organisms handling risks")
    assert max(sims, key=sims.__getitem__) == 17


def test_the_scorer_says_nothing_about_text_it_shares_nothing_with(kb) -> None:
    assert TfidfScorer(kb, Stemmer()).similarities("ok 👍 !!") == {}


def test_fusion_adds_evidence_but_never_makes_an_off_topic_message_on_topic(kb) -> None:
    fused, alone = LexiconClassifier(kb), LexiconClassifier(kb, second=False)
    spam = "How do I install the printer driver for accounting on the new laptop?"
    assert fused.classify(spam).unclassified and alone.classify(spam).unclassified
    result = fused.classify("Invasive alien species are spreading along our rivers, who can help?")
    assert result.targets[0].target == 6
    assert any("wording close to the target's texts" in e for e in result.targets[0].evidence)
