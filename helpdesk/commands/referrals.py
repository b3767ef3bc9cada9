"""`helpdesk tickets refer|introduce|cooperation|outcome`: matchmaking on the command line (issue #14)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from helpdesk.config import Settings
from helpdesk.service import open_runtime
from helpdesk.usecases.introductions import OUTCOMES, introduce, mark_cooperation, record_outcome
from helpdesk.usecases.referrals import refer


def register(
    actions: argparse._SubParsersAction,
    actor_option: Callable[[argparse.ArgumentParser], None],
    actor: Callable[[argparse.Namespace], str],
) -> None:
    refer_parser = actions.add_parser(
        "refer",
        help="offer the ticket to experts of the roster (by their email or Telegram, in their language)",
    )
    refer_parser.add_argument("reference")
    refer_parser.add_argument("--expert", action="append", default=[], help="roster id; repeat for more")
    refer_parser.add_argument(
        "--organisation", help="a provider organisation of the roster: each of its available experts"
    )
    refer_parser.add_argument("--message", help="the Centre's covering message to the expert")
    actor_option(refer_parser)
    refer_parser.set_defaults(handler=_refer, actor_of=actor)

    introduce_parser = actions.add_parser(
        "introduce", help="ask the requester to agree, then introduce them and an accepting expert"
    )
    introduce_parser.add_argument("reference")
    introduce_parser.add_argument("--expert", required=True)
    actor_option(introduce_parser)
    introduce_parser.set_defaults(handler=_introduce, actor_of=actor)

    cooperation = actions.add_parser("cooperation", help="mark an introduced referral as in cooperation")
    cooperation.add_argument("reference")
    cooperation.add_argument("--expert", help="roster id (default: the introduced one)")
    actor_option(cooperation)
    cooperation.set_defaults(handler=_cooperation, actor_of=actor)

    outcome = actions.add_parser("outcome", help="record what came of the cooperation")
    outcome.add_argument("reference")
    outcome.add_argument("--type", required=True, choices=OUTCOMES, dest="outcome")
    outcome.add_argument("--text", default="", help="one line on what was achieved")
    outcome.add_argument("--expert", help="roster id (default: the introduced one)")
    actor_option(outcome)
    outcome.set_defaults(handler=_outcome, actor_of=actor)


def _actor(args: argparse.Namespace) -> str:
    # The ticket commands' own "who is acting" rule, handed over by ``register``.
    return args.actor_of(args)


async def _refer(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        made = await refer(
            runtime.desk,
            args.reference,
            args.expert,
            message=args.message,
            actor=_actor(args),
            organisation=args.organisation,
        )
        for referral in made:
            print(
                f"{args.reference.upper()}: offered to {referral.expert_id} by {referral.channel} "
                f"(R{referral.id})"
            )
        if runtime.senders:
            await runtime.worker.deliver_due()
    return 0


async def _introduce(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        print(await introduce(runtime.desk, args.reference, args.expert, actor=_actor(args)))
        if runtime.senders:
            await runtime.worker.deliver_due()
    return 0


async def _cooperation(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        referral = await mark_cooperation(runtime.desk, args.reference, args.expert, actor=_actor(args))
    print(f"{args.reference.upper()}: in cooperation with {referral.expert_id}")
    return 0


async def _outcome(args: argparse.Namespace) -> int:
    async with open_runtime(Settings.from_env()) as runtime:
        referral = await record_outcome(
            runtime.desk, args.reference, args.expert, args.outcome, args.text, actor=_actor(args)
        )
    print(f"{args.reference.upper()}: outcome {referral.outcome} recorded")
    return 0
