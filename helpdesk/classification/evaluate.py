"""Evaluation of the classifier over labelled JSON Lines.

Input lines: {"id", "lang": "en"|"ru"|"mixed", "text", "targets": [primary, ...] ([] = off-topic),
"core_functions": [...], "party": code|null}, optionally "language" (kk, ky, uz-Latn, uz-Cyrl, tg, az, hy,
be...) which, when present, is what the figures are grouped by. Figures, per language and overall:

- top-1: the best predicted target is among the gold targets (on-topic items)
- recall@3: the primary gold target is among the best three predicted (on-topic items)
- core-function top-1: the best predicted core function is among the gold ones (on-topic items)
- off-topic abstention: share of off-topic items returned as unclassified
- false abstention: share of on-topic items returned as unclassified
- party accuracy: predicted Party equals the gold one (null included), all items
- confusions: (gold primary target -> predicted best target) counts for top-1 misses
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpdesk.classification.protocol import Classifier

GOALS = {"top1": 0.85, "recall3": 0.93, "cf_top1": 0.80, "abstention": 0.90, "false_abstention": 0.05}


@dataclass(frozen=True, slots=True)
class LabelledItem:
    id: str
    lang: str
    text: str
    targets: tuple[int, ...]
    core_functions: tuple[int, ...]
    party: str | None
    language: str | None = None  # finer than lang: the national language of a "mixed" item

    @property
    def group(self) -> str:
        return self.language or self.lang


def read_labelled(path: str | Path) -> list[LabelledItem]:
    with open(path, encoding="utf-8") as fh:
        return parse_labelled(fh, str(path))


def parse_labelled(lines: Iterable[str], source: str) -> list[LabelledItem]:
    items = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            items.append(
                LabelledItem(
                    id=str(d.get("id", f"line-{n}")),
                    lang=str(d.get("lang", "unknown")),
                    text=str(d["text"]),
                    targets=tuple(int(t) for t in d.get("targets", [])),
                    core_functions=tuple(int(c) for c in d.get("core_functions", [])),
                    party=d.get("party"),
                    language=None if d.get("language") is None else str(d["language"]),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{source}: line {n}: not a labelled item: {exc}") from None
    return items


@dataclass
class Tally:
    on_topic: int = 0
    off_topic: int = 0
    top1: int = 0
    recall3: int = 0
    cf_top1: int = 0
    abstained_off: int = 0
    abstained_on: int = 0
    party_ok: int = 0
    total: int = 0
    confusions: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)

    def ratios(self) -> dict[str, float | int]:
        def r(a: int, b: int) -> float:
            return round(a / b, 4) if b else 0.0

        return {
            "items": self.total,
            "on_topic": self.on_topic,
            "off_topic": self.off_topic,
            "top1": r(self.top1, self.on_topic),
            "recall3": r(self.recall3, self.on_topic),
            "cf_top1": r(self.cf_top1, self.on_topic),
            "abstention": r(self.abstained_off, self.off_topic),
            "false_abstention": r(self.abstained_on, self.on_topic),
            "party_accuracy": r(self.party_ok, self.total),
        }


def evaluate(classifier: Classifier, items: Iterable[LabelledItem]) -> dict[str, Any]:
    tallies: dict[str, Tally] = {}
    for item in items:
        result = classifier.classify(item.text, id=item.id)
        predicted = result.target_numbers
        for key in (item.group, "overall"):
            t = tallies.setdefault(key, Tally())
            t.total += 1
            t.party_ok += result.party == item.party
            if not item.targets:
                t.off_topic += 1
                t.abstained_off += result.unclassified
                if not result.unclassified:
                    t.misses.append(f"{item.id}: off-topic classified as {predicted[:3]}")
                continue
            t.on_topic += 1
            t.abstained_on += result.unclassified
            if predicted and predicted[0] in item.targets:
                t.top1 += 1
            else:
                got = predicted[0] if predicted else "none"
                t.confusions[f"{item.targets[0]}->{got}"] += 1
                t.misses.append(f"{item.id}: gold {list(item.targets)} got {predicted[:3]}")
            t.recall3 += item.targets[0] in predicted[:3]
            cfs = result.core_function_numbers
            if cfs and cfs[0] in item.core_functions:
                t.cf_top1 += 1
    order = [k for k in ("en", "ru", "mixed") if k in tallies]
    order += [*sorted(k for k in tallies if k not in {"en", "ru", "mixed", "overall"}), "overall"]
    return {
        "goals": GOALS,
        "by_language": {k: tallies[k].ratios() for k in order if k in tallies},
        "confusions": {
            k: dict(tallies[k].confusions.most_common())
            for k in order
            if k in tallies and tallies[k].confusions
        },
        "misses": {k: tallies[k].misses for k in order if k in tallies and k != "overall"},
    }


def meets_goals(report: dict[str, Any], languages: Iterable[str] = ("en", "ru")) -> dict[str, bool]:
    """Per language: True when every goal is met (abstention only judged where off-topic items exist)."""
    out = {}
    for lang in languages:
        figures = report["by_language"].get(lang)
        if figures is None:
            continue
        ok = all(figures[k] >= GOALS[k] for k in ("top1", "recall3", "cf_top1"))
        ok &= figures["false_abstention"] <= GOALS["false_abstention"]
        if figures["off_topic"]:
            ok &= figures["abstention"] >= GOALS["abstention"]
        out[lang] = ok
    return out


def format_text(report: dict[str, Any], *, show_misses: bool = False) -> str:
    cols = ("items", "top1", "recall3", "cf_top1", "abstention", "false_abstention", "party_accuracy")
    head = f"{'language':<10}" + "".join(f"{c:>17}" for c in cols)
    lines = [head, "-" * len(head)]
    for lang, fig in report["by_language"].items():
        cells = []
        for c in cols:
            v = fig[c]
            cells.append(f"{v:>17}" if c == "items" else f"{v * 100:>16.1f}%")
        lines.append(f"{lang:<10}" + "".join(cells))
    goals = report["goals"]
    lines.append(
        "goals: top1 >= {top1:.0%}, recall3 >= {recall3:.0%}, cf_top1 >= {cf_top1:.0%}, "
        "abstention >= {abstention:.0%}, false abstention <= {false_abstention:.0%}".format(**goals)
    )
    met = meets_goals(report)
    if met:
        lines.append("met: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in met.items()))
    for lang, confusions in report["confusions"].items():
        lines.append(
            f"confusions {lang} (gold primary -> predicted best): "
            + ", ".join(f"{k} x{v}" for k, v in confusions.items())
        )
    if show_misses:
        for lang, misses in report["misses"].items():
            for m in misses:
                lines.append(f"  [{lang}] {m}")
    return "\n".join(lines)


def format_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)


def evaluate_parts(classifier: Classifier, parts: dict[str, list[LabelledItem]]) -> dict[str, Any]:
    """One report per part ("development", "frozen"): the parts are never pooled, so a gain tuned on
    the development part cannot hide a loss on the frozen one."""
    return {name: evaluate(classifier, items) for name, items in parts.items() if items}


def format_parts_text(reports: dict[str, Any], *, show_misses: bool = False) -> str:
    return "\n\n".join(
        f"== {name} part ==\n" + format_text(report, show_misses=show_misses)
        for name, report in reports.items()
    )
