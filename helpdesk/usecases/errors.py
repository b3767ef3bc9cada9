"""Refusals a use-case gives staff: each message is fit to print as it is."""

from __future__ import annotations


class DeskError(Exception):
    pass


class TicketNotFound(DeskError):
    def __init__(self, reference: str) -> None:
        super().__init__(f"no ticket {reference}")
        self.reference = reference


class InvalidTransition(DeskError):
    pass


class NoRoute(DeskError):
    """A reply cannot reach the requester: the ticket's channel has no address for them."""
