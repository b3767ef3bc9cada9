"""Per-requester flood limits on the Telegram channel, as data in one place.

One requester sending hundreds of messages must neither bury staff (a card edit, a ticket per message) nor
themselves (a receipt per message), nor delay anyone else. Every message is still stored; what is limited is
what the desk sends back and how many tickets one person can hold open. Operators tune the first two
through settings (helpdesk/config.py); the others are fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FloodLimits:
    # Open tickets one requester may hold; beyond it a new request joins their most recent open ticket and
    # the receipt lists the open ones (HELPDESK_TELEGRAM_MAX_OPEN_TICKETS).
    max_open_tickets: int = 5
    # Follow-up receipts per ticket per minute; the registration receipt is not counted, later messages of
    # a burst are stored silently (HELPDESK_TELEGRAM_RECEIPTS_PER_MINUTE).
    receipts_per_minute: int = 3
    # A ticket's staff card is redrawn for new messages at most this often: one Bot API edit covers a burst.
    card_refresh_seconds: float = 5.0
    # The delivery worker takes at most this many items per recipient in one batch, so one chat's backlog
    # never holds another chat's receipt for longer than a few sends.
    outbox_per_recipient: int = 5
