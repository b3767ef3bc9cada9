"""`helpdesk mail poll [--once]`: fetch waiting mail into tickets (for cron, or to check a mailbox);
`helpdesk mail dead-letters list|show|retry`: mail that could not become a ticket."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from helpdesk.config import ConfigError, Settings
from helpdesk.email.imap_mailbox import ImapError
from helpdesk.email.intake import retry_dead_letter
from helpdesk.email.parse import EmailParseError, load_message
from helpdesk.service import open_runtime
from helpdesk.usecases.dead_letters import get_dead_letter, list_dead_letters, summary


def register(subparsers: argparse._SubParsersAction) -> None:
    mail = subparsers.add_parser("mail", help="the email channel")
    actions = mail.add_subparsers(title="mail commands", metavar="ACTION", required=True)
    poll = actions.add_parser("poll", help="fetch waiting mail into tickets")
    poll.add_argument(
        "--once", action="store_true", help="fetch everything waiting, send the receipts, and exit"
    )
    poll.set_defaults(handler=_poll)

    dead = actions.add_parser("dead-letters", help="mail that could not become a ticket, kept raw")
    dead_actions = dead.add_subparsers(title="dead-letter commands", metavar="ACTION", required=True)
    listing = dead_actions.add_parser("list", help="waiting dead letters, newest first")
    listing.add_argument("--all", action="store_true", help="include resolved ones")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_dead_list)
    show = dead_actions.add_parser("show", help="one dead letter: reason, headers, and the raw message")
    show.add_argument("id", type=int)
    show.add_argument("--format", choices=("text", "json", "raw"), default="text")
    show.set_defaults(handler=_dead_show)
    retry = dead_actions.add_parser("retry", help="parse and receive it again; resolved on success")
    retry.add_argument("id", type=int)
    retry.set_defaults(handler=_dead_retry)


async def _poll(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.imap is None:
        raise ConfigError("HELPDESK_IMAP_HOST is not set; the email channel is off")
    async with open_runtime(settings) as runtime:
        if args.once:
            try:
                result = await runtime.poll_mail_once()
            except ImapError as exc:
                # One line for cron's mail and the operator: what failed and where, no traceback.
                print(f"helpdesk: mail poll failed: {exc}", file=sys.stderr)
                return 1
            # Deliver the receipts now too: a cron job has no `helpdesk run` beside it to do it.
            while await runtime.worker.deliver_due():
                pass
            print(
                f"fetched {result.fetched}, ticketed {result.committed}, "
                f"left on the server {result.declined + result.failed}"
            )
            return 0 if not result.failed else 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = asyncio.create_task(runtime.worker.run(stop))
        await runtime.run_mail(stop)
        await worker
    return 0


async def _dead_list(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        rows = await list_dead_letters(runtime.desk, include_resolved=args.all)
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no dead letters")
        return 0
    for row in rows:
        reason = row["reason"].splitlines()[0][:80]
        ticket = f" → {row['ticket']}" if row["ticket"] else ""
        when = row["received_at"][:19]
        print(f"{row['id']:>5}  {when}  {row['status']:<8} {row['size']:>9} B  {reason}{ticket}")
    return 0


async def _dead_show(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        letter = await get_dead_letter(runtime.desk, args.id)
    if args.format == "raw":
        sys.stdout.buffer.write(letter.raw)
        sys.stdout.flush()
        return 0
    data = summary(letter)
    data["headers"] = _headers(letter.raw)
    if args.format == "json":
        data["raw"] = letter.raw.decode("utf-8", "replace")
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    for key in (
        "id",
        "status",
        "received_at",
        "size",
        "source",
        "source_uid",
        "attempts",
        "ticket",
        "sha256",
    ):
        print(f"{key}: {data[key]}")
    print(f"reason: {data['reason']}")
    if data["headers"]:
        print("headers:")
        for name, value in data["headers"]:
            print(f"  {name}: {value}")
    print("--- raw (first 2000 bytes; --format raw for all) ---")
    print(letter.raw[:2000].decode("utf-8", "replace"))
    return 0


async def _dead_retry(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        reference, reason = await retry_dead_letter(runtime.mail, args.id)
        if reference is not None:
            # Deliver the receipt now, as `mail poll --once` does.
            while runtime.senders and await runtime.worker.deliver_due():
                pass
    if reference is None:
        print(f"dead letter {args.id} still cannot be received: {reason}", file=sys.stderr)
        return 1
    print(f"dead letter {args.id} resolved: {reference}")
    return 0


def _headers(raw: bytes) -> list[tuple[str, str]]:
    try:
        message = load_message(raw)
    except EmailParseError:
        return []
    wanted = {"from", "to", "cc", "subject", "date", "message-id", "content-type"}
    return [(name, str(value)[:300]) for name, value in message.raw_items() if name.lower() in wanted]
