"""Matching a classified request to experts and resources, each match with its reasons.

matcher = Matcher(kb)
matcher.experts(classification, load={"ex-003": 2}, limit=5)
matcher.resources(classification, language="ru", limit=5)
matcher.acknowledgement_resources(classification)   # up to three, in the requester's language
"""

from helpdesk.matching.matcher import ExpertMatch, Matcher, ResourceMatch

__all__ = ["ExpertMatch", "Matcher", "ResourceMatch"]
