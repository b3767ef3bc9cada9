"""`helpdesk requester export|forget|retention`: a person's data, their erasure, and the retention period."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from pathlib import Path

from helpdesk.config import ConfigError, Settings
from helpdesk.service import open_runtime
from helpdesk.usecases.personal_data.export import export_person
from helpdesk.usecases.personal_data.forget import forget_person
from helpdesk.usecases.personal_data.person import Person
from helpdesk.usecases.personal_data.retention import apply_retention


def register(subparsers: argparse._SubParsersAction) -> None:
    requester = subparsers.add_parser(
        "requester",
        help="personal data: export or forget a person; the retention period",
        description="What the help desk holds on a person (export), erasing it while the ticket "
        "statistics stay (forget), and anonymising tickets closed longer ago than "
        "HELPDESK_RETENTION_MONTHS (retention).",
    )
    actions = requester.add_subparsers(title="requester commands", metavar="ACTION", required=True)

    export = actions.add_parser(
        "export",
        help="everything held on a person, as JSON",
        description="The requester row(s), their tickets with every message (staff replies and internal "
        "notes about them included unless --no-notes), attachments' metadata, messages they wrote on other "
        "tickets, participations, audit events they caused, messages addressed to them, automatic-reply "
        "records, dead letters mentioning their address or Telegram id, and labelled examples from their "
        "tickets. Nothing about other requesters.",
    )
    _selector(export)
    export.add_argument("--out", type=Path, help="write the JSON to this file (default: standard output)")
    export.add_argument(
        "--attachment-data", action="store_true", help="include each stored attachment's bytes (base64)"
    )
    export.add_argument(
        "--no-notes",
        action="store_true",
        help="leave out internal staff notes (included by default: notes about a person are their data)",
    )
    export.set_defaults(handler=_export)

    forget = actions.add_parser(
        "forget",
        help="erase a person, keeping the ticket statistics",
        description="Replace the person by a pseudonym (forgotten-<id>) and erase what they wrote and what "
        "identifies them: names, addresses, Telegram ids, message texts, attachments, outgoing messages to "
        "them, participations, dead letters, labelled examples. Ticket rows (status, times, channel, Party, "
        "classification) stay, so reports keep their figures. Running it again changes nothing.",
    )
    _selector(forget)
    forget.add_argument(
        "--yes", action="store_true", help="do it without asking (required when not a terminal)"
    )
    forget.add_argument("--as", dest="actor", help="who is acting (default: cli:<login name>)")
    forget.add_argument("--format", choices=("text", "json"), default="text")
    forget.set_defaults(handler=_forget)

    retention = actions.add_parser(
        "retention",
        help="anonymise tickets closed more than HELPDESK_RETENTION_MONTHS ago (for cron)",
        description="Tickets closed longer ago than the retention period lose their messages, attachments "
        "and subject; a requester with no newer ticket is forgotten. `helpdesk run` does this by itself "
        "every few hours when HELPDESK_RETENTION_MONTHS is set.",
    )
    mode = retention.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="list what would be anonymised, change nothing")
    mode.add_argument("--apply", action="store_true", help="anonymise")
    retention.add_argument(
        "--months", type=int, help="retention period in months (default: HELPDESK_RETENTION_MONTHS)"
    )
    retention.add_argument("--format", choices=("text", "json"), default="text")
    retention.set_defaults(handler=_retention)


def _selector(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="the person's email address")
    who.add_argument("--telegram-id", type=int, help="the person's Telegram user id")
    who.add_argument("--id", dest="requester_id", type=int, help="the requester's row id")


def _person(args: argparse.Namespace) -> Person:
    return Person(email=args.email, telegram_id=args.telegram_id, requester_id=args.requester_id)


async def _export(args: argparse.Namespace) -> int:
    person = _person(args)
    async with open_runtime(Settings.from_env()) as runtime:
        data = await export_person(
            runtime.desk,
            person,
            include_notes=not args.no_notes,
            include_attachment_data=args.attachment_data,
        )
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if args.out is not None:
        await asyncio.to_thread(args.out.write_text, text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if not data["requesters"]:
        print(f"helpdesk requester export: no requester with {person.describe()}", file=sys.stderr)
    return 0


async def _forget(args: argparse.Namespace) -> int:
    person = _person(args)
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"helpdesk requester forget: this erases {person.describe()} for good; "
                "add --yes to confirm (not a terminal, so nothing was asked)",
                file=sys.stderr,
            )
            return 2
        answer = await asyncio.to_thread(
            input, f"Erase everything held on {person.describe()}? This cannot be undone. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed", file=sys.stderr)
            return 1
    actor = args.actor or f"cli:{getpass.getuser()}"
    async with open_runtime(Settings.from_env()) as runtime:
        result = await forget_person(runtime.desk, person, actor=actor)
    if args.format == "json":
        print(json.dumps({"pseudonym": result.pseudonym, **result.counts()}, indent=2))
    elif not result.found:
        print(f"nothing held on {person.describe()} (already forgotten, or never known)")
    else:
        counts = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in result.counts().items() if n)
        print(
            f"forgot {person.describe()}"
            + (f" as {result.pseudonym}" if result.pseudonym else "")
            + f": {counts}"
        )
    return 0


async def _retention(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    months = args.months if args.months is not None else settings.retention_months
    if months <= 0:
        raise ConfigError(
            "HELPDESK_RETENTION_MONTHS is not set (or 0: keep forever); set it or pass --months"
        )
    async with open_runtime(settings) as runtime:
        result = await apply_retention(runtime.desk, months, apply=args.apply)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "months": months,
                    "cutoff": result.cutoff.isoformat(),
                    "applied": result.applied,
                    "tickets": result.tickets,
                    "requesters": result.requesters,
                },
                indent=2,
            )
        )
        return 0
    verb = "anonymised" if args.apply else "would anonymise"
    print(
        f"{verb} {len(result.tickets)} tickets closed before {result.cutoff.date().isoformat()}"
        f" and {'forgot' if args.apply else 'would forget'} {len(result.requesters)} requesters"
    )
    for reference in result.tickets:
        print(f"  {reference}")
    return 0
