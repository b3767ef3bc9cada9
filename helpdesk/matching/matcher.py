"""Ranking experts and resources for a classification. Pure: the caller passes the current load."""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

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
# Head-room for float noise when a bucket's upper bound is rounded like the scores it covers.
_BOUND_SLACK = 1e-9


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


def _id_order(items: Sequence[Expert | Resource]) -> tuple[list[int], list[int]]:
    """Indices in id order, and each index's place in it: ties on score are broken by id."""
    order = sorted(range(len(items)), key=lambda i: (items[i].id, i))
    rank = [0] * len(items)
    for r, i in enumerate(order):
        rank[i] = r
    return order, rank


def _has_repeated_target(targets: Sequence[int]) -> bool:
    return len(set(targets)) != len(targets)


def _combined_bounds(
    weights: Mapping[int, float], total: float, later: float
) -> list[tuple[tuple[int, ...], int, float]]:
    """For each set of two or more request targets an item may share, and each of them (or 0, none)
    leading its own list: the overlap such an item reaches, to bound its bucket with."""
    out = []
    for size in range(2, len(weights) + 1):
        for shared in combinations(sorted(weights), size):
            together = sum(weights[t] for t in shared)
            out.append((shared, 0, min(1.0, later * together / total)))
            for lead in shared:
                out.append(
                    (shared, lead, min(1.0, (weights[lead] + later * (together - weights[lead])) / total))
                )
    return out


def _shared_sets(targets: Sequence[int]) -> Iterator[tuple[tuple[int, ...], int]]:
    """Every set of two or three of an item's targets it could share with a request, with its lead."""
    for size in range(2, min(CONSIDERED_TARGETS, len(targets)) + 1):
        for shared in combinations(sorted(targets), size):
            yield shared, targets[0] if targets[0] in shared else 0


def _top_k(
    buckets: list[tuple[float, Sequence[int]]],
    score: Callable[[int], float | None],
    rank: Sequence[int],
    limit: int,
) -> list[tuple[float, int]]:
    """The `limit` best (score, index) pairs, best first, ties by id, as a full scan would rank them.

    Each bucket carries an upper bound on the rounded score of the members for which it is their own
    bucket (members may sit in several). Buckets are visited from the highest bound down and members in
    id order, so a bucket whose bound cannot beat the current k-th best is skipped with everything after
    it, and a bucket whose bound can only tie it is left at the first member with a later id.
    """
    buckets.sort(key=lambda b: b[0], reverse=True)
    heap: list[tuple[float, int, int]] = []
    seen: set[int] = set()
    full = False
    for bound, members in buckets:
        # Float noise must never make a bound look lower than the exact score it covers.
        cap = round(bound + _BOUND_SLACK, 3)
        if full and cap < heap[0][0]:
            break
        for i in members:
            if full and (cap, -rank[i], -1) < heap[0]:
                break
            if i in seen:
                continue
            seen.add(i)
            s = score(i)
            if s is None:
                continue
            item = (s, -rank[i], i)
            if not full:
                heapq.heappush(heap, item)
                full = len(heap) >= limit
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    heap.sort(reverse=True)
    return [(s, i) for s, _, i in heap]


ExpertKey = tuple[int, bool, bool, str | None, str | None]
ComboKey = tuple[tuple[int, ...], int]
ResourceKey = tuple[int, bool, str | None]
Titled = tuple[tuple[int, ...], frozenset[str]]


