"""Typed, immutable records of the knowledge base."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeAlias

# A vocabulary maps a language key ("en", "ru", "other") to its phrases.
Vocabulary: TypeAlias = MappingProxyType[str, tuple[str, ...]]

AVAILABILITY = ("available", "limited", "unavailable")
RESOURCE_TYPES = (
    "standard",
    "guidance",
    "tool",
    "platform",
    "database",
    "funding",
    "network",
    "training",
    "convention",
    "case_studies",
)
PARTY_CODES = ("AM", "AZ", "BY", "KZ", "KG", "RU", "TJ", "TM", "UZ")


def _empty_vocab() -> Vocabulary:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Target:
    number: int
    title_en: str
    title_ru: str
    official_text_en: str
    strong: Vocabulary = field(default_factory=_empty_vocab)
    terms: Vocabulary = field(default_factory=_empty_vocab)
    weak: Vocabulary = field(default_factory=_empty_vocab)
    # The target's text in other languages from the CBD's own (unofficial) translations: wording for the
    # TF-IDF scorer, never shown as official.
    reference_texts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CoreFunction:
    number: int
    title_en: str
    title_ru: str
    text_en: str
    prior: float = 0.0
    strong: Vocabulary = field(default_factory=_empty_vocab)
    cues: Vocabulary = field(default_factory=_empty_vocab)


@dataclass(frozen=True, slots=True)
class Party:
    code: str
    iso3: str
    name_en: str
    name_ru: str
    name_national: str
    aliases: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    places: tuple[str, ...] = ()
    language_markers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resource:
    id: str
    title: str
    url: str
    type: str
    languages: tuple[str, ...]
    targets: tuple[int, ...]
    core_functions: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Expert:
    id: str
    name: str
    organisation: str = ""
    email: str = ""
    countries: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    targets: tuple[int, ...] = ()
    core_functions: tuple[int, ...] = ()
    availability: str = "available"
    max_open_tickets: int = 5
    example: bool = False
    # Their Telegram user id: referrals go to Telegram when they have started the bot (else by email).
    telegram_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "organisation": self.organisation,
            "email": self.email,
            "countries": list(self.countries),
            "languages": list(self.languages),
            "targets": list(self.targets),
            "core_functions": list(self.core_functions),
            "availability": self.availability,
            "max_open_tickets": self.max_open_tickets,
            "example": self.example,
            "telegram_id": self.telegram_id,
        }


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    targets: MappingProxyType[int, Target]
    core_functions: MappingProxyType[int, CoreFunction]
    parties: MappingProxyType[str, Party]
    resources: tuple[Resource, ...]
    experts: tuple[Expert, ...]
    # noise category -> language -> phrases that mark a message as not a request
    noise: MappingProxyType[str, Vocabulary] = field(default_factory=lambda: MappingProxyType({}))
    # words that show a message is about biodiversity at all, without naming a target
    domain: Vocabulary = field(default_factory=_empty_vocab)

    def counts(self) -> dict[str, int]:
        return {
            "targets": len(self.targets),
            "core_functions": len(self.core_functions),
            "parties": len(self.parties),
            "resources": len(self.resources),
            "experts": len(self.experts),
            "example_experts": sum(1 for e in self.experts if e.example),
        }

    def with_experts(self, experts: tuple[Expert, ...]) -> KnowledgeBase:
        return replace(self, experts=experts)

    def with_resources(self, resources: tuple[Resource, ...]) -> KnowledgeBase:
        return replace(self, resources=resources)
