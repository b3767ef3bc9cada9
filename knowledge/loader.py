"""Load and validate the knowledge base from YAML (packaged data, optionally overridden by a directory)."""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from functools import cache
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from knowledge.checks import Checker, entries, unique
from knowledge.errors import KnowledgeError
from knowledge.models import (
    PARTY_CODES,
    RESOURCE_TYPES,
    CoreFunction,
    KnowledgeBase,
    Party,
    Resource,
    Target,
)
from knowledge.roster import load_experts_file, parse_experts

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml keeps start-up well under a second

FILES = (
    "targets.yaml",
    "core_functions.yaml",
    "parties.yaml",
    "resources.yaml",
    "experts.yaml",
    "noise.yaml",
    "domain.yaml",
)


def packaged_data_dir() -> Traversable:
    # importlib.resources finds the data inside an installed wheel as well as in a source checkout.
    return importlib.resources.files("knowledge") / "data"


def read_yaml(source: Traversable | Path, name: str) -> Any:
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KnowledgeError(name, None, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise KnowledgeError(name, None, None, f"not UTF-8 text: {exc}") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise KnowledgeError(name, None, None, f"invalid YAML: {exc}") from None


def parse_targets(doc: Any, file: str = "targets.yaml") -> MappingProxyType[int, Target]:
    out: dict[int, Target] = {}
    for i, item in enumerate(entries(file, doc, "targets"), 1):
        c = Checker(file, f"#{i}", item)
        n = c.number("number", 1, 23)
        c = Checker(file, f"target {n}", item)
        if n in out:
            raise c.fail("number", f"duplicate target {n}")
        out[n] = Target(
            number=n,
            title_en=c.text("title_en"),
            title_ru=c.text("title_ru"),
            official_text_en=c.text("official_text_en"),
            strong=c.vocabulary("strong", required=True),
            terms=c.vocabulary("terms"),
            weak=c.vocabulary("weak"),
            reference_texts=c.texts("reference_texts"),
        )
    missing = sorted(set(range(1, 24)) - set(out))
    if missing:
        raise KnowledgeError(file, None, "targets", f"targets missing: {missing}")
    return MappingProxyType(dict(sorted(out.items())))


def parse_core_functions(doc: Any, file: str = "core_functions.yaml") -> MappingProxyType[int, CoreFunction]:
    out: dict[int, CoreFunction] = {}
    for i, item in enumerate(entries(file, doc, "core_functions"), 1):
        n = Checker(file, f"#{i}", item).number("number", 1, 11)
        c = Checker(file, f"core function {n}", item)
        if n in out:
            raise c.fail("number", f"duplicate core function {n}")
        out[n] = CoreFunction(
            number=n,
            title_en=c.text("title_en"),
            title_ru=c.text("title_ru"),
            text_en=c.text("text_en"),
            prior=c.real("prior", 0.0, 5.0, default=0.0),
            strong=c.vocabulary("strong", required=True),
            cues=c.vocabulary("cues"),
        )
    missing = sorted(set(range(1, 12)) - set(out))
    if missing:
        raise KnowledgeError(file, None, "core_functions", f"core functions missing: {missing}")
    return MappingProxyType(dict(sorted(out.items())))


def parse_parties(doc: Any, file: str = "parties.yaml") -> MappingProxyType[str, Party]:
    out: dict[str, Party] = {}
    for i, item in enumerate(entries(file, doc, "parties"), 1):
        code = Checker(file, f"#{i}", item).choice("code", [p.lower() for p in PARTY_CODES]).upper()
        c = Checker(file, f"party {code}", item)
        if code in out:
            raise c.fail("code", f"duplicate Party {code}")
        domains = c.texts("domains", required=True)
        for d in domains:
            if " " in d or "." not in d:
                raise c.fail("domains", f"{d!r} is not a domain or domain suffix")
        out[code] = Party(
            code=code,
            iso3=c.text("iso3"),
            name_en=c.text("name_en"),
            name_ru=c.text("name_ru"),
            name_national=c.text("name_national"),
            aliases=c.texts("aliases"),
            domains=tuple(d.lower() for d in domains),
            places=c.texts("places", required=True),
            language_markers=c.texts("language_markers"),
        )
    missing = sorted(set(PARTY_CODES) - set(out))
    if missing:
        raise KnowledgeError(file, None, "parties", f"Parties missing: {missing}")
    return MappingProxyType(out)


def parse_resources(doc: Any, file: str = "resources.yaml") -> tuple[Resource, ...]:
    out: list[Resource] = []
    seen: set[str] = set()
    for i, item in enumerate(entries(file, doc, "resources"), 1):
        rid = Checker(file, f"#{i}", item).text("id")
        c = Checker(file, f"resource {rid}", item)
        unique(file, seen, rid, f"resource {rid}", "id")
        out.append(
            Resource(
                id=rid,
                title=c.text("title"),
                url=c.url("url"),
                type=c.choice("type", RESOURCE_TYPES),
                languages=c.languages("languages"),
                targets=c.numbers("targets", 1, 23),
                core_functions=c.numbers("core_functions", 1, 11, required=False),
            )
        )
    return tuple(out)


def parse_noise(doc: Any, file: str = "noise.yaml") -> MappingProxyType[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("noise"), dict):
        raise KnowledgeError(file, None, "noise", "the file must have a top-level 'noise' mapping")
    out = {}
    for category, vocab in doc["noise"].items():
        out[str(category)] = Checker(file, str(category), {"phrases": vocab}).vocabulary("phrases")
    return MappingProxyType(out)


def parse_domain(doc: Any, file: str = "domain.yaml") -> Any:
    if not isinstance(doc, dict) or "domain" not in doc:
        raise KnowledgeError(file, None, "domain", "the file must have a top-level 'domain' mapping")
    return Checker(file, "domain", doc).vocabulary("domain", required=True)


def _source(directory: Path | None, name: str) -> tuple[Traversable | Path, str]:
    if directory is not None and (directory / name).is_file():
        return directory / name, str(directory / name)
    return packaged_data_dir() / name, f"knowledge/data/{name}"


def load_knowledge_base(directory: str | Path | None = None) -> KnowledgeBase:
    """The packaged knowledge base; files present in `directory` replace the packaged ones.

    A roster may be given as experts.yaml or experts.csv in that directory. Raises KnowledgeError.
    """
    root = Path(directory) if directory is not None else None
    if root is not None and not root.is_dir():
        raise KnowledgeError(str(root), None, None, "not a directory")

    def part(name: str, parse: Callable[[Any, str], Any]) -> Any:
        source, label = _source(root, name)
        return parse(read_yaml(source, label), label)

    targets = part("targets.yaml", parse_targets)
    core_functions = part("core_functions.yaml", parse_core_functions)
    parties = part("parties.yaml", parse_parties)
    resources = part("resources.yaml", parse_resources)
    noise = part("noise.yaml", parse_noise)
    domain = part("domain.yaml", parse_domain)
    if root is not None and (root / "experts.csv").is_file():
        experts = load_experts_file(root / "experts.csv")
    else:
        source, label = _source(root, "experts.yaml")
        experts = parse_experts(read_yaml(source, label), label)
    return KnowledgeBase(targets, core_functions, parties, resources, experts, noise, domain)


@cache
def packaged_knowledge_base() -> KnowledgeBase:
    """The packaged knowledge base, read once per process (call it off the event loop the first time)."""
    return load_knowledge_base()
