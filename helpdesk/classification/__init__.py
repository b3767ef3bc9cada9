"""Classification of requests against KM-GBF targets, TSCC core functions and Parties.

from helpdesk.classification import LabelledExample, build_classifier
classifier = build_classifier(kb).with_examples(staff_corrections)
result = classifier.classify(text, id="TSCC-2026-0042")
result.to_json()

Callers depend on the Classifier protocol only; build_classifier decides which implementation runs.
"""

from helpdesk.classification.examples import LabelledExample
from helpdesk.classification.factory import build_classifier
from helpdesk.classification.protocol import Classifier
from helpdesk.classification.result import Classification, CoreFunctionScore, TargetScore
from helpdesk.classification.text import detect_language, reply_language

__all__ = [
    "Classification",
    "Classifier",
    "CoreFunctionScore",
    "LabelledExample",
    "TargetScore",
    "build_classifier",
    "detect_language",
    "reply_language",
]
