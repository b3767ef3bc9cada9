"""The region's languages (issue #15 item 4): recognised among all of them, answered in Russian or English."""

from __future__ import annotations

import pytest

from helpdesk.classification import Classifier
from helpdesk.classification.language_id import recognise_language
from helpdesk.language import detect_reply_language

SAMPLES = [
    ("kk", "Біздің облыста жаңа қорық ашу туралы ақпарат керек, көмектесе аласыз ба?"),
    ("ky", "Биздин айылда жайыт боюнча маселе бар, кантип чечсе болот?"),
    ("uz-Latn", "Bizning viloyatda suv tanqisligi bor, qanday yordam olish mumkin?"),
    ("uz-Cyrl", "Бизнинг вилоятда сув танқислиги бор, қандай ёрдам олиш мумкин?"),
    ("tg", "Дар ноҳияи мо оби нӯшокӣ кам аст, чӣ кор кунем?"),
    ("az", "Bizim rayonda su çatışmazlığı var, necə kömək ala bilərik?"),
    ("hy", "Մեր մարզում ջրի պակաս կա, ինչպե՞ս օգնություն ստանալ։"),
    ("be", "У нашым раёне не хапае вады, ці ёсць нейкая дапамога?"),
    ("tk", "Biziň etrapymyzda suw ýetmezçiligi bar, nähili kömek alyp bolar?"),
    ("ru", "В нашем районе не хватает воды, где можно получить помощь?"),
    ("en", "Our district lacks water, where can we get help?"),
    ("ru", "Сәлем! Нужна консультация по водно-болотным угодьям в дельте Волги и по учету птиц"),
    # Typed without the language's own letters (ucun for üçün), as on a phone without the keyboard.
    ("az", "Gence rayonunda su qitligi ucun ne etmek lazimdir? Kime muraciet edek"),
    ("uz-Latn", "Qishlogimizda suv yetishmaydi, kimga murojaat qilsak boladi?"),
    ("tk", "Etrabymyzda suw yetmezcilik ucin nahili komek alyp bolar?"),
]


@pytest.mark.parametrize(("expected", "text"), SAMPLES)
def test_each_language_of_the_region_is_recognised(expected: str, text: str) -> None:
    assert recognise_language(text) == expected


@pytest.mark.parametrize(
    ("text", "hint", "reply"),
    [
        ("Bizim rayonda su çatışmazlığı var, necə kömək ala bilərik?", None, "ru"),
        ("Bizning viloyatda suv tanqisligi bor, qanday yordam olish mumkin?", "en", "en"),
        ("Մեր մարզում ջրի պակաս կա, ինչպե՞ս օգնություն ստանալ։", "hy", "ru"),
        ("Our district lacks water, where can we get help?", "ru", "en"),
    ],
)
def test_a_national_language_is_answered_in_russian_unless_the_requester_uses_english(
    text: str, hint: str | None, reply: str
) -> None:
    assert detect_reply_language(text, hint) == reply


def test_the_recognised_language_is_an_added_field_of_the_json_line(packaged_classifier: Classifier) -> None:
    out = packaged_classifier.classify("Qor qoploni bo'yicha mutaxassis kerak").to_json()
    assert out["written_in"] == "uz-Latn" and out["language"] == "mixed"
