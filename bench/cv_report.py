"""Every cross-validated figure per language in one pass: what round 4's decisions read
(bench/classify_progress.md).

Not a test. Run: .venv/bin/python bench/cv_report.py [--save W.pkl | --load W.pkl] [--confusions]
DEV.jsonl ... (the packaged training corpus is always added; never the frozen part). Every request is
weighed with a supervised scorer trained without its fold (bench/supervised_folds.py); --save keeps those
weighings, so a change of fusion or abstention (which reads them, not the training) is measured again in
seconds with --load. Per language: top-1 and recall@3 of the fused ranking and core-function top-1 (what
the desk lists, abstention aside), then off-topic abstention and false abstention with the abstention map
fitted out of fold (calibrate_classifier.fit on the other folds' rows, as calibration.py is fitted on all),
and "shown": top-1 counting a request set aside as a miss, as `helpdesk classify --eval` does.
"""

from __future__ import annotations

import argparse
import pickle
from collections import Counter, defaultdict

from calibrate_classifier import ANCHOR, TOPIC_SIGNS, fit
from supervised_folds import labelled, out_of_fold

from helpdesk.classification import calibration
from helpdesk.classification.classifier import (
    MIN_TARGET_VALUE,
    LexiconClassifier,
    Weighed,
    _by_evidence,
    _rank_core_functions,
)
from helpdesk.classification.evaluate import LabelledItem
from helpdesk.classification.language_id import NATIONAL
from knowledge import load_knowledge_base

Weighings = list[tuple[int, LabelledItem, Weighed]]


def ranked_targets(classifier: LexiconClassifier, w: Weighed) -> list[int]:
    raw, ev = classifier.fused_targets(w)
    return [n for n, v in _by_evidence(raw, ev) if v >= MIN_TARGET_VALUE]


def first_core_function(classifier: LexiconClassifier, w: Weighed) -> int | None:
    raw, ev = classifier.fused_core_functions(w)
    if not raw:
        raw = {n: cf.prior for n, cf in classifier.kb.core_functions.items()}
    ranked = _rank_core_functions(raw, ev)
    return ranked[0].core_function if ranked else None


def report(
    classifier: LexiconClassifier,
    weighed: Weighings,
    folds: int,
    confusions: bool = False,
    skip: tuple[str, ...] = (),
) -> None:
    topic = [(k, (w.topic_features(), int(bool(item.targets)))) for k, item, w in weighed]
    maps = {k: fit([r for f, r in topic if f != k], TOPIC_SIGNS, ANCHOR) for k in range(folds)}
    # The abstention map is fitted on every row; the figures may leave some out (--skip: the same items
    # before and after a corpus grows).
    weighed = [(k, item, w) for k, item, w in weighed if not item.id.startswith(skip)]
    # group -> on-topic, top-1, r@3, cf, falsely set aside, off-topic, rightly set aside, shown
    tally: dict[str, list[int]] = defaultdict(lambda: [0] * 8)
    confused: dict[str, Counter[str]] = defaultdict(Counter)
    for k, item, w in weighed:
        aside = maps[k](w.topic_features()) < calibration.ON_TOPIC_MIN
        national = item.group in NATIONAL
        groups = [item.group, "national" if national else "en+ru+dev", "all"]
        if not item.targets:
            for g in groups:
                tally[g][5] += 1
                tally[g][6] += aside
            continue
        ranked = ranked_targets(classifier, w)
        hit = bool(ranked) and ranked[0] in item.targets
        cf = first_core_function(classifier, w)
        for g in groups:
            row = tally[g]
            row[0] += 1
            row[1] += hit
            row[2] += item.targets[0] in ranked[:3]
            row[3] += cf in item.core_functions
            row[4] += aside
            row[7] += hit and not aside
        if item.core_functions and cf not in item.core_functions:
            confused[item.group if not national else "national"][f"{item.core_functions[0]}->{cf}"] += 1
    print(f"{'group':<10}{'n':>6}{'top-1':>7}{'r@3':>7}{'cf':>7}{'off n':>7}{'abst':>7}{'false':>7}"
          f"{'shown':>7}")  # fmt: skip
    order = sorted(tally, key=lambda g: (g in NATIONAL, g in ("national", "en+ru+dev", "all"), g))
    for g in order:
        n, t1, r3, cf, fa, off, ab, shown = tally[g]
        d = max(n, 1)
        print(f"{g:<10}{n:>6}{t1 / d:>7.3f}{r3 / d:>7.3f}{cf / d:>7.3f}{off:>7}{ab / max(off, 1):>7.3f}"
              f"{fa / d:>7.3f}{shown / d:>7.3f}")  # fmt: skip
    if confusions:
        for g, counts in sorted(confused.items()):
            print(f"core functions {g} (gold->got): {dict(counts.most_common(12))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--save")
    parser.add_argument("--load")
    parser.add_argument("--confusions", action="store_true")
    parser.add_argument("--skip", nargs="*", default=(), help="id prefixes not reported (still trained on)")
    args = parser.parse_args()
    classifier = LexiconClassifier(load_knowledge_base())
    if args.load:
        with open(args.load, "rb") as fh:
            weighed: Weighings = pickle.load(fh)
    else:
        weighed = list(out_of_fold(classifier, labelled(args.files), args.folds))
        if args.save:
            with open(args.save, "wb") as fh:
                pickle.dump(weighed, fh)
    report(classifier, weighed, args.folds, args.confusions, tuple(args.skip))


if __name__ == "__main__":
    main()
