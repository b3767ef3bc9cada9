"""Local stand-ins for the outside world (Bot API, IMAP, SMTP) on loopback: used by `helpdesk demo` and tests."""
