"""/referrals/answer/{token}: an expert's one-click answer to an offer, without a staff session.

The expert is not staff, so this is the one public page that changes anything. A GET only shows what the
link would do and a button (mail scanners and link previews fetch links; a GET must change nothing); the
POST answers through ``referral_links.answer_by_link``. That POST carries no session and so no CSRF token
(``csrf.py`` exempts this path): the signed, expiring, single-use token in the URL is the proof instead.
A forged page can only submit a token its author already holds, and a token answers once. Refused links
are counted per address (the sign-in limits' counter), so guessing tokens is bounded. The page is in the
expert's language: the offer's links carry it (``?lang=``), and the form keeps it for the POST.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk.usecases.errors import DeskError
from helpdesk.usecases.referral_links import LinkCheck, answer_by_link, check_link
from helpdesk.web.templating import page

PATH = "/referrals/answer/"
# Beside ``referral_links.REFUSALS``: this address refused too often (the page words it too).
TOO_MANY = "too many"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _page(
    request: Request, check: LinkCheck, status_code: int = 200, *, token: str = "", done: bool = False
) -> Response:
    return page(request, "referral_answer", status_code=status_code, check=check, token=token, done=done)


def _refused(request: Request, check: LinkCheck) -> Response:
    request.app.state.link_limits.failed(f"link:{_client(request)}", _client(request))
    return _page(request, check, 410 if check.gone else 400)


async def _checked(request: Request) -> tuple[str, LinkCheck] | Response:
    client = _client(request)
    if not request.app.state.link_limits.allowed(f"link:{client}", client):
        return _page(request, LinkCheck(refused=TOO_MANY), 429)
    token = str(request.path_params["token"])
    check = await check_link(request.app.state.desk, token)
    if check.refused is not None:
        return _refused(request, check)
    return token, check


async def confirm(request: Request) -> Response:
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    token, check = checked
    return _page(request, check, token=token)


async def answer(request: Request) -> Response:
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    token, _ = checked
    try:
        recorded = await answer_by_link(request.app.state.desk, token)
    except DeskError as refused:
        # Answered by mail (or another press) between the check and now.
        return _refused(request, LinkCheck(refused=str(refused), gone=True))
    return _page(request, recorded, done=True)


ROUTES = [
    Route(PATH + "{token}", confirm, methods=["GET"]),
    Route(PATH + "{token}", answer, methods=["POST"]),
]
