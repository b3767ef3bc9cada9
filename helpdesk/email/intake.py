"""Email intake wired to the desk: each fetched message is parsed and received in one transaction,
and only then marked seen (or moved) on the server.

What cannot become a ticket (not an email, or refused by the desk for a reason retrying will not
fix) is kept raw as a dead letter with the reason; once it is in the database it is safe and is marked
on the server too, so it never blocks or repeats. Errors that may clear up by themselves (the database
is down or locked) leave the message waiting on the server instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import select

from helpdesk.db.models import ImapCheckpoint
from helpdesk.db.transient import is_transient
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.email.imap_intake import Handler, ImapMailbox, PollResult, poll_once, run_intake
from helpdesk.email.parse import EmailParseError, parse_email
from helpdesk.messages import InboundMessage
from helpdesk.usecases.dead_letters import get_dead_letter, record_retry, store_dead_letter

if TYPE_CHECKING:
    from helpdesk.service import Runtime

log = logging.getLogger(__name__)

class DatabaseCheckpoint:
    """The IMAP UID checkpoint in the ``imap_checkpoints`` table."""

    def __init__(self, desk: Desk) -> None:
        self._desk = desk

    async def load(self, mailbox: str, uidvalidity: int) -> int:
        async with self._desk.sessions.begin() as session:
            row = await session.get(ImapCheckpoint, mailbox)
            if row is None:
                session.add(ImapCheckpoint(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=0))
                return 0
            if row.uidvalidity != uidvalidity:
                log.warning(
                    "IMAP %s: UIDVALIDITY changed from %s to %s; reading the whole mailbox again "
                    "(Message-ID de-duplication keeps tickets single)",
                    mailbox,
                    row.uidvalidity,
                    uidvalidity,
                )
                row.uidvalidity = uidvalidity
                row.last_uid = 0
                row.updated_at = utcnow()
            return row.last_uid

    async def save(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        async with self._desk.sessions.begin() as session:
            row = await session.scalar(
                select(ImapCheckpoint).where(ImapCheckpoint.mailbox == mailbox).with_for_update()
            )
            if row is None:
                session.add(ImapCheckpoint(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=uid))
            elif row.uidvalidity == uidvalidity and uid > row.last_uid:
                row.last_uid = uid
                row.updated_at = utcnow()


def mailbox_factory(runtime: Runtime) -> Callable[[], ImapMailbox]:
    imap = runtime.settings.imap
    if imap is None:
        raise RuntimeError("email intake needs HELPDESK_IMAP_HOST")

    def open_mailbox() -> ImapMailbox:
        return ImapMailbox(
            imap.host,
            imap.port,
            imap.user,
            imap.password.reveal(),
            tls=imap.tls,
            mailbox=imap.mailbox,
            processed_folder=imap.processed_folder,
        )

    return open_mailbox


def parser_for(runtime: Runtime) -> Callable[[bytes], InboundMessage]:
    own = (runtime.settings.mail_from,) if runtime.settings.mail_from else ()
    limit = int(runtime.settings.mail_max_attachment_mb * 1024 * 1024)

    def parse(raw: bytes) -> InboundMessage:
        # The time of arrival, not the Date header: a sender's clock must not skew response times.
        return parse_email(raw, own_addresses=own, received_at=utcnow(), max_attachment_bytes=limit)

    return parse


def message_handler(runtime: Runtime, *, source: str | None = None) -> Handler:
    parse = parser_for(runtime)

    async def handle(uid: int, raw: bytes) -> bool:
        try:
            # Parsing a message with large attachments takes a while: keep it off the event loop.
            inbound = await asyncio.to_thread(parse, raw)
        except EmailParseError as exc:
            return await _dead_letter(runtime, raw, f"cannot parse: {exc.reason}", source, uid)
        except Exception as exc:  # a parser bug on odd input must not block this message forever
            log.exception("IMAP UID %s: the parser failed", uid)
            return await _dead_letter(
                runtime, raw, f"parser failed: {type(exc).__name__}: {exc}", source, uid
            )
        try:
            result = await runtime.receive(inbound)
        except Exception as exc:
            if is_transient(exc):
                raise  # says nothing about the message: left waiting on the server for the next poll
            log.exception("IMAP UID %s: the desk refused the message", uid)
            reason = f"cannot be received: {type(exc).__name__}: {exc}"
            return await _dead_letter(runtime, raw, reason, source, uid)
        log.info(
            "IMAP UID %s → %s (%s)",
            uid,
            result.reference,
            "duplicate" if result.duplicate else "new ticket" if result.created else "follow-up",
        )
        return True

    return handle


async def _dead_letter(runtime: Runtime, raw: bytes, reason: str, source: str | None, uid: int) -> bool:
    stored = await store_dead_letter(runtime.desk, raw, reason, source=source, source_uid=uid)
    log.warning(
        "IMAP UID %s kept as dead letter %s (%s); `helpdesk mail dead-letters retry %s` once fixed",
        uid,
        stored.id,
        reason,
        stored.id,
    )
    return True  # safe in the database: mark it on the server so it never blocks the rest


async def retry_dead_letter(runtime: Runtime, letter_id: int) -> tuple[str | None, str | None]:
    """Parse and receive a dead letter again: ``(reference, None)`` on success, ``(None, reason)`` if not."""
    letter = await get_dead_letter(runtime.desk, letter_id)
    if letter.status == "resolved":
        return letter.ticket_reference, None
    reference: str | None = None
    reason: str | None = None
    try:
        inbound = await asyncio.to_thread(parser_for(runtime), letter.raw)
        reference = (await runtime.receive(inbound)).reference
    except EmailParseError as exc:
        reason = f"cannot parse: {exc.reason}"
    except Exception as exc:
        reason = f"cannot be received: {type(exc).__name__}: {exc}"
    await record_retry(runtime.desk, letter_id, reference=reference, reason=reason)
    return reference, reason


def _source(mailbox: ImapMailbox) -> str:
    return mailbox.key


async def poll_email_once(runtime: Runtime) -> PollResult:
    async with mailbox_factory(runtime)() as mailbox:
        return await poll_once(
            mailbox,
            message_handler(runtime, source=_source(mailbox)),
            checkpoint=DatabaseCheckpoint(runtime.desk),
        )


async def run_email_intake(runtime: Runtime, stop: asyncio.Event) -> None:
    imap = runtime.settings.imap
    assert imap is not None
    source = mailbox_factory(runtime)().key
    await run_intake(
        mailbox_factory(runtime),
        message_handler(runtime, source=source),
        interval=imap.poll_interval,
        stop=stop,
        checkpoint=DatabaseCheckpoint(runtime.desk),
    )
