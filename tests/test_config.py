"""Settings: names from the brief's contract, defaults, files, and one clear line per mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpdesk.config import ConfigError, Settings

MAIL = {"HELPDESK_SMTP_HOST": "smtp.example.org", "HELPDESK_MAIL_FROM": "helpdesk@tscc.example.org"}
WEBHOOK = {
    "HELPDESK_TELEGRAM_TOKEN": "123:abc",
    "HELPDESK_TELEGRAM_WEBHOOK_URL": "https://desk.example.org/telegram",
    "HELPDESK_TELEGRAM_WEBHOOK_SECRET": "Wh-" + "s3cret_" * 36,  # 255 characters
}


def test_mail_limits_default_and_override(workdir: Path) -> None:
    assert Settings.from_env({}).mail_max_message_mb == 50.0
    assert Settings.from_env({}).mail_timeout_seconds == 30.0
    tuned = Settings.from_env({"HELPDESK_MAIL_MAX_MESSAGE_MB": "25", "HELPDESK_MAIL_TIMEOUT_SECONDS": "5"})
    assert (tuned.mail_max_message_mb, tuned.mail_timeout_seconds) == (25.0, 5.0)


def test_defaults_run_with_nothing_configured(workdir: Path) -> None:
    settings = Settings.from_env({})
    assert settings.database_url == f"sqlite+aiosqlite:///{workdir / 'helpdesk.db'}"
    assert settings.telegram is None and settings.imap is None and settings.smtp is None
    assert settings.timezone == "Asia/Tashkent"
    assert settings.spool_dir == workdir / "spool" and settings.spool_max_mb == 512
    assert settings.telegram_outage_grace_seconds == 60
    assert (settings.telegram_max_open_tickets, settings.telegram_receipts_per_minute) == (5, 3)


def test_telegram_outage_and_flood_settings(workdir: Path) -> None:
    settings = Settings.from_env(
        {
            "HELPDESK_SPOOL_DIR": "/var/lib/helpdesk/spool",
            "HELPDESK_SPOOL_MAX_MB": "64",
            "HELPDESK_TELEGRAM_OUTAGE_GRACE_SECONDS": "120",
            "HELPDESK_TELEGRAM_MAX_OPEN_TICKETS": "2",
            "HELPDESK_TELEGRAM_RECEIPTS_PER_MINUTE": "0",
        }
    )
    assert settings.spool_dir == Path("/var/lib/helpdesk/spool") and settings.spool_max_mb == 64
    assert settings.telegram_outage_grace_seconds == 120
    assert (settings.telegram_max_open_tickets, settings.telegram_receipts_per_minute) == (2, 0)


def test_full_configuration(workdir: Path) -> None:
    settings = Settings.from_env(
        {
            "HELPDESK_DATABASE_URL": "postgresql://helpdesk:pw@db:5432/helpdesk",
            "HELPDESK_TELEGRAM_TOKEN": "123:abc",
            "HELPDESK_TELEGRAM_STAFF_CHAT_ID": "-100200",
            "HELPDESK_STAFF_TELEGRAM_IDS": "11, 12",
            "HELPDESK_IMAP_HOST": "imap.example.org",
            "HELPDESK_IMAP_USER": "helpdesk",
            "HELPDESK_IMAP_PASSWORD": "imap-secret",
            "HELPDESK_SMTP_PORT": "465",
            "HELPDESK_SMTP_USER": "helpdesk",
            "HELPDESK_SMTP_PASSWORD": "smtp-secret",
            "HELPDESK_STAFF_EMAILS": "Aziza@tscc.example.org,b@tscc.example.org",
            "HELPDESK_MAIL_TRUSTED_AUTHSERV_ID": "MX.tscc.example.org",
            **MAIL,
        }
    )
    assert settings.database_url == "postgresql+asyncpg://helpdesk:pw@db:5432/helpdesk"
    assert settings.telegram is not None and settings.telegram.api_url == "https://api.telegram.org/bot"
    assert settings.telegram.staff_chat_id == -100200
    assert settings.staff_telegram_ids == {11, 12}
    assert settings.imap is not None and settings.imap.port == 993 and settings.imap.tls
    assert settings.imap.mailbox == "INBOX" and settings.imap.password.reveal() == "imap-secret"
    assert settings.smtp is not None and settings.smtp.port == 465
    assert settings.staff_emails == {"aziza@tscc.example.org", "b@tscc.example.org"}
    assert settings.mail_trusted_authserv_id == "mx.tscc.example.org"  # compared case-insensitively
    # Secrets never show in a repr, and so not in a log or traceback.
    assert "imap-secret" not in repr(settings) and "smtp-secret" not in repr(settings)
    assert "abc" not in repr(settings.telegram)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HELPDESK_IMAP_HOST": "imap.example.org"}, "HELPDESK_IMAP_USER is not set"),
        (
            {"HELPDESK_IMAP_HOST": "h", "HELPDESK_IMAP_USER": "u", "HELPDESK_IMAP_PASSWORD": "p"},
            "HELPDESK_SMTP_HOST",
        ),
        ({"HELPDESK_SMTP_HOST": "smtp.example.org"}, "HELPDESK_MAIL_FROM is not set"),
        ({**MAIL, "HELPDESK_SMTP_PORT": "smtp"}, "HELPDESK_SMTP_PORT must be a whole number"),
        ({**MAIL, "HELPDESK_SMTP_PORT": "70000"}, "HELPDESK_SMTP_PORT must be a TCP port"),
        ({**MAIL, "HELPDESK_SMTP_TLS": "maybe"}, "HELPDESK_SMTP_TLS must be on or off"),
        ({**MAIL, "HELPDESK_MAIL_FROM": "helpdesk"}, "HELPDESK_MAIL_FROM must be an email address"),
        ({"HELPDESK_TELEGRAM_TOKEN": "nocolon"}, "HELPDESK_TELEGRAM_TOKEN does not look like a bot token"),
        (
            {"HELPDESK_TELEGRAM_TOKEN": "1:a", "HELPDESK_TELEGRAM_API_URL": "http://x/bot/"},
            "HELPDESK_TELEGRAM_API_URL",
        ),
        ({"HELPDESK_STAFF_TELEGRAM_IDS": "12,abc"}, "HELPDESK_STAFF_TELEGRAM_IDS must be comma-separated"),
        ({"HELPDESK_DATABASE_URL": "mysql://x/y"}, "HELPDESK_DATABASE_URL must start with"),
        (
            {"HELPDESK_TELEGRAM_TOKEN": "1:a", "HELPDESK_TELEGRAM_STAFF_CHAT_ID": "group"},
            "STAFF_CHAT_ID must be",
        ),
        ({"HELPDESK_TIMEZONE": "Mars/Olympus"}, "HELPDESK_TIMEZONE must be an IANA time zone"),
        (
            {"HELPDESK_MAIL_TRUSTED_AUTHSERV_ID": "mx.tscc.example; dkim=pass"},
            "HELPDESK_MAIL_TRUSTED_AUTHSERV_ID must be the mail server's authserv-id",
        ),
        ({"HELPDESK_MAIL_MAX_MESSAGE_MB": "50MB"}, "HELPDESK_MAIL_MAX_MESSAGE_MB must be a number"),
        ({"HELPDESK_MAIL_MAX_MESSAGE_MB": "0"}, "HELPDESK_MAIL_MAX_MESSAGE_MB must be greater than 0"),
        ({"HELPDESK_MAIL_TIMEOUT_SECONDS": "soon"}, "HELPDESK_MAIL_TIMEOUT_SECONDS must be a number"),
        (
            {**WEBHOOK, "HELPDESK_TELEGRAM_WEBHOOK_URL": "http://desk.example.org/telegram"},
            "^HELPDESK_TELEGRAM_WEBHOOK_URL must be an https:// URL",
        ),
        (
            {**WEBHOOK, "HELPDESK_TELEGRAM_WEBHOOK_URL": "https:///telegram"},
            "^HELPDESK_TELEGRAM_WEBHOOK_URL must be an https:// URL",
        ),
        (
            {**WEBHOOK, "HELPDESK_TELEGRAM_WEBHOOK_SECRET": ""},
            "^HELPDESK_TELEGRAM_WEBHOOK_SECRET is not set; it is required when HELPDESK_TELEGRAM_WEBHOOK_URL",
        ),
        (
            {**WEBHOOK, "HELPDESK_TELEGRAM_WEBHOOK_SECRET": "has space"},
            "^HELPDESK_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters",
        ),
        (
            {**WEBHOOK, "HELPDESK_TELEGRAM_WEBHOOK_SECRET": "секрет"},
            "^HELPDESK_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters",
        ),
        (
            {**WEBHOOK, "HELPDESK_TELEGRAM_WEBHOOK_SECRET": "x" * 257},
            "^HELPDESK_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters",
        ),
        ({"HELPDESK_TELEGRAM_OUTAGE_GRACE_SECONDS": "0"}, "HELPDESK_TELEGRAM_OUTAGE_GRACE_SECONDS must be"),
        ({"HELPDESK_TELEGRAM_MAX_OPEN_TICKETS": "0"}, "HELPDESK_TELEGRAM_MAX_OPEN_TICKETS must be between"),
        ({"HELPDESK_TELEGRAM_RECEIPTS_PER_MINUTE": "many"}, "HELPDESK_TELEGRAM_RECEIPTS_PER_MINUTE must be"),
        ({"HELPDESK_SPOOL_MAX_MB": "-1"}, "HELPDESK_SPOOL_MAX_MB must be between"),
    ],
)
def test_each_mistake_names_its_variable(workdir: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_webhook_mode_needs_a_secret_and_listens_on_loopback(workdir: Path) -> None:
    telegram = Settings.from_env(WEBHOOK).telegram
    assert telegram is not None and telegram.webhook_url == "https://desk.example.org/telegram"
    assert telegram.webhook_listen == "127.0.0.1" and telegram.webhook_port == 8443
    assert telegram.webhook_secret is not None
    assert telegram.webhook_secret.reveal() == WEBHOOK["HELPDESK_TELEGRAM_WEBHOOK_SECRET"]  # whole, not cut
    assert "s3cret" not in repr(telegram)
    # The error for a malformed secret names the variable, never the value.
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**WEBHOOK, "HELPDESK_TELEGRAM_WEBHOOK_SECRET": "s3cret value"})
    assert "s3cret" not in str(error.value)
    # Polling mode needs no secret.
    polling = Settings.from_env({"HELPDESK_TELEGRAM_TOKEN": "123:abc"}).telegram
    assert polling is not None and polling.webhook_url is None and polling.webhook_secret is None


def test_files_add_settings_and_environment_wins(workdir: Path) -> None:
    (workdir / "helpdesk.toml").write_text('mail_from = "toml@tscc.example.org"\ntimezone = "UTC"\n')
    (workdir / ".env").write_text(
        "# comment\nHELPDESK_SMTP_HOST=smtp.example.org\nexport HELPDESK_TIMEZONE='Asia/Almaty'\n"
    )
    settings = Settings.from_env({"HELPDESK_MAIL_FROM": "env@tscc.example.org"})
    assert settings.mail_from == "env@tscc.example.org"  # environment over files
    assert settings.smtp is not None and settings.smtp.host == "smtp.example.org"  # from .env
    assert settings.timezone == "Asia/Almaty"  # .env over helpdesk.toml


def test_broken_toml_is_reported(workdir: Path) -> None:
    (workdir / "helpdesk.toml").write_text("mail_from = \n")
    with pytest.raises(ConfigError, match=r"helpdesk\.toml: not valid TOML"):
        Settings.from_env({})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HELPDESK_IMAP_PORT": "abc"}, "HELPDESK_IMAP_PORT must be a whole number, got 'abc'"),
        ({"HELPDESK_IMAP_TLS": "sometimes"}, "HELPDESK_IMAP_TLS must be on or off"),
        ({"HELPDESK_IMAP_POLL_INTERVAL": "0"}, "HELPDESK_IMAP_POLL_INTERVAL must be greater than 0"),
        ({"HELPDESK_SMTP_TLS": "maybe"}, "HELPDESK_SMTP_TLS must be on or off"),
        ({"HELPDESK_SMTP_PORT": "0"}, "HELPDESK_SMTP_PORT must be a TCP port"),
        (
            {"HELPDESK_TELEGRAM_STAFF_CHAT_ID": "staff group"},
            "HELPDESK_TELEGRAM_STAFF_CHAT_ID must be a whole",
        ),
        ({"HELPDESK_TELEGRAM_API_URL": "api.telegram.org"}, "HELPDESK_TELEGRAM_API_URL must be an http"),
        ({"HELPDESK_TELEGRAM_WEBHOOK_PORT": "https"}, "HELPDESK_TELEGRAM_WEBHOOK_PORT must be a whole"),
        (
            {"HELPDESK_TELEGRAM_WEBHOOK_URL": "example.org/tg"},
            "HELPDESK_TELEGRAM_WEBHOOK_URL must be an https",
        ),
        (
            {"HELPDESK_TELEGRAM_WEBHOOK_SECRET": "a b"},
            "HELPDESK_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters",
        ),
    ],
)
def test_a_malformed_value_is_reported_when_its_channel_is_off(
    workdir: Path, env: dict[str, str], message: str
) -> None:
    assert not any(
        name in env for name in ("HELPDESK_IMAP_HOST", "HELPDESK_SMTP_HOST", "HELPDESK_TELEGRAM_TOKEN")
    )
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_a_malformed_database_url_names_the_variable_not_the_password(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="HELPDESK_DATABASE_URL is not a valid database URL") as caught:
        Settings.from_env({"HELPDESK_DATABASE_URL": "postgresql://helpdesk:Pa55word@db:fivefour/helpdesk"})
    assert "Pa55word" not in str(caught.value) and "fivefour" in str(caught.value)


def test_an_unknown_setting_is_warned_about_with_the_closest_name(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (workdir / ".env").write_text("HELPDESK_SMTP_PROT=2525\n")
    settings = Settings.from_env(
        {"HELPDESK_IMAP_HOSTNAME": "imap.example.org", "HELPDESK_TEST_POSTGRES": "postgresql://x/y"}
    )
    assert settings.imap is None  # a warning, not a stop
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "HELPDESK_IMAP_HOSTNAME is not a help desk setting and is ignored; did you mean HELPDESK_IMAP_HOST?",
        "HELPDESK_SMTP_PROT is not a help desk setting and is ignored; did you mean HELPDESK_SMTP_PORT?",
    ]


def test_an_unknown_setting_is_one_line_on_stderr(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("helpdesk")), "db", "upgrade"],
        cwd=tmp_path, env={**env, "HELPDESK_TELEGRAM_TOKN": "1:abc"}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.endswith(
        "HELPDESK_TELEGRAM_TOKN is not a help desk setting and is ignored; "
        "did you mean HELPDESK_TELEGRAM_TOKEN?"
    )


def test_every_variable_the_desk_reads_is_a_known_setting() -> None:
    """A setting read anywhere but missing from config.SETTINGS would be warned about as a typo and its
    value never checked while its channel is off."""
    import re

    import helpdesk
    from helpdesk.config import _NOT_SETTINGS, SETTINGS

    root = Path(helpdesk.__file__).parent
    read: set[str] = set()
    for path in [*root.rglob("*.py"), *(root.parent / "bot").rglob("*.py")]:
        read.update(re.findall(r"\"(HELPDESK_[A-Z0-9_]*[A-Z0-9])\"", path.read_text(encoding="utf-8")))
    read = {name for name in read if not name.startswith(_NOT_SETTINGS)}
    assert read, "the scan found no settings at all"
    assert sorted(read - set(SETTINGS)) == []
