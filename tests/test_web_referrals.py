"""Matchmaking on the web (issue #14): the expert's one-click answer page (public, token-proven) and the
ticket page's Referrals section (refer, introduce, cooperation, outcome). Attacks first."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_web_ticket_work import follow_up, inbound, sign_in
from web_harness import Web, open_web

from helpdesk.db.models import AuditEvent, Message, Referral
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases.referral_tokens import link_key, link_token
from helpdesk.usecases.referrals import LINK_LIFETIME, refer
from helpdesk.web.login_limits import PER_ACCOUNT

EXPERT_BOX = re.compile(r'name="expert" value="([^"]+)"')


@pytest.fixture
def web(database_url: str, engine: AsyncEngine) -> Iterator[Web]:
    with open_web(database_url) as web:
        yield web


def referrals(web: Web) -> list[Referral]:
    async def read(desk: Desk) -> list[Referral]:
        async with desk.sessions() as session:
            return list(await session.scalars(select(Referral).order_by(Referral.id)))

    return web.run(read)


def referred(web: Web) -> tuple[str, Referral]:
    reference = inbound(web, 1)
    web.run(lambda desk: refer(desk, reference, ["ex-001"], message="Could you?", actor="cli:t"))
    [referral] = referrals(web)
    return reference, referral


def link(web: Web, referral: Referral, answer: str = "yes", *, expires_in: timedelta = LINK_LIFETIME) -> str:
    async def make(desk: Desk) -> str:
        async with desk.sessions.begin() as session:
            return link_token(await link_key(session), referral.id, answer, utcnow() + expires_in)

    return f"/referrals/answer/{web.run(make)}"


def test_the_link_page_is_public_a_get_changes_nothing_and_the_post_answers_once(web: Web) -> None:
    reference, referral = referred(web)
    yes = link(web, referral) + "?lang=en"
    shown = web.client.get(yes)  # no session at all: the expert is not staff
    assert shown.status_code == 200 and reference in shown.text
    assert 'data-testid="link-confirm"' in shown.text and 'name="csrf_token"' not in shown.text
    web.client.get(yes)  # a mail scanner's second prefetch
    assert referrals(web)[0].state == "offered"
    web.client.cookies.clear()
    done = web.client.post(yes)  # no session, no CSRF token: the signed single-use token is the proof
    assert done.status_code == 200 and f"Your answer to request {reference} is recorded" in done.text
    assert referrals(web)[0].state == "accepted"
    again = web.client.post(link(web, referral, "no") + "?lang=en")
    assert again.status_code == 410 and "already been answered" in again.text
    assert web.client.get(yes).status_code == 410
    assert referrals(web)[0].state == "accepted"


def test_a_forged_edited_or_expired_link_is_refused_and_guessing_is_bounded(web: Web) -> None:
    _, referral = referred(web)
    yes = link(web, referral)
    edited = yes.replace(".yes.", ".no.")
    expired = link(web, referral, expires_in=-timedelta(seconds=1))
    tries = [
        (web.client.get, edited, 400),
        (web.client.post, edited, 400),
        (web.client.get, expired, 410),
        (web.client.post, expired, 410),
        (web.client.post, "/referrals/answer/" + "1" * 5000, 400),
    ]
    assert len(tries) == PER_ACCOUNT
    for answer, path, status in tries:
        refused = answer(path)
        assert refused.status_code == status, path[:80]
        assert 'data-testid="link-refused"' in refused.text
    assert referrals(web)[0].state == "offered"
    # Past the limit of refused links from one address, even a genuine link waits: guessing is bounded.
    assert web.client.post(yes).status_code == 429
    assert referrals(web)[0].state == "offered"


def test_the_expert_reads_the_page_in_the_letter_s_language_its_refusals_too(web: Web) -> None:
    """The page's own words were translated, but its refusals and its thanks came in English: a Russian
    page said "this referral was already answered; thank you". Its links carry the letter's language and
    every refusal is worded in it."""
    reference, referral = referred(web)
    yes, no = (link(web, referral, answer) + "?lang=ru" for answer in ("yes", "no"))
    form = web.client.get(yes)
    assert "Подтвердить ответ" in form.text and 'action="/referrals/answer/' in form.text
    web.client.cookies.clear()  # the form keeps the language for its POST, session or not
    action = re.search(r'action="([^"]+)"', form.text)
    assert action is not None and action.group(1).endswith("?lang=ru")
    done = web.client.post(action.group(1))
    assert done.status_code == 200
    assert f"Ваш ответ на запрос {reference} записан" in done.text and "Да, я могу помочь" in done.text
    refused = {
        "answered": web.client.post(no),
        "expired": web.client.get(link(web, referral, expires_in=-timedelta(seconds=1)) + "?lang=ru"),
        "not ours": web.client.get(yes.replace(".yes.", ".no.")),
    }
    wording = {
        "answered": "уже ответили",
        "expired": "Срок действия ссылки истёк",
        "not ours": "создана не службой поддержки",
    }
    for reason, page in refused.items():
        assert page.status_code in (400, 410), reason
        shown = re.search(r'data-testid="link-refused">([^<]*)<', page.text)
        assert shown is not None and wording[reason] in shown.group(1), (reason, shown)
        assert not re.search(r"[A-Za-z]{3}", shown.group(1)), shown.group(1)  # no English left in it


def test_every_refusal_is_worded_on_the_page_in_both_languages() -> None:
    """A reason added to the use-case without words on the page would show its bare name."""
    from helpdesk.usecases.referral_links import REFUSALS, LinkCheck
    from helpdesk.web import i18n
    from helpdesk.web.routes.referral_answers import TOO_MANY
    from helpdesk.web.templating import web_environment

    template = web_environment().get_template("web/referral_answer.html.j2")
    for language in ("en", "ru"):
        token = i18n._current.set(language)
        try:
            for reason in (*REFUSALS, TOO_MANY):
                html = template.render(check=LinkCheck(refused=reason), lang=language, staff=None)
                shown = re.search(r'data-testid="link-refused">([^<]*)<', html)
                assert shown is not None and shown.group(1) != reason, (language, reason)
                assert (re.search(r"[а-яА-Я]", shown.group(1)) is not None) == (language == "ru"), shown
        finally:
            i18n._current.reset(token)


def test_only_the_answer_path_is_public(web: Web) -> None:
    reference, _ = referred(web)
    for path in ("/referrals/", "/referrals/answerx", f"/tickets/{reference}"):
        assert web.client.get(path, follow_redirects=False).status_code == 303
    refused = web.client.post(
        f"/tickets/{reference}/refer", data={"expert": "ex-001"}, follow_redirects=False
    )
    assert refused.status_code in (303, 403)
    assert len(referrals(web)) == 1


def test_a_viewer_may_not_refer_and_every_post_needs_the_csrf_token(web: Web) -> None:
    reference = inbound(web, 1)
    sign_in(web, "viewer@tscc.example", role="viewer", name="Vera Viewer")
    page = f"/tickets/{reference}"
    assert 'data-testid="refer-form"' not in web.client.get(page).text
    for action in ("refer", "introduce", "cooperation", "outcome"):
        assert web.post(f"{page}/{action}", {"expert": "ex-001"}, token_from=page).status_code == 403
    sign_in(web)
    no_token = web.client.post(f"{page}/refer", data={"expert": "ex-001"}, follow_redirects=False)
    assert no_token.status_code == 403
    assert referrals(web) == []


def test_refer_introduce_cooperate_and_record_the_outcome_from_the_ticket_page(web: Web) -> None:
    web.desk.web_base_url = "http://testserver"
    reference = inbound(web, 1)
    email = sign_in(web)
    page = f"/tickets/{reference}"
    offered = EXPERT_BOX.findall(web.client.get(page).text)
    assert offered, "the Refer form offers the ticket's matched experts"
    expert = offered[0]
    assert web.post(f"{page}/refer", {"expert": "nobody"}, token_from=page).status_code == 303
    assert "no expert" in web.client.get(page).text and referrals(web) == []
    web.post(f"{page}/refer", {"expert": expert, "body": "x" * 4001}, token_from=page)
    assert "too long" in web.client.get(page).text and referrals(web) == []
    web.post(f"{page}/refer", {"expert": expert, "body": "Could you <b>advise</b>?"}, token_from=page)
    [referral] = referrals(web)
    assert (referral.expert_id, referral.created_by, referral.state) == (expert, f"web:{email}", "offered")

    async def offer_text(desk: Desk) -> str:
        async with desk.sessions() as session:
            query = select(Message.body).where(Message.kind == "to_expert").order_by(Message.id)
            return (await session.scalars(query)).first() or ""

    letter = web.run(offer_text)
    assert "http://testserver/referrals/answer/" in letter and "Could you <b>advise</b>?" in letter
    assert re.search(r"/referrals/answer/\S+\.yes\.\S+\?lang=(ru|en)\b", letter)  # the letter's language
    shown = web.client.get(page).text
    assert 'data-testid="referral-state">offered<' in shown and "<b>advise" not in shown

    token_path = re.search(r"http://testserver(/referrals/answer/[^\s]*?\.yes\.[^\s]*)", letter)
    assert token_path is not None
    # Answered without the link's ?lang=: this client is the staff member's too, whose pages stay English.
    assert web.client.post(token_path.group(1).partition("?")[0]).status_code == 200
    assert 'data-testid="referral-state">accepted<' in web.client.get(page).text

    web.post(f"{page}/cooperation", {"expert": expert}, token_from=page)
    assert "introduce the two sides first" in web.client.get(page).text
    web.post(f"{page}/introduce", {"expert": expert}, token_from=page)
    assert "asked to agree" in web.client.get(page).text
    follow_up(web, 2, reference, "Yes, I agree")
    assert referrals(web)[0].introduced_at is not None  # the requester's yes introduced the two sides
    web.post(f"{page}/cooperation", {"expert": expert}, token_from=page)
    web.post(f"{page}/outcome", {"expert": expert, "outcome": "bribe", "text": "x"}, token_from=page)
    assert "Choose an outcome from the list." in web.client.get(page).text
    web.post(
        f"{page}/outcome", {"expert": expert, "outcome": "training", "text": "x" * 2001}, token_from=page
    )
    assert "too long" in web.client.get(page).text and referrals(web)[0].outcome is None
    web.post(
        f"{page}/outcome", {"expert": expert, "outcome": "training", "text": "Two days"}, token_from=page
    )
    [referral] = referrals(web)
    assert (referral.outcome, referral.outcome_text, referral.stage) == (
        "training",
        "Two days",
        "outcome: training",
    )
    assert referral.cooperation_at is not None
    assert "training: Two days" in web.client.get(page).text

    async def actors(desk: Desk) -> set[tuple[str, str]]:
        async with desk.sessions() as session:
            return {(e.actor, e.action) for e in await session.scalars(select(AuditEvent))}

    done = web.run(actors)
    for action in ("consent_asked", "in_cooperation", "outcome"):
        assert (f"web:{email}", action) in done
