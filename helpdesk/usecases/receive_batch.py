"""Receive several inbound messages in one transaction (one fsync'd commit), each in its own SAVEPOINT.

One message the desk refuses (a bug on odd input, a unique clash with another process) rolls back only
its savepoint; the others commit. An error that ends the transaction itself (the connection lost, the
database locked) is raised as ``BatchAborted`` with nothing committed, naming the message it came with:
the caller receives the others again together and that one alone, where the retries and the retry budget
decide about it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.savepoints import begin_for_savepoints
from helpdesk.db.transient import is_transient
from helpdesk.db.writer_turns import writer_turn
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.usecases.receive import ReceiveResult, receive_in_session

ReceiveInSession = Callable[[Desk, AsyncSession, InboundMessage], Awaitable[ReceiveResult]]


class BatchAborted(Exception):
    """The transaction ended with nothing committed; ``index`` is the message being received then (None:
    the commit itself failed). ``__cause__`` is the database's error."""

    def __init__(self, index: int | None, cause: Exception) -> None:
        super().__init__(f"batch aborted at message {index}: {type(cause).__name__}")
        self.index = index
        self.__cause__ = cause


async def receive_batch(
    desk: Desk,
    inbounds: Sequence[InboundMessage],
    *,
    receive_one: ReceiveInSession = receive_in_session,
) -> list[ReceiveResult | Exception]:
    """Per message, in order: its result, or the error that rolled back its savepoint (retry it alone)."""
    outcomes: list[ReceiveResult | Exception] = []
    try:
        # On SQLite the batch takes this process's writer turn, so the delivery worker is not held off.
        async with writer_turn(desk.sessions), desk.sessions.begin() as session:
            await begin_for_savepoints(session)
            for inbound in inbounds:
                try:
                    async with session.begin_nested():
                        outcomes.append(await receive_one(desk, session, inbound))
                except Exception as exc:
                    if is_transient(exc):
                        raise BatchAborted(len(outcomes), exc) from exc
                    outcomes.append(exc)
    except BatchAborted:
        raise
    except Exception as exc:
        if not is_transient(exc):
            raise
        raise BatchAborted(None, exc) from exc
    if any(isinstance(outcome, ReceiveResult) and not outcome.duplicate for outcome in outcomes):
        desk.outbox_written()
    return outcomes
