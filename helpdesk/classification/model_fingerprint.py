"""Whether the shipped supervised model is still the one its inputs give, without fitting it again.

write_model.py stores a SHA-256 over everything the fit reads: every training file (name and bytes), the
parts of the knowledge base it reads (each target's official texts, the greetings it leaves out), the
trainer's parameters, and the source of the modules that turn text into features and fit them. The test
recomputes it in milliseconds instead of refitting for half a minute (tests/test_classifier_supervised.py).
Library versions (pymorphy3's dictionary, Snowball) are not in it: a dependency update that moved lemmas
would go unnoticed here, so write the model again after one.
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources.abc import Traversable
from pathlib import Path
from types import ModuleType

from helpdesk.classification import evaluate, language_id, supervised, text, training, word_shapes
from knowledge.models import KnowledgeBase

# The modules whose code decides a feature or a weight: the reading of text (text, language_id,
# word_shapes), the features (supervised), the labels and their parsing (evaluate), the fit (training).
FEATURE_MODULES: tuple[ModuleType, ...] = (evaluate, language_id, supervised, text, training, word_shapes)
STALE = "the supervised model is stale: run python -m helpdesk.classification.write_model"


def parameters() -> dict[str, object]:
    """The trainer's settings as they are at run time (a bench may change them before fitting)."""
    return {
        "secondary": training.SECONDARY_LABEL,
        "official": training.OFFICIAL_TEXT_WEIGHT,
        "l2": training.L2,
        "steps": training.STEPS,
        "rate": training.RATE,
        "prune": training.PRUNE,
        "roots_for_all": supervised.ROOTS_FOR_ALL,
        "cf_pairs": supervised.CF_PAIRS,
        "prefixes": list(word_shapes.PREFIXES),
        "min_word": word_shapes.MIN_WORD,
    }


def fingerprint(kb: KnowledgeBase, directory: Traversable | None = None) -> str:
    """SHA-256 (hex) over the training inputs: what write_model stores beside the weights."""
    digest = hashlib.sha256()

    def part(label: str, data: bytes) -> None:
        # Length-prefixed, so no two different sequences of parts hash alike.
        for piece in (label.encode(), data):
            digest.update(len(piece).to_bytes(8, "big"))
            digest.update(piece)

    for f in training.training_files(directory):
        part(f"training/{f.name}", f.read_bytes())
    texts = {n: training.official_text(t) for n, t in sorted(kb.targets.items())}
    part("targets", json.dumps(texts, ensure_ascii=False, sort_keys=True).encode())
    greetings = {lang: list(phrases) for lang, phrases in kb.noise.get("greeting", {}).items()}
    part("greetings", json.dumps(greetings, ensure_ascii=False, sort_keys=True).encode())
    part("parameters", json.dumps(parameters(), sort_keys=True).encode())
    for module in FEATURE_MODULES:
        source = Path(module.__file__ or "").read_bytes()
        part(f"source/{module.__name__}", source.replace(b"\r\n", b"\n"))
    return digest.hexdigest()
