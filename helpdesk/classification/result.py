"""The classifier's answer: language, ranked targets and core functions with evidence, Party."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TargetScore:
    target: int
    score: float
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "score": self.score, "evidence": list(self.evidence)}


@dataclass(frozen=True, slots=True)
class CoreFunctionScore:
    core_function: int
    score: float
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"core_function": self.core_function, "score": self.score, "evidence": list(self.evidence)}


@dataclass(frozen=True, slots=True)
class Classification:
    language: str
    targets: tuple[TargetScore, ...]
    core_functions: tuple[CoreFunctionScore, ...]
    party: str | None
    unclassified: bool
    id: str | None = None
    # Why the message was left unclassified or how the Party was found; for staff, not in to_json().
    notes: tuple[str, ...] = field(default=(), compare=False)
    party_evidence: tuple[str, ...] = field(default=(), compare=False)
    # The national language recognised (kk, ky, uz-Latn, uz-Cyrl, tg, tk, az, hy, be), if any; "language"
    # keeps its en/ru/mixed values for the scripts that read it.
    written_in: str | None = None

    @property
    def target_numbers(self) -> list[int]:
        return [t.target for t in self.targets]

    @property
    def core_function_numbers(self) -> list[int]:
        return [c.core_function for c in self.core_functions]

    @property
    def reply_language(self) -> str:
        return "en" if self.language == "en" else "ru"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["language"] = self.language
        out["targets"] = [t.to_json() for t in self.targets]
        out["core_functions"] = [c.to_json() for c in self.core_functions]
        out["party"] = self.party
        out["unclassified"] = self.unclassified
        if self.written_in is not None:
            out["written_in"] = self.written_in
        return out

    def to_json_line(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False)
