"""Classification of requests against KM-GBF targets, TSCC core functions and Parties.

from helpdesk.classification import Classifier, LabelledExample
classifier = Classifier(kb, examples=staff_corrections)
result = classifier.classify(text, id="TSCC-2026-0042")
result.to_json()
"""

from helpdesk.classification.classifier import Classifier
from helpdesk.classification.examples import LabelledExample
from helpdesk.classification.result import Classification, CoreFunctionScore, TargetScore
from helpdesk.classification.text import detect_language, reply_language

__all__ = [
    "Classification",
    "Classifier",
    "CoreFunctionScore",
    "LabelledExample",
    "TargetScore",
    "detect_language",
    "reply_language",
]
