"""Choose the fusion weights (TF-IDF, supervised targets, supervised core functions) and the supervised
scorer's settings by k-fold cross-validation on the training corpus + DEVELOPMENT files only.

Not a test. Run: .venv/bin/python bench/tune_fusion.py tests/data/classify_own.jsonl [MORE_DEV.jsonl ...]
(the packaged training corpus, knowledge/data/training/, is always added). Never pass the frozen part: it is
for reporting, and tuning on it would make its figures worthless. Every request is scored with a
supervised model trained without its fold (bench/supervised_folds.py). For each fold, the setting with the
best mean of the other folds is scored on the fold (nested: the figure printed last was chosen without the
fold it is measured on).
"""

from __future__ import annotations

import argparse
import itertools
from collections import defaultdict

from supervised_folds import labelled, out_of_fold

from helpdesk.classification import training
from helpdesk.classification.classifier import LexiconClassifier
from knowledge import load_knowledge_base

FUSION = (0.0, 6.0, 12.0, 18.0)
SUPERVISED = (0.0, 3.0, 6.0, 10.0, 16.0, 24.0)
SUPERVISED_CF = (0.0, 1.0, 2.0, 4.0, 8.0)

Figures = dict[str, float]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--l2", type=float, nargs="*", default=(training.L2,))
    parser.add_argument("--prune", type=float, nargs="*", default=(training.PRUNE,))
    parser.add_argument("--secondary", type=float, nargs="*", default=(training.SECONDARY_LABEL,))
    parser.add_argument("--official", type=float, nargs="*", default=(training.OFFICIAL_TEXT_WEIGHT,))
    args = parser.parse_args()
    items = labelled(args.files)
    classifier = LexiconClassifier(load_knowledge_base())
    # (setting, fold) -> [hits top-1, hits r@3, cf hits, on-topic count]; per language too.
    table: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    by_lang: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    grid = itertools.product(args.l2, args.prune, args.secondary, args.official)
    for l2, prune, sec, off in grid:
        params = {"l2": l2, "prune": prune, "secondary": sec, "official": off}
        for k, item, w in out_of_fold(classifier, items, args.folds, **params):
            if not item.targets:
                continue
            for fw, sw in itertools.product(FUSION, SUPERVISED):
                classifier.fusion_weight, classifier.supervised_weight = fw, sw
                raw, _ = classifier.fused_targets(w)
                ranked = [n for n, v in sorted(raw.items(), key=lambda kv: -kv[1]) if v >= 0.3]
                setting = ("t", l2, prune, sec, off, fw, sw)
                for key in ((setting, k), ((*setting, item.lang), k)):
                    row = table[key] if len(key[0]) == 7 else by_lang[key]
                    row[0] += bool(ranked) and ranked[0] in item.targets
                    row[1] += item.targets[0] in ranked[:3]
                    row[3] += 1
            for cw in SUPERVISED_CF:
                classifier.supervised_cf_weight = cw
                raw, _ = classifier.fused_core_functions(w)
                best = max(raw, key=lambda n: (raw[n], -n)) if raw else 0
                setting = ("c", l2, prune, sec, off, cw)
                table[(setting, k)][2] += best in item.core_functions
                table[(setting, k)][3] += 1
    settings = sorted({s for s, _ in table})
    for kind, column in (("t", 0), ("c", 2)):
        mine = [s for s in settings if s[0] == kind]

        def mean(s: tuple, folds: list[int], column: int = column) -> float:
            rows = [table[(s, f)] for f in folds]
            return sum(r[column] for r in rows) / sum(r[3] for r in rows)

        everything = list(range(args.folds))
        baseline = [s for s in mine if (s[-1] == 0.0 and (kind == "c" or s[-2] == 12.0))][:1]
        for s in baseline + sorted(mine, key=lambda s: -mean(s, everything))[:8]:
            extra = ""
            if kind == "t":
                r3 = sum(table[(s, f)][1] for f in everything) / sum(table[(s, f)][3] for f in everything)
                langs = []
                for lang in ("en", "ru"):
                    rows = [by_lang[((*s, lang), f)] for f in everything]
                    n = sum(r[3] for r in rows) or 1
                    langs.append(
                        f"{lang} {sum(r[0] for r in rows) / n:.3f}/{sum(r[1] for r in rows) / n:.3f}"
                    )
                extra = f" r@3 {r3:.3f} ({', '.join(langs)})"
            print(f"{s}: {'top-1' if kind == 't' else 'cf top-1'} {mean(s, everything):.3f}{extra}")
        held = []
        for k in everything:
            others = [f for f in everything if f != k]
            best = max(mine, key=lambda s, o=others: (mean(s, o), s))
            held.append((best, mean(best, [k])))
        for k, (s, v) in enumerate(held):
            print(f"  fold {k}: chose {s}, held-out {v:.3f}")
        print(f"  nested cross-validated {kind}: {sum(v for _, v in held) / len(held):.3f}")


if __name__ == "__main__":
    main()
