"""`helpdesk db upgrade`: apply the schema migrations."""

from __future__ import annotations

import argparse

from helpdesk.config import Settings
from helpdesk.db.migrate import upgrade
from helpdesk.db.reachable import ensure_database


def register(subparsers: argparse._SubParsersAction) -> None:
    db = subparsers.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(title="db commands", metavar="ACTION", required=True)
    up = db_commands.add_parser("upgrade", help="apply migrations up to the newest schema")
    up.set_defaults(handler=_upgrade)


async def _upgrade(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    await ensure_database(settings.database_url, create=True)
    await upgrade(settings.database_url)
    print("database schema is up to date")
    return 0
