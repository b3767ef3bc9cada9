"""The Centre's knowledge base as data (targets, core functions, Parties, resources, experts) and its loader.

from knowledge import load_knowledge_base
kb = load_knowledge_base()            # the packaged data, validated
kb = load_knowledge_base(path)        # a directory whose files override the packaged ones
"""

from knowledge.errors import KnowledgeError
from knowledge.loader import load_knowledge_base, packaged_data_dir, packaged_knowledge_base
from knowledge.models import (
    AVAILABILITY,
    RESOURCE_TYPES,
    CoreFunction,
    Expert,
    KnowledgeBase,
    Party,
    Resource,
    Target,
    Vocabulary,
)
from knowledge.roster import dump_experts, dump_resources, load_experts_file, parse_experts

__all__ = [
    "AVAILABILITY",
    "RESOURCE_TYPES",
    "CoreFunction",
    "Expert",
    "KnowledgeBase",
    "KnowledgeError",
    "Party",
    "Resource",
    "Target",
    "Vocabulary",
    "dump_experts",
    "dump_resources",
    "load_experts_file",
    "load_knowledge_base",
    "packaged_data_dir",
    "packaged_knowledge_base",
    "parse_experts",
]
