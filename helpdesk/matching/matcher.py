"""Ranking experts and resources for a classification. Pure: the caller passes the current load."""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from helpdesk.classification.result import Classification
from helpdesk.classification.text import Stemmer, content_tokens
from knowledge.models import Expert, KnowledgeBase, Resource

# Shares of an expert's score. Expertise in the request's targets dominates; the rest breaks ties
# between comparable experts and steers work away from the overloaded.
W_TARGETS = 0.55
W_CORE_FUNCTION = 0.15
W_LANGUAGE = 0.15
W_COUNTRY = 0.10
W_FREE = 0.05
LIMITED_FACTOR = 0.7
# Which resource types answer which core function best (what the requester wants done).
TYPES_FOR_CORE_FUNCTION: dict[int, tuple[str, ...]] = {
    1: ("network", "platform"),
    2: ("guidance", "standard", "tool", "database", "platform"),
    3: ("funding", "network"),
    4: ("funding", "guidance"),
    5: ("network", "platform"),
    6: ("guidance", "tool", "standard"),
    7: ("training", "guidance"),
    8: ("network", "platform"),
    9: ("case_studies", "network"),
    10: ("convention", "network"),
    11: ("guidance", "convention"),
}
CONSIDERED_TARGETS = 3


@dataclass(frozen=True, slots=True)
class ExpertMatch:
    expert: Expert
    score: float
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "expert": self.expert.id,
            "name": self.expert.name,
            "score": self.score,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class ResourceMatch:
    resource: Resource
    score: float
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "resource": self.resource.id,
            "title": self.resource.title,
            "url": self.resource.url,
            "score": self.score,
            "reasons": list(self.reasons),
        }


