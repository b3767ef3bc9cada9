"""The desk's own random secret, generated once and kept in the database, and keys derived from it.

One secret, many purposes: each use derives its own key with HMAC(secret, purpose), so a key that leaks
from one use (say, a signed reply address) says nothing about another (a web session key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import DeskSecret
from helpdesk.db.types import utcnow
from helpdesk.db.upsert import insert_or

DESK_SECRET = "desk"


async def desk_secret(session: AsyncSession, name: str = DESK_SECRET) -> bytes:
    """The secret called ``name``, created on first use.

    Race-safe: two workers creating it at the same moment both insert "if absent" and then both read the
    one row that won, so they sign with the same key.
    """
    value = await session.scalar(select(DeskSecret.value).where(DeskSecret.name == name))
    if value is None:
        await session.execute(
            insert_or(session, DeskSecret)
            .values(name=name, value=secrets.token_urlsafe(48), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = await session.scalar(select(DeskSecret.value).where(DeskSecret.name == name))
        assert value is not None
    return value.encode("ascii")


async def derived_key(session: AsyncSession, purpose: str) -> bytes:
    """The key for one ``purpose`` (e.g. "reply-address"): HMAC-SHA256(desk secret, purpose)."""
    return hmac.new(await desk_secret(session), purpose.encode("utf-8"), hashlib.sha256).digest()
