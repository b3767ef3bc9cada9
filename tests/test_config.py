"""Settings: names from the brief's contract, defaults, files, and one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpdesk.config import ConfigError, Settings

MAIL = {"HELPDESK_SMTP_HOST": "smtp.example.org", "HELPDESK_MAIL_FROM": "helpdesk@tscc.example.org"}
WEBHOOK = {
    "HELPDESK_TELEGRAM_TOKEN": "123:abc",
    "HELPDESK_TELEGRAM_WEBHOOK_URL": "https://desk.example.org/telegram",
    "HELPDESK_TELEGRAM_WEBHOOK_SECRET": "Wh-" + "s3cret_" * 36,  # 255 characters
}


def test_defaults_run_with_nothing_configured(workdir: Path) -> None:
    settings = Settings.from_env({})
    assert settings.database_url == f"sqlite+aiosqlite:///{workdir / 'helpdesk.db'}"
    assert settings.telegram is None and settings.imap is None and settings.smtp is None
    assert settings.timezone == "Asia/Tashkent"


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
