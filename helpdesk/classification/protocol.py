"""What the desk needs of a classifier: triage, `helpdesk classify`, the evaluator and the bench use this.

A new scorer (or a fusion of several) implements these two methods and is returned by
`build_classifier` (factory.py); nothing that calls a classifier changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from helpdesk.classification.examples import LabelledExample
from helpdesk.classification.result import Classification


class Classifier(Protocol):
    def classify(self, text: str, id: str | None = None) -> Classification:
        """Pure and deterministic: the same text gives the same answer, with no I/O."""
        ...

    def with_examples(self, examples: Iterable[LabelledExample]) -> Classifier:
        """A classifier that also learns from these staff corrections (replacing any it had).

        Called whenever staff reclassify a ticket, so it should reuse what does not depend on the examples.
        """
        ...
