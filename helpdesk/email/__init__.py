"""Email channel: IMAP intake, MIME parsing, SMTP sending."""
