"""Reads done once per database transaction, however many messages it receives.

A batch of mail or a Telegram group commit receives up to 50 messages in one transaction. What every new
ticket reads but no receiving changes (the triage's fingerprint, the expert load: receiving never assigns)
is read by the first and reused by the rest. The memo belongs to the root transaction, so the next
transaction, even on the same session, reads again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

_KEY = "helpdesk.transaction_memo"


async def once_per_transaction(session: AsyncSession, name: str, read: Callable[[], Awaitable[T]]) -> T:
    values = transaction_values(session)
    if name not in values:
        values[name] = await read()
    return cast(T, values[name])


def transaction_values(session: AsyncSession) -> dict[str, Any]:
    """The memo of ``session``'s current root transaction (empty in a new one)."""
    transaction = session.sync_session.get_transaction()
    memo: tuple[Any, dict[str, Any]] | None = session.info.get(_KEY)
    if memo is None or memo[0] is not transaction:
        memo = (transaction, {})
        session.info[_KEY] = memo
    return memo[1]
