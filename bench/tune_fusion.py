"""Choose the fusion weight of the TF-IDF scorer by k-fold cross-validation on DEVELOPMENT files only.

Not a test. Run: .venv/bin/python bench/tune_fusion.py tests/data/classify_own.jsonl [MORE_DEV.jsonl ...]
Never pass the frozen part: it is for reporting, and tuning on it would make its figures worthless.
For each fold the weight with the best top-1 (then recall@3, then the larger weight) on the other folds is
scored on the fold.
"""

from __future__ import annotations

import argparse

from helpdesk.classification.classifier import LexiconClassifier
from helpdesk.classification.evaluate import LabelledItem, read_labelled
from knowledge import load_knowledge_base

WEIGHTS = (0.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0)


def score(classifier: LexiconClassifier, items: list[LabelledItem]) -> tuple[float, float]:
    on = [i for i in items if i.targets]
    top1 = r3 = 0
    for item in on:
        got = classifier.classify(item.text).target_numbers
        top1 += bool(got) and got[0] in item.targets
        r3 += item.targets[0] in got[:3]
    return top1 / len(on), r3 / len(on)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    if any("frozen" in f for f in args.files):
        parser.error("the frozen part is never tuned on")
    items = [i for f in args.files for i in read_labelled(f)]
    classifier = LexiconClassifier(load_knowledge_base())
    table: dict[float, list[tuple[float, float]]] = {}
    folds = [items[k :: args.folds] for k in range(args.folds)]
    for w in WEIGHTS:
        classifier.fusion_weight = w
        table[w] = [score(classifier, fold) for fold in folds]
    held_out = []
    for k in range(args.folds):

        def train(w: float, k: int = k) -> tuple[float, float]:
            rows = [table[w][j] for j in range(args.folds) if j != k]
            return sum(r[0] for r in rows) / len(rows), sum(r[1] for r in rows) / len(rows)

        # The lexicon was written on these requests, so several weights tie on them; the tie goes to the
        # larger weight, the one that leans most on the scorer that was not written on them.
        best = max(WEIGHTS, key=lambda w, train=train: (train(w), w))
        held_out.append((best, *table[best][k]))
    for w in WEIGHTS:
        rows = table[w]
        print(f"weight {w:>5}: top-1 {sum(r[0] for r in rows) / len(rows):.3f}  "
              f"recall@3 {sum(r[1] for r in rows) / len(rows):.3f}")  # fmt: skip
    for k, (w, t1, r3) in enumerate(held_out):
        print(f"fold {k}: chose {w}, held-out top-1 {t1:.3f} recall@3 {r3:.3f}")
    print(f"cross-validated top-1 {sum(h[1] for h in held_out) / len(held_out):.3f}")


if __name__ == "__main__":
    main()
