"""Score the classifier on each frozen part apart, and on all of them pooled, per language (integrator only).

Not a test, and not for tuning: the frozen parts (tests/data/classify_frozen*.jsonl) are read here only to
report. Run: .venv/bin/python bench/frozen_parts.py [--markdown]
Ten off-topic items per part and language make one item 0.1 of a ratio; the pooled row is the one to read
against the issue's goals (off-topic abstention especially).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from helpdesk.classification import build_classifier
from helpdesk.classification.evaluate import GOALS, LabelledItem, evaluate, read_labelled
from knowledge import load_knowledge_base

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
COLUMNS = ("items", "top1", "recall3", "cf_top1", "abstention", "off_topic", "false_abstention")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="one Markdown table instead of plain lines")
    args = parser.parse_args()
    classifier = build_classifier(load_knowledge_base())
    parts: dict[str, list[LabelledItem]] = {
        path.stem.removeprefix("classify_"): read_labelled(path)
        for path in sorted(DATA.glob("classify_frozen*.jsonl"))
    }
    # The second part wrote Uzbek (Latin script) as plain "uz".
    pooled = [item for items in parts.values() for item in items]
    parts["pooled"] = [replace(i, language="uz-Latn") if i.group == "uz" else i for i in pooled]
    print(f"goals: {GOALS}")
    if args.markdown:
        print("| part | language | " + " | ".join(COLUMNS) + " |")
        print("|---" * (len(COLUMNS) + 2) + "|")
    for name, items in parts.items():
        for language, figures in evaluate(classifier, items)["by_language"].items():
            cells = [
                f"{figures[c]:.3f}" if isinstance(figures[c], float) else str(figures[c]) for c in COLUMNS
            ]
            if args.markdown:
                print(f"| {name} | {language} | " + " | ".join(cells) + " |")
            else:
                print(
                    f"{name:8} {language:8} "
                    + " ".join(f"{c}={v}" for c, v in zip(COLUMNS, cells, strict=True))
                )


if __name__ == "__main__":
    main()
