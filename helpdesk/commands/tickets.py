"""`helpdesk tickets list|search|show|assign|reply|note|status|close|merge`: the staff desk on the CLI.

The matchmaking commands (refer, introduce, cooperation, outcome) are in ``referrals.py``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from helpdesk import lifecycle
from helpdesk.commands import referrals as referral_commands
from helpdesk.commands import tickets_search
from helpdesk.config import Settings
from helpdesk.service import open_runtime
from helpdesk.usecases.assign import assign
from helpdesk.usecases.listing import TicketFilter, list_tickets, show_ticket
from helpdesk.usecases.merge import merge
from helpdesk.usecases.note import add_note
from helpdesk.usecases.reclassify import reclassify
from helpdesk.usecases.reply import reply
from helpdesk.usecases.status import close, set_status
from knowledge import load_knowledge_base


def register(subparsers: argparse._SubParsersAction) -> None:
    tickets = subparsers.add_parser("tickets", help="list, show and act on tickets")
    actions = tickets.add_subparsers(title="ticket commands", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list tickets, newest first")
    listing.add_argument(
        "--status", choices=(*lifecycle.Status, "active"), help="only this status (active: not resolved)"
    )
    listing.add_argument("--channel", choices=("telegram", "email"))
    listing.add_argument("--party", type=_party, help="ISO code of the Party, e.g. UZ")
    listing.add_argument("--assignee", help="staff handle, or 'none' for unassigned")
    listing.add_argument("--limit", type=_positive, default=100)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)

    tickets_search.register(actions)

    show = actions.add_parser("show", help="one ticket with its messages and history")
    show.add_argument("reference")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(handler=_show)

    for name, help_text, handler in (
        ("reply", "answer the requester on the ticket's own channel", _reply),
        ("note", "add an internal note (never sent)", _note),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("reference")
        action.add_argument("text", help="the text, or - to read it from standard input")
        _actor_option(action)
        action.set_defaults(handler=handler)

    assign_parser = actions.add_parser("assign", help="assign to a staff member ('none' to unassign)")
    assign_parser.add_argument("reference")
    assign_parser.add_argument("assignee")
    _actor_option(assign_parser)
    assign_parser.set_defaults(handler=_assign)

    status = actions.add_parser("status", help="set the status (open, waiting, resolved, closed)")
    status.add_argument("reference")
    status.add_argument("status", choices=lifecycle.SETTABLE)
    _actor_option(status)
    status.set_defaults(handler=_status)

    reclassify_parser = actions.add_parser(
        "reclassify",
        help="set KM-GBF targets and core functions (the classifier learns from it)",
        description="Set the ticket's KM-GBF targets (subject of the request first) and TSCC core functions. "
        "Matching re-runs, and similar requests are classified this way from now on.",
    )
    reclassify_parser.add_argument("reference")
    reclassify_parser.add_argument("--targets", required=True, type=_numbers, help="e.g. 3,1")
    reclassify_parser.add_argument("--core-functions", default=[], type=_numbers, help="e.g. 5,2")
    _actor_option(reclassify_parser)
    reclassify_parser.set_defaults(handler=_reclassify)

    close_parser = actions.add_parser("close", help="close a ticket")
    close_parser.add_argument("reference")
    _actor_option(close_parser)
    close_parser.set_defaults(handler=_close)

    merge_parser = actions.add_parser(
        "merge", help="merge ticket A into ticket B (same requester); A is closed with a pointer to B"
    )
    merge_parser.add_argument("merged", metavar="A")
    merge_parser.add_argument("into", metavar="B")
    _actor_option(merge_parser)
    merge_parser.set_defaults(handler=_merge)

    referral_commands.register(actions, _actor_option, _actor)


def _numbers(value: str) -> list[int]:
    try:
        return [int(part) for part in value.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {value!r}") from None


def _party(value: str) -> str:
    # The Parties are the knowledge base's, read only when --party is given (the parser is built for
    # every command).
    codes = sorted(load_knowledge_base().parties)
    code = value.strip().upper()
    if code not in codes:
        raise argparse.ArgumentTypeError(f"unknown Party {value!r} (choose from {', '.join(codes)})")
    return code


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {value!r}")
    return number


def _actor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as", dest="actor", help="who is acting (default: cli:<login name>)")


def _actor(args: argparse.Namespace) -> str:
    return args.actor or f"cli:{getpass.getuser()}"


def _text(args: argparse.Namespace) -> str:
    return sys.stdin.read() if args.text == "-" else args.text


async def _list(args: argparse.Namespace) -> int:
    where = TicketFilter(
        status=args.status, channel=args.channel, party=args.party, assignee=args.assignee, limit=args.limit
    )
    async with open_runtime(Settings.from_env()) as runtime:
        rows = await list_tickets(runtime.desk, where)
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no tickets")
        return 0
    print(f"{'REFERENCE':<16} {'STATUS':<9} {'CHANNEL':<9} {'PARTY':<5} {'ASSIGNEE':<12} SUBJECT")
    for row in rows:
        subject = row["subject"] if len(row["subject"]) <= 60 else row["subject"][:59] + "…"
        print(
            f"{row['reference']:<16} {row['status']:<9} {row['channel']:<9} {row['party'] or '-':<5} "
            f"{row['assignee'] or '-':<12} {subject}"
        )
    return 0


async def _show(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        ticket = await show_ticket(runtime.desk, args.reference)
    if args.format == "json":
        print(json.dumps(ticket, ensure_ascii=False, indent=2))
    else:
        print(_show_text(ticket))
    return 0


def _show_text(ticket: dict[str, Any]) -> str:
    requester = ticket["requester"]
    who = requester["name"] or "-"
    contact = requester["email"] or (
        f"telegram {requester['telegram_user_id']}" if requester["telegram_user_id"] else ""
    )
    lines = [
        f"{ticket['reference']}  {ticket['subject']}",
        f"status {ticket['status']} · channel {ticket['channel']} · party {ticket['party'] or '-'} · "
        f"language {ticket['language'] or '-'} · assignee {ticket['assignee'] or '-'}",
        f"requester {who} <{contact}>",
        f"created {ticket['created_at']}",
        "classification: " + _classification_line(ticket["classification"]),
    ]
    for expert in (ticket.get("matches") or {}).get("experts", [])[:3]:
        lines.append(f"  expert {expert['name']} ({expert['expert']}): {'; '.join(expert['reasons'][:3])}")
    for resource in (ticket.get("matches") or {}).get("resources", [])[:3]:
        lines.append(f"  resource {resource['title']}: {resource['url']}")
    lines.append("")
    for message in ticket["messages"]:
        delivery = message["delivery"]
        state = (
            f" [{delivery['status']}{', ' + delivery['last_error'] if delivery['last_error'] else ''}]"
            if delivery
            else ""
        )
        mark = " [UNVERIFIED SENDER]" if message.get("unverified") else ""
        lines.append(f"--- {message['kind']} by {message['author']} at {message['at']}{mark}{state}")
        lines.append(message["text"].rstrip())
        lines.extend(f"    attachment: {a['filename']} ({a['size']} bytes)" for a in message["attachments"])
        lines.append("")
    if ticket["referrals"]:
        lines.append("referrals:")
        lines.extend(
            f"  R{r['id']} {r['expert'] or r['organisation']} ({r['channel']}): {r['stage']}"
            for r in ticket["referrals"]
        )
    lines.append("history:")
    lines.extend(
        f"  {e['at']} {e['actor']} {e['action']} {json.dumps(e['detail'], ensure_ascii=False)}"
        for e in ticket["audit"]
    )
    return "\n".join(lines)


async def _reply(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        ticket = await reply(runtime.desk, args.reference, _text(args), actor=_actor(args))
        print(
            f"{ticket.reference}: reply queued for the requester ({ticket.channel}); status {ticket.status}"
        )
        if ticket.channel in runtime.senders:
            # Try now rather than wait for `helpdesk run`; what fails stays queued for its retries.
            await runtime.worker.deliver_due()
            ticket_view = await show_ticket(runtime.desk, ticket.reference)
            delivery = ticket_view["messages"][-1]["delivery"]
            if delivery and delivery["status"] == "sent":
                print(f"{ticket.reference}: delivered")
            elif delivery:
                reason = delivery["last_error"] or delivery["status"]
                print(f"{ticket.reference}: not delivered yet ({reason}); will retry")
        else:
            print(
                f"{ticket.reference}: {ticket.channel} is not configured here; `helpdesk run` will deliver it"
            )
    return 0


async def _note(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        ticket = await add_note(runtime.desk, args.reference, _text(args), actor=_actor(args))
    print(f"{ticket.reference}: note added")
    return 0


async def _assign(args: argparse.Namespace) -> int:
    assignee = None if args.assignee.lower() == "none" else args.assignee
    async with open_runtime(Settings.from_env()) as runtime:
        ticket = await assign(runtime.desk, args.reference, assignee, actor=_actor(args))
    print(f"{ticket.reference}: assigned to {ticket.assignee or 'nobody'}; status {ticket.status}")
    return 0


async def _status(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        ticket = await set_status(runtime.desk, args.reference, args.status, actor=_actor(args))
    print(f"{ticket.reference}: status {ticket.status}")
    return 0


async def _reclassify(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        ticket = await reclassify(
            runtime.desk, args.reference, args.targets, args.core_functions, actor=_actor(args)
        )
    print(f"{ticket.reference}: {_classification_line(ticket.classification)}")
    experts = (ticket.matches or {}).get("experts", [])
    if experts:
        print("experts: " + ", ".join(f"{e['name']} ({e['expert']})" for e in experts[:3]))
    return 0


def _classification_line(classification: dict[str, Any] | None) -> str:
    if classification is None:
        return "not classified"
    if classification.get("unclassified"):
        return "unclassified (no KM-GBF target fits)"
    targets = ", ".join(f"T{t['target']} {t['score']:.2f}" for t in classification["targets"][:3])
    functions = ", ".join(
        f"CF{c['core_function']} {c['score']:.2f}" for c in classification["core_functions"][:2]
    )
    source = " (set by staff)" if classification.get("source") == "staff" else ""
    return f"targets {targets}; core functions {functions or '-'}{source}"


async def _close(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        ticket = await close(runtime.desk, args.reference, actor=_actor(args))
    print(f"{ticket.reference}: closed")
    return 0


async def _merge(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        ticket = await merge(runtime.desk, args.merged, args.into, actor=_actor(args))
    print(f"{args.merged.upper()}: merged into {ticket.reference} and closed")
    return 0
