"""What the sender wrote this time: an email body without quoted history and signature.

Used for classification only; the full original is always stored. Each rule is a marker after which
everything is history (Outlook's header block, Gmail's "On … wrote:", the Russian "… писал(а):",
"-----Original Message-----", a "-- " signature separator), plus "> " quoted lines wherever they are.
Forwarded mail is kept: what was forwarded usually *is* the request.
"""

from __future__ import annotations

import re

# A line that starts the quoted history; everything from it on is dropped.
_CUT_LINE = re.compile(
    r"""^\s*(?:
        -{2,}\s*(?:original\s+message|исходное\s+сообщение|пересылаемое\s+сообщение\s+от\s+\S+\s+писал)\s*-{2,}
      | _{10,}                                            # Outlook's rule above "From: … Sent: …"
      | (?:on|am|le|el)\s.{0,200}\b(?:wrote|schrieb|a\s+écrit|escribió)\s*:
      | .{0,200}\b(?:писал\(а\)|написал\(а\)|написала?|писала?|пишет|жазды|yozdi)\s*:
      | .{0,200}<[^>\s]+@[^>\s]+>"?\s*:                 # "пн, 9 мар. 2026 г. в 15:10, Name <a@b>:"
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
# Gmail wraps a long attribution line: "On Tue, 3 Mar 2026 at 10:00, Name <a@b>" / "wrote:".
_ATTRIBUTION_START = re.compile(r"^\s*(?:on|am|le|el)\s.{5,200}$", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"^.{0,120}\b(?:wrote|schrieb|a\s+écrit|escribió)\s*:\s*$", re.IGNORECASE)
# Outlook's header block: "From: …" followed within a few lines by "Sent:"/"Date:" (or Russian).
_HEADER_FROM = re.compile(r"^\s*\*?(?:from|от|von|de)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(?:sent|date|to|subject|отправлено|дата|кому|тема|gesendet|envoyé)\s*:", re.IGNORECASE
)
_SIGNATURE = re.compile(r"^(?:--|-- |—\s*)$")
_MOBILE_FOOTER = re.compile(
    r"^\s*(?:sent from my \w+|отправлено с (?:моего )?\w+|get outlook for \w+)\b.*$", re.IGNORECASE
)
_FORWARD_MARKER = re.compile(
    r"^\s*-{2,}\s*(?:forwarded message|пересланное сообщение|начало пересылаемого сообщения)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"^\s*>")


def strip_quoted(text: str) -> str:
    """``text`` without quoted history, quoted lines and signature; ``text`` itself if nothing is left."""
    lines = text.replace("\r\n", "\n").split("\n")
    cut = len(lines)
    for index, line in enumerate(lines):
        if _FORWARD_MARKER.match(line):
            break  # a forward's own header block is the content, not history
        if _CUT_LINE.match(line) or _SIGNATURE.match(line) or _MOBILE_FOOTER.match(line):
            cut = index
            break
        if (
            _ATTRIBUTION_START.match(line)
            and index + 1 < len(lines)
            and _ATTRIBUTION_END.match(lines[index + 1])
        ):
            cut = index
            break
        if _HEADER_FROM.match(line) and any(_HEADER_NEXT.match(nxt) for nxt in lines[index + 1 : index + 5]):
            cut = index
            break
    kept = [line for line in lines[:cut] if not _QUOTED.match(line)]
    result = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in kept)).strip()
    return result or text.strip()
