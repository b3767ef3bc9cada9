"""Ticket references such as ``TSCC-2026-0042``: one pattern shared by every channel and the desk."""

from __future__ import annotations

import re

PREFIX = "TSCC"

# At least four digits of sequence so that a busy year may grow to TSCC-2026-10000 without changing the
# pattern; word boundaries keep "XTSCC-2026-00421" or a longer digit run from matching a prefix of it.
REFERENCE_RE = re.compile(r"(?<![A-Za-z0-9])TSCC-(\d{4})-(\d{4,})(?![0-9])", re.IGNORECASE)


def format_reference(year: int, seq: int) -> str:
    if seq < 1:
        raise ValueError(f"ticket sequence must be positive, got {seq}")
    return f"{PREFIX}-{year:04d}-{seq:04d}"


def find_reference(text: str | None) -> str | None:
    """The first ticket reference in ``text``, normalised to upper case, or None."""
    if not text:
        return None
    match = REFERENCE_RE.search(text)
    if match is None:
        return None
    return f"{PREFIX}-{match.group(1)}-{match.group(2)}"


def ticket_subject(reference: str, subject: str, *, answer: bool = True) -> str:
    """The subject of every mail the desk writes about a ticket: ``[REF] Re: subject`` for what answers
    the request (acknowledgement, notice, staff reply), ``[REF] subject`` for staff notifications. The tag
    leads so that a reply keeps it whatever the client does with "Re:"."""
    return f"[{reference}] {'Re: ' if answer else ''}{subject}"
