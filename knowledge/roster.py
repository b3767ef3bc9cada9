"""Expert roster (and resource list) import and export, YAML or CSV.

CSV columns (header row required; extra columns are ignored):

    id, name, organisation, email, countries, languages, targets, core_functions,
    availability, max_open_tickets, example, telegram_id

List columns (countries, languages, targets, core_functions) hold values separated by ";" or ","
inside the cell, e.g. `KZ;UZ`, `ru;en`, `3;4;21`. availability is available | limited | unavailable
(default available); max_open_tickets defaults to 5; example is true/false (default false).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from knowledge.checks import Checker, entries, unique
from knowledge.errors import KnowledgeError
from knowledge.models import AVAILABILITY, PARTY_CODES, Expert, Resource

EXPERT_COLUMNS = (
    "id",
    "name",
    "organisation",
    "email",
    "countries",
    "languages",
    "targets",
    "core_functions",
    "availability",
    "max_open_tickets",
    "example",
    "telegram_id",
)
RESOURCE_COLUMNS = ("id", "title", "url", "type", "languages", "targets", "core_functions")
_LIST_COLUMNS = {"countries", "languages", "targets", "core_functions"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _expert(file: str, index: int, item: Any, seen: set[str]) -> Expert:
    eid = Checker(file, f"#{index}", item).text("id")
    c = Checker(file, f"expert {eid}", item)
    unique(file, seen, eid, f"expert {eid}", "id")
    email = c.text("email", required=False)
    if email and not _EMAIL.match(email):
        raise c.fail("email", f"{email!r} is not an e-mail address")
    return Expert(
        id=eid,
        name=c.text("name"),
        organisation=c.text("organisation", required=False),
        email=email,
        countries=c.choices("countries", PARTY_CODES, required=False),
        languages=c.languages("languages"),
        targets=c.numbers("targets", 1, 23),
        core_functions=c.numbers("core_functions", 1, 11, required=False),
        availability=c.choice("availability", AVAILABILITY, default="available"),
        max_open_tickets=c.number("max_open_tickets", 0, 1000, default=5),
        example=c.flag("example"),
        telegram_id=None if c.data.get("telegram_id") in (None, "") else c.number("telegram_id", 1, 2**52),
    )


def parse_experts(doc: Any, file: str = "experts.yaml") -> tuple[Expert, ...]:
    seen: set[str] = set()
    return tuple(_expert(file, i, item, seen) for i, item in enumerate(entries(file, doc, "experts"), 1))


def split_cell(cell: str) -> list[str]:
    """A list typed into one cell or form field: values separated by ";" or ","."""
    return [p.strip() for p in re.split(r"[;,]", cell) if p.strip()]


def parse_experts_csv(text: str, file: str = "experts.csv") -> tuple[Expert, ...]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise KnowledgeError(file, None, None, "empty file: a header row is required")
    header = [h.strip() for h in reader.fieldnames]
    for col in ("id", "name", "languages", "targets"):
        if col not in header:
            raise KnowledgeError(file, None, col, "column missing from the header row")
    seen: set[str] = set()
    out = []
    # Row numbers count the header as line 1, as a spreadsheet shows them.
    for line, row in enumerate(reader, 2):
        item: dict[str, Any] = {}
        for key, value in row.items():
            if key is None:
                continue
            key = key.strip()
            value = (value or "").strip()
            if key in _LIST_COLUMNS:
                item[key] = split_cell(value)
            elif value:
                item[key] = value
        out.append(_expert(file, line - 1, item, seen) if item.get("id") else _missing_id(file, line))
    return tuple(out)


def _missing_id(file: str, line: int) -> Expert:
    raise KnowledgeError(file, f"line {line}", "id", "is missing or empty")


def load_experts_file(path: str | Path) -> tuple[Expert, ...]:
    """Validated experts from a roster file: .yaml/.yml (top-level `experts:` list) or .csv."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # spreadsheets often save CSV with a BOM
    except FileNotFoundError:
        raise KnowledgeError(str(p), None, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise KnowledgeError(str(p), None, None, f"not UTF-8 text: {exc}") from None
    if p.suffix.lower() == ".csv":
        return parse_experts_csv(text, str(p))
    if p.suffix.lower() in {".yaml", ".yml"}:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise KnowledgeError(str(p), None, None, f"invalid YAML: {exc}") from None
        return parse_experts(doc, str(p))
    raise KnowledgeError(str(p), None, None, "a roster must be a .yaml, .yml or .csv file")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv(rows: Iterable[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k, "")) for k in columns})
    return buf.getvalue()


def dump_experts(experts: Iterable[Expert], fmt: str = "yaml") -> str:
    """The roster as YAML (the `experts:` document load_experts_file reads) or CSV."""
    rows = [e.as_dict() for e in experts]
    if fmt == "csv":
        return _csv(rows, EXPERT_COLUMNS)
    if fmt == "yaml":
        return yaml.safe_dump({"experts": rows}, allow_unicode=True, sort_keys=False, width=110)
    raise ValueError(f"unknown format {fmt!r}: yaml or csv")


def resource_document(r: Resource) -> dict[str, Any]:
    """A resource as a resources.yaml entry."""
    return {
        "id": r.id,
        "title": r.title,
        "url": r.url,
        "type": r.type,
        "languages": list(r.languages),
        "targets": list(r.targets),
        "core_functions": list(r.core_functions),
    }


def dump_resources(resources: Iterable[Resource], fmt: str = "yaml") -> str:
    rows = [resource_document(r) for r in resources]
    if fmt == "csv":
        return _csv(rows, RESOURCE_COLUMNS)
    if fmt == "yaml":
        return yaml.safe_dump({"resources": rows}, allow_unicode=True, sort_keys=False, width=110)
    raise ValueError(f"unknown format {fmt!r}: yaml or csv")
