"""Signed tokens of a referral: the reply address an expert answers to, and the one-click answer links.

- Reply address ``helpdesk+r7-<mac>@…``: names referral 7 and, through the MAC, the one address the offer
  went to (HMAC-SHA256 over "<id>\\n<recipient>", 80 bits, lower-case base32 as in ``reply_addresses``).
- One-click link token ``<id>.<answer>.<expires>.<mac>``: the MAC covers all three, so neither the answer
  nor the expiry can be changed; single use because an answer moves the referral out of "offered" and
  a second press finds it answered.

Both keys are derived from the desk secret for their own purpose, so neither signs anything else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.usecases.desk_secrets import derived_key

REPLY_PURPOSE = "referral-reply-address"
LINK_PURPOSE = "referral-link"
MAC_BYTES = 10
_REPLY_RE = re.compile(r"^r([1-9][0-9]{0,11})-([a-z2-7]{16})$")
# Why a link token is refused, by name: the page words it in its reader's language (``referral_links``).
NOT_OURS = "not ours"
EXPIRED = "expired"
_LINK_RE = re.compile(r"^([1-9][0-9]{0,11})\.(yes|no)\.([0-9]{1,12})\.([a-z2-7]{16})$")


def _mac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()[:MAC_BYTES]
    return base64.b32encode(digest).decode("ascii").lower()


async def reply_key(session: AsyncSession) -> bytes:
    return await derived_key(session, REPLY_PURPOSE)


async def link_key(session: AsyncSession) -> bytes:
    return await derived_key(session, LINK_PURPOSE)


def reply_token(key: bytes, referral_id: int, recipient: str) -> str:
    signed = f"{referral_id}\n{recipient.strip().lower()}"
    return f"r{referral_id}-{_mac(key, signed)}"


def reply_token_referral(token: str) -> int | None:
    """The referral a well-formed reply token names (not yet a proof of anything)."""
    match = _REPLY_RE.match(token.lower())
    return int(match.group(1)) if match else None


def reply_token_proves(key: bytes, token: str, referral_id: int, recipient: str) -> bool:
    return hmac.compare_digest(token.lower(), reply_token(key, referral_id, recipient))


def link_token(key: bytes, referral_id: int, answer: str, expires: datetime) -> str:
    payload = f"{referral_id}.{answer}.{int(expires.timestamp())}"
    return f"{payload}.{_mac(key, payload)}"


def read_link_token(key: bytes, token: str, now: datetime) -> tuple[int, str] | str:
    """(referral id, answer) of a genuine, unexpired token, or why it is refused (``NOT_OURS``, ``EXPIRED``:
    names the page words)."""
    match = _LINK_RE.match(token.strip().lower())
    if match is None:
        return NOT_OURS
    payload = ".".join(match.group(1, 2, 3))
    if not hmac.compare_digest(match.group(4), _mac(key, payload)):
        return NOT_OURS
    if int(match.group(3)) < now.timestamp():
        return EXPIRED
    return int(match.group(1)), match.group(2)
