"""Email intake wired to the desk: a fetched batch is checked, parsed in the worker process and received
in one transaction (one savepoint per mail); only then is it marked seen (or moved) on the server.

What cannot become a ticket (not an email, over a limit, or refused by the desk for a reason retrying will
not fix) is kept raw as a dead letter with the reason; once it is in the database it is safe and is marked
on the server too, so it never blocks or repeats. A mail the batch could not take is received again
alone, with retries while the database is briefly away; errors that may clear up by themselves leave it
waiting on the server, at most ``RETRY_BUDGET`` times.

Everything intake needs comes in a ``MailIntake`` (built by the composition root, ``helpdesk.service``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import exc as sa_exc

from helpdesk.config import ImapSettings
from helpdesk.db.transient import is_transient, retrying
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.email.imap_checkpoint import DatabaseCheckpoint
from helpdesk.email.imap_mailbox import ImapMailbox
from helpdesk.email.imap_polling import (
    Handled,
    Handler,
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
from helpdesk.usecases.receive import ReceiveResult, receive_in_session
from helpdesk.usecases.receive_batch import BatchAborted, ReceiveInSession, receive_batch

log = logging.getLogger(__name__)

# Temporary failures one message may have (across polls, restarts and cron runs) before it is given up
# as a dead letter, so that it never holds the rest of the mailbox back.
RETRY_BUDGET = 5


@dataclass
class MailIntake:
    """What email intake needs, and nothing more: the desk, how to receive, the parser and the limits."""

    desk: Desk
    parser: GuardedParser
    limits: MailLimits
    # Delays between attempts of one mail received alone while the database is away (a restart).
    retry_delays: Sequence[float]
    max_attachment_bytes: int
    trusted_authserv_id: str | None = None
    receive_in_session: ReceiveInSession = receive_in_session
    # Content hashes with a stored attempt count, cleared once their mail is received.
    failed_before: set[str] = field(default_factory=set)

    @property
    def own_addresses(self) -> tuple[str, ...]:
        return (self.desk.mail_from,) if self.desk.mail_from else ()


def mailbox_factory(imap: ImapSettings, *, timeout: float) -> Callable[[], ImapMailbox]:
    def open_mailbox() -> ImapMailbox:
        return ImapMailbox(
            imap.host,
            imap.port,
            imap.user,
            imap.password.reveal(),
            tls=imap.tls,
            mailbox=imap.mailbox,
            processed_folder=imap.processed_folder,
            timeout=timeout,
        )

    return open_mailbox


async def parse_guarded(intake: MailIntake, raw: bytes) -> InboundMessage:
    """Raw limits first, then the parser in its worker process (memory and time limits).

    Raises LimitExceeded or ParserLimitExceeded (refused: tell the sender), or EmailParseError.
    """
    check_raw(raw, intake.limits)
    return await intake.parser.parse(
        raw,
        own_addresses=intake.own_addresses,
        # The time of arrival, not the Date header: a sender's clock must not skew response times.
        received_at=utcnow(),
        max_attachment_bytes=intake.max_attachment_bytes,
        trusted_authserv_id=intake.trusted_authserv_id,
    )


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A batch after parsing: what is already safe (dead letters), what waits, what goes to the desk."""

    committed: list[int]
    failed: dict[int, BaseException]
    parsed: list[tuple[int, bytes, InboundMessage]]


@dataclass(frozen=True, slots=True)
class MailBatches:
    """Intake's ``BatchHandler``: ``prepare`` parses (while the previous batch commits), ``commit``
    receives what parsed in one transaction and each mail it could not take alone."""

    intake: MailIntake
    source: str | None = None

    async def prepare(self, batch: Sequence[tuple[int, bytes]]) -> _Parsed:
        return await _parse_batch(self.intake, batch, self.source)

    async def commit(self, prepared: _Parsed) -> Handled:
        return await _receive_parsed(self.intake, prepared, self.source)


def message_handler(intake: MailIntake, *, source: str | None = None) -> Handler:
    """One mail as a batch of one: True once it is committed; its error raised when it must wait."""

    async def handle(uid: int, raw: bytes) -> bool:
        handled = await receive_mail(intake, [(uid, raw)], source=source)
        if uid in handled.failed:
            raise handled.failed[uid]
        return uid in handled.committed

    return handle


async def receive_mail(
    intake: MailIntake, batch: Sequence[tuple[int, bytes]], *, source: str | None = None
) -> Handled:
    """Parse the batch, receive what parsed in one transaction, and each mail it could not take alone."""
    batches = MailBatches(intake, source)
    return await batches.commit(await batches.prepare(batch))


