"""Local stand-ins for the outside world (Bot API, IMAP, SMTP) on loopback, for `helpdesk demo` and tests."""
