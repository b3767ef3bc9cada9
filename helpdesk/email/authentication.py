"""RFC 8601 ``Authentication-Results``: what the Centre's own mail server says about a message.

Only one server is believed: the one whose authserv-id is ``HELPDESK_MAIL_TRUSTED_AUTHSERV_ID``. Anyone
can write ``Authentication-Results: mx.tscc.example; dkim=pass header.d=tscc.example`` into a mail, so:

* RFC 8601 §5: the receiving server must remove incoming headers that carry its own authserv-id. That is a
  deployment requirement (README, "How staff mail is proven").
* Defence in depth, for a server that does not: a server adds its header on top of what it received, so
  only the **topmost contiguous block** of ``Authentication-Results`` headers counts (the first such
  header from the top, and those directly below it with no other header in between), and only when
  nothing but trace fields that servers add on delivery (``Received``, ``Return-Path``, ``Delivered-To``,
  ``ARC-*``, spam-filter ``X-Spam-*``…, see ``_TRACE``) stands above it. A copy the sender put lower
  (among their own From, Subject, DKIM-Signature…) never counts, even with the trusted authserv-id, and
  even when our server added none. What this cannot catch is a forged header the sender put at the very
  top of their message while our server adds none and strips nothing: hence the deployment requirement.
* Hostile input is bounded before it is read: at most ``MAX_HEADERS`` headers of the block, each at most
  ``MAX_HEADER_CHARS`` long (a longer one is ignored), at most ``MAX_RESULTS`` results per header.

No trusted id configured: nothing is vouched for, and nothing counts as failed either.

The verdict is "verified" when the server found DKIM pass (``header.d``/``header.i``) or DMARC pass
(``header.from``) for the sender's own domain (exact match: no organisational-domain guessing); "failed"
when, without such a pass, it found spf, dkim or dmarc ``fail``; "unknown" otherwise.

The server's verdict is about the From it evaluated. It is "failed", whatever it says, when the server
and the desk may disagree on who the author is: the mail has no single author address (see
``helpdesk.email.parse``: several From fields or mailboxes, no From), or the server's DMARC checked
another From domain (``header.from``) than the desk's sender. A DMARC ``fail`` is final: no pass beside
it verifies anything (DMARC cannot fail where an aligned DKIM passed, so such a pass is forged).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from helpdesk.messages import Authenticity

HEADER = "authentication-results"
MAX_HEADERS = 8
MAX_HEADER_CHARS = 8192
MAX_RESULTS = 32

_METHODS = ("spf", "dkim", "dmarc")
# Fields receiving servers and their filters put on top of a message on its way in.
_TRACE = frozenset({"received", "return-path", "delivered-to", "x-original-to", "received-spf", "x-received"})
_TRACE_PREFIXES = ("arc-", "x-spam", "x-rspamd", "x-virus", "x-envelope-")
_PAIR_RE = re.compile(r'([A-Za-z0-9_.\-/]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s";]+)')
_LEADING_ID_RE = re.compile(r'\s*([^\s;()"\\]+)(?:[\s;]|$)')
_DOMAIN_RE = re.compile(r"^[a-z0-9](?:[a-z0-9\-.]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One resinfo: ``dkim=pass header.d=tscc.example`` → method "dkim", result "pass", properties."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()

    def property(self, name: str) -> str | None:
        return next((value for key, value in self.properties if key == name), None)


def trusted_results(headers: Iterable[tuple[str, str]], authserv_id: str | None) -> list[MethodResult]:
    """The results the trusted server wrote, from the raw ``(name, value)`` header list, top first."""
    if not authserv_id:
        return []
    trusted = authserv_id.strip().lower()
    results: list[MethodResult] = []
    for value in _top_block(headers):
        if len(value) > MAX_HEADER_CHARS:
            continue
        # The authserv-id must open the value as servers write it: RFC 8601 also allows a comment before
        # it or quotes around it, which a strip rule such as the README's misses, so those never count.
        leading = _LEADING_ID_RE.match(value)
        if leading is not None and leading.group(1).lower() == trusted:
            results.extend(parse_header(value)[1])
    return results


def assess(results: list[MethodResult], sender_address: str | None) -> Authenticity:
    """The verdict for a mail from ``sender_address`` given the trusted server's results.

    ``sender_address`` None: the mail has no single author, so nothing the server says is about it.
    """
    if not results:
        return Authenticity()
    sender_domain = _domain_of(sender_address)
    vouched: list[str] = []
    failed = sender_domain is None
    for item in results:
        if item.method not in _METHODS:
            continue
        if item.result == "fail":
            failed = True
        if item.method == "dmarc" and item.property("header.from") is not None:
            if _clean_domain(item.property("header.from")) != sender_domain:
                return Authenticity(verdict="failed")  # the server checked another author than ours
        if item.method == "dmarc" and item.result == "fail":
            # DMARC fails only when no aligned DKIM or SPF passed: a "pass" beside it for the same domain
            # is a forged header that slipped into the block (a server that does not strip them).
            return Authenticity(verdict="failed")
        if item.result != "pass":
            continue
        if item.method == "dkim":
            # The signing domain (d=) is what the signature proves; the identity (i=, which the signer
            # chooses) only stands in when a server writes no header.d.
            candidates = [item.property("header.d") or _domain_of(item.property("header.i"))]
        elif item.method == "dmarc":
            candidates = [item.property("header.from")]
        else:
            continue  # SPF checks the envelope sender, which need not be the From address
        for candidate in candidates:
            domain = _clean_domain(candidate)
            if domain is not None and domain not in vouched:
                vouched.append(domain)
    if sender_domain is not None and sender_domain in vouched:
        verdict = "verified"
    elif failed:
        verdict = "failed"
    else:
        verdict = "unknown"
    return Authenticity(verdict=verdict, domains=tuple(vouched))


def parse_header(value: str) -> tuple[str | None, list[MethodResult]]:
    """``(authserv-id, results)`` of one header value; ``(None, [])`` when it has no authserv-id."""
    text = _strip_comments(value)
    parts = _split_semicolons(text)
    head = parts[0].split()
    if not head:
        return None, []
    server = _unquote(head[0])
    results: list[MethodResult] = []
    for part in parts[1 : MAX_RESULTS + 1]:
        pairs = [(key.lower(), _unquote(raw)) for key, raw in _PAIR_RE.findall(part)]
        if not pairs:
            continue  # "none" (no result) or garbage
        method, result = pairs[0]
        method = method.split("/", 1)[0]  # "dkim/1" → "dkim"
        properties = tuple((key, val) for key, val in pairs[1:] if key != "reason")
        results.append(MethodResult(method=method, result=result.lower(), properties=properties))
    return server, results


# --- internals -------------------------------------------------------------------------------------------


def _top_block(headers: Iterable[tuple[str, str]]) -> list[str]:
    block: list[str] = []
    for name, value in headers:
        key = name.strip().lower()
        if key == HEADER:
            block.append(value)
            if len(block) >= MAX_HEADERS:
                break
        elif block:
            break  # the first other header ends the block
        elif not _is_trace(key):
            return []  # the sender's own headers start before any server's verdict: none counts
    return block


def _is_trace(name: str) -> bool:
    return name in _TRACE or name.startswith(_TRACE_PREFIXES)


def _strip_comments(value: str) -> str:
    """CFWS comments ``(…)`` removed (nested ones too), quoted strings kept as they are."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if quoted:
            out.append(char)
            if char == '"':
                quoted = False
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                out.append(" ")
        elif depth == 0:
            if char == '"':
                quoted = True
            out.append(char)
    return "".join(out)


def _split_semicolons(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    domain = address.rpartition("@")[2]
    if not domain.isascii():
        # An internationalised domain: servers write its A-label (xn--…) in their results.
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return _clean_domain(domain)


def _clean_domain(value: str | None) -> str | None:
    if not value:
        return None
    domain = value.strip().strip(".").lower()
    if "@" in domain:
        domain = domain.rpartition("@")[2]
    return domain if _DOMAIN_RE.match(domain) else None
