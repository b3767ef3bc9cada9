"""Field checks shared by the loader and the roster import; each failure names file, entry and field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from knowledge.errors import KnowledgeError
from knowledge.models import Vocabulary

_LANG = re.compile(r"^[a-z]{2}$")
_URL = re.compile(r"^https?://[^\s/]+\.[^\s]+$")


class Checker:
    """Reads fields of one entry of one file, raising KnowledgeError with the full location."""

    def __init__(self, file: str, entry: str, data: Any) -> None:
        self.file = file
        self.entry = entry
        if not isinstance(data, Mapping):
            raise KnowledgeError(file, entry, None, f"expected a mapping, got {type(data).__name__}")
        self.data = data

    def fail(self, field: str | None, problem: str) -> KnowledgeError:
        return KnowledgeError(self.file, self.entry, field, problem)

    def text(self, field: str, *, required: bool = True, default: str = "") -> str:
        value = self.data.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise self.fail(field, "is missing or empty")
            return default
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.fail(field, f"expected text, got {type(value).__name__}")
        return str(value).strip()

    def texts(self, field: str, *, required: bool = False) -> tuple[str, ...]:
        value = self.data.get(field)
        if value is None:
            if required:
                raise self.fail(field, "is missing")
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(field, f"expected a list, got {type(value).__name__}")
        out = []
        for i, item in enumerate(value):
            if item is None or isinstance(item, bool | dict | list):
                raise self.fail(field, f"item {i + 1} is not text: {item!r}")
            s = str(item).strip()
            if not s:
                raise self.fail(field, f"item {i + 1} is empty")
            out.append(s)
        if required and not out:
            raise self.fail(field, "must not be empty")
        return tuple(out)

    def number(self, field: str, lo: int, hi: int, *, default: int | None = None) -> int:
        value = self.data.get(field, default)
        if value is None:
            raise self.fail(field, "is missing")
        try:
            n = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            n = None
        if n is None or (isinstance(value, float) and value != n):
            raise self.fail(field, f"expected a whole number, got {value!r}")
        if not lo <= n <= hi:
            raise self.fail(field, f"{n} is outside {lo}..{hi}")
        return n

    def real(self, field: str, lo: float, hi: float, *, default: float) -> float:
        value = self.data.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(field, f"expected a number, got {value!r}")
        if not lo <= value <= hi:
            raise self.fail(field, f"{value} is outside {lo}..{hi}")
        return float(value)

    def numbers(self, field: str, lo: int, hi: int, *, required: bool = True) -> tuple[int, ...]:
        value = self.data.get(field)
        if value is None:
            if required:
                raise self.fail(field, "is missing")
            return ()
        if isinstance(value, int | str) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(field, f"expected a list of numbers, got {type(value).__name__}")
        out: list[int] = []
        for item in value:
            try:
                n = int(item) if not isinstance(item, bool) else None
            except (TypeError, ValueError):
                n = None
            if n is None:
                raise self.fail(field, f"{item!r} is not a number")
            if not lo <= n <= hi:
                raise self.fail(field, f"{n} is outside {lo}..{hi}")
            if n not in out:
                out.append(n)
        if required and not out:
            raise self.fail(field, "must not be empty")
        return tuple(out)

    def languages(self, field: str, *, required: bool = True) -> tuple[str, ...]:
        langs = tuple(s.lower() for s in self.texts(field, required=required))
        for lang in langs:
            if not _LANG.match(lang):
                raise self.fail(field, f"{lang!r} is not a two-letter language code")
        return langs

    def choice(self, field: str, allowed: Iterable[str], *, default: str | None = None) -> str:
        allowed = tuple(allowed)
        value = self.text(field, required=default is None, default=default or "").lower()
        if value not in allowed:
            raise self.fail(field, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def choices(self, field: str, allowed: Iterable[str], *, required: bool = True) -> tuple[str, ...]:
        allowed = tuple(allowed)
        values = tuple(s.upper() for s in self.texts(field, required=required))
        for v in values:
            if v not in allowed:
                raise self.fail(field, f"{v!r} is not one of {', '.join(allowed)}")
        return values

    def url(self, field: str) -> str:
        value = self.text(field)
        if not _URL.match(value):
            raise self.fail(field, f"{value!r} is not an http(s) URL")
        return value

    def flag(self, field: str, *, default: bool = False) -> bool:
        value = self.data.get(field, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "false", "no", "0", ""}:
            return value.strip().lower() in {"true", "yes", "1"}
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise self.fail(field, f"expected true or false, got {value!r}")

    def vocabulary(self, field: str, *, required: bool = False) -> Vocabulary:
        value = self.data.get(field)
        if value is None:
            if required:
                raise self.fail(field, "is missing")
            return MappingProxyType({})
        if not isinstance(value, Mapping):
            raise self.fail(field, "expected a mapping of language to a list of phrases")
        out: dict[str, tuple[str, ...]] = {}
        for lang, phrases in value.items():
            sub = Checker(self.file, self.entry, {f"{field}.{lang}": phrases})
            out[str(lang)] = sub.texts(f"{field}.{lang}")
        if required and not any(out.values()):
            raise self.fail(field, "must hold at least one phrase")
        return MappingProxyType(out)


def entries(file: str, doc: Any, key: str) -> list[Any]:
    if not isinstance(doc, Mapping) or key not in doc:
        raise KnowledgeError(file, None, key, f"the file must have a top-level '{key}' list")
    items = doc[key]
    if not isinstance(items, list):
        raise KnowledgeError(file, None, key, "must be a list")
    return items


def unique(file: str, seen: set[Any], key: Any, entry: str, field: str) -> None:
    if key in seen:
        raise KnowledgeError(file, entry, field, f"duplicate value {key!r}")
    seen.add(key)
