"""Signed reply addresses: ``helpdesk+t42-<mac>@tscc.example`` names ticket 42 and, through the MAC, the
one staff address it was sent to.

The desk puts such an address in Reply-To of the notification it mails a staff member; their answer comes
back to the help desk mailbox (plus-addressing) carrying the token in To or Cc. The MAC is
HMAC-SHA256(key, "<ticket id>\\n<staff address>"), truncated to 80 bits and written in lower-case base32
(mail systems may fold the case of a local part), compared in constant time. A token for another ticket
or another staff address, or a broken or shortened one, proves nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.usecases.desk_secrets import derived_key

PURPOSE = "reply-address"
MAC_BYTES = 10  # 80 bits: 16 base32 characters, keeping the local part far under its 64-character limit
_TOKEN_RE = re.compile(r"^t([1-9][0-9]{0,11})-([a-z2-7]{16})$")


async def reply_address_key(session: AsyncSession) -> bytes:
    return await derived_key(session, PURPOSE)


def reply_token(key: bytes, ticket_id: int, staff_address: str) -> str:
    return f"t{ticket_id}-{_mac(key, ticket_id, staff_address)}"


def reply_address(mail_from: str, token: str) -> str:
    """``<local>+<token>@<domain>`` of the help desk address ``mail_from``."""
    local, _, domain = mail_from.strip().rpartition("@")
    return f"{local}+{token}@{domain}"


def token_ticket_id(token: str) -> int | None:
    """The ticket a well-formed token names (not yet a proof of anything)."""
    match = _TOKEN_RE.match(token.lower())
    return int(match.group(1)) if match else None


def token_proves(key: bytes, token: str, ticket_id: int, staff_address: str) -> bool:
    """True only for a token signed for exactly this ticket and this staff address."""
    match = _TOKEN_RE.match(token.lower())
    if match is None or int(match.group(1)) != ticket_id:
        return False
    return hmac.compare_digest(match.group(2), _mac(key, ticket_id, staff_address))


def _mac(key: bytes, ticket_id: int, staff_address: str) -> str:
    message = f"{ticket_id}\n{staff_address.strip().lower()}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.b32encode(digest).decode("ascii").lower()