def _by_target(items: Iterable[Expert | Resource]) -> dict[int, list[int]]:
    index: dict[int, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        for t in item.targets:
            index[t].append(i)
    return dict(index)


class Matcher:
    """Build once per knowledge base (indexes experts and resources by target)."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.experts_list = kb.experts
        self.resources_list = kb.resources
        self._experts_by_target = _by_target(kb.experts)
        self._resources_by_target = _by_target(kb.resources)
        self._stemmer = Stemmer()
        # Title words let a named tool win within its target: a PAME request gets the PAME page.
        self._title_stems = [
            frozenset(t.stem for t in content_tokens(r.title, self._stemmer) if len(t.stem) >= 3)
            for r in kb.resources
        ]

    def experts(
        self,
        classification: Classification,
        *,
        load: Mapping[str, int] | None = None,
        language: str | None = None,
        limit: int = 5,
    ) -> list[ExpertMatch]:
        """Best experts first; load maps expert id -> open tickets. Unavailable or full ones are left out."""
        targets = classification.targets[:CONSIDERED_TARGETS]
        if classification.unclassified or not targets:
            return []
        load = load or {}
        language = language or classification.reply_language
        party = classification.party
        weights = {t.target: t.score for t in targets}
        total = sum(weights.values()) or 1.0
        cfs = classification.core_function_numbers
        top_cf = cfs[0] if cfs else None
        candidates: set[int] = set()
        for t in weights:
            candidates.update(self._experts_by_target.get(t, ()))
        # Pass 1: a bare numeric score for every candidate (thousands in a grown roster); pass 2 builds
        # the reasons only for the winners.
        cf_set = set(cfs)
        quick: list[tuple[float, str, int]] = []
        for i in candidates:
            e = self.experts_list[i]
            if e.availability == "unavailable":
                continue
            open_tickets = load.get(e.id, 0)
            if e.max_open_tickets and open_tickets >= e.max_open_tickets:
                continue
            overlap = 0.0
            for k, t in enumerate(e.targets):
                w = weights.get(t)
                if w is not None:
                    overlap += w if k == 0 else 0.85 * w
            score = W_TARGETS * min(1.0, overlap / total)
            if top_cf is not None and top_cf in e.core_functions:
                score += W_CORE_FUNCTION
            elif cf_set.intersection(e.core_functions):
                score += W_CORE_FUNCTION / 2
            if language in e.languages:
                score += W_LANGUAGE
            if party is not None and party in e.countries:
                score += W_COUNTRY
            capacity = e.max_open_tickets or 1
            score += W_FREE * max(0.0, 1.0 - open_tickets / capacity) - 0.15 * (open_tickets / capacity)
            if e.availability == "limited":
                score *= LIMITED_FACTOR
            quick.append((round(max(score, 0.0), 3), e.id, i))
        best = heapq.nsmallest(limit, quick, key=lambda s: (-s[0], s[1]))
        out = []
        for _, _, i in best:
            match = _score_expert(self.experts_list[i], weights, total, top_cf, cfs, language, party, load)
            if match is not None:
                out.append(match)
        return out

    def resources(
        self,
        classification: Classification,
        *,
        language: str | None = None,
        types: Iterable[str] | None = None,
        require_language: bool = False,
        limit: int = 5,
    ) -> list[ResourceMatch]:
        targets = classification.targets[:CONSIDERED_TARGETS]
        if classification.unclassified or not targets:
            return []
        language = language or classification.reply_language
        wanted_types = set(types) if types is not None else None
        weights = {t.target: t.score for t in targets}
        total = sum(weights.values()) or 1.0
        cfs = classification.core_function_numbers
        preferred = set(TYPES_FOR_CORE_FUNCTION.get(cfs[0], ())) if cfs else set()
        candidates: set[int] = set()
        for t in weights:
            candidates.update(self._resources_by_target.get(t, ()))
        said = {
            tok.stem
            for t in targets
            for ev in t.evidence
            for tok in content_tokens(ev.split(" ≈ ")[0], self._stemmer)
            if len(tok.stem) >= 3
        }
        cf_set = set(cfs)
        quick: list[tuple[float, str, int]] = []
        for i in candidates:
            r = self.resources_list[i]
            if wanted_types is not None and r.type not in wanted_types:
                continue
            speaks = language in r.languages
            if require_language and not speaks:
                continue
            quick.append((self._resource_score(i, weights, total, cf_set, preferred, speaks, said), r.id, i))
        best = heapq.nsmallest(limit, quick, key=lambda s: (-s[0], s[1]))
        return [
            self._resource_match(i, weights, cf_set, preferred, language, said, score) for score, _, i in best
        ]

    def _resource_score(
        self,
        i: int,
        weights: Mapping[int, float],
        total: float,
        cf_set: set[int],
        preferred: set[str],
        speaks: bool,
        said: set[str],
    ) -> float:
        r = self.resources_list[i]
        # A resource whose first listed target is the request's best one is about that subject.
        focus = 0.0
        for k, t in enumerate(r.targets):
            w = weights.get(t)
            if w is not None:
                focus += w if k == 0 else 0.7 * w
        score = 0.6 * min(1.0, focus / total)
        if cf_set.intersection(r.core_functions):
            score += 0.15
        if r.type in preferred:
            score += 0.1
        if speaks:
            score += 0.15
        if said:
            score += min(0.3, 0.15 * len(said & self._title_stems[i]))
        return round(score, 3)

    def _resource_match(
        self,
        i: int,
        weights: Mapping[int, float],
        cf_set: set[int],
        preferred: set[str],
        language: str,
        said: set[str],
        score: float,
    ) -> ResourceMatch:
        r = self.resources_list[i]
        reasons = [f"targets {', '.join(str(t) for t in r.targets if t in weights)}"]
        shared = sorted(cf_set.intersection(r.core_functions))
        if shared:
            reasons.append(f"core function {shared[0]}")
        if r.type in preferred:
            reasons.append(f"type {r.type} suits the request")
        if language in r.languages:
            reasons.append(f"available in {language}")
        named = sorted(said & self._title_stems[i])
        if named:
            reasons.append(f"named in the request: {', '.join(named)}")
        return ResourceMatch(r, score, tuple(reasons))

    def acknowledgement_resources(
        self, classification: Classification, language: str | None = None, limit: int = 3
    ) -> list[Resource]:
        """Up to three fitting resources in the requester's language, for the intake acknowledgement."""
        matches = self.resources(classification, language=language, require_language=True, limit=limit)
        return [m.resource for m in matches]


def _score_expert(
    expert: Expert,
    weights: Mapping[int, float],
    total: float,
    top_cf: int | None,
    cfs: list[int],
    language: str,
    party: str | None,
    load: Mapping[str, int],
) -> ExpertMatch | None:
    if expert.availability == "unavailable":
        return None
    open_tickets = load.get(expert.id, 0)
    if expert.max_open_tickets and open_tickets >= expert.max_open_tickets:
        return None
    matched = [t for t in expert.targets if t in weights]
    overlap = sum(
        weights[t] * (1.0 if k == 0 else 0.85) for k, t in enumerate(expert.targets) if t in weights
    )
    score = W_TARGETS * min(1.0, overlap / total)
    reasons = [f"expertise in target {', '.join(map(str, matched))}"]
    if top_cf is not None and top_cf in expert.core_functions:
        score += W_CORE_FUNCTION
        reasons.append(f"offers core function {top_cf}")
    elif set(cfs) & set(expert.core_functions):
        score += W_CORE_FUNCTION / 2
        reasons.append(f"offers core function {sorted(set(cfs) & set(expert.core_functions))[0]}")
    if language in expert.languages:
        score += W_LANGUAGE
        reasons.append(f"speaks {language}")
    if party is not None and party in expert.countries:
        score += W_COUNTRY
        reasons.append(f"works in {party}")
    capacity = expert.max_open_tickets or 1
    free = max(0.0, 1.0 - open_tickets / capacity)
    score += W_FREE * free
    score -= 0.15 * (open_tickets / capacity)
    reasons.append(f"{open_tickets} of {capacity} open tickets")
    if expert.availability == "limited":
        score *= LIMITED_FACTOR
        reasons.append("limited availability")
    return ExpertMatch(expert, round(max(score, 0.0), 3), tuple(reasons))
