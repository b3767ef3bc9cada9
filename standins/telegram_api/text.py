"""Message texts as Telegram measures and annotates them: UTF-16 lengths, command and mention entities."""

from __future__ import annotations

import re
from typing import Any

MAX_MESSAGE_LENGTH = 4096  # UTF-16 code units, as Telegram counts them

_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_MENTION_RE = re.compile(r"@[A-Za-z0-9_]{5,32}")


def utf16_len(text: str) -> int:
    """Length as Telegram measures texts and entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def entities(text: str, *, commands: bool = True) -> list[dict[str, Any]]:
    """The bot_command and mention entities Telegram would attach (offsets in UTF-16 units)."""
    found: list[dict[str, Any]] = []
    if commands:
        match = _COMMAND_RE.match(text)
        if match:
            found.append({"type": "bot_command", "offset": 0, "length": utf16_len(match.group())})
    for match in _MENTION_RE.finditer(text):
        if match.start() > 0 and text[match.start() - 1] not in " \n\t(":
            continue
        found.append(
            {
                "type": "mention",
                "offset": utf16_len(text[: match.start()]),
                "length": utf16_len(match.group()),
            }
        )
    return found
