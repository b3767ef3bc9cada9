"""What the desk expects of a channel adapter that cannot start: one error class, one line for the operator.

Adapters (bot/, helpdesk/email/) raise a subclass with a message that names the setting to check and holds
no secret; `helpdesk run` prints it as its one line and stops everything it had started.
"""

from __future__ import annotations


class ChannelStartError(RuntimeError):
    """A channel could not start; the message names the setting to check and never contains a secret."""
