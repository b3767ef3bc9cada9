"""`helpdesk staff add|list|password|disable`: staff accounts, the one source of who is staff."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

from helpdesk.config import Settings
from helpdesk.service import open_runtime
from helpdesk.usecases.errors import DeskError
from helpdesk.usecases.staff_accounts import (
    ROLES,
    add_account,
    disable_account,
    list_accounts,
    set_password,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    staff = subparsers.add_parser(
        "staff",
        help="staff accounts: who may sign in to the web workspace and act as staff",
        description="Staff accounts are who is staff for the web workspace, the Telegram staff group and "
        "staff mail. HELPDESK_STAFF_EMAILS / HELPDESK_STAFF_TELEGRAM_IDS still count as a seed unless an "
        "account with that address or id is disabled.",
    )
    actions = staff.add_subparsers(title="staff commands", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="add an account")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=ROLES[::-1])
    add.add_argument("--telegram-id", type=int, help="their Telegram user id (acts in the staff group)")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the web password from the first line of standard input (else asked on a terminal; "
        "without either, the account has no web sign-in until `helpdesk staff password`)",
    )
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="every account, disabled ones too")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)

    password = actions.add_parser("password", help="set a new web password (ends their sessions)")
    password.add_argument("email")
    password.add_argument("--password-stdin", action="store_true", help="read it from standard input")
    password.set_defaults(handler=_password)

    disable = actions.add_parser(
        "disable", help="no longer staff anywhere (web, Telegram, mail); their sessions end"
    )
    disable.add_argument("email")
    disable.set_defaults(handler=_disable)


async def _read_password(from_stdin: bool, *, required: bool) -> str | None:
    if from_stdin:
        line = await asyncio.to_thread(sys.stdin.readline)
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        if required:
            raise DeskError("no terminal to ask the password on: pass it with --password-stdin")
        return None
    first = await asyncio.to_thread(getpass.getpass, "Web password (empty: none for now): ")
    if not first and not required:
        return None
    second = await asyncio.to_thread(getpass.getpass, "Again: ")
    if first != second:
        raise DeskError("the two passwords differ")
    return first


async def _add(args: argparse.Namespace) -> int:
    password = await _read_password(args.password_stdin, required=False)
    async with open_runtime(Settings.from_env()) as runtime:
        staff = await add_account(
            runtime.desk,
            args.email,
            name=args.name,
            role=args.role,
            telegram_user_id=args.telegram_id,
            password=password,
        )
    print(f"added {staff.email} ({staff.role})" + ("" if password else "; no web password yet"))
    return 0


async def _list(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        accounts = await list_accounts(runtime.desk)
    if args.format == "json":
        print(json.dumps(accounts, ensure_ascii=False, indent=2))
        return 0
    for a in accounts:
        flags = [a["role"]]
        if a["telegram_user_id"] is not None:
            flags.append(f"telegram {a['telegram_user_id']}")
        if not a["has_password"]:
            flags.append("no web password")
        if a["disabled"]:
            flags.append("DISABLED")
        print(f"{a['email']:<40} {a['name']:<30} {', '.join(flags)}")
    if not accounts:
        print("no staff accounts: HELPDESK_STAFF_EMAILS / HELPDESK_STAFF_TELEGRAM_IDS alone say who is staff")
    return 0


async def _password(args: argparse.Namespace) -> int:
    password = await _read_password(args.password_stdin, required=True)
    assert password is not None
    async with open_runtime(Settings.from_env()) as runtime:
        await set_password(runtime.desk, args.email, password)
    print(f"password of {args.email.strip().lower()} changed; their web sessions are ended")
    return 0


async def _disable(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        await disable_account(runtime.desk, args.email)
    print(f"{args.email.strip().lower()} disabled: no longer staff on the web, in Telegram or by mail")
    return 0
