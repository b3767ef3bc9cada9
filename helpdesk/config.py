"""Settings from the environment (a `.env` file or `helpdesk.toml` in the working directory may add to it).

Every error names the variable: `helpdesk run` prints that one line instead of a traceback.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A missing or malformed setting; the message names the variable."""


class Secret:
    """A string that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: Secret
    tls: bool
    mailbox: str
    poll_interval: float
    # Move processed mail here instead of only flagging it \Seen (None: flag only).
    processed_folder: str | None = None


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    user: str | None
    password: Secret | None
    tls: bool


@dataclass(frozen=True)
class TelegramSettings:
    token: Secret
    api_url: str
    staff_chat_id: int | None
    # Webhook mode when set (Telegram POSTs updates to this public HTTPS URL); long polling otherwise.
    webhook_url: str | None = None
    # Behind the reverse proxy that terminates TLS: not reachable from outside the host by default.
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    # Required with webhook_url: updates without this X-Telegram-Bot-Api-Secret-Token are refused.
    webhook_secret: Secret | None = None


@dataclass(frozen=True)
class WebSettings:
    port: int
    host: str = "127.0.0.1"
    # Signs the session cookies; None: a random key the desk generated once and keeps in its database.
    secret_key: Secret | None = None
    # Where staff reach it (links to ticket pages); cookies are Secure when it is https.
    base_url: str | None = None

    @property
    def https(self) -> bool:
        return (self.base_url or "").startswith("https://")

    @property
    def host_name(self) -> str | None:
        return urlsplit(self.base_url).hostname if self.base_url else None


@dataclass(frozen=True)
class Settings:
    database_url: str
    telegram: TelegramSettings | None = None
    imap: ImapSettings | None = None
    smtp: SmtpSettings | None = None
    mail_from: str | None = None
    staff_emails: frozenset[str] = field(default_factory=frozenset)
    # The authserv-id of the Centre's own mail server: only its Authentication-Results are believed.
    mail_trusted_authserv_id: str | None = None
    staff_telegram_ids: frozenset[int] = field(default_factory=frozenset)
    timezone: str = "Asia/Tashkent"
    mail_max_attachment_mb: float = 20.0
    # Larger mail is never fetched whole nor parsed: a dead letter with a notice to the sender.
    mail_max_message_mb: float = 50.0
    # Each IMAP and SMTP step (connect and greeting, login, each command, each send) gives up after this.
    mail_timeout_seconds: float = 30.0
    mail_ack_limit_per_hour: int = 5
    # Reports: a ticket not answered within this many hours is past its response target.
    response_target_hours: float = 48.0
    # The monthly summary goes to staff on this day of the month (0: never) from this local hour on.
    report_day: int = 1
    report_hour: int = 8
    report_language: str = "ru"
    # Closed tickets older than this many months are anonymised by `helpdesk run` (0: kept forever).
    retention_months: int = 0
    # An expert who has not answered a referral is reminded after this many days; "no answer" after twice.
    referral_reminder_days: int = 5
    # Delivery worker: how long a claimed outbox item is reserved (a crashed worker's items wait this
    # long before another picks them up), and the first retry delay (doubling after each failure).
    delivery_lease_seconds: float = 120.0
    delivery_retry_base_seconds: float = 5.0
    # Telegram messages the database could not take are kept here and replayed; after the grace period
    # the requester is asked to send again. The spool is capped in size.
    spool_dir: Path = Path("spool")
    spool_max_mb: int = 512
    telegram_outage_grace_seconds: float = 60.0
    # Flood limits per Telegram requester (helpdesk/flood.py).
    telegram_max_open_tickets: int = 5
    telegram_receipts_per_minute: int = 3
    # The staff web workspace (helpdesk/web); off without a port.
    web: WebSettings | None = None
    # Where the workspace is reached, also in processes that do not serve it (the CLI sends letters with
    # one-click links and cards with page links too): HELPDESK_WEB_BASE_URL with or without a port.
    web_base_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Settings:
        cwd = cwd or Path.cwd()
        env = {**_file_values(cwd), **(os.environ if environ is None else environ)}
        return _parse(env, cwd)


def _file_values(cwd: Path) -> dict[str, str]:
    """Values from helpdesk.toml and .env; the environment overrides both."""
    values: dict[str, str] = {}
    toml_path = cwd / "helpdesk.toml"
    if toml_path.is_file():
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml_path}: not valid TOML ({exc})") from exc
        for key, value in data.items():
            name = key.upper() if key.upper().startswith("HELPDESK_") else f"HELPDESK_{key.upper()}"
            values[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    env_path = cwd / ".env"
    if env_path.is_file():
        for line in env_path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value.strip() if value and value.strip() else None


def _require(env: Mapping[str, str], name: str, because: str) -> str:
    value = _get(env, name)
    if value is None:
        raise ConfigError(f"{name} is not set; it is required {because}")
    return value


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    value = _get(env, name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = _get(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {value!r}")
    return number


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _get(env, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be on or off (true/false, 1/0), got {value!r}")


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    port = _int(env, name, default)
    assert port is not None
    if not 0 < port < 65536:
        raise ConfigError(f"{name} must be a TCP port between 1 and 65535, got {port}")
    return port


def _email(value: str, name: str) -> str:
    local, at, domain = value.partition("@")
    if not (local and at and "." in domain) or any(c.isspace() for c in value):
        raise ConfigError(f"{name} must be an email address, got {value!r}")
    return value


def _list(env: Mapping[str, str], name: str) -> list[str]:
    value = _get(env, name) or ""
    return [item.strip() for item in value.split(",") if item.strip()]


_DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


def _parse(env: Mapping[str, str], cwd: Path) -> Settings:
    _check_every_value_present(env)
    _warn_about_unknown_names(env)
    database_url = _get(env, "HELPDESK_DATABASE_URL") or f"sqlite+aiosqlite:///{cwd / 'helpdesk.db'}"
    if database_url.startswith(("postgresql://", "postgres://")):
        # Accept the URL form operators paste from their database provider.
        database_url = "postgresql+asyncpg://" + database_url.split("://", 1)[1]
    elif database_url.startswith("sqlite:///"):
        database_url = "sqlite+aiosqlite:///" + database_url.removeprefix("sqlite:///")
    if not database_url.startswith(_DATABASE_SCHEMES):
        raise ConfigError(
            "HELPDESK_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://, "
            f"got {database_url.split('://', 1)[0]}://…"
        )
    try:
        make_url(database_url)
    except (ArgumentError, ValueError) as exc:
        # The message names the part that is wrong (e.g. the port), never the URL with its password.
        raise ConfigError(f"HELPDESK_DATABASE_URL is not a valid database URL: {exc}") from None

    telegram = None
    token = _get(env, "HELPDESK_TELEGRAM_TOKEN")
    if token:
        if ":" not in token:
            raise ConfigError(
                "HELPDESK_TELEGRAM_TOKEN does not look like a bot token (expected '<id>:<secret>')"
            )
        telegram = TelegramSettings(
            token=Secret(token),
            api_url=_api_url(env, "HELPDESK_TELEGRAM_API_URL"),
            staff_chat_id=_int(env, "HELPDESK_TELEGRAM_STAFF_CHAT_ID"),
            **_webhook(env),
        )

    staff_ids: set[int] = set()
    for item in _list(env, "HELPDESK_STAFF_TELEGRAM_IDS"):
        try:
            staff_ids.add(int(item))
        except ValueError:
            raise ConfigError(
                f"HELPDESK_STAFF_TELEGRAM_IDS must be comma-separated Telegram user ids, got {item!r}"
            ) from None

    mail_from = _get(env, "HELPDESK_MAIL_FROM")
    if mail_from:
        _email(mail_from, "HELPDESK_MAIL_FROM")
    staff_emails = frozenset(
        _email(e, "HELPDESK_STAFF_EMAILS").lower() for e in _list(env, "HELPDESK_STAFF_EMAILS")
    )

    smtp = None
    if _get(env, "HELPDESK_SMTP_HOST"):
        smtp_tls = _bool(env, "HELPDESK_SMTP_TLS", True)
        smtp_user = _get(env, "HELPDESK_SMTP_USER")
        smtp_password = _get(env, "HELPDESK_SMTP_PASSWORD")
        if smtp_user and not smtp_password:
            raise ConfigError(
                "HELPDESK_SMTP_PASSWORD is not set; it is required when HELPDESK_SMTP_USER is set"
            )
        smtp = SmtpSettings(
            host=_require(env, "HELPDESK_SMTP_HOST", ""),
            port=_port(env, "HELPDESK_SMTP_PORT", 587 if smtp_tls else 25),
            user=smtp_user,
            password=Secret(smtp_password) if smtp_password else None,
            tls=smtp_tls,
        )
        if not mail_from:
            raise ConfigError("HELPDESK_MAIL_FROM is not set; it is required when HELPDESK_SMTP_HOST is set")

    imap = None
    if _get(env, "HELPDESK_IMAP_HOST"):
        imap_tls = _bool(env, "HELPDESK_IMAP_TLS", True)
        because = "when HELPDESK_IMAP_HOST is set"
        imap = ImapSettings(
            host=_require(env, "HELPDESK_IMAP_HOST", because),
            port=_port(env, "HELPDESK_IMAP_PORT", 993 if imap_tls else 143),
            user=_require(env, "HELPDESK_IMAP_USER", because),
            password=Secret(_require(env, "HELPDESK_IMAP_PASSWORD", because)),
            tls=imap_tls,
            mailbox=_get(env, "HELPDESK_IMAP_MAILBOX") or "INBOX",
            poll_interval=_float(env, "HELPDESK_IMAP_POLL_INTERVAL", 60.0),
            processed_folder=_get(env, "HELPDESK_IMAP_PROCESSED_FOLDER"),
        )
        if smtp is None:
            raise ConfigError(f"HELPDESK_SMTP_HOST is not set; it is required {because} (acknowledgements)")

    return Settings(
        database_url=database_url,
        telegram=telegram,
        imap=imap,
        smtp=smtp,
        mail_from=mail_from,
        staff_emails=staff_emails,
        mail_trusted_authserv_id=_authserv_id(env),
        staff_telegram_ids=frozenset(staff_ids),
        timezone=_timezone(env),
        mail_max_attachment_mb=_float(env, "HELPDESK_MAIL_MAX_ATTACHMENT_MB", 20.0),
        mail_max_message_mb=_float(env, "HELPDESK_MAIL_MAX_MESSAGE_MB", 50.0),
        mail_timeout_seconds=_float(env, "HELPDESK_MAIL_TIMEOUT_SECONDS", 30.0),
        mail_ack_limit_per_hour=_ack_limit(env),
        response_target_hours=_float(env, "HELPDESK_RESPONSE_TARGET_HOURS", 48.0),
        report_day=_bounded(env, "HELPDESK_REPORT_DAY", 1, 0, 28),
        report_hour=_bounded(env, "HELPDESK_REPORT_HOUR", 8, 0, 23),
        report_language=_report_language(env),
        retention_months=_bounded(env, "HELPDESK_RETENTION_MONTHS", 0, 0, 1200),
        referral_reminder_days=_bounded(env, "HELPDESK_REFERRAL_REMINDER_DAYS", 5, 1, 365),
        delivery_lease_seconds=_float(env, "HELPDESK_DELIVERY_LEASE_SECONDS", 120.0),
        delivery_retry_base_seconds=_float(env, "HELPDESK_DELIVERY_RETRY_BASE_SECONDS", 5.0),
        spool_dir=cwd / (_get(env, "HELPDESK_SPOOL_DIR") or "spool"),
        spool_max_mb=_bounded(env, "HELPDESK_SPOOL_MAX_MB", 512, 1, 1_000_000),
        telegram_outage_grace_seconds=_float(env, "HELPDESK_TELEGRAM_OUTAGE_GRACE_SECONDS", 60.0),
        telegram_max_open_tickets=_bounded(env, "HELPDESK_TELEGRAM_MAX_OPEN_TICKETS", 5, 1, 1000),
        telegram_receipts_per_minute=_bounded(env, "HELPDESK_TELEGRAM_RECEIPTS_PER_MINUTE", 3, 0, 1000),
        web=_web(env),
        web_base_url=_base_url(env, "HELPDESK_WEB_BASE_URL"),
    )


def _web(env: Mapping[str, str]) -> WebSettings | None:
    if _get(env, "HELPDESK_WEB_PORT") is None:
        return None
    key = _web_secret_key(env, "HELPDESK_WEB_SECRET_KEY")
    return WebSettings(
        port=_port(env, "HELPDESK_WEB_PORT", 8080),
        host=_get(env, "HELPDESK_WEB_HOST") or "127.0.0.1",
        secret_key=Secret(key) if key else None,
        base_url=_base_url(env, "HELPDESK_WEB_BASE_URL"),
    )


def _base_url(env: Mapping[str, str], name: str) -> str | None:
    value = _get(env, name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an http:// or https:// URL without query, got {value!r}")
    return value.rstrip("/")


def _web_secret_key(env: Mapping[str, str], name: str) -> str | None:
    value = _get(env, name)
    # Anything shorter is guessable offline from one signed cookie.
    if value is not None and len(value) < 32:
        raise ConfigError(f"{name} must be at least 32 characters (e.g. `openssl rand -hex 32`)")
    return value


def _api_url(env: Mapping[str, str], name: str) -> str:
    api_url = _get(env, name) or "https://api.telegram.org/bot"
    if not api_url.startswith(("http://", "https://")) or api_url.endswith("/"):
        raise ConfigError(
            f"{name} must be an http(s) URL ending in the path before the token, "
            f"without a trailing slash (like https://api.telegram.org/bot), got {api_url!r}"
        )
    return api_url


def _webhook_url(env: Mapping[str, str], name: str) -> str | None:
    url = _get(env, name)
    if url is not None and (not url.startswith("https://") or not urlsplit(url).hostname):
        raise ConfigError(f"{name} must be an https:// URL, got {url!r}")
    return url


# Telegram sends this header value with every webhook call; it allows 1-256 of these characters.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _webhook_secret(env: Mapping[str, str], name: str) -> str | None:
    secret = _get(env, name)
    if secret is not None and not _WEBHOOK_SECRET.fullmatch(secret):
        raise ConfigError(f"{name} must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
    return secret


def _webhook(env: Mapping[str, str]) -> dict[str, object]:
    url = _webhook_url(env, "HELPDESK_TELEGRAM_WEBHOOK_URL")
    if url is None:
        return {}
    # Without the secret the listener cannot tell Telegram's calls from forged ones claiming a staff id.
    secret = _require(env, "HELPDESK_TELEGRAM_WEBHOOK_SECRET", "when HELPDESK_TELEGRAM_WEBHOOK_URL is set")
    _webhook_secret(env, "HELPDESK_TELEGRAM_WEBHOOK_SECRET")
    return {
        "webhook_url": url,
        "webhook_listen": _get(env, "HELPDESK_TELEGRAM_WEBHOOK_LISTEN") or "127.0.0.1",
        "webhook_port": _port(env, "HELPDESK_TELEGRAM_WEBHOOK_PORT", 8443),
        "webhook_secret": Secret(secret),
    }


def _authserv_id(env: Mapping[str, str]) -> str | None:
    value = _get(env, "HELPDESK_MAIL_TRUSTED_AUTHSERV_ID")
    if value is None:
        return None
    # RFC 8601 authserv-id: a token, in practice the server's host name (no spaces, ";", quotes or "()").
    if len(value) > 255 or not all(c.isascii() and c.isprintable() and c not in ' ;"()\\' for c in value):
        raise ConfigError(
            "HELPDESK_MAIL_TRUSTED_AUTHSERV_ID must be the mail server's authserv-id, such as "
            f"mx.tscc.example (no spaces, ';', quotes or parentheses), got {value!r}"
        )
    return value.lower()


def _timezone(env: Mapping[str, str]) -> str:
    name = _get(env, "HELPDESK_TIMEZONE") or "Asia/Tashkent"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"HELPDESK_TIMEZONE must be an IANA time zone such as Asia/Tashkent, got {name!r}"
        ) from None
    return name


def _ack_limit(env: Mapping[str, str]) -> int:
    limit = _int(env, "HELPDESK_MAIL_ACK_LIMIT_PER_HOUR", 5)
    assert limit is not None
    if limit < 0:
        raise ConfigError(f"HELPDESK_MAIL_ACK_LIMIT_PER_HOUR must be 0 or more, got {limit}")
    return limit


def _bounded(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _int(env, name, default)
    assert value is not None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _report_language(env: Mapping[str, str]) -> str:
    value = (_get(env, "HELPDESK_REPORT_LANGUAGE") or "ru").lower()
    if value not in ("en", "ru"):
        raise ConfigError(f"HELPDESK_REPORT_LANGUAGE must be en or ru, got {value!r}")
    return value


ValueCheck = Callable[[Mapping[str, str], str], object]

# Every setting the desk reads, with the check its value must pass (None: any text, or checked in _parse).
# A value that is set is checked even when its channel is off, so HELPDESK_IMAP_PORT=abc is reported before
# the day HELPDESK_IMAP_HOST is set; a HELPDESK_* name missing from here is warned about as a likely typo.
# A new setting is added here as well as parsed above.
SETTINGS: dict[str, ValueCheck | None] = {
    "HELPDESK_DATABASE_URL": None,
    "HELPDESK_TELEGRAM_TOKEN": None,
    "HELPDESK_TELEGRAM_API_URL": _api_url,
    "HELPDESK_TELEGRAM_STAFF_CHAT_ID": _int,
    "HELPDESK_TELEGRAM_WEBHOOK_URL": _webhook_url,
    "HELPDESK_TELEGRAM_WEBHOOK_LISTEN": None,
    "HELPDESK_TELEGRAM_WEBHOOK_PORT": partial(_port, default=8443),
    "HELPDESK_TELEGRAM_WEBHOOK_SECRET": _webhook_secret,
    "HELPDESK_STAFF_TELEGRAM_IDS": None,
    "HELPDESK_STAFF_EMAILS": None,
    "HELPDESK_IMAP_HOST": None,
    "HELPDESK_IMAP_PORT": partial(_port, default=993),
    "HELPDESK_IMAP_USER": None,
    "HELPDESK_IMAP_PASSWORD": None,
    "HELPDESK_IMAP_TLS": partial(_bool, default=True),
    "HELPDESK_IMAP_MAILBOX": None,
    "HELPDESK_IMAP_POLL_INTERVAL": partial(_float, default=60.0),
    "HELPDESK_IMAP_PROCESSED_FOLDER": None,
    "HELPDESK_SMTP_HOST": None,
    "HELPDESK_SMTP_PORT": partial(_port, default=587),
    "HELPDESK_SMTP_USER": None,
    "HELPDESK_SMTP_PASSWORD": None,
    "HELPDESK_SMTP_TLS": partial(_bool, default=True),
    "HELPDESK_MAIL_FROM": None,
    "HELPDESK_MAIL_MAX_ATTACHMENT_MB": None,
    "HELPDESK_MAIL_ACK_LIMIT_PER_HOUR": None,
    "HELPDESK_MAIL_TRUSTED_AUTHSERV_ID": None,
    "HELPDESK_MAIL_MAX_MESSAGE_MB": None,
    "HELPDESK_MAIL_TIMEOUT_SECONDS": None,
    "HELPDESK_SPOOL_DIR": None,
    "HELPDESK_SPOOL_MAX_MB": None,
    "HELPDESK_TELEGRAM_OUTAGE_GRACE_SECONDS": None,
    "HELPDESK_TELEGRAM_MAX_OPEN_TICKETS": None,
    "HELPDESK_TELEGRAM_RECEIPTS_PER_MINUTE": None,
    "HELPDESK_TIMEZONE": None,
    "HELPDESK_RESPONSE_TARGET_HOURS": None,
    "HELPDESK_REPORT_DAY": None,
    "HELPDESK_REPORT_HOUR": None,
    "HELPDESK_REPORT_LANGUAGE": None,
    "HELPDESK_RETENTION_MONTHS": None,
    "HELPDESK_REFERRAL_REMINDER_DAYS": None,
    "HELPDESK_DELIVERY_LEASE_SECONDS": None,
    "HELPDESK_DELIVERY_RETRY_BASE_SECONDS": None,
    "HELPDESK_WEB_PORT": partial(_port, default=8080),
    "HELPDESK_WEB_HOST": None,
    "HELPDESK_WEB_BASE_URL": _base_url,
    "HELPDESK_WEB_SECRET_KEY": _web_secret_key,
}

# Variables of the test suite and the benches, not settings of the desk.
_NOT_SETTINGS = ("HELPDESK_TEST_", "HELPDESK_FAULT_", "HELPDESK_FUZZ_")


def _check_every_value_present(env: Mapping[str, str]) -> None:
    for name, check in SETTINGS.items():
        if check is not None and _get(env, name) is not None:
            check(env, name)


def _warn_about_unknown_names(env: Mapping[str, str]) -> None:
    for name in sorted(env):
        if not name.startswith("HELPDESK_") or name in SETTINGS or name.startswith(_NOT_SETTINGS):
            continue
        closest = difflib.get_close_matches(name, SETTINGS, n=1)
        hint = f"; did you mean {closest[0]}?" if closest else ""
        log.warning("%s is not a help desk setting and is ignored%s", name, hint)
