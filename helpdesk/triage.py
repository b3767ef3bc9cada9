"""Classification and matching for the desk: the knowledge base, the classifier (with the staff's
corrections) and the matcher, kept together so they change together. Pure and in memory: no I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from helpdesk.classification import (
    Classification,
    Classifier,
    CoreFunctionScore,
    LabelledExample,
    TargetScore,
    build_classifier,
)
from helpdesk.matching import Matcher
from knowledge import Expert, KnowledgeBase, Resource, load_knowledge_base

EXPERTS_SHOWN = 5
RESOURCES_STORED = 5
ACK_RESOURCES = 3


@dataclass(frozen=True)
class Assessment:
    classification: Classification
    experts: tuple[dict[str, Any], ...]
    resources: tuple[dict[str, Any], ...]
    # Up to three resources in the requester's language, for the acknowledgement.
    for_requester: tuple[dict[str, str], ...]

    def classification_json(self, source: str = "classifier", **extra: Any) -> dict[str, Any]:
        data = self.classification.to_json()
        data.pop("id", None)
        return {**data, "source": source, **extra}

    def matches_json(self) -> dict[str, Any]:
        return {"experts": list(self.experts), "resources": list(self.resources)}


class Triage:
    def __init__(self, kb: KnowledgeBase, classifier: Classifier | None = None) -> None:
        self.kb = kb
        self.classifier = build_classifier(kb) if classifier is None else classifier
        self.matcher = Matcher(kb)

    def with_examples(self, examples: Iterable[LabelledExample]) -> Triage:
        # The classifier keeps what the examples do not change (the lexicon one, its compiled vocabulary).
        clone = object.__new__(Triage)
        clone.kb, clone.matcher = self.kb, self.matcher
        clone.classifier = self.classifier.with_examples(examples)
        return clone

    def with_experts(self, experts: tuple[Expert, ...]) -> Triage:
        kb = self.kb.with_experts(experts)
        return Triage(kb, self.classifier)

    def with_resources(self, resources: tuple[Resource, ...]) -> Triage:
        return Triage(self.kb.with_resources(resources), self.classifier)

    def classify(self, text: str) -> Classification:
        return self.classifier.classify(text)

    def assess(
        self, classification: Classification, *, language: str, load: Mapping[str, int] | None = None
    ) -> Assessment:
        experts = self.matcher.experts(
            classification, load=load or {}, language=language, limit=EXPERTS_SHOWN
        )
        resources = self.matcher.resources(classification, language=language, limit=RESOURCES_STORED)
        for_requester = self.matcher.acknowledgement_resources(
            classification, language=language, limit=ACK_RESOURCES
        )
        return Assessment(
            classification=classification,
            experts=tuple(m.to_json() for m in experts),
            resources=tuple(m.to_json() for m in resources),
            for_requester=tuple({"title": r.title, "url": r.url} for r in for_requester),
        )

    def staff_classification(
        self, targets: list[int], core_functions: list[int], *, language: str, party: str | None, actor: str
    ) -> Classification:
        """What staff said, in the classifier's own shape, so matching treats it like any classification."""
        evidence = (f"set by {actor}",)
        return Classification(
            language=language,
            # Staff order matters: the first target is the subject of the request.
            targets=tuple(TargetScore(t, round(1.0 - 0.1 * i, 2), evidence) for i, t in enumerate(targets)),
            core_functions=tuple(
                CoreFunctionScore(c, round(1.0 - 0.1 * i, 2), evidence) for i, c in enumerate(core_functions)
            ),
            party=party,
            unclassified=not targets,
        )


@cache
def packaged_triage() -> Triage:
    """The packaged knowledge base and a classifier over it; built once per process (about 0.3 s)."""
    return Triage(load_knowledge_base())