class Matcher:
    """Build once per knowledge base.

    A roster of thousands would make scoring every expert who shares a target the whole cost of a
    request. So every expert and resource sits in buckets by what it can share with a request: one
    target (listed first or later) split by availability, language and country for experts and by
    language and type for resources; or a set of two or three targets and which of them it lists first.
    A request bounds each bucket's best possible score and only opens buckets that could still reach
    the top, so the ranking is the one scoring everybody would give (tests/test_matcher_equivalence.py
    holds it to that).
    """

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
        expert_order, self._expert_rank = _id_order(kb.experts)
        resource_order, self._resource_rank = _id_order(kb.resources)
        self._bucket_experts(expert_order)
        self._bucket_resources(resource_order)

    def _bucket_experts(self, order: list[int]) -> None:
        singles: dict[ExpertKey, list[int]] = defaultdict(list)
        combos: dict[tuple[tuple[int, ...], int, bool], list[int]] = defaultdict(list)
        # A repeated target counts twice in the overlap, beyond what the bucket bounds allow for.
        unbounded: list[int] = []
        for i in order:
            e = self.experts_list[i]
            if e.availability == "unavailable":
                continue
            if _has_repeated_target(e.targets):
                unbounded.append(i)
                continue
            limited = e.availability == "limited"
            # None stands for "any": those buckets hold every expert, bounded without the bonus.
            languages = (None, *dict.fromkeys(e.languages))
            countries = (None, *dict.fromkeys(e.countries))
            for k, t in enumerate(e.targets):
                for lang in languages:
                    for country in countries:
                        singles[(t, k == 0, limited, lang, country)].append(i)
            for shared, lead in _shared_sets(e.targets):
                combos[(shared, lead, limited)].append(i)
        self._expert_singles = {key: tuple(members) for key, members in singles.items()}
        self._expert_combos = {key: tuple(members) for key, members in combos.items()}
        self._experts_unbounded = unbounded

    def _bucket_resources(self, order: list[int]) -> None:
        singles: dict[tuple[int, bool, str | None, str], list[int]] = defaultdict(list)
        combos: dict[ComboKey, list[int]] = defaultdict(list)
        unbounded: list[int] = []
        for i in order:
            r = self.resources_list[i]
            if _has_repeated_target(r.targets):
                unbounded.append(i)
                continue
            for k, t in enumerate(r.targets):
                for lang in (None, *dict.fromkeys(r.languages)):
                    singles[(t, k == 0, lang, r.type)].append(i)
            for key in _shared_sets(r.targets):
                combos[key].append(i)
        by_type: dict[ResourceKey, dict[str, Titled]] = defaultdict(dict)
        for (t, first, lang, rtype), members in singles.items():
            by_type[(t, first, lang)][rtype] = self._titled(members)
        self._resource_singles = dict(by_type)
        self._resource_combos = {key: self._titled(members) for key, members in combos.items()}
        self._resources_unbounded = unbounded

    def _titled(self, members: list[int]) -> Titled:
        # The union of the members' title words bounds the bonus for words the request names.
        return tuple(members), frozenset().union(*(self._title_stems[i] for i in members))

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
        if classification.unclassified or not targets or limit <= 0:
            return []
        load = load or {}
        language = language or classification.reply_language
        party = classification.party
        weights = {t.target: t.score for t in targets}
        total = sum(weights.values()) or 1.0
        cfs = classification.core_function_numbers
        top_cf = cfs[0] if cfs else None
        cf_set = set(cfs)
        experts_list = self.experts_list

        # Same arithmetic as _score_expert, without building the reasons (most candidates lose).
        def score(i: int) -> float | None:
            e = experts_list[i]
            if e.availability == "unavailable":
                return None
            open_tickets = load.get(e.id, 0)
            if e.max_open_tickets and open_tickets >= e.max_open_tickets:
                return None
            overlap = 0
            for k, t in enumerate(e.targets):
                w = weights.get(t)
                if w is not None:
                    overlap += w * (1.0 if k == 0 else 0.85)
            s = W_TARGETS * min(1.0, overlap / total)
            if top_cf is not None and top_cf in e.core_functions:
                s += W_CORE_FUNCTION
            elif cf_set.intersection(e.core_functions):
                s += W_CORE_FUNCTION / 2
            if language in e.languages:
                s += W_LANGUAGE
            if party is not None and party in e.countries:
                s += W_COUNTRY
            capacity = e.max_open_tickets or 1
            s += W_FREE * max(0.0, 1.0 - open_tickets / capacity)
            s -= 0.15 * (open_tickets / capacity)
            if e.availability == "limited":
                s *= LIMITED_FACTOR
            return round(max(s, 0.0), 3)

        buckets: list[tuple[float, Sequence[int]]] = []
        unbounded = [
            i for i in self._experts_unbounded if not weights.keys().isdisjoint(experts_list[i].targets)
        ]
        if unbounded:
            buckets.append((math.inf, unbounded))
        if min(weights.values()) < 0 or any(n < 0 for n in load.values()):
            # The bounds assume weights add up and load only costs; nonsense input would break them,
            # so score everyone.
            everyone = {i for t in weights for i in self._experts_by_target.get(t, ())}
            buckets.append((math.inf, sorted(everyone, key=self._expert_rank.__getitem__)))
        else:
            # Load only ever lowers the free-capacity part, so an idle expert bounds it.
            rest = (W_CORE_FUNCTION if top_cf is not None else 0.0) + W_FREE
            availability = ((False, 1.0), (True, LIMITED_FACTOR))
            countries: tuple[tuple[str | None, float], ...] = ((None, 0.0),)
            if party is not None:
                countries = ((party, W_COUNTRY), (None, 0.0))
            for t, w in weights.items():
                for first, overlap in ((True, w / total), (False, 0.85 * w / total)):
                    for limited, factor in availability:
                        for lang, lang_bonus in ((language, W_LANGUAGE), (None, 0.0)):
                            for country, country_bonus in countries:
                                members = self._expert_singles.get((t, first, limited, lang, country))
                                if members:
                                    bound = (
                                        W_TARGETS * min(1.0, overlap) + rest + lang_bonus + country_bonus
                                    ) * factor
                                    buckets.append((bound, members))
            best_case = rest + W_LANGUAGE + countries[0][1]
            for shared, lead, overlap in _combined_bounds(weights, total, 0.85):
                for limited, factor in availability:
                    members = self._expert_combos.get((shared, lead, limited))
                    if members:
                        buckets.append(((W_TARGETS * overlap + best_case) * factor, members))
        out = []
        for _, i in _top_k(buckets, score, self._expert_rank, limit):
            match = _score_expert(experts_list[i], weights, total, top_cf, cfs, language, party, load)
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
        if classification.unclassified or not targets or limit <= 0:
            return []
        language = language or classification.reply_language
        wanted_types = set(types) if types is not None else None
        weights = {t.target: t.score for t in targets}
        total = sum(weights.values()) or 1.0
        cfs = classification.core_function_numbers
        preferred = set(TYPES_FOR_CORE_FUNCTION.get(cfs[0], ())) if cfs else set()
        said = {
            tok.stem
            for t in targets
            for ev in t.evidence
            for tok in content_tokens(ev.split(" ≈ ")[0], self._stemmer)
            if len(tok.stem) >= 3
        }
        cf_set = set(cfs)
        resources_list = self.resources_list

        def score(i: int) -> float | None:
            r = resources_list[i]
            if wanted_types is not None and r.type not in wanted_types:
                return None
            speaks = language in r.languages
            if require_language and not speaks:
                return None
            return self._resource_score(i, weights, total, cf_set, preferred, speaks, said)

        def named_bound(stems: frozenset[str]) -> float:
            return min(0.3, 0.15 * len(said & stems)) if said else 0.0

        buckets: list[tuple[float, Sequence[int]]] = []
        unbounded = [
            i for i in self._resources_unbounded if not weights.keys().isdisjoint(resources_list[i].targets)
        ]
        if unbounded:
            buckets.append((math.inf, unbounded))
        if min(weights.values()) < 0:
            everyone = {i for t in weights for i in self._resources_by_target.get(t, ())}
            buckets.append((math.inf, sorted(everyone, key=self._resource_rank.__getitem__)))
        else:
            cf_bonus = 0.15 if cf_set else 0.0
            languages: tuple[tuple[str | None, float], ...] = ((language, 0.15),)
            if not require_language:
                languages = ((language, 0.15), (None, 0.0))
            for t, w in weights.items():
                # A resource whose first listed target is the request's best one is about that subject.
                for first, focus in ((True, w / total), (False, 0.7 * w / total)):
                    for lang, lang_bonus in languages:
                        base = 0.6 * min(1.0, focus) + cf_bonus + lang_bonus
                        for rtype, (members, stems) in self._resource_singles.get(
                            (t, first, lang), {}
                        ).items():
                            if wanted_types is not None and rtype not in wanted_types:
                                continue
                            bonus = 0.1 if rtype in preferred else 0.0
                            buckets.append((base + bonus + named_bound(stems), members))
            # Few resources share two or more of a request's targets: these buckets mix languages and
            # types, so their bound grants both bonuses and the scorer applies the filters.
            best_case = cf_bonus + 0.15 + (0.1 if preferred else 0.0)
            for shared, lead, focus in _combined_bounds(weights, total, 0.7):
                titled = self._resource_combos.get((shared, lead))
                if titled:
                    members, stems = titled
                    buckets.append((0.6 * focus + best_case + named_bound(stems), members))
        return [
            self._resource_match(i, weights, cf_set, preferred, language, said, s)
            for s, i in _top_k(buckets, score, self._resource_rank, limit)
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
