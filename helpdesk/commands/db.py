"""`helpdesk db upgrade`: apply the schema migrations; `helpdesk db recount-load`: recount the expert load."""

from __future__ import annotations

import argparse

from helpdesk.config import Settings
from helpdesk.db.migrate import upgrade
from helpdesk.db.reachable import ensure_database
from helpdesk.service import open_runtime
from helpdesk.usecases.load import recount_load


def register(subparsers: argparse._SubParsersAction) -> None:
    db = subparsers.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(title="db commands", metavar="ACTION", required=True)
    up = db_commands.add_parser("upgrade", help="apply migrations up to the newest schema")
    up.set_defaults(handler=_upgrade)
    recount = db_commands.add_parser(
        "recount-load", help="set the expert load (open tickets per assignee) to the count from the tickets"
    )
    recount.set_defaults(handler=_recount_load)


async def _upgrade(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    await ensure_database(settings.database_url, create=True)
    await upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


async def _recount_load(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        drift = await recount_load(runtime.desk)
    if not drift:
        print("expert load matched the tickets")
        return 0
    for name, (kept, counted) in drift.items():
        print(f"{name}: {kept} → {counted}")
    print(f"expert load recounted: {len(drift)} assignee(s) corrected")
    return 0
