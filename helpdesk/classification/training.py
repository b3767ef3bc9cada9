"""The supervised scorer's training data and its trained model, both packaged in knowledge/data/.

Training data: knowledge/data/training/*.jsonl (see its README), the same JSON Lines as the evaluator
reads; no evaluation item (development or frozen part) is among them. The model trained on them and on
the targets' official texts is shipped as knowledge/data/supervised_model.json, so building the classifier
only reads it (training costs more than the build budget, most of it lemmatising the corpus); a test fails
when it is stale. After changing the corpus, the targets' texts or the scorer, write it again:

    python -m helpdesk.classification.write_model
"""

from __future__ import annotations

import json
from importlib.resources.abc import Traversable
from typing import Any

from helpdesk.classification.evaluate import LabelledItem, parse_labelled
from helpdesk.classification.supervised import train
from helpdesk.classification.text import Stemmer
from knowledge import load_knowledge_base
from knowledge.loader import packaged_data_dir

MODEL_FILE = "supervised_model.json"


def training_set(directory: Traversable | None = None) -> list[LabelledItem]:
    """Every labelled request of the directory's JSON Lines files, in file-name order (so training is
    deterministic)."""
    root = directory if directory is not None else packaged_data_dir() / "training"
    files = sorted((f for f in root.iterdir() if f.name.endswith(".jsonl")), key=lambda f: f.name)
    return [item for f in files for item in parse_labelled(f.read_text("utf-8").splitlines(), f.name)]


def packaged_model() -> dict[str, Any]:
    return json.loads((packaged_data_dir() / MODEL_FILE).read_text("utf-8"))


def trained_model() -> dict[str, Any]:
    """The model as the packaged training data and knowledge base give it now (what the file must hold)."""
    return train(load_knowledge_base(), Stemmer(), training_set()).to_json()
