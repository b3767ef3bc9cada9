"""SMTP delivery of outbound email (the email channel's ``ChannelSender``)."""

from __future__ import annotations

import logging
import ssl

import aiosmtplib

from helpdesk.delivery import DeliveryError
from helpdesk.email.mime_message import render_email
from helpdesk.email.smtp_pool import SmtpPool
from helpdesk.messages import OutboundMessage

log = logging.getLogger(__name__)

# 5xx codes that are about our account, not about the message: fixing the configuration makes a retry
# succeed, so they must not bury the message as permanently undeliverable.
_ACCOUNT_CODES = frozenset({530, 534, 535, 538})


class SmtpSender:
    """Sends ``OutboundMessage``s over SMTP on a few connections kept open (``SmtpPool``).

    ``tls=True`` means implicit TLS on port 465 and required STARTTLS on any other port; ``tls=False`` sends
    in clear (loopback relays, tests). ``implicit_tls`` overrides the port rule.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: bool,
        mail_from: str,
        timeout: float = 30.0,
        implicit_tls: bool | None = None,
        tls_context: ssl.SSLContext | None = None,
        connections: int = 4,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.tls = tls
        self.mail_from = mail_from
        self.timeout = timeout
        self._implicit_tls = (port == 465) if implicit_tls is None else implicit_tls
        self._tls_context = tls_context
        self._pool = SmtpPool(self._connect, size=connections)

    def __repr__(self) -> str:
        # The password stays out of reprs, and so out of tracebacks and logs.
        return (
            f"SmtpSender(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"tls={self.tls}, mail_from={self.mail_from!r})"
        )

    async def send(self, message: OutboundMessage) -> str | None:
        """Send ``message``; return its Message-ID. Raises DeliveryError (``permanent`` for 5xx refusals)."""
        try:
            rendered = render_email(message, mail_from=self.mail_from)
        except ValueError as exc:
            # A message we cannot even build will not get better by retrying.
            raise DeliveryError(f"cannot compose email: {exc}", permanent=True) from exc
        message_id = rendered.message_id

        async def deliver(client: aiosmtplib.SMTP) -> None:
            # Already 7-bit wire bytes: sendmail, not send_message, which would parse and flatten it again.
            await client.sendmail(rendered.envelope_from, [rendered.recipient], rendered.data)

        try:
            await self._pool.use(deliver)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            permanent = bool(codes) and all(500 <= code < 600 for code in codes)
            raise self._failure(f"recipient refused: {detail}", permanent, message_id) from exc
        except (
            aiosmtplib.SMTPConnectError,
            aiosmtplib.SMTPServerDisconnected,
            aiosmtplib.SMTPHeloError,
        ) as exc:
            raise self._failure(f"SMTP connection failed: {exc}", False, message_id) from exc
        except aiosmtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.code < 600 and exc.code not in _ACCOUNT_CODES
            raise self._failure(f"SMTP {exc.code}: {exc.message}", permanent, message_id) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            # Timeouts, refused connections, TLS not offered: all may clear up on their own.
            reason = str(exc) or type(exc).__name__
            raise self._failure(f"SMTP unavailable: {reason}", False, message_id) from exc
        # The recipient stays out of the log: requesters' addresses live in the database only.
        log.info("sent %s (%s) via %s:%s", message_id, message.reference or "no ticket", self.host, self.port)
        return message_id

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self._password,
            use_tls=self.tls and self._implicit_tls,
            # False, not None: in clear mode never upgrade opportunistically to a certificate we would then
            # fail to verify; in TLS mode STARTTLS is mandatory.
            start_tls=self.tls and not self._implicit_tls,
            tls_context=self._tls_context,
            timeout=self.timeout,
        )
        try:
            await client.connect()
        except BaseException:
            client.close()
            raise
        return client

    async def close(self) -> None:
        await self._pool.close()

    def _failure(self, reason: str, permanent: bool, message_id: str) -> DeliveryError:
        log.warning(
            "SMTP delivery of %s via %s:%s failed (%s): %s",
            message_id,
            self.host,
            self.port,
            "permanent" if permanent else "temporary",
            reason,
        )
        return DeliveryError(reason, permanent=permanent)
