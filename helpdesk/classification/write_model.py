"""Write the supervised scorer's model file from the packaged training data: `python -m` this module.

Run it after changing knowledge/data/training/, the targets' texts or the code that reads and fits them;
the staleness test (tests/test_classifier_supervised.py, by model_fingerprint.py) says when it is due.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpdesk.classification.model_fingerprint import fingerprint
from helpdesk.classification.training import MODEL_FILE, trained_model
from knowledge import load_knowledge_base
from knowledge.loader import packaged_data_dir


def model_text(model: dict[str, Any], stamp: str) -> str:
    """The model as JSON with one feature a line, so a retrained model's diff shows which words moved;
    the fingerprint of its inputs on the first line."""
    parts = ["{", f'"fingerprint": {json.dumps(stamp)},']
    for m, (name, nb) in enumerate(sorted(model.items())):
        parts.append(f'"{name}": {{"classes": {json.dumps(nb["classes"])}, "bias": {json.dumps(nb["bias"])},')
        parts.append('"weights": {')
        features = sorted(nb["weights"].items())
        for i, (feature, weights) in enumerate(features):
            comma = "," if i < len(features) - 1 else ""
            parts.append(f"{json.dumps(feature, ensure_ascii=False)}: {json.dumps(weights)}{comma}")
        parts.append("}}" + ("," if m < len(model) - 1 else ""))
    parts.append("}")
    return "\n".join(parts) + "\n"


def main() -> None:
    path = Path(str(packaged_data_dir() / MODEL_FILE))
    # Stamped before fitting: an input changed during the fit leaves a stamp the test finds stale.
    stamp = fingerprint(load_knowledge_base())
    path.write_text(model_text(trained_model(), stamp), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
