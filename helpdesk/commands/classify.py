"""`helpdesk classify`: classify a text, or JSON Lines {"id","text"} from stdin; `--eval FILE` scores."""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from typing import TextIO

from helpdesk.classification import Classifier, LabelledExample, build_classifier
from helpdesk.classification.evaluate import evaluate, format_json, format_text, read_labelled
from knowledge import KnowledgeError, load_knowledge_base


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="classify request text against KM-GBF targets and core functions",
        description=(
            "Classify TEXT, or JSON Lines {'id', 'text'} read from stdin, printing one JSON line each: "
            "{id, language, targets, core_functions, party, unclassified}. With --eval FILE, score "
            "the classifier on labelled JSON Lines instead."
        ),
    )
    parser.add_argument("text", nargs="?", help="the request text (omit to read JSON Lines from stdin)")
    parser.add_argument("--eval", metavar="FILE", help="labelled JSON Lines to evaluate against")
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


def run(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if args.text is None and not args.eval and stdin.isatty():
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
    if args.eval:
        try:
            report = evaluate(classifier, read_labelled(args.eval))
        except (OSError, ValueError) as exc:
            print(f"helpdesk classify: {exc}", file=sys.stderr)
            return 2
        print(
            format_json(report) if args.format == "json" else format_text(report, show_misses=args.misses),
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
