"""`helpdesk classify`: classify a text, or JSON Lines {"id","text"} from stdin; `--eval FILE` scores."""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from typing import TextIO

from helpdesk.classification import Classifier, LabelledExample, build_classifier
from helpdesk.classification.evaluate import (
    evaluate_parts,
    format_json,
    format_parts_text,
    read_labelled,
)
from knowledge import KnowledgeError, load_knowledge_base


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="classify request text against KM-GBF targets and core functions",
        description=(
            "Classify TEXT, or JSON Lines {'id', 'text'} read from stdin, printing one JSON line each: "
            "{id, language, targets, core_functions, party, unclassified}. With --eval FILE (the development "
            "part) and/or --frozen FILE (the frozen test part), score the classifier on labelled JSON Lines "
            "instead, each part reported on its own."
        ),
    )
    parser.add_argument("text", nargs="?", help="the request text (omit to read JSON Lines from stdin)")
    parser.add_argument(
        "--eval", metavar="FILE", action="append", help="development part: labelled JSON Lines (repeatable)"
    )
    parser.add_argument(
        "--frozen",
        metavar="FILE",
        action="append",
        help="frozen test part, never tuned on: labelled JSON Lines reported apart (repeatable)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="--eval output format")
    parser.add_argument("--misses", action="store_true", help="with --eval: list every miss")
    parser.add_argument("--kb", metavar="DIR", help="knowledge base directory overriding the packaged data")
    parser.add_argument(
        "--examples",
        metavar="FILE",
        help="staff-labelled examples (JSON Lines with text, targets, core_functions) to learn from",
    )
    parser.set_defaults(handler=run, usage=parser.format_usage())


@lru_cache(maxsize=4)
def _classifier(kb_dir: str | None) -> Classifier:
    return build_classifier(load_knowledge_base(kb_dir))


def read_examples(path: str) -> list[LabelledExample]:
    return [
        LabelledExample(item.text, item.targets, item.core_functions, item.id)
        for item in read_labelled(path)
        if item.targets
    ]


def _files(value: str | list[str] | None) -> list[str]:
    return [value] if isinstance(value, str) else list(value or ())


def run(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    parts = {"development": _files(args.eval), "frozen": _files(getattr(args, "frozen", None))}
    evaluating = any(parts.values())
    if args.text is None and not evaluating and stdin.isatty():
        # Nobody is piping JSON Lines in: waiting for them would look like a hang.
        print(getattr(args, "usage", "").rstrip(), file=sys.stderr)
        print("helpdesk classify: give the TEXT, or pipe JSON Lines {'id', 'text'} on stdin", file=sys.stderr)
        return 2
    try:
        classifier = _classifier(args.kb)
    except KnowledgeError as exc:
        print(f"helpdesk classify: knowledge base: {exc}", file=sys.stderr)
        return 2
    if args.examples:
        classifier = classifier.with_examples(read_examples(args.examples))
    if evaluating:
        try:
            reports = evaluate_parts(
                classifier,
                {name: [i for f in files for i in read_labelled(f)] for name, files in parts.items()},
            )
        except (OSError, ValueError) as exc:
            print(f"helpdesk classify: {exc}", file=sys.stderr)
            return 2
        print(
            format_json(reports)
            if args.format == "json"
            else format_parts_text(reports, show_misses=args.misses),
            file=stdout,
        )
        return 0
    if args.text is not None:
        print(classifier.classify(args.text).to_json_line(), file=stdout)
        return 0
    failed = 0
    for n, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            text = item["text"]
            if not isinstance(text, str):
                raise TypeError("text must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            failed += 1
            print(f"helpdesk classify: stdin line {n}: expected {{'id', 'text'}}: {exc}", file=sys.stderr)
            continue
        ident = item.get("id")
        result = classifier.classify(text, id=None if ident is None else str(ident))
        print(result.to_json_line(), file=stdout)
    return 1 if failed else 0
