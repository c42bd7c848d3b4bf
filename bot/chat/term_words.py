"""The words /backtest and /sweep take to override the terms they simulate: fee=, slippage=,
balance=, volume_share=, share= and risk.KEY= (issue 17: the same overrides as the CLI)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.chat.requests import number
from bot.research.account_terms import Overrides

RATES = {
    "fee": "fee_rate",
    "slippage": "slippage",
    "balance": "balance",
    "volume_share": "volume_share",
    "share": "capital_share",
}
RISK = "risk."


def is_term(key: str) -> bool:
    """Whether ``key=`` overrides a term rather than naming a strategy parameter."""
    return key in RATES or key.startswith(RISK)


def term_overrides(given: Mapping[str, str]) -> Overrides:
    """The overrides among ``given`` (KEY=VALUE words); a value that is no number is refused
    naming it. Their bounds are checked where the terms are built (research_terms)."""
    values = {RATES[k]: number(k, v) for k, v in given.items() if k in RATES}
    risk = {k.removeprefix(RISK): v for k, v in given.items() if k.startswith(RISK)}
    return Overrides(
        balance=values.get("balance"),
        fee_rate=values.get("fee_rate"),
        slippage=values.get("slippage"),
        volume_share=values.get("volume_share"),
        capital_share=values.get("capital_share"),
        risk=risk,
    )
