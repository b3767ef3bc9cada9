"""The matcher: expert ranking with reasons, load and availability, resources in the right language."""

from __future__ import annotations

import pytest

from helpdesk.classification import Classification, CoreFunctionScore, TargetScore
from helpdesk.matching import Matcher
from knowledge import Expert, load_knowledge_base


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


def classification(targets, cfs=(5,), party=None, language="ru") -> Classification:
    return Classification(
        language,
        tuple(TargetScore(t, s, ()) for t, s in targets),
        tuple(CoreFunctionScore(c, 0.8, ()) for c in cfs),
        party,
        False,
    )


def roster() -> tuple[Expert, ...]:
    return (
        Expert("a", "Example A", languages=("ru",), countries=("UZ",), targets=(3,), core_functions=(5,)),
        Expert("b", "Example B", languages=("en",), countries=("KZ",), targets=(3,), core_functions=(5,)),
        Expert("c", "Example C", languages=("ru",), countries=("UZ",), targets=(4,), core_functions=(5,)),
        Expert("d", "Example D", languages=("ru",), targets=(3,), availability="unavailable"),
        Expert(
            "e",
            "Example E",
            languages=("ru",),
            countries=("UZ",),
            targets=(3,),
            core_functions=(5,),
            max_open_tickets=2,
        ),
    )


def test_ranks_by_target_language_country_and_gives_reasons(kb) -> None:
    matcher = Matcher(kb.with_experts(roster()))
    ranked = matcher.experts(classification([(3, 0.9)], party="UZ"))
    ids = [m.expert.id for m in ranked]
    assert ids[:2] == ["a", "e"] and "b" in ids
    assert "c" not in ids and "d" not in ids  # no shared target; unavailable
    reasons = ranked[0].reasons
    assert "expertise in target 3" in reasons and "speaks ru" in reasons and "works in UZ" in reasons
    assert ranked[0].score > ranked[-1].score


def test_target_weighting_follows_classification_scores(kb) -> None:
    matcher = Matcher(kb.with_experts(roster()))
    ranked = matcher.experts(classification([(4, 0.9), (3, 0.2)], party="UZ"))
    assert ranked[0].expert.id == "c"


def test_load_lowers_rank_and_full_experts_are_left_out(kb) -> None:
    matcher = Matcher(kb.with_experts(roster()))
    c = classification([(3, 0.9)], party="UZ")
    assert matcher.experts(c, load={"a": 3})[0].expert.id == "e"
    assert "e" not in [m.expert.id for m in matcher.experts(c, load={"e": 2})]


def test_unclassified_gets_no_matches(kb) -> None:
    matcher = Matcher(kb)
    empty = Classification("ru", (), (), None, True)
    assert matcher.experts(empty) == [] and matcher.resources(empty) == []


def test_acknowledgement_resources_are_in_the_requesters_language(kb, packaged_classifier) -> None:
    classifier, matcher = packaged_classifier, Matcher(kb)
    ru = classifier.classify("Где найти руководство по регистрации территорий восстановления? FERM")
    picked = matcher.acknowledgement_resources(ru)
    assert 1 <= len(picked) <= 3
    assert all("ru" in r.languages for r in picked)
    en = classifier.classify("how do we register restoration areas in FERM for the headline indicator?")
    picked_en = matcher.acknowledgement_resources(en)
    assert picked_en[0].id == "fao-ferm"
    assert all("en" in r.languages for r in picked_en)


def test_resource_type_filter_and_reasons(kb) -> None:
    matcher = Matcher(kb)
    c = classification([(19, 0.9)], cfs=(4,), language="en")
    funding = matcher.resources(c, types=["funding"])
    assert funding and all(m.resource.type == "funding" for m in funding)
    assert any("type funding suits the request" in m.reasons for m in funding)


def test_example_roster_gives_every_classified_request_an_expert(kb, packaged_classifier) -> None:
    classifier, matcher = packaged_classifier, Matcher(kb)
    for text in (
        "Нужен юрист по доступу к генетическим ресурсам",
        "gender analysis for our project in Khatlon",
    ):
        result = classifier.classify(text)
        top = matcher.experts(result, limit=3)
        assert top and result.targets[0].target in top[0].expert.targets
