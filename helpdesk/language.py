"""Which language to answer a requester in (en or ru), before and apart from classification."""

from __future__ import annotations

from helpdesk.classification.language_id import NATIONAL, recognise_language


def detect_reply_language(text: str, hint: str | None = None) -> str:
    """Russian when the text is mostly Cyrillic, English when mostly Latin; else the channel's hint.

    The desk writes only Russian and English: a request in a national language (Uzbek or Azerbaijani
    in Latin letters, Armenian...) is answered in English only when the requester's channel says
    English, and in Russian otherwise, whatever its script.
    """
    if recognise_language(text) in NATIONAL:
        return "en" if hint and hint.lower().startswith("en") else "ru"
    cyrillic = sum(1 for ch in text if "\u0400" <= ch <= "\u04ff")
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    if cyrillic + latin >= 8:
        return "ru" if cyrillic >= latin else "en"
    if hint:
        return (
            "ru" if hint.lower().startswith(("ru", "kk", "ky", "uz", "tg", "tk", "be", "hy", "az")) else "en"
        )
    return "ru" if cyrillic > latin else "en"
