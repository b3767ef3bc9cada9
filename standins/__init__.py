"""Local stand-ins for the outside world (Bot API, IMAP, SMTP) on loopback, for `helpdesk demo` and tests.

Not part of the service: nothing in helpdesk/ (except the demo) or bot/ imports this package, and the
servers it needs (aiohttp, aiosmtpd, pymap) come with the `demo` extra only. It is a top-level package in
the wheel, not under tests/, because the installed `helpdesk demo` runs it.
"""
