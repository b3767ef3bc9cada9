"""Requests in the national languages (issue #15): the supervised scorer reads a word's roots, so an
inflected form no training request used still says what it is about."""

from __future__ import annotations

import pytest

from helpdesk.classification.calibration import national_certainty
from helpdesk.classification.classifier import LexiconClassifier
from helpdesk.classification.supervised import OFF_TOPIC, stems
from helpdesk.classification.text import Stemmer
from helpdesk.classification.word_shapes import root_features


@pytest.fixture(scope="module")
def classifier(packaged_classifier: LexiconClassifier) -> LexiconClassifier:
    return packaged_classifier


@pytest.mark.parametrize(
    ("form", "other"),
    [
        ("ақбөкендеріміздің", "ақбөкен"),  # Kazakh: saiga-PLURAL-OUR-GENITIVE
        ("yerlarning", "yerlar"),  # Uzbek: land-PLURAL-GENITIVE
        ("ифлосланишини", "ifloslanishi"),  # Uzbek in either script
        ("çirklənməsindən", "çirklənmə"),  # Azerbaijani
    ],
)
def test_forms_of_one_word_share_roots_across_suffixes_and_scripts(form: str, other: str) -> None:
    assert set(root_features(form)) & set(root_features(other))


def test_roots_are_read_only_in_a_national_language() -> None:
    # Read for every language, roots made the scorer sure of the wrong target where a staff correction
    # should decide (test_classifier.py, test_learns_from_staff_corrections).
    stemmer = Stemmer()
    assert not any(f.startswith("^") for f in stems("Karez maintenance in our village", stemmer))
    assert not any(f.startswith("^") for f in stems("кяризы в оазисе обрушиваются", stemmer))
    assert "^aqbo" in stems("Ақбөкендердің саны туралы ақпарат керек", stemmer)


@pytest.mark.parametrize(
    ("text", "target"),
    [
        # Written for this test, in forms the training corpus does not hold as whole words.
        ("Ақбөкендеріміздің табындарын санаудың әдістемесі керек, көмектесіңіздерші", 4),
        ("Paxta dalalaridagi pestitsidlarning zararini kamaytirish bo'yicha maslahatlaringiz kerak", 7),
    ],
)
def test_an_inflected_national_request_gets_its_target_through_the_roots(
    classifier: LexiconClassifier, text: str, target: int
) -> None:
    scorer = classifier.supervised
    assert scorer is not None
    features = stems(text, scorer.stemmer, scorer.ignored)
    with_roots = scorer.targets.probabilities(features)
    whole_words = scorer.targets.probabilities({f for f in features if not f.startswith("^")})
    # On its whole-word stems alone the scorer takes the request for chat; its roots say what it is about.
    assert max(whole_words, key=whole_words.__getitem__) == OFF_TOPIC
    assert max(with_roots, key=with_roots.__getitem__) == target
    result = classifier.classify(text)
    assert not result.unclassified
    assert result.targets[0].target == target
    assert any("like labelled requests" in e for e in result.targets[0].evidence)


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("Хто можа параіць па аднаўленні тарфянікаў на Палессі?", "хто"),  # Belarusian: who can advise
        # Turkmen: a specialist is needed
        ("Amyderýa boýunda tugaý tokaýlaryny dikeltmek üçin hünärmen gerek", "hünärmen"),
    ],
)
def test_who_and_specialist_in_a_national_language_ask_for_an_expert(classifier, text, cue) -> None:
    # Core function 5 (matchmaking) by its cue words in the language, as "кто" and "expert" in ru and en.
    first = classifier.classify(text).core_functions[0]
    assert first.core_function == 5 and any(cue in e for e in first.evidence)


def test_a_short_national_request_the_scorer_is_unsure_of_is_still_a_request(classifier) -> None:
    # Azerbaijani partly typed in ASCII, no lexicon term: the scorer's distribution is flat (its largest
    # class, off-topic, about 0.15), which says "unsure", not "off-topic" (calibration.national_certainty).
    assert not classifier.classify("Qarabağda meşələrin bərpası üzrə mutexessis lazimdir").unclassified
    assert national_certainty(0.12) == pytest.approx(0.3) and national_certainty(0.6) == 1.0


@pytest.mark.parametrize(
    "text", ["Salam, ad günün mübarək olsun!", "Ertaga ofisda yig'ilish bo'ladimi? soat nechida?"]
)
def test_national_chat_is_still_set_aside(classifier, text) -> None:
    assert classifier.classify(text).unclassified
