"""Email intake wired to the desk: each fetched message is parsed and received in one transaction,
and only then marked seen on the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from helpdesk.db.types import utcnow
from helpdesk.email.imap_intake import Handler, ImapMailbox, PollResult, poll_once, run_intake
from helpdesk.email.parse import EmailParseError, parse_email

if TYPE_CHECKING:
    from helpdesk.service import Runtime

log = logging.getLogger(__name__)


def mailbox_factory(runtime: Runtime) -> Callable[[], ImapMailbox]:
    imap = runtime.settings.imap
    if imap is None:
        raise RuntimeError("email intake needs HELPDESK_IMAP_HOST")

    def open_mailbox() -> ImapMailbox:
        return ImapMailbox(
            imap.host, imap.port, imap.user, imap.password.reveal(), tls=imap.tls, mailbox=imap.mailbox
        )

    return open_mailbox


def message_handler(runtime: Runtime) -> Handler:
    own = (runtime.settings.mail_from,) if runtime.settings.mail_from else ()

    async def handle(uid: int, raw: bytes) -> bool:
        try:
            # Parsing a message with large attachments takes a while: keep it off the event loop.
            # The time of arrival, not the Date header: a sender's clock must not skew response times.
            inbound = await asyncio.to_thread(parse_email, raw, own_addresses=own, received_at=utcnow())
        except EmailParseError as exc:
            # Left unseen on the server, so nothing is lost; it does not block the messages after it.
            log.warning("IMAP UID %s cannot be parsed (%s); left on the server", uid, exc)
            return False
        result = await runtime.receive(inbound)
        log.info(
            "IMAP UID %s → %s (%s)",
            uid,
            result.reference,
            "duplicate" if result.duplicate else "new ticket" if result.created else "follow-up",
        )
        return True

    return handle


async def poll_email_once(runtime: Runtime) -> PollResult:
    async with mailbox_factory(runtime)() as mailbox:
        return await poll_once(mailbox, message_handler(runtime))


async def run_email_intake(runtime: Runtime, stop: asyncio.Event) -> None:
    imap = runtime.settings.imap
    assert imap is not None
    await run_intake(
        mailbox_factory(runtime), message_handler(runtime), interval=imap.poll_interval, stop=stop
    )
