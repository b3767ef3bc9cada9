"""Fit the classifier's calibration (helpdesk/classification/calibration.py) on the training corpus +
DEVELOPMENT files only.

Not a test. Run: .venv/bin/python bench/calibrate_classifier.py tests/data/classify_own.jsonl \
    tests/data/classify_dev_more.jsonl [MORE_DEV.jsonl ...]
(the packaged training corpus, knowledge/data/training/, is always added). Never pass the frozen part.
Every request is weighed with a supervised scorer trained without its fold (bench/supervised_folds.py), so
its off-topic probability is what an unseen request gets. Two logistic maps, each with the sign of every
weight fixed (more evidence for a target never lowers its probability; noise never raises the odds of a
request):
- TARGET: P(a listed target is one of the request's labels | log(1 + fused value), share of the best);
- ON_TOPIC: P(a request for the Centre | the whole evidence: best target term, domain words, best TF-IDF
  similarity, noise cues, greetings, the log-odds of the supervised scorer's off-topic probability).
Prints the out-of-fold figures (k folds: fitted on the others, scored on the fold) beside the figures of
the maps in calibration.py now, then the coefficients fitted on all the files, to paste there.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from helpdesk.classification import calibration
from helpdesk.classification.calibration import Logistic
from helpdesk.classification.classifier import MAX_TARGETS, MIN_TARGET_VALUE, LexiconClassifier
from knowledge import load_knowledge_base

Row = tuple[tuple[float, ...], int]
TOPIC_SIGNS = (1, 1, 1, -1, -1, -1, 0, 1)
# The issue names short requests set aside as a cause of misses: one ordinary target term (1.5) after a
# greeting word (0.6), with nothing against it, stays a request. The development part has too few short
# and national-language requests to place the boundary there by itself.
ANCHOR = calibration.topic_features(1.5, 0.0, 0.0, 0.0, 0.6, None, False)


def rows(
    classifier: LexiconClassifier, files: list[str], folds: int
) -> tuple[list[tuple[int, Row]], list[tuple[int, list[Row]]], list[str]]:
    """Per item, with its fold: its topic row, and the rows of the targets it would list (none off-topic)."""
    from supervised_folds import labelled, out_of_fold  # beside this script (the tests load only fit())

    topic: list[tuple[int, Row]] = []
    targets: list[tuple[int, list[Row]]] = []
    groups: list[str] = []  # each topic row's language
    for k, item, w in out_of_fold(classifier, labelled(files), folds):
        groups.append(item.group)
        topic.append((k, (w.topic_features(), int(bool(item.targets)))))
        listed: list[Row] = []
        if item.targets:
            raw, _ = classifier.fused_targets(w)
            ranked = sorted(((v, n) for n, v in raw.items() if v >= MIN_TARGET_VALUE), reverse=True)
            top = ranked[0][0] if ranked else 0.0
            listed = [(calibration.target_features(v, top), int(n in item.targets))
                      for v, n in ranked[:MAX_TARGETS]]  # fmt: skip
        targets.append((k, listed))
    return topic, targets, groups


def fit(
    data: list[Row],
    signs: tuple[int, ...],
    anchor: tuple[float, ...] | None = None,
    l2: float = 0.01,
    steps: int = 3000,
) -> Logistic:
    """Logistic regression by gradient descent, each weight kept on its sign (0 = either).

    With an anchor, the bias is kept where the anchor's features get at least p = 0.5.
    """
    x = np.array([r for r, _ in data], dtype=float)
    y = np.array([t for _, t in data], dtype=float)
    w, b = np.zeros(len(signs)), 0.0
    pos = y.sum() or 1
    neg = (len(y) - y.sum()) or 1
    # Classes weighted equally: off-topic messages are few in the development part.
    cw = np.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg)) / len(y)
    positive, negative = np.array(signs) > 0, np.array(signs) < 0
    bound = None if anchor is None else np.array(anchor)
    rate = 0.5
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w + b, -30.0, 30.0)))
        g = (p - y) * cw
        b -= rate * g.sum()
        w -= rate * (x.T @ g + l2 * w)
        w[positive] = np.maximum(w[positive], 0.0)
        w[negative] = np.minimum(w[negative], 0.0)
        if bound is not None:
            b = max(b, -float(w @ bound))
    weights = tuple(round(float(v), 3) for v in w)
    bias = round(float(b), 3)
    if anchor is not None:
        # Rounding must not undo the anchor: the bias is rounded up as far as it needs.
        bias = max(bias, math.ceil(-sum(v * a for v, a in zip(weights, anchor, strict=True)) * 1000) / 1000)
    return Logistic(weights, bias)


def brier(model: Logistic, data: list[Row]) -> float:
    return sum((model(x) - y) ** 2 for x, y in data) / max(1, len(data))


def ece(model: Logistic, data: list[Row], bins: int = 10) -> float:
    """Expected calibration error: |mean probability - share correct| per tenth, weighted by items."""
    groups: dict[int, list[Row]] = {}
    for x, y in data:
        groups.setdefault(min(bins - 1, int(model(x) * bins)), []).append((x, y))
    return sum(abs(sum(model(x) for x, _ in g) / len(g) - sum(y for _, y in g) / len(g)) * len(g)
               for g in groups.values()) / max(1, len(data))  # fmt: skip


def abstention(model: Logistic, data: list[Row]) -> tuple[float, float]:
    off = [x for x, y in data if not y]
    on = [x for x, y in data if y]
    return (sum(model(x) < calibration.ON_TOPIC_MIN for x in off) / max(1, len(off)),
            sum(model(x) < calibration.ON_TOPIC_MIN for x in on) / max(1, len(on)))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    classifier = LexiconClassifier(load_knowledge_base())
    folded_topic, folded_targets, groups = rows(classifier, args.files, args.folds)
    topic = [r for _, r in folded_topic]
    targets = [rs for _, rs in folded_targets]
    folds = range(args.folds)
    oof_t: list[tuple[Logistic, list[Row]]] = []
    oof_o: list[tuple[Logistic, list[Row]]] = []
    for k in folds:
        train_t = [r for f, rs in folded_targets if f != k for r in rs]
        test_t = [r for f, rs in folded_targets if f == k for r in rs]
        train_o = [r for f, r in folded_topic if f != k]
        test_o = [r for f, r in folded_topic if f == k]
        oof_t.append((fit(train_t, (1, 1)), test_t))
        oof_o.append((fit(train_o, TOPIC_SIGNS, ANCHOR), test_o))
    all_t = [r for rs in targets for r in rs]

    def pooled(measure, pairs) -> float:  # type: ignore[no-untyped-def]
        return sum(measure(m, d) * len(d) for m, d in pairs) / sum(len(d) for _, d in pairs)

    # The map before calibration: 1 - exp(-value / 4), value recovered from log(1 + value).
    old = sum((1.0 - math.exp(-math.expm1(x[0]) / 4.0) - y) ** 2 for x, y in all_t) / len(all_t)
    now = calibration.TARGET
    print(f"target rows {len(all_t)}: before calibration (1 - exp(-v/4)) brier {old:.3f}")
    print(f"  calibration.py now: brier {brier(now, all_t):.3f} ece {ece(now, all_t):.3f}")
    print(f"  out of fold: brier {pooled(brier, oof_t):.3f} ece {pooled(ece, oof_t):.3f}")
    off, false = abstention(calibration.ON_TOPIC, topic)
    n_off = sum(1 - y for _, y in topic)
    print(f"topic rows {len(topic)} ({n_off} off-topic): calibration.py now: abstention {off:.3f} "
          f"false {false:.3f} brier {brier(calibration.ON_TOPIC, topic):.3f}")  # fmt: skip
    off = sum(abstention(m, d)[0] * sum(1 - y for _, y in d) for m, d in oof_o) / n_off
    false = sum(abstention(m, d)[1] * sum(y for _, y in d) for m, d in oof_o) / (len(topic) - n_off)
    print(f"  out of fold: abstention {off:.3f} false {false:.3f} brier {pooled(brier, oof_o):.3f}")
    # Per language, out of fold: each row judged by the map fitted without its fold.
    by_fold = dict(enumerate(m for m, _ in oof_o))
    per: dict[str, list[int]] = {}
    for (k, (x, y)), g in zip(folded_topic, groups, strict=True):
        row = per.setdefault(g, [0, 0, 0, 0])  # on-topic, set aside, off-topic, set aside
        aside = by_fold[k](x) < calibration.ON_TOPIC_MIN
        row[0 if y else 2] += 1
        row[1 if y else 3] += aside
    for g, (on, fa, off, ab) in sorted(per.items()):
        print(f"  {g:<10} false abstention {fa / max(on, 1):.3f} ({on}) "
              f"abstention {ab / max(off, 1):.3f} ({off})")  # fmt: skip
    print("fitted on all:")
    print(f"TARGET = {fit(all_t, (1, 1))}")
    print(f"ON_TOPIC = {fit(topic, TOPIC_SIGNS, ANCHOR)}")


if __name__ == "__main__":
    main()
