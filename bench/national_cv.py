"""Cross-validated figures per language, the national languages one by one: what decided round 3's
national-language changes (bench/classify_progress.md).

Not a test. Run: .venv/bin/python bench/national_cv.py [--no-roots] [--prefixes 4 5 6]
[--seed N] DEV.jsonl ... (the packaged training corpus is always added; never the frozen part). Every
request is weighed with a supervised scorer trained without its fold (bench/supervised_folds.py); --seed
shuffles which requests share a fold, so repeated runs show how much a figure moves by the split alone.
Per group: top-1 and recall@3 of the fused ranking, false abstention (on-topic requests set aside) with
calibration.py's ON_TOPIC as it is now (fitted on all these items: the out-of-fold figure is
calibrate_classifier.py's), and top-1 of what the desk shows (a request set aside is a miss).
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict

from supervised_folds import labelled, out_of_fold

from helpdesk.classification import calibration, word_shapes
from helpdesk.classification.classifier import MIN_TARGET_VALUE, LexiconClassifier
from helpdesk.classification.language_id import NATIONAL
from knowledge import load_knowledge_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-roots", action="store_true")
    parser.add_argument("--prefixes", type=int, nargs="*", default=None)
    args = parser.parse_args()
    if args.no_roots:
        word_shapes.PREFIXES = ()
    if args.prefixes:
        word_shapes.PREFIXES = tuple(args.prefixes)
    items = labelled(args.files)
    if args.seed is not None:
        random.Random(args.seed).shuffle(items)
    classifier = LexiconClassifier(load_knowledge_base())
    # group -> [on-topic, top-1 hits, r@3 hits, falsely set aside, off-topic, rightly set aside,
    #           top-1 hits not set aside (what the desk shows)]
    tally: dict[str, list[int]] = defaultdict(lambda: [0] * 7)
    for _, item, w in out_of_fold(classifier, items, args.folds):
        groups = [item.group, "national" if item.group in NATIONAL else "all-ru-en-dev"]
        aside = calibration.ON_TOPIC(w.topic_features()) < calibration.ON_TOPIC_MIN
        for g in groups:
            row = tally[g]
            if not item.targets:
                row[4] += 1
                row[5] += aside
                continue
            raw, _ = classifier.fused_targets(w)
            ordered = sorted(raw.items(), key=lambda kv: (-kv[1], kv[0]))
            ranked = [n for n, v in ordered if v >= MIN_TARGET_VALUE]
            row[0] += 1
            row[1] += bool(ranked) and ranked[0] in item.targets
            row[2] += item.targets[0] in ranked[:3]
            row[3] += aside
            row[6] += bool(ranked) and ranked[0] in item.targets and not aside
    print(f"{'group':<14}{'n':>5}{'top-1':>8}{'r@3':>8}{'false ab':>10}{'off n':>7}{'abst':>7}{'shown':>7}")
    for g in sorted(tally, key=lambda g: (g in NATIONAL, g)):
        n, t1, r3, fa, off, ab, shown = tally[g]
        print(f"{g:<14}{n:>5}{t1 / max(n, 1):>8.3f}{r3 / max(n, 1):>8.3f}{fa / max(n, 1):>10.3f}"
              f"{off:>7}{ab / max(off, 1):>7.3f}{shown / max(n, 1):>7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
