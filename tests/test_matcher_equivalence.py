"""The bucketed matcher ranks exactly as scoring every candidate would, on a seeded random roster.

The reference below is the matcher's plain definition: score each expert or resource that shares a
request target, sort by (score desc, id), take the first `limit`. Any speed-up that changes a ranking,
a score or a reason fails here.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

import pytest

from helpdesk.classification import Classification, CoreFunctionScore, TargetScore
from helpdesk.classification.text import Stemmer, content_tokens
from helpdesk.matching import Matcher
from helpdesk.matching.matcher import TYPES_FOR_CORE_FUNCTION
from knowledge import Expert, KnowledgeBase, Resource, load_knowledge_base
from knowledge.models import AVAILABILITY, PARTY_CODES, RESOURCE_TYPES

LANGUAGES = ("ru", "en", "kk", "uz", "tg")
TITLE_WORDS = (
    "wetland",
    "restoration",
    "guidance",
    "pollinator",
    "mangrove",
    "toolkit",
    "funding",
    "corridor",
)
N = 2500
REQUESTS = 250


def reference_experts(
    kb: KnowledgeBase,
    c: Classification,
    load: Mapping[str, int] | None = None,
    language: str | None = None,
    limit: int = 5,
) -> list[tuple[str, float, tuple[str, ...]]]:
    targets = c.targets[:3]
    if c.unclassified or not targets:
        return []
    load = load or {}
    language = language or c.reply_language
    weights = {t.target: t.score for t in targets}
    total = sum(weights.values()) or 1.0
    cfs = c.core_function_numbers
    top_cf = cfs[0] if cfs else None
    scored = []
    for e in kb.experts:
        if not set(e.targets) & weights.keys() or e.availability == "unavailable":
            continue
        open_tickets = load.get(e.id, 0)
        if e.max_open_tickets and open_tickets >= e.max_open_tickets:
            continue
        overlap = sum(weights[t] * (1.0 if k == 0 else 0.85) for k, t in enumerate(e.targets) if t in weights)
        score = 0.55 * min(1.0, overlap / total)
        reasons = [f"expertise in target {', '.join(str(t) for t in e.targets if t in weights)}"]
        if top_cf is not None and top_cf in e.core_functions:
            score += 0.15
            reasons.append(f"offers core function {top_cf}")
        elif set(cfs) & set(e.core_functions):
            score += 0.15 / 2
            reasons.append(f"offers core function {sorted(set(cfs) & set(e.core_functions))[0]}")
        if language in e.languages:
            score += 0.15
            reasons.append(f"speaks {language}")
        if c.party is not None and c.party in e.countries:
            score += 0.10
            reasons.append(f"works in {c.party}")
        capacity = e.max_open_tickets or 1
        score += 0.05 * max(0.0, 1.0 - open_tickets / capacity)
        score -= 0.15 * (open_tickets / capacity)
        reasons.append(f"{open_tickets} of {capacity} open tickets")
        if e.availability == "limited":
            score *= 0.7
            reasons.append("limited availability")
        scored.append((e.id, round(max(score, 0.0), 3), tuple(reasons)))
    scored.sort(key=lambda m: (-m[1], m[0]))
    return scored[:limit]


def reference_resources(
    kb: KnowledgeBase,
    c: Classification,
    language: str | None = None,
    types: Iterable[str] | None = None,
    require_language: bool = False,
    limit: int = 5,
) -> list[tuple[str, float, tuple[str, ...]]]:
    targets = c.targets[:3]
    if c.unclassified or not targets:
        return []
    stemmer = Stemmer()
    language = language or c.reply_language
    wanted = set(types) if types is not None else None
    weights = {t.target: t.score for t in targets}
    total = sum(weights.values()) or 1.0
    cfs = c.core_function_numbers
    preferred = set(TYPES_FOR_CORE_FUNCTION.get(cfs[0], ())) if cfs else set()
    said = {
        tok.stem
        for t in targets
        for ev in t.evidence
        for tok in content_tokens(ev.split(" ≈ ")[0], stemmer)
        if len(tok.stem) >= 3
    }
    scored = []
    for r in kb.resources:
        if not set(r.targets) & weights.keys() or (wanted is not None and r.type not in wanted):
            continue
        speaks = language in r.languages
        if require_language and not speaks:
            continue
        title = {tok.stem for tok in content_tokens(r.title, stemmer) if len(tok.stem) >= 3}
        focus = sum(weights[t] * (1.0 if k == 0 else 0.7) for k, t in enumerate(r.targets) if t in weights)
        score = 0.6 * min(1.0, focus / total)
        reasons = [f"targets {', '.join(str(t) for t in r.targets if t in weights)}"]
        if set(cfs) & set(r.core_functions):
            score += 0.15
            reasons.append(f"core function {sorted(set(cfs) & set(r.core_functions))[0]}")
        if r.type in preferred:
            score += 0.1
            reasons.append(f"type {r.type} suits the request")
        if speaks:
            score += 0.15
            reasons.append(f"available in {language}")
        named = sorted(said & title)
        if named:
            score += min(0.3, 0.15 * len(named))
            reasons.append(f"named in the request: {', '.join(named)}")
        scored.append((r.id, round(score, 3), tuple(reasons)))
    scored.sort(key=lambda m: (-m[1], m[0]))
    return scored[:limit]


def generated_kb(rng: random.Random) -> KnowledgeBase:
    base = load_knowledge_base()
    experts = list(base.experts)
    for i in range(N):
        # Ids out of insertion order, so ties must really be broken by id, not by position.
        experts.append(
            Expert(
                id=f"x-{rng.randrange(10**6):06d}-{i}",
                name=f"Generated {i}",
                countries=tuple(rng.sample(PARTY_CODES, rng.randint(0, 3))),
                languages=tuple(rng.sample(LANGUAGES, rng.randint(1, 3))),
                # A repeated target now and then: the overlap counts it twice.
                targets=tuple(rng.choices(range(1, 24), k=rng.randint(1, 4)))
                if rng.random() < 0.02
                else tuple(rng.sample(range(1, 24), rng.randint(1, 4))),
                core_functions=tuple(rng.sample(range(1, 12), rng.randint(0, 3))),
                availability=rng.choice(AVAILABILITY),
                max_open_tickets=rng.choice((0, 1, 2, 3, 5, 8)),
                example=True,
            )
        )
    resources = list(base.resources)
    for i in range(N):
        resources.append(
            Resource(
                id=f"r-{rng.randrange(10**6):06d}-{i}",
                title=" ".join(rng.sample(TITLE_WORDS, rng.randint(1, 3))),
                url=f"https://example.org/{i}",
                type=rng.choice(RESOURCE_TYPES),
                languages=tuple(rng.sample(("ru", "en", "kk"), rng.randint(1, 2))),
                targets=tuple(rng.choices(range(1, 24), k=2))
                if rng.random() < 0.02
                else tuple(rng.sample(range(1, 24), rng.randint(1, 3))),
                core_functions=tuple(rng.sample(range(1, 12), rng.randint(0, 2))),
            )
        )
    return base.with_experts(tuple(experts)).with_resources(tuple(resources))


def random_classification(rng: random.Random) -> Classification:
    targets = rng.sample(range(1, 24), rng.randint(1, 3))
    coarse = rng.random() < 0.5  # coarse scores tie often; fine ones rarely
    scores = sorted(
        (round(rng.uniform(0.1, 1.0), 1) if coarse else rng.uniform(0.0, 1.0) for _ in targets), reverse=True
    )
    evidence = tuple(" ".join(rng.sample(TITLE_WORDS, rng.randint(1, 2))) for _ in range(rng.randint(0, 2)))
    return Classification(
        rng.choice(("ru", "en", "mixed")),
        tuple(
            TargetScore(t, s, evidence if k == 0 else ())
            for k, (t, s) in enumerate(zip(targets, scores, strict=True))
        ),
        tuple(CoreFunctionScore(cf, 0.5, ()) for cf in rng.sample(range(1, 12), rng.randint(0, 3))),
        rng.choice((None, *PARTY_CODES)),
        False,
    )


@pytest.fixture(scope="module")
def world() -> tuple[KnowledgeBase, Matcher, random.Random]:
    rng = random.Random(20261121)
    kb = generated_kb(rng)
    return kb, Matcher(kb), rng


def expert_rows(matches) -> list[tuple[str, float, tuple[str, ...]]]:
    return [(m.expert.id, m.score, m.reasons) for m in matches]


def resource_rows(matches) -> list[tuple[str, float, tuple[str, ...]]]:
    return [(m.resource.id, m.score, m.reasons) for m in matches]


def test_experts_rank_as_a_full_scan(world) -> None:
    kb, matcher, rng = world
    ids = [e.id for e in kb.experts]
    for _ in range(REQUESTS):
        c = random_classification(rng)
        load = {rng.choice(ids): rng.randint(0, 6) for _ in range(rng.choice((0, 5, 200)))}
        language = rng.choice((None, None, "kk", "fr"))
        limit = rng.choice((1, 3, 5, 5, 20))
        got = expert_rows(matcher.experts(c, load=load, language=language, limit=limit))
        assert got == reference_experts(kb, c, load, language, limit), (c, language, limit)


def test_resources_rank_as_a_full_scan(world) -> None:
    kb, matcher, rng = world
    for _ in range(REQUESTS):
        c = random_classification(rng)
        language = rng.choice((None, None, "kk", "fr"))
        types = rng.choice((None, None, ("funding",), ("guidance", "tool", "network")))
        require = rng.random() < 0.4
        limit = rng.choice((1, 3, 5, 5, 20))
        got = resource_rows(
            matcher.resources(c, language=language, types=types, require_language=require, limit=limit)
        )
        assert got == reference_resources(kb, c, language, types, require, limit), (c, language, types)
        if types is None and language is None and limit == 3:
            ack = matcher.acknowledgement_resources(c)
            assert [r.id for r in ack] == [
                m[0] for m in reference_resources(kb, c, require_language=True, limit=3)
            ]


def test_zero_or_negative_weights_and_negative_load_rank_the_same(world) -> None:
    kb, matcher, _ = world
    for weights in (((3, 0.0),), ((3, 0.0), (4, 0.0)), ((3, 0.9), (4, -0.4)), ((5, -0.2),)):
        c = Classification(
            "ru",
            tuple(TargetScore(t, s, ("wetland",)) for t, s in weights),
            (CoreFunctionScore(2, 0.5, ()),),
            "UZ",
            False,
        )
        assert expert_rows(matcher.experts(c, limit=8)) == reference_experts(kb, c, limit=8)
        assert resource_rows(matcher.resources(c, limit=8)) == reference_resources(kb, c, limit=8)
    c = Classification("ru", (TargetScore(3, 0.9, ()),), (), None, False)
    odd_load = {e.id: -3 for e in kb.experts[-50:]}
    assert expert_rows(matcher.experts(c, load=odd_load)) == reference_experts(kb, c, odd_load)
