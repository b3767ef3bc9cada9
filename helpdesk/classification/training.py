"""Training the supervised scorer (supervised.py): its data, the fit, and the packaged result.

Training data: knowledge/data/training/*.jsonl (see its README), the same JSON Lines as the evaluator
reads; no evaluation item (development or frozen part) is among them. The model trained on them and on
the targets' official texts is shipped as knowledge/data/supervised_model.json, so building the classifier
only reads it (training takes seconds, over the build budget); a test fails when the file is stale. After
changing the corpus, the targets' texts or the fit, write it again: `python -m
helpdesk.classification.write_model`. The fit needs NumPy (the `dev` extra); the service never does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from importlib.resources.abc import Traversable
from typing import Any

from helpdesk.classification.evaluate import LabelledItem, parse_labelled
from helpdesk.classification.supervised import (
    OFF_TOPIC,
    LinearModel,
    SupervisedScorer,
    core_function_features,
    greeting_stems,
    stems,
)
from helpdesk.classification.text import Stemmer
from knowledge import load_knowledge_base
from knowledge.loader import packaged_data_dir
from knowledge.models import KnowledgeBase, Target

MODEL_FILE = "supervised_model.json"
# Chosen by k-fold cross-validation on the training corpus + development part (bench/tune_fusion.py).
SECONDARY_LABEL = 0.5  # a request's other labels count for this much beside its primary one
OFFICIAL_TEXT_WEIGHT = 1.0  # each target's official texts as one more labelled document
L2 = 3e-5
STEPS = 300
RATE = 0.1
# Weights this small move no probability by more than a rounding error; dropping them keeps the file small.
PRUNE = 0.3

Document = tuple[frozenset[str], dict[int, float]]


def training_files(directory: Traversable | None = None) -> list[Traversable]:
    """The directory's JSON Lines files in file-name order (so training is deterministic)."""
    root = directory if directory is not None else packaged_data_dir() / "training"
    return sorted((f for f in root.iterdir() if f.name.endswith(".jsonl")), key=lambda f: f.name)


def training_set(directory: Traversable | None = None) -> list[LabelledItem]:
    """Every labelled request of the directory's JSON Lines files."""
    return [
        item
        for f in training_files(directory)
        for item in parse_labelled(f.read_text("utf-8").splitlines(), f.name)
    ]


def official_text(target: Target) -> str:
    """A target's official texts as the one labelled document the fit adds for it."""
    return " . ".join((target.official_text_en, target.title_en, target.title_ru, *target.reference_texts))


def packaged_model() -> dict[str, Any]:
    return json.loads((packaged_data_dir() / MODEL_FILE).read_text("utf-8"))


def trained_model() -> dict[str, Any]:
    """The model as the packaged training data and knowledge base give it now (what the file must hold)."""
    return train(load_knowledge_base(), Stemmer(), training_set()).to_json()


def _labels(numbers: Sequence[int], secondary: float) -> dict[int, float]:
    out: dict[int, float] = {}
    for rank, n in enumerate(numbers):
        out.setdefault(n, 1.0 if rank == 0 else secondary)
    return out


def train(
    kb: KnowledgeBase,
    stemmer: Stemmer,
    training: Iterable[LabelledItem],
    *,
    secondary: float = SECONDARY_LABEL,
    official: float = OFFICIAL_TEXT_WEIGHT,
    l2: float = L2,
    prune: float = PRUNE,
) -> SupervisedScorer:
    """The scorer trained on these labelled requests and the knowledge base's target texts."""
    ignored = greeting_stems(kb, stemmer)
    target_docs: list[Document] = []
    cf_docs: list[Document] = []
    for item in training:
        feats = stems(item.text, stemmer, ignored)
        if not feats:
            continue
        target_docs.append((feats, _labels(item.targets, secondary) or {OFF_TOPIC: 1.0}))
        if item.targets and item.core_functions:
            cf_feats = core_function_features(item.text, feats, stemmer)
            cf_docs.append((cf_feats, _labels(item.core_functions, secondary)))
    if official:
        for n, t in sorted(kb.targets.items()):
            target_docs.append((stems(official_text(t), stemmer, ignored), {n: official}))
    return SupervisedScorer(
        stemmer,
        fit(target_docs, (OFF_TOPIC, *sorted(kb.targets)), l2, prune),
        fit(cf_docs, sorted(kb.core_functions), l2, prune),
        ignored,
    )


def fit(docs: list[Document], classes: Sequence[int], l2: float = L2, prune: float = PRUNE) -> LinearModel:
    """Multinomial logistic regression (soft labels: each document's label weights, summing to one) by
    full-batch Adam from zero, a fixed number of steps: deterministic, no random start."""
    import numpy as np  # development-time only: the service reads the fitted weights (supervised.py)

    vocab = sorted({f for feats, _ in docs for f in feats})
    index = {f: i for i, f in enumerate(vocab)}
    slot = {c: i for i, c in enumerate(classes)}
    rows = np.array([r for r, (feats, _) in enumerate(docs) for _ in feats])
    cols = np.array([index[f] for feats, _ in docs for f in sorted(feats)])
    n_docs, n_feats, n_classes = len(docs), len(vocab), len(classes)
    lengths = np.bincount(rows, minlength=n_docs)
    values = (1.0 / np.sqrt(lengths[rows]))[:, None]
    row_start = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    by_col = np.argsort(cols, kind="stable")
    col_start = np.concatenate(([0], np.cumsum(np.bincount(cols, minlength=n_feats))[:-1]))
    y = np.zeros((n_docs, n_classes))
    for r, (_, labels) in enumerate(docs):
        for c, weight in labels.items():
            y[r, slot[c]] = weight
    y /= y.sum(axis=1, keepdims=True)
    w = np.zeros((n_feats, n_classes))
    b = np.zeros(n_classes)
    state = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)]
    for step in range(1, STEPS + 1):
        z = np.add.reduceat(w[cols] * values, row_start, axis=0) + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - y) / n_docs
        gw = np.add.reduceat((g[rows] * values)[by_col], col_start, axis=0) + l2 * w
        gb = g.sum(axis=0)
        for param, grad, m, v in ((w, gw, state[0], state[1]), (b, gb, state[2], state[3])):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= RATE * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    weights = {
        f: [x for i in range(n_classes) if abs(w[j, i]) >= prune for x in (i, round(float(w[j, i]), 3))]
        for j, f in enumerate(vocab)
    }
    return LinearModel(classes, [round(float(x), 3) for x in b], {f: ws for f, ws in weights.items() if ws})
