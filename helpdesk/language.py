"""Which language to answer a requester in (en or ru), before and apart from classification."""

from __future__ import annotations


def detect_reply_language(text: str, hint: str | None = None) -> str:
    """Russian when the text is mostly Cyrillic, English when mostly Latin; else the channel's hint."""
    cyrillic = sum(1 for ch in text if "\u0400" <= ch <= "\u04ff")
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    if cyrillic + latin >= 8:
        return "ru" if cyrillic >= latin else "en"
    if hint:
        return (
            "ru" if hint.lower().startswith(("ru", "kk", "ky", "uz", "tg", "tk", "be", "hy", "az")) else "en"
        )
    return "ru" if cyrillic > latin else "en"
