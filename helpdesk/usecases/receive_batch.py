"""Receive several inbound messages in one transaction (one fsync'd commit).

The batch is first received without a SAVEPOINT per message (a SAVEPOINT costs two round trips and a
flush per message) and its rows written by one flush (:mod:`helpdesk.usecases.one_flush`): almost every
batch goes in whole. When one message is refused (a bug on odd input, a unique
clash with another process) that transaction is rolled back and the batch received again with a SAVEPOINT
each, so the refused message rolls back alone and the others commit. An error that ends the transaction
itself (the connection lost, the database locked) is raised as ``BatchAborted`` with nothing committed,
naming the message it came with: the caller receives the others again together and that one alone, where
the retries and the retry budget decide about it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.savepoints import Refused, begin_for_savepoints, in_unit, savepoints_on_refusal
from helpdesk.db.transient import is_transient
from helpdesk.db.writer_turns import writer_turn
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.usecases.auto_replies import window_start
from helpdesk.usecases.numbering import count_in_memory, settle
from helpdesk.usecases.one_flush import OneFlush
from helpdesk.usecases.read_ahead import read_ahead
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

    async def attempt(savepoints: bool) -> list[ReceiveResult | Exception]:
        return await _receive_together(desk, inbounds, receive_one, savepoints=savepoints)

    outcomes = await savepoints_on_refusal(attempt, len(inbounds))
    if any(isinstance(outcome, ReceiveResult) and not outcome.duplicate for outcome in outcomes):
        desk.outbox_written()
    return outcomes


async def _receive_together(
    desk: Desk, inbounds: Sequence[InboundMessage], receive_one: ReceiveInSession, *, savepoints: bool
) -> list[ReceiveResult | Exception]:
    outcomes: list[ReceiveResult | Exception] = []
    try:
        # On SQLite the batch takes this process's writer turn, so the delivery worker is not held off;
        # BEGIN IMMEDIATE takes the write lock before the first read, with or without savepoints.
        async with writer_turn(desk.sessions), desk.sessions.begin() as session:
            await begin_for_savepoints(session)
            if len(inbounds) > 1:
                await read_ahead(session, inbounds, auto_replies_since=window_start())
                count_in_memory(session)
            if savepoints:
                for inbound in inbounds:
                    try:
                        work = partial(receive_one, desk, session, inbound)
                        outcomes.append(await in_unit(session, True, work))
                    except Exception as exc:
                        if is_transient(exc):
                            raise BatchAborted(len(outcomes), exc) from exc
                        outcomes.append(exc)
            else:
                outcomes = await _receive_by_one_flush(desk, session, inbounds, receive_one)
            await settle(session)  # the ticket numbers counted in memory, before the commit
    except (BatchAborted, Refused):
        raise
    except Exception as exc:
        if not is_transient(exc):
            raise
        raise BatchAborted(None, exc) from exc
    return outcomes


async def _receive_by_one_flush(
    desk: Desk, session: AsyncSession, inbounds: Sequence[InboundMessage], receive_one: ReceiveInSession
) -> list[ReceiveResult | Exception]:
    """The batch's rows written by one flush (:mod:`helpdesk.usecases.one_flush`); a mail refused, or
    that flush, refuses the run (``Refused``), which then runs again with a SAVEPOINT each."""
    group = OneFlush(session)
    outcomes: list[ReceiveResult | Exception] = []
    with session.no_autoflush:
        for inbound in inbounds:
            try:
                await group.before(inbound)
                result = await receive_one(desk, session, inbound)
            except Exception as exc:
                if is_transient(exc):
                    raise BatchAborted(len(outcomes), exc) from exc
                raise Refused(exc) from exc
            group.taken(inbound, result.ticket)
            outcomes.append(result)
        try:
            await group.write()
        except Exception as exc:
            if is_transient(exc):
                raise BatchAborted(None, exc) from exc
            raise Refused(exc) from exc
    return outcomes
