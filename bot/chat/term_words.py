"""The words /backtest and /sweep take to override the terms they simulate: fee=, slippage=,
balance=, volume_share=, share= and risk.KEY= (issue 17: the same overrides as the CLI)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.chat.requests import number
from bot.core.errors import UserInputError
from bot.research.account_terms import Overrides
from strategies import strategy_registry

RATES = {
    "fee": "fee_rate",
    "slippage": "slippage",
    "balance": "balance",
    "volume_share": "volume_share",
    "share": "capital_share",
}
RISK = "risk."
# As the usage texts of /backtest and /sweep show the words.
USAGE = "[fee=F] [slippage=F] [balance=N] [share=F] [volume_share=F] [risk.KEY=V]"


def is_term(key: str) -> bool:
    """Whether ``key=`` overrides a term rather than naming a strategy parameter."""
    return key in RATES or key.startswith(RISK)


def strategy_words(strategy: str, given: Mapping[str, str]) -> dict[str, str]:
    """The words of ``given`` left for ``strategy``: all but the term words. A term word that
    is also one of the strategy's parameters is refused: which one it sets would be a guess."""
    registry = strategy_registry()
    names = {spec.name for spec in registry[strategy].specs()} if strategy in registry else set()
    clash = sorted(key for key in given if is_term(key) and key in names)
    if clash:
        raise UserInputError(
            f"{clash[0]}= is both a term word and a parameter of {strategy}: "
            "this command cannot tell which you mean"
        )
    return {key: value for key, value in given.items() if not is_term(key)}


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
