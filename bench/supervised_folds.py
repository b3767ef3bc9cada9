"""Out-of-fold evidence for the supervised scorer: what bench/tune_fusion.py and calibrate_classifier.py read.

Items (the training corpus + development files; never the frozen part) are split into k folds by position;
each fold's requests are weighed by a classifier whose supervised scorer was trained on the other folds
only, so no request is scored by a model that saw it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from helpdesk.classification import training
from helpdesk.classification.classifier import LexiconClassifier, Weighed
from helpdesk.classification.evaluate import LabelledItem, read_labelled
from helpdesk.classification.model_fingerprint import fingerprint
from helpdesk.classification.supervised import SupervisedScorer, greeting_stems
from helpdesk.classification.training import train, training_set

TRAINING = Path(__file__).resolve().parent.parent / "knowledge" / "data" / "training"
CACHE = Path(__file__).resolve().parent / ".fold_models"  # fitted fold models (git-ignored)


def labelled(files: list[str], with_training: bool = True) -> list[LabelledItem]:
    if any("frozen" in f for f in files):
        raise SystemExit("the frozen part is never tuned on")
    items = training_set() if with_training else []
    return items + [i for f in files for i in read_labelled(f)]


def _fitted(classifier: LexiconClassifier, rest: list[LabelledItem], **params: float) -> SupervisedScorer:
    """The fold's model, from CACHE when the same items, settings and code were fitted before: a fit
    costs a quarter of a minute, and a change to fusion or to the lexicon does not change the fit."""
    digest = hashlib.sha256(fingerprint(classifier.kb).encode())
    defaults = {"l2": training.L2, "prune": training.PRUNE, "secondary": training.SECONDARY_LABEL,
                "official": training.OFFICIAL_TEXT_WEIGHT}  # fmt: skip
    digest.update(json.dumps(sorted({**defaults, **params}.items())).encode())
    for item in rest:
        digest.update(json.dumps([item.text, item.targets, item.core_functions], ensure_ascii=False).encode())
    path = CACHE / f"{digest.hexdigest()}.json"
    if path.exists():
        return SupervisedScorer.from_json(classifier.stemmer, json.loads(path.read_text("utf-8")),
                                          greeting_stems(classifier.kb, classifier.stemmer))  # fmt: skip
    scorer = train(classifier.kb, classifier.stemmer, rest, **params)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scorer.to_json()), encoding="utf-8")
    return scorer


def out_of_fold(
    classifier: LexiconClassifier, items: list[LabelledItem], folds: int = 5, **params: float
) -> Iterator[tuple[int, LabelledItem, Weighed]]:
    """(fold, item, evidence) for every item, its supervised scores from a model trained without its fold."""
    for k in range(folds):
        rest = [item for i, item in enumerate(items) if i % folds != k]
        classifier.supervised = _fitted(classifier, rest, **params)
        for i, item in enumerate(items):
            if i % folds == k:
                yield k, item, classifier.weigh(item.text)