async def _parse_batch(intake: MailIntake, batch: Sequence[tuple[int, bytes]], source: str | None) -> _Parsed:
    committed: list[int] = []
    failed: dict[int, BaseException] = {}
    parsed: list[tuple[int, bytes, InboundMessage]] = []
    for index, (uid, raw) in enumerate(batch):
        try:
            inbound = await parse_guarded(intake, raw)
        except (LimitExceeded, ParserLimitExceeded) as exc:
            await _refuse(intake, raw[: intake.limits.kept_bytes], exc.reason, source, uid, len(raw))
            committed.append(uid)
        except EmailParseError as exc:
            await _dead_letter(intake, raw, f"cannot parse: {exc.reason}", source, uid)
            committed.append(uid)
        except ParserUnavailable as exc:
            # Nothing to do with these messages: the worker cannot start. They wait for the next poll.
            log.error("IMAP UIDs from %s left waiting: %s", uid, exc)
            failed.update(dict.fromkeys((u for u, _ in batch[index:]), exc))
            break
        except Exception as exc:  # a parser bug on odd input must not block this message forever
            log.exception("IMAP UID %s: the parser failed", uid)
            await _dead_letter(intake, raw, f"parser failed: {type(exc).__name__}: {exc}", source, uid)
            committed.append(uid)
        else:
            parsed.append((uid, raw, inbound))
    return _Parsed(committed, failed, parsed)


async def _receive_parsed(intake: MailIntake, prepared: _Parsed, source: str | None) -> Handled:
    committed = list(prepared.committed)
    failed = dict(prepared.failed)
    if not prepared.parsed:
        return Handled(committed, failed)
    outcomes = await _receive_together(intake, [inbound for _, _, inbound in prepared.parsed])
    for (uid, raw, inbound), outcome in zip(prepared.parsed, outcomes, strict=True):
        digest = hashlib.sha256(raw).hexdigest()
        try:
            if not isinstance(outcome, ReceiveResult):
                if outcome is not None:
                    log.warning(
                        "IMAP UID %s rolled back in its batch (%s); receiving it alone", uid, _brief(outcome)
                    )
                outcome = await _receive_alone(intake, uid, raw, inbound, digest, source)
        except Exception as exc:
            failed[uid] = exc
            log.warning("IMAP UID %s left waiting on the server: %s", uid, type(exc).__name__)
            continue
        committed.append(uid)
        if digest in intake.failed_before:
            intake.failed_before.discard(digest)
            await forget_failed_attempts(intake.desk, digest)
        if outcome is not None:
            log.info(
                "IMAP UID %s → %s (%s)",
                uid,
                outcome.reference,
                "duplicate" if outcome.duplicate else "new ticket" if outcome.created else "follow-up",
            )
    return Handled(committed, failed)


async def _receive_together(
    intake: MailIntake, inbounds: Sequence[InboundMessage]
) -> list[ReceiveResult | Exception | None]:
    """Per mail: its result, the error its savepoint rolled back with, or None (not received: try alone).

    When a mail's error ends the whole transaction (a lost connection), the rest are received together
    once more without it; if that fails too, the database is the problem and each is tried alone."""
    outcomes: list[ReceiveResult | Exception | None] = [None] * len(inbounds)
    pending = list(range(len(inbounds)))
    for _ in range(2):
        try:
            results = await receive_batch(
                intake.desk, [inbounds[i] for i in pending], receive_one=intake.receive_in_session
            )
        except BatchAborted as exc:
            log.warning("a batch of %d mails was not committed (%s)", len(pending), _brief(exc.__cause__))
            if exc.index is None:
                break
            del pending[exc.index]
            continue
        for index, result in zip(pending, results, strict=True):
            outcomes[index] = result
        break
    return outcomes


async def receive_alone(intake: MailIntake, inbound: InboundMessage) -> ReceiveResult:
    """One mail in its own transaction, again while the database is briefly away (a restart, a failover).

    Safe to repeat: a message that did commit before the connection broke is found again by its channel
    id and reported as a duplicate. A unique-key clash (another process took the same message at the same
    moment) is retried once the same way.
    """

    async def once() -> ReceiveResult:
        try:
            [outcome] = await receive_batch(intake.desk, [inbound], receive_one=intake.receive_in_session)
        except BatchAborted as exc:
            # The database's own error: the retries and the retry budget judge it, not the wrapper.
            assert isinstance(exc.__cause__, Exception)
            raise exc.__cause__ from None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return await retrying(
        once,
        intake.retry_delays,
        what=f"receiving {inbound.channel_message_id}",
        once_more_on=(sa_exc.IntegrityError,),
    )


