"""Email intake wired to the desk: each fetched message is parsed and received in one transaction,
and only then marked seen (or moved) on the server.

What cannot become a ticket (not an email, or refused by the desk for a reason retrying will not
fix) is kept raw as a dead letter with the reason; once it is in the database it is safe and is marked
on the server too, so it never blocks or repeats. Errors that may clear up by themselves (the database
is down or locked) leave the message waiting on the server instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import select

from helpdesk.db.models import ImapCheckpoint
from helpdesk.db.transient import is_transient
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.email.imap_intake import (
    Handler,
    ImapMailbox,
    Oversized,
    PollResult,
    poll_once,
    run_intake,
)
from helpdesk.email.limits import LimitExceeded, MailLimits, check_raw
from helpdesk.email.parse import EmailParseError
from helpdesk.email.parser_process import GuardedParser, ParserLimitExceeded, ParserUnavailable
from helpdesk.email.rejection import rejection_notice
from helpdesk.messages import InboundMessage
from helpdesk.usecases.dead_letters import (
    count_failed_attempt,
    forget_failed_attempts,
    get_dead_letter,
    is_cut,
    record_retry,
    store_dead_letter,
)

if TYPE_CHECKING:
    from helpdesk.service import Runtime

log = logging.getLogger(__name__)

# Temporary failures one message may have (across polls, restarts and cron runs) before it is given up
# as a dead letter, so that it never holds the rest of the mailbox back.
RETRY_BUDGET = 5


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
            timeout=runtime.settings.mail_timeout_seconds,
        )

    return open_mailbox


def mail_limits(runtime: Runtime) -> MailLimits:
    return MailLimits.with_max_message_mb(runtime.settings.mail_max_message_mb)


async def parse_guarded(runtime: Runtime, raw: bytes, limits: MailLimits) -> InboundMessage:
    """Raw limits first, then the parser in its worker process (memory and time limits).

    Raises LimitExceeded or ParserLimitExceeded (refused: tell the sender), or EmailParseError.
    """
    check_raw(raw, limits)
    if runtime.mail_parser is None:
        runtime.mail_parser = GuardedParser()
    own = (runtime.settings.mail_from,) if runtime.settings.mail_from else ()
    return await runtime.mail_parser.parse(
        raw,
        own_addresses=own,
        # The time of arrival, not the Date header: a sender's clock must not skew response times.
        received_at=utcnow(),
        max_attachment_bytes=int(runtime.settings.mail_max_attachment_mb * 1024 * 1024),
        trusted_authserv_id=runtime.settings.mail_trusted_authserv_id,
    )


def message_handler(
    runtime: Runtime, *, source: str | None = None, limits: MailLimits | None = None
) -> Handler:
    limits = limits or mail_limits(runtime)
    failed_before: set[str] = set()  # content hashes with a stored attempt count to clear on success

    async def handle(uid: int, raw: bytes) -> bool:
        try:
            inbound = await parse_guarded(runtime, raw, limits)
        except (LimitExceeded, ParserLimitExceeded) as exc:
            return await _refuse(runtime, raw[: limits.kept_bytes], exc.reason, source, uid, len(raw))
        except EmailParseError as exc:
            return await _dead_letter(runtime, raw, f"cannot parse: {exc.reason}", source, uid)
        except ParserUnavailable:
            raise  # nothing to do with this message: it waits on the server for the next poll
        except Exception as exc:  # a parser bug on odd input must not block this message forever
            log.exception("IMAP UID %s: the parser failed", uid)
            return await _dead_letter(
                runtime, raw, f"parser failed: {type(exc).__name__}: {exc}", source, uid
            )
        digest = hashlib.sha256(raw).hexdigest()
        try:
            result = await runtime.receive(inbound)
        except Exception as exc:
            if not is_transient(exc):
                log.exception("IMAP UID %s: the desk refused the message", uid)
                reason = f"cannot be received: {type(exc).__name__}: {exc}"
                return await _dead_letter(runtime, raw, reason, source, uid)
            # The first line only: SQLAlchemy appends the statement and its parameters (addresses, text).
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            # Counted in the database: if it cannot even do that, the database is the problem, not this
            # message, and the error leaves the message waiting without spending its budget.
            attempts = await count_failed_attempt(runtime.desk, digest, reason)
            failed_before.add(digest)
            if attempts < RETRY_BUDGET:
                raise  # left waiting on the server; the next poll tries again
            log.error("IMAP UID %s failed %d times for temporary reasons; giving up on it", uid, attempts)
            reason = f"gave up after {attempts} temporary failures; last: {reason}"
            stored = await _dead_letter(runtime, raw, reason, source, uid)
            await forget_failed_attempts(runtime.desk, digest)
            failed_before.discard(digest)
            return stored
        if digest in failed_before:
            failed_before.discard(digest)
            await forget_failed_attempts(runtime.desk, digest)
        log.info(
            "IMAP UID %s → %s (%s)",
            uid,
            result.reference,
            "duplicate" if result.duplicate else "new ticket" if result.created else "follow-up",
        )
        return True

    return handle


def oversized_handler(runtime: Runtime, *, source: str | None = None) -> Oversized:
    """Mail over HELPDESK_MAIL_MAX_MESSAGE_MB: only its header block is fetched, kept and answered."""
    limits = mail_limits(runtime)

    async def handle(uid: int, header: bytes, size: int) -> bool:
        limit_mb = runtime.settings.mail_max_message_mb
        reason = f"message is {size / (1024 * 1024):.1f} MB, over the limit of {limit_mb:g} MB"
        return await _refuse(runtime, header, reason, source, uid, size, size_was_the_reason=True)

    return Oversized(limits.max_message_bytes, limits.header_fetch_bytes, handle)


async def _refuse(
    runtime: Runtime,
    kept: bytes,
    reason: str,
    source: str | None,
    uid: int | None,
    size: int,
    *,
    size_was_the_reason: bool = False,
) -> bool:
    """Over a limit: a dead letter of the first bytes, and the sender told why (once, never a robot)."""
    # Only our own address is never answered; staff are senders like any other here.
    own = [runtime.settings.mail_from] if runtime.settings.mail_from else []
    notice = rejection_notice(kept, own)
    if notice is not None and size_was_the_reason:
        limit_mb = runtime.settings.mail_max_message_mb
        notice = replace(notice, size=f"{size / (1024 * 1024):.1f} MB", limit=f"{limit_mb:g} MB")
    stored = await store_dead_letter(
        runtime.desk, kept, f"refused: {reason}", source=source, source_uid=uid, original_size=size,
        notice=notice,
    )  # fmt: skip
    log.warning(
        "IMAP UID %s refused before parsing, dead letter %s (%s); sender %s",
        uid,
        stored.id,
        reason,
        "told" if stored.notified else "not told",
    )
    return True


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
    if is_cut(letter):
        reason = f"only the first {len(letter.raw)} of {letter.size} bytes were kept: it cannot be received"
        await record_retry(runtime.desk, letter_id, reference=None, reason=None)
        return None, reason
    try:
        # The same guards as intake: a dead letter is as hostile as the mail it was.
        inbound = await parse_guarded(runtime, letter.raw, mail_limits(runtime))
        reference = (await runtime.receive(inbound)).reference
    except (LimitExceeded, ParserLimitExceeded) as exc:
        reason = f"refused: {exc.reason}"
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
            oversized=oversized_handler(runtime, source=_source(mailbox)),
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
        oversized=oversized_handler(runtime, source=source),
    )
