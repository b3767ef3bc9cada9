"""Keep bot tokens out of logs.

The token is part of every Bot API URL, so httpx's request log lines and some network error messages
carry it. A log-record factory redacts it wherever the record came from (PTB, httpx, our code), before
any handler or formatter sees it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

# Telegram tokens look like "123456789:AAH…" (35 characters after the colon); redact those even if unknown.
_TOKEN_RE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")
_REDACTED = "<bot-token>"

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, _REDACTED)
    return _TOKEN_RE.sub(_REDACTED, text)


def protect_token(token: str) -> None:
    """Redact ``token`` from every log record from now on (idempotent; several tokens may be added)."""
    global _installed
    with _lock:
        if token:
            _secrets.add(token)
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _scrub(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
    # httpx logs every request URL (with the token) at INFO; nothing in it is worth that risk or noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is logging's own problem to report
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, ()
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters reuse exc_text when set, so the traceback is redacted once, here.
        text = logging.Formatter().formatException(record.exc_info)
        cleaned = redact(text)
        if cleaned != text:
            record.exc_text = cleaned
