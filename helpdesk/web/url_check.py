""" "Does this resource's URL answer?": one HEAD (a GET whose body is never read if HEAD is refused).

Asynchronous with a total time limit, so a slow or silent server never holds the event loop or the page.
Only http(s) URLs are asked, redirects are reported rather than followed, and staff see the status alone:
never the answer's headers or body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

TIMEOUT_SECONDS = 10.0
# Servers that refuse HEAD answer one of these; a GET then says whether the page is there.
HEAD_REFUSED = frozenset({405, 501})


@dataclass(frozen=True)
class UrlAnswer:
    ok: bool
    status: int | None
    problem: str


async def check_url(url: str, *, limit_seconds: float = TIMEOUT_SECONDS) -> UrlAnswer:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return UrlAnswer(False, None, "only http:// and https:// addresses are checked")
    try:
        # httpx times each step; the outer limit bounds the whole (a server dripping bytes included).
        async with (
            asyncio.timeout(limit_seconds),
            httpx.AsyncClient(timeout=limit_seconds, follow_redirects=False, trust_env=False) as client,
        ):
            response = await client.head(url)
            if response.status_code in HEAD_REFUSED:
                async with client.stream("GET", url) as streamed:
                    response = streamed
    except (TimeoutError, httpx.TimeoutException):
        return UrlAnswer(False, None, f"no answer within {limit_seconds:g} s")
    except httpx.HTTPError as exc:
        return UrlAnswer(False, None, f"cannot connect ({type(exc).__name__})")
    status = response.status_code
    if status < 300:
        return UrlAnswer(True, status, "")
    if status < 400:
        return UrlAnswer(False, status, "redirects elsewhere: check the new address")
    return UrlAnswer(False, status, "the server answers with an error")
