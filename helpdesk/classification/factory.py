"""Which classifier the desk runs, decided in one place: to add a scorer, change this, not its callers."""

from __future__ import annotations

from helpdesk.classification.classifier import LexiconClassifier
from helpdesk.classification.protocol import Classifier
from helpdesk.classification.training import packaged_model
from knowledge.models import KnowledgeBase


def build_classifier(kb: KnowledgeBase) -> Classifier:
    """The desk's classifier over this knowledge base; staff corrections come in through with_examples().

    Compiling the vocabulary takes a few hundred ms: build once per knowledge base and share it. The
    supervised scorer is read trained (training.py).
    """
    return LexiconClassifier(kb, supervised=packaged_model())
