"""`helpdesk kb validate|export|load`: check the knowledge base or a roster, export experts/resources."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from knowledge import (
    Expert,
    KnowledgeBase,
    KnowledgeError,
    dump_experts,
    dump_resources,
    load_experts_file,
    load_knowledge_base,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("kb", help="knowledge base: validate, export, load a roster")
    sub = parser.add_subparsers(title="kb commands", metavar="KB_COMMAND")

    validate = sub.add_parser(
        "validate",
        help="validate the packaged knowledge base, a KB directory, or a roster file",
        description="Validate PATH (a KB directory, or an experts .yaml/.csv roster; default: the "
        "packaged knowledge base) and print counts. Exit 1 with file, entry and field on error.",
    )
    validate.add_argument("path", nargs="?", help="KB directory or roster file")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.set_defaults(handler=validate_command)

    export = sub.add_parser("export", help="export experts or resources as YAML or CSV")
    export.add_argument("--what", choices=("experts", "resources"), required=True)
    export.add_argument("--format", choices=("yaml", "csv"), default="yaml")
    export.add_argument("--kb", metavar="DIR", help="knowledge base directory overriding the packaged data")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(handler=export_command)

    load = sub.add_parser("load", help="load an expert roster (.yaml or .csv) into the database")
    load.add_argument("path", help="roster file")
    load.set_defaults(handler=load_command)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def validate_path(path: str | None) -> dict[str, int]:
    """Counts for the packaged KB, a KB directory, or a roster file. Raises KnowledgeError."""
    if path is not None and Path(path).is_file():
        experts = load_experts_file(path)
        return {"experts": len(experts), "example_experts": sum(1 for e in experts if e.example)}
    kb: KnowledgeBase = load_knowledge_base(path)
    return kb.counts()


def validate_command(args: argparse.Namespace) -> int:
    try:
        counts = validate_path(args.path)
    except KnowledgeError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps({"valid": True, "counts": counts}))
    else:
        print("valid: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    return 0


def export_command(args: argparse.Namespace) -> int:
    try:
        kb = load_knowledge_base(args.kb)
    except KnowledgeError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    text = (
        dump_experts(kb.experts, args.format)
        if args.what == "experts"
        else dump_resources(kb.resources, args.format)
    )
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def parse_roster(path: str | Path) -> tuple[Expert, ...]:
    """The validated experts of a roster file, ready for storage. Raises KnowledgeError."""
    return load_experts_file(path)


async def load_command(args: argparse.Namespace) -> int:
    try:
        experts = parse_roster(args.path)
    except KnowledgeError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    from helpdesk.config import Settings
    from helpdesk.service import open_runtime
    from helpdesk.usecases.roster import load_roster

    async with open_runtime(Settings.from_env()) as runtime:
        count = await load_roster(runtime.desk, experts, actor=f"cli:{getpass.getuser()}")
    examples = sum(1 for e in experts if e.example)
    print(f"loaded {count} experts from {args.path} into the database ({examples} marked as examples)")
    return 0
