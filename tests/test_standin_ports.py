"""The IMAP and SMTP stand-ins start on another port when another process binds the free one they picked
first (the suite's other worker does, now and then: a CI run once failed on it). A port the test named is
never swapped."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import standins.ports as ports
from standins.imap_server import ImapStandIn, ImapStandInError
from standins.smtp_server import SmtpStandIn


@pytest.fixture
def first_pick_taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The first port picked is bound by someone else before the stand-in binds it; the ports picked."""
    picked: list[int] = []
    holders: list[socket.socket] = []
    free = ports.free_port

    def pick(host: str = "127.0.0.1") -> int:
        port = free(host)
        if not picked:
            holder = socket.socket()
            holder.bind((host, port))
            holder.listen()
            holders.append(holder)
        picked.append(port)
        return port

    monkeypatch.setattr(ports, "free_port", pick)
    yield picked
    for holder in holders:
        holder.close()


async def test_pymap_starts_on_another_port_when_its_pick_is_taken(first_pick_taken: list[int]) -> None:
    async with ImapStandIn(user="u@tscc.example", password="pw") as imap:
        assert len(first_pick_taken) == 2 and imap.port == first_pick_taken[1]
        assert await imap.append(b"Subject: up\r\n\r\nserving\r\n") >= 1


async def test_aiosmtpd_starts_on_another_port_when_its_pick_is_taken(first_pick_taken: list[int]) -> None:
    async with SmtpStandIn() as smtp:
        assert len(first_pick_taken) == 2 and smtp.port == first_pick_taken[1]


async def test_a_named_port_that_is_taken_is_not_swapped() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        imap = ImapStandIn(user="u@tscc.example", password="pw")
        with pytest.raises(ImapStandInError, match="address already in use"):
            await imap.start(port=taken)
        assert imap.port == taken and not imap.running
