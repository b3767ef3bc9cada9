"""The contract between the delivery worker and a channel's sender."""

from __future__ import annotations

from typing import Protocol

from helpdesk.messages import OutboundMessage


class DeliveryError(Exception):
    """Sending failed. ``permanent`` failures are not retried (SMTP 5xx, Telegram 403)."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


class ChannelSender(Protocol):
    """Delivers one outbound message on its channel; raises DeliveryError on failure.

    Returns the channel's id for what it sent (email Message-ID, Telegram "<chat>:<message_id>") or None.
    """

    async def send(self, message: OutboundMessage) -> str | None: ...
