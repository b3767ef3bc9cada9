"""Everything the desk does with one chat message before it is safe, as one unit a caller can retry.

The question "which of your tickets does this continue?" reads the database just like receiving does, and
opening it (or holding a message with it) writes there: all of it is one transaction, so a database hiccup
in any of them is retried (or the message kept and replayed) instead of losing a message the channel has
already confirmed, and the question is asked about the tickets as the receiving sees them. The
conversation itself is declared in :mod:`helpdesk.usecases.followup_question`.

Messages of different chats arriving together are taken together (:func:`take_together`): one commit
for all of them, their rows written by one flush, a SAVEPOINT each only once one of them failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Message
from helpdesk.db.savepoints import Refused, begin_for_savepoints, in_unit, savepoints_on_refusal
from helpdesk.db.transient import is_transient
from helpdesk.db.writer_turns import writer_turn
from helpdesk.desk import Desk
from helpdesk.handoff import carry_marks, handed_on_commit
from helpdesk.messages import InboundMessage
from helpdesk.usecases.auto_replies import window_start
from helpdesk.usecases.followup_question import Asked, Held, Joins, Opens, ask, hold
from helpdesk.usecases.lone_read import read_lone
from helpdesk.usecases.one_flush import OneFlush
from helpdesk.usecases.read_ahead import forget_answers, read_ahead
from helpdesk.usecases.receive import ReceiveResult, receive_in_session
from helpdesk.usecases.self_service import followup_choices

Taken = ReceiveResult | Asked | Held


async def take_message(desk: Desk, inbound: InboundMessage) -> Taken:
    """Receive ``inbound`` in a transaction of its own, unless it is unclear which ticket it continues:
    then ask (or hold it with the question already asked in its chat).

    Repeating it is safe: a message already stored is found again by its channel id, one already held is
    not held twice.
    """
    async with desk.sessions() as session, session.begin():
        taken = await take_in_session(desk, session, inbound)
    _written(desk, [taken])
    return taken


async def take_together(desk: Desk, inbounds: Sequence[InboundMessage]) -> list[Taken | Exception]:
    """Take messages of different chats in one transaction, committed once.

    Each gets its outcome, or the error it alone failed with: the group runs without a SAVEPOINT per
    message, and when one fails, again with one each (its SAVEPOINT rolled back, the others kept: the
    caller retries it alone). An error that says the database or the connection is gone fails the whole
    group, and so does a failed commit: the exception is raised and nothing of the group is stored.
    """

    async def attempt(savepoints: bool) -> list[Taken | Exception]:
        return await _take_together(desk, inbounds, savepoints=savepoints)

    return await savepoints_on_refusal(attempt, len(inbounds))


async def _take_together(
    desk: Desk, inbounds: Sequence[InboundMessage], *, savepoints: bool
) -> list[Taken | Exception]:
    if not savepoints:
        # Its receipts may be handed to this process's worker, each settled once the transaction has ended;
        # the worker is woken only for what it must claim.
        async with handed_on_commit(desk.outbox_written) as track:
            async with writer_turn(desk.sessions), desk.sessions() as session, session.begin():
                await begin_for_savepoints(session)
                track(session)
                outcomes = await _take_by_one_flush(desk, session, inbounds)
                # SQLite: the worker's marks waiting now ride in this commit (helpdesk/mark_carrier.py).
                await carry_marks(session, desk.carry_marks)
                return outcomes
    async with writer_turn(desk.sessions), desk.sessions() as session, session.begin():
        await begin_for_savepoints(session)
        outcomes: list[Taken | Exception] = []
        for inbound in inbounds:
            try:
                work = partial(take_in_session, desk, session, inbound)
                outcomes.append(await in_unit(session, True, work))
            except Exception as exc:
                if is_transient(exc):
                    raise
                outcomes.append(exc)
                # What the failed member loaded may be half-changed: later members read afresh.
                session.expunge_all()
                forget_answers(session)
    _written(desk, outcomes)
    return outcomes


async def _take_by_one_flush(
    desk: Desk, session: AsyncSession, inbounds: Sequence[InboundMessage]
) -> list[Taken | Exception]:
    """The group's rows written by one flush (:mod:`helpdesk.usecases.one_flush`); any member failing,
    or that flush, refuses the whole run (``Refused``), which then runs again with a SAVEPOINT each."""
    group = OneFlush(session)
    outcomes: list[Taken | Exception] = []
    with session.no_autoflush:
        try:
            if len(inbounds) > 1:
                await read_ahead(
                    session, inbounds, auto_replies_since=window_start(), hand_off=desk.hand_off is not None
                )
            else:
                await read_lone(session, inbounds[0])
            for inbound in inbounds:
                await group.before(inbound)
                taken = await take_in_session(desk, session, inbound)
                group.taken(inbound, taken.ticket if isinstance(taken, ReceiveResult) else None)
                outcomes.append(taken)
            await group.write()
        except Exception as exc:
            if is_transient(exc):
                raise
            raise Refused(exc) from exc
    return outcomes


async def take_in_session(desk: Desk, session: AsyncSession, inbound: InboundMessage) -> Taken:
    """The unit inside the caller's transaction; the caller commits."""
    sender = inbound.sender
    if not (inbound.force_new or inbound.continues) and sender.telegram_user_id is not None:
        waiting = await hold(session, inbound)
        if isinstance(waiting, Held):
            return waiting
        if isinstance(waiting, Joins):
            inbound = replace(inbound, continues=waiting.reference)
        elif isinstance(waiting, Opens):
            inbound = replace(inbound, force_new=True)
        elif isinstance(waiting, Asked):
            # An earlier attempt opened the question and lost its answer: offer the choices again.
            return Asked(waiting.token, await followup_choices(session, inbound))
    choices = await followup_choices(session, inbound)
    if choices and not await _stored(session, inbound):
        # (Stored already means an earlier attempt committed before its connection broke: no question.)
        return await ask(session, inbound, choices)
    return await receive_in_session(desk, session, inbound)


def _written(desk: Desk, outcomes: Sequence[object]) -> None:
    """Wake the delivery worker when a committed message queued something (a receipt, a card)."""
    if any(isinstance(o, ReceiveResult) and not o.duplicate for o in outcomes):
        desk.outbox_written()


async def _stored(session: AsyncSession, inbound: InboundMessage) -> bool:
    found = await session.scalar(
        select(Message.id)
        .where(Message.channel == inbound.channel, Message.channel_message_id == inbound.channel_message_id)
        .limit(1)
    )
    return found is not None
