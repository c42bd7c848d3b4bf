"""/dust (admin): the dust in the books per asset, and its conversion where the venue offers
one, after an inline Confirm. The work is bot/trading/dust.py's; this module words it."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from bot.core.errors import BotError, UserInputError
from bot.core.number_text import amount_text
from bot.trading.dust import (
    DustDesk,
    DustSurvey,
    no_conversion,
    not_converted,
    nothing_to_convert,
    summary,
)
from handlers.request import Request


class NothingToConfirm(UserInputError):
    """A confirmed command with nothing to do now: its text is the answer, without a button."""


def listing(survey: DustSurvey) -> str:
    """The dust per asset, in plain text."""
    if not survey.holdings:
        return "No dust: no position is under the exchange's minimum."
    rows = [
        f"{h.asset} {amount_text(h.amount)} ({h.value:,.2f} {h.pair.split('/')[1]}, {h.pair})"
        for h in survey.holdings
    ]
    return "Dust (too small to sell): " + "; ".join(rows) + "."


def _sentence(text: str) -> str:
    """``text`` as a sentence: its first letter capitalised, asset and pair names kept."""
    return text[:1].upper() + text[1:] + "."


async def offer(desk: DustDesk | None, arguments: Sequence[str] = ()) -> str:
    """What a Confirm would convert (plain text), after settling a conversion asked before;
    NothingToConfirm, with the answer, when nothing is converted now."""
    if arguments:
        raise NothingToConfirm("/dust takes no arguments; send /dust.")
    if desk is None:
        raise NothingToConfirm("Dust is not tracked by this service.")
    try:
        settled = await desk.settle()
        if settled.unknown:
            raise NothingToConfirm(UNKNOWN)
        survey = await desk.survey()
    except NothingToConfirm:
        raise
    except BotError as error:  # the exchange could not be asked: answered, nothing changes
        raise NothingToConfirm(
            f"/dust could not ask the exchange ({error}); nothing changed."
        ) from None
    done = f"{summary(settled.converted)}\n" if settled.converted else ""
    if survey.target is None:
        raise NothingToConfirm(f"{done}{listing(survey)}\n{_sentence(no_conversion(survey.venue))}")
    if not survey.convertible:
        reason = "" if not survey.holdings else f"\n{_sentence(nothing_to_convert(survey))}"
        raise NothingToConfirm(done + listing(survey) + reason)
    own = [
        f"{h.asset} {amount_text(h.account - h.amount)}"
        for h in survey.convertible
        if h.account - h.amount > 1e-12
    ]
    assets = ", ".join(h.asset for h in survey.convertible)
    left = not_converted(survey)
    return (
        f"{done}{listing(survey)}\nConvert {assets} to {survey.target} on {survey.venue}: "
        "the whole free balance of each"
        + (f" (your own {', '.join(own)} too)" if own else "")
        + ", less the venue's charge; the venue converts once every 6 hours"
        + (f". Not converted: {left}" if left else "")
    )


UNKNOWN = (
    "❌ The exchange did not answer, and its dust log does not show the conversion yet: "
    "whether the dust was converted is not known yet. /dust checks again (nothing is "
    "converted twice)."
)


async def run_dust(request: Request) -> str:
    """/dust, confirmed: convert, and say what was received (Telegram HTML)."""
    desk = request.cockpit.dust
    if desk is None:
        raise UserInputError("dust is not tracked by this service")
    report = await desk.convert()
    if report.unknown:
        return UNKNOWN
    if not report.converted:
        return "Nothing was converted (the exchange's dust log shows no conversion)."
    return escape(summary(report.converted))
