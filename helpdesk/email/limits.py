"""Raw limits checked before any MIME parsing, and the few header reads that are safe on hostile bytes.

The standard library's header parser grows super-linearly with the number of RFC 2047 encoded words in
one field (a 125 KB Subject of them took 521 MB; see bench/bench_poison_mail.py), so everything here works
on bytes with linear scans and never calls ``email``'s structured header parsing.

The limits are far above what real mail reaches. The corpus in tests/data/mail (real mail from many
clients) has at most a 2.6 KB header block, 15 fields, a 2.3 KB field and 30 encoded words in one field;
mail with long Received/DKIM chains reaches some 30 KB and 100 fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIB = 1024 * 1024

# Fields our own code reads with linear scans and caps (threading ids, recipients): they may be long
# (a References of a long thread, a To with a whole mailing list) without reaching the stdlib's parser.
LIST_FIELDS = frozenset({b"to", b"cc", b"references", b"in-reply-to"})

_ENCODED_WORD_RE = re.compile(rb"=\?[^?\s]{1,75}\?[bBqQ]\?")
_BLANK_LINE_RE = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class MailLimits:
    """What a message may reach before it is parsed; over any of them it becomes a dead letter."""

    # HELPDESK_MAIL_MAX_MESSAGE_MB; known from RFC822.SIZE before fetching.
    max_message_bytes: int = 50 * MIB
    # The header block: room for a To of 65,536 addresses (1.6 MB) or References of 40,000 ids (1 MB),
    # which are cut when read; real header blocks stay under 100 KB.
    max_header_block_bytes: int = 4 * MIB
    # 10 times the fields of mail with the longest relay chains.
    max_header_fields: int = 1000
    # One unfolded field other than LIST_FIELDS: 25 times the corpus's longest; a 10,000-character
    # Cyrillic subject is 30 KB encoded.
    max_field_bytes: int = 64 * 1024
    # Encoded words in one field other than LIST_FIELDS: 1,000 words cost the parser some 35 MB, where
    # 8,000 took 521 MB. That 10,000-character subject has 382; the corpus at most 30.
    max_encoded_words: int = 1000
    # What a dead letter keeps of mail over a limit (the database is no place for 50 MB of it).
    kept_bytes: int = 256 * 1024
    # What is fetched of an oversized message: its header block, up to this much.
    header_fetch_bytes: int = 64 * 1024

    @classmethod
    def with_max_message_mb(cls, megabytes: float) -> MailLimits:
        return cls(max_message_bytes=int(megabytes * MIB))


class LimitExceeded(ValueError):
    """``reason`` says which limit, for the dead letter and the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_raw(raw: bytes, limits: MailLimits) -> None:
    """Raise ``LimitExceeded`` if ``raw`` is over a limit; linear in its size, no parsing."""
    if len(raw) > limits.max_message_bytes:
        raise LimitExceeded(f"message is {_mb(len(raw))}, over the limit of {_mb(limits.max_message_bytes)}")
    block = header_block(raw, limits.max_header_block_bytes + 1)
    if len(block) > limits.max_header_block_bytes:
        raise LimitExceeded(f"header block is over {_mb(limits.max_header_block_bytes)}")
    fields = 0
    for name, value in _fields(block):
        fields += 1
        if fields > limits.max_header_fields:
            raise LimitExceeded(f"more than {limits.max_header_fields} header fields")
        if name.lower() in LIST_FIELDS:
            continue
        label = name.decode("ascii", "replace")[:40]
        if len(value) > limits.max_field_bytes:
            raise LimitExceeded(
                f"header {label} is {len(value)} bytes, over the limit of {limits.max_field_bytes}"
            )
        words = len(_ENCODED_WORD_RE.findall(value))
        if words > limits.max_encoded_words:
            raise LimitExceeded(
                f"header {label} has {words} encoded words, over the limit of {limits.max_encoded_words}"
            )


def header_block(raw: bytes, cap: int) -> bytes:
    """The bytes before the first blank line, at most ``cap`` of them.

    The stdlib ends headers at the first blank line or earlier (a line that is not a header), so this
    block always covers what it would parse as headers.
    """
    end = _BLANK_LINE_RE.search(raw, 0, cap + 4)
    return raw[: end.start()] if end is not None else raw[:cap]


def raw_field(block: bytes, wanted: bytes, cap: int = 2048) -> bytes | None:
    """The first ``wanted`` field's unfolded value (at most ``cap`` bytes), read without decoding."""
    for name, value in _fields(block):
        if name.lower() == wanted.lower():
            return value[:cap]
    return None


def header_subset(block: bytes, names: frozenset[bytes], cap: int = 2048) -> bytes:
    """A small header block of only ``names`` (each value cut to ``cap`` bytes), safe to give the parser."""
    lines = [
        name + b": " + value[:cap].replace(b"\r", b" ").replace(b"\n", b" ")
        for name, value in _fields(block)
        if name.lower() in names
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """(name, unfolded value) per field; continuation lines join the field above them."""
    fields: list[tuple[bytes, list[bytes]]] = []
    for line in block.splitlines():
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line)
            continue
        name, colon, value = line.partition(b":")
        fields.append((name.strip() if colon else b"", [value if colon else line]))
    return [(name, b"".join(parts).strip()) for name, parts in fields]


def _mb(size: int) -> str:
    return f"{size / MIB:.1f} MB"
