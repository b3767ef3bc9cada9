"""Apply Alembic migrations: `helpdesk db upgrade`, and on start of `run` and `demo`."""

from __future__ import annotations

import asyncio
from importlib.resources import files

from alembic import command
from alembic.config import Config


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("helpdesk.db") / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def upgrade(database_url: str, revision: str = "head") -> None:
    # Alembic is synchronous and reads its scripts from disk: keep it off the event loop.
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), revision)


def current_revision_heads(database_url: str) -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
