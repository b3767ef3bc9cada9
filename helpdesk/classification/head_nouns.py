"""The head-noun rule (issue #15): a generic head names the means, the words it governs name the subject.

In "funding for wetland restoration", "Red List Index (birds)" or "финансирование восстановления
водно-болотных угодий" the head (funding, index, финансирование) is what every request about money, data,
skills or policy says; what it governs (wetland restoration) is what this request is about. So while a
head governs a subject target's term, the head's cross-cutting target (19 money, 21 data, 20 skills, 14
policy) counts for less in the fused score (classifier.py), whatever scorer put it there; a request about
the means itself ("funding for our NGO", "a course on fundraising") governs no subject, and the rule says
nothing. It discounts rather than reorders: the labelled corpus calls "a shared database of bird counts"
a data request and "GIS courses for a reserve" a training one, and putting the subject first always cost
top-1 out of fold (bench/classify_progress.md, round 4).

Only the lexicon knows where a word is, so "governs" is read from positions: a subject target's term that
starts within WINDOW content words after the head (function words and punctuation are not counted: "for",
"(", a Russian genitive follows the head directly). Pure; the head words are data below, en and ru.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from helpdesk.classification.lexicon import Hit
from helpdesk.classification.text import Stemmer, Token

# Generic heads and the cross-cutting target each stands for; the lexicon lists them as weak or ordinary
# terms of that target (targets.yaml), which is why they outvote a subject they govern.
HEADS: Mapping[int, tuple[str, ...]] = {
    19: ("funding", "funds", "financing", "finance", "grant", "grants", "money", "budget",
         "финансирование", "финансы", "грант", "гранты", "деньги", "средства", "бюджет"),
    20: ("training", "trainings", "course", "courses", "workshop", "curriculum", "tools", "toolkit",
         "обучение", "курс", "курсы", "тренинг", "семинар", "инструменты"),
    21: ("data", "database", "dataset", "indicator", "indicators", "index", "statistics",
         "данные", "база", "индикатор", "индикаторы", "показатель", "показатели", "индекс", "статистика"),
    14: ("policy", "policies", "strategy", "ministry", "legislation",
         "политика", "стратегия", "министерство", "законодательство"),
}  # fmt: skip
WINDOW = 3  # content words after the head within which a governed term starts


@dataclass(frozen=True, slots=True)
class Governed:
    head: int  # the cross-cutting target the head stands for
    subjects: frozenset[int]  # subject targets whose terms the head governs
    word: str  # the head as written (evidence)


class HeadNouns:
    """The head words as stems, compiled once per classifier."""

    def __init__(self, stemmer: Stemmer, cross_cutting: Iterable[int]) -> None:
        self.cross_cutting = frozenset(cross_cutting)
        self.heads = {stemmer.stem(w): target for target, ws in HEADS.items() for w in ws}

    def governed(self, tokens: Sequence[Token], hits: Iterable[tuple[int, Hit]]) -> list[Governed]:
        """Each head of the request with the subject targets whose terms it governs (none: left out).

        hits: (target, hit) for the lexicon's target hits.
        """
        starts: dict[int, set[int]] = {}
        for target, hit in hits:
            if target not in self.cross_cutting:
                starts.setdefault(hit.position, set()).add(target)
        out = []
        for token in tokens:
            head = self.heads.get(token.stem)
            if head is None:
                continue
            subjects = {
                t for p in range(token.position + 1, token.position + WINDOW + 1) for t in starts.get(p, ())
            }
            if subjects:
                out.append(Governed(head, frozenset(subjects), token.surface))
        return out
