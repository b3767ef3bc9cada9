"""Staff corrections as labelled examples, and a nearest-neighbour vote over them.

When staff reclassify a ticket, (text, targets, core functions) becomes a LabelledExample. A new
request that shares enough weighted vocabulary with an example inherits a vote for its labels, so a
correction keeps helping similar requests without anyone editing the vocabulary.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from helpdesk.classification.text import Token

MIN_SIMILARITY = 0.3
NEIGHBOURS = 5
# Once a stem is in this share of all examples it says nothing about any one of them.
_COMMON_SHARE = 0.3


@dataclass(frozen=True, slots=True)
class LabelledExample:
    text: str
    targets: tuple[int, ...]
    core_functions: tuple[int, ...] = ()
    id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(int(t) for t in self.targets))
        object.__setattr__(self, "core_functions", tuple(int(c) for c in self.core_functions))


@dataclass(frozen=True, slots=True)
class Neighbour:
    example: LabelledExample
    similarity: float

    @property
    def label(self) -> str:
        return self.example.id or self.example.text[:40]


def features(tokens: Sequence[Token]) -> set[str]:
    return {t.stem for t in tokens if len(t.stem) >= 3 and not t.stem.isdigit()}


class ExampleIndex:
    def __init__(self, examples: Iterable[tuple[LabelledExample, set[str]]]) -> None:
        self.examples: list[LabelledExample] = []
        self._features: list[set[str]] = []
        df: dict[str, int] = defaultdict(int)
        for example, feats in examples:
            self.examples.append(example)
            self._features.append(feats)
            for f in feats:
                df[f] += 1
        n = len(self.examples)
        self._idf = {f: math.log(1.0 + n / c) for f, c in df.items()}
        limit = max(3, int(n * _COMMON_SHARE))
        self._postings: dict[str, list[int]] = defaultdict(list)
        for i, feats in enumerate(self._features):
            for f in feats:
                if df[f] <= limit:
                    self._postings[f].append(i)
        self._norms = [math.sqrt(sum(self._idf[f] ** 2 for f in feats)) or 1.0 for feats in self._features]

    def __len__(self) -> int:
        return len(self.examples)

    def neighbours(self, feats: set[str]) -> list[Neighbour]:
        if not self.examples or not feats:
            return []
        overlap: dict[int, float] = defaultdict(float)
        for f in feats:
            for i in self._postings.get(f, ()):
                overlap[i] += self._idf[f] ** 2
        if not overlap:
            return []
        # Unknown features count in the query norm with the highest idf: an unseen word is informative.
        top_idf = math.log(1.0 + len(self.examples))
        norm = math.sqrt(sum(self._idf.get(f, top_idf) ** 2 for f in feats)) or 1.0
        scored = [Neighbour(self.examples[i], dot / (norm * self._norms[i])) for i, dot in overlap.items()]
        scored = [n for n in scored if n.similarity >= MIN_SIMILARITY]
        scored.sort(key=lambda n: (-n.similarity, n.label))
        return scored[:NEIGHBOURS]
