"""Taking a chat message safely while the database may be away: retry, keep on disk, replay, or say so.

A Telegram update is confirmed to Telegram before its handler finishes, so a message the desk fails to
store is gone unless the desk keeps it itself. :meth:`SafeIntake.take` runs the whole unit (the follow-up
question's read and ``receive``) with a short in-process retry; if the database is still away it writes the
message to the on-disk spool and says nothing to the requester yet. The first attempt joins the messages
of other chats arriving at the same time in one commit (group commit, :mod:`helpdesk.group_commit`); the
caller hears back only once its own message is committed, and a retry runs alone, so a message that failed
never holds back, or is held back by, another chat's. :meth:`SafeIntake.run` replays the
spool (also what a previous run left) in order per chat as soon as the database answers; a message that
cannot be stored within the grace period is dropped from the spool and its requester told, once, directly
through the channel (the outbox lives in the unreachable database), to send it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from sqlalchemy import exc as sa_exc

from helpdesk.db.transient import is_transient, retrying
from helpdesk.delivery import ChannelSender, DeliveryError
from helpdesk.desk import Desk
from helpdesk.group_commit import GroupCommit
from helpdesk.language import detect_reply_language
from helpdesk.messages import InboundMessage, OutboundMessage
from helpdesk.rendering import render
from helpdesk.spool import InboundSpool, Spooled
from helpdesk.usecases.followup_question import Asked, Held
from helpdesk.usecases.receive import ReceiveResult, receive
from helpdesk.usecases.take import Taken, take_message, take_together

log = logging.getLogger(__name__)

# In-process attempts before a message goes to the spool: a restart or a failover of a few seconds is
# ridden out here, with the requester's acknowledgement only a little late.
TAKE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)
REPLAY_INTERVAL = 1.0

Outcome = ReceiveResult | Asked | Held | Spooled


class SafeIntake:
    def __init__(
        self,
        desk: Desk,
        spool: InboundSpool,
        *,
        sender: ChannelSender | None,
        grace_seconds: float = 60.0,
        retry_delays: Sequence[float] = TAKE_RETRY_DELAYS,
        replay_interval: float = REPLAY_INTERVAL,
    ) -> None:
        self.desk = desk
        self.spool = spool
        self._sender = sender
        self.grace_seconds = grace_seconds
        self._retry_delays = tuple(retry_delays)
        self._replay_interval = replay_interval
        self._wake = asyncio.Event()
        self._together: GroupCommit[InboundMessage, Taken] = GroupCommit(
            lambda inbounds: take_together(desk, inbounds)
        )

    async def take(self, inbound: InboundMessage) -> Outcome:
        """Store ``inbound`` (or return the question to ask); kept in the spool when the database is away.

        Raises the error when the desk refuses the message for a reason retrying will not cure, and
        ``SpoolFull`` when it cannot even be kept: the caller tells the requester it failed.
        """
        if await self.spool.holds_chat(inbound.sender.telegram_chat_id):
            # An earlier message of this chat waits in the spool: this one must not overtake it.
            return await self._keep(inbound)
        first = True

        async def attempt() -> Taken:
            nonlocal first
            if not first:
                return await take_message(self.desk, inbound)
            first = False
            try:
                return await self._together.submit(inbound)
            except Exception as exc:
                if is_transient(exc):
                    raise  # the database is away: the retry delays apply
                # Its own SAVEPOINT failed (a clash with another writer, a deadlock victim…): again, alone.
                return await take_message(self.desk, inbound)

        try:
            return await retrying(
                attempt,
                self._retry_delays,
                what=f"taking {inbound.channel_message_id}",
                once_more_on=(sa_exc.IntegrityError,),
            )
        except Exception as exc:
            if not is_transient(exc):
                raise
            kept = await self._keep(inbound)
            # Said once it is true: the file is on disk (a kill right after this line loses nothing).
            log.warning(
                "database unavailable (%s): message %s kept in the spool for replay",
                type(exc).__name__,
                inbound.channel_message_id,
            )
            return kept

    async def _keep(self, inbound: InboundMessage) -> Spooled:
        kept = await self.spool.put(inbound)
        self._wake.set()
        return kept

    async def run(self, stop: asyncio.Event) -> None:
        """Replay the spool until ``stop``: at once (what a previous run left), then while it holds any."""
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.replay_once()
            except Exception:
                log.exception("inbound spool replay failed; trying again")
            # While messages wait (the database is away), one pass per interval, not one per new message.
            waiters = [asyncio.ensure_future(stop.wait())]
            if not len(self.spool):
                waiters.append(asyncio.ensure_future(self._wake.wait()))
            await asyncio.wait(waiters, timeout=self._replay_interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def replay_once(self) -> int:
        """One pass over the spool, oldest first; returns how many messages were stored."""
        entries = await self.spool.entries()
        if not entries:
            return 0
        now = time.time()
        given_up: set[int | None] = set()
        blocked: set[int | None] = set()
        database_down = False
        stored = 0
        for entry in entries:
            chat = entry.chat_id
            if chat in given_up:
                continue
            if chat not in blocked and now - entry.spooled_at > self.grace_seconds:
                # The chat's oldest kept message is past the grace period: everything it kept goes, and
                # the requester is told once (a later message alone would arrive out of its context).
                await self._give_up(chat, entries)
                given_up.add(chat)
                continue
            if database_down or chat in blocked:
                continue
            try:
                result = await receive(self.desk, entry.inbound)
            except Exception as exc:
                if is_transient(exc):
                    database_down = True
                    continue
                # The desk refuses it for good (a bug, bad data): the requester must hear it failed.
                log.exception("spooled message %s cannot be received", entry.inbound.channel_message_id)
                await self._give_up(chat, entries)
                given_up.add(chat)
                continue
            await self.spool.remove(entry)
            stored += 1
            log.info(
                "replayed spooled message %s → %s%s",
                entry.inbound.channel_message_id,
                result.reference,
                " (already stored)" if result.duplicate else "",
            )
        if database_down:
            log.warning(
                "database still unavailable; %s message(s) wait in the inbound spool", len(self.spool)
            )
        return stored

    async def _give_up(self, chat: int | None, entries: list[Spooled]) -> None:
        """Drop everything ``chat`` kept, once its requester has been told to send it again."""
        kept = [e for e in entries if e.chat_id == chat]
        if await self._tell_resend(kept):
            for dropped in kept:
                await self.spool.remove(dropped)

    async def _tell_resend(self, dropped: list[Spooled]) -> bool:
        """Ask the requester to send again, directly through the channel; False if it could not be said."""
        first = dropped[0].inbound
        chat = first.sender.telegram_chat_id
        if self._sender is None or chat is None:
            log.error("%s spooled message(s) dropped; nobody could be told", len(dropped))
            return True
        language = detect_reply_language(first.text, first.sender.language)
        notice = OutboundMessage(
            channel="telegram",
            recipient=str(chat),
            text=render("bot/resend.{lang}.txt.j2", language, count=len(dropped)).strip(),
            extra={"reply_to_message_id": int(first.channel_message_id.rpartition(":")[2])},
        )
        try:
            await self._sender.send(notice)
        except DeliveryError as exc:
            if exc.permanent:  # e.g. the requester blocked the bot: nobody can be told
                log.warning("could not tell chat %s to resend (%s); dropped anyway", chat, exc.reason)
                return True
            log.warning("could not tell chat %s to resend yet (%s); trying again", chat, exc.reason)
            return False
        log.warning(
            "%s spooled message(s) of chat %s not stored within %.0f s; the requester was asked to resend",
            len(dropped),
            chat,
            self.grace_seconds,
        )
        return True