async def _receive_alone(
    intake: MailIntake, uid: int, raw: bytes, inbound: InboundMessage, digest: str, source: str | None
) -> ReceiveResult | None:
    """``receive_alone`` with the verdicts: refused for good → dead letter (None); failed for a reason that
    may clear up → raised (left waiting), counted against the retry budget, then a dead letter."""
    try:
        return await receive_alone(intake, inbound)
    except Exception as exc:
        if not is_transient(exc):
            log.exception("IMAP UID %s: the desk refused the message", uid)
            await _dead_letter(intake, raw, f"cannot be received: {type(exc).__name__}: {exc}", source, uid)
            return None
        reason = _brief(exc)
        # Counted in the database: if it cannot even do that, the database is the problem, not this
        # message, and the error leaves the message waiting without spending its budget.
        attempts = await count_failed_attempt(intake.desk, digest, reason)
        intake.failed_before.add(digest)
        if attempts < RETRY_BUDGET:
            raise  # left waiting on the server; the next poll tries again
        log.error("IMAP UID %s failed %d times for temporary reasons; giving up on it", uid, attempts)
        reason = f"gave up after {attempts} temporary failures; last: {reason}"
        await _dead_letter(intake, raw, reason, source, uid)
        await forget_failed_attempts(intake.desk, digest)
        intake.failed_before.discard(digest)
        return None


def _brief(exc: BaseException | None) -> str:
    """The error's type and first line: SQLAlchemy appends the statement and its parameters (addresses,
    text), which stay out of logs and attempt counts."""
    text = str(exc) if exc is not None else ""
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def oversized_handler(intake: MailIntake, *, source: str | None = None) -> Oversized:
    """Mail over HELPDESK_MAIL_MAX_MESSAGE_MB: only its header block is fetched, kept and answered."""
    limits = intake.limits

    async def handle(uid: int, header: bytes, size: int) -> bool:
        limit_mb = limits.max_message_bytes / (1024 * 1024)
        reason = f"message is {size / (1024 * 1024):.1f} MB, over the limit of {limit_mb:g} MB"
        return await _refuse(intake, header, reason, source, uid, size, size_was_the_reason=True)

    return Oversized(limits.max_message_bytes, limits.header_fetch_bytes, handle)


async def _refuse(
    intake: MailIntake,
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
    notice = rejection_notice(kept, list(intake.own_addresses))
    if notice is not None and size_was_the_reason:
        limit_mb = intake.limits.max_message_bytes / (1024 * 1024)
        notice = replace(notice, size=f"{size / (1024 * 1024):.1f} MB", limit=f"{limit_mb:g} MB")
    stored = await store_dead_letter(
        intake.desk, kept, f"refused: {reason}", source=source, source_uid=uid, original_size=size,
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


async def _dead_letter(intake: MailIntake, raw: bytes, reason: str, source: str | None, uid: int) -> bool:
    stored = await store_dead_letter(intake.desk, raw, reason, source=source, source_uid=uid)
    log.warning(
        "IMAP UID %s kept as dead letter %s (%s); `helpdesk mail dead-letters retry %s` once fixed",
        uid,
        stored.id,
        reason,
        stored.id,
    )
    return True  # safe in the database: mark it on the server so it never blocks the rest


async def retry_dead_letter(intake: MailIntake, letter_id: int) -> tuple[str | None, str | None]:
    """Parse and receive a dead letter again: ``(reference, None)`` on success, ``(None, reason)`` if not."""
    letter = await get_dead_letter(intake.desk, letter_id)
    if letter.status == "resolved":
        return letter.ticket_reference, None
    reference: str | None = None
    reason: str | None = None
    if is_cut(letter):
        reason = f"only the first {len(letter.raw)} of {letter.size} bytes were kept: it cannot be received"
        await record_retry(intake.desk, letter_id, reference=None, reason=None)
        return None, reason
    try:
        # The same guards as intake: a dead letter is as hostile as the mail it was.
        inbound = await parse_guarded(intake, letter.raw)
        reference = (await receive_alone(intake, inbound)).reference
    except (LimitExceeded, ParserLimitExceeded) as exc:
        reason = f"refused: {exc.reason}"
    except EmailParseError as exc:
        reason = f"cannot parse: {exc.reason}"
    except Exception as exc:
        reason = f"cannot be received: {type(exc).__name__}: {exc}"
    await record_retry(intake.desk, letter_id, reference=reference, reason=reason)
    return reference, reason


async def poll_email_once(intake: MailIntake, open_mailbox: Callable[[], ImapMailbox]) -> PollResult:
    async with open_mailbox() as mailbox:
        return await poll_once(
            mailbox,
            MailBatches(intake, source=mailbox.key),
            checkpoint=DatabaseCheckpoint(intake.desk),
            oversized=oversized_handler(intake, source=mailbox.key),
        )


async def run_email_intake(
    intake: MailIntake, open_mailbox: Callable[[], ImapMailbox], *, interval: float, stop: asyncio.Event
) -> None:
    source = open_mailbox().key
    await run_intake(
        open_mailbox,
        MailBatches(intake, source=source),
        interval=interval,
        stop=stop,
        checkpoint=DatabaseCheckpoint(intake.desk),
        oversized=oversized_handler(intake, source=source),
    )
