"""The words /backtest and /sweep take for the terms they simulate, told apart from the
strategy's parameters (issue 17: the CLI's overrides, as words)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from bot.chat.term_words import is_term, strategy_words, term_overrides
from bot.core.errors import UserInputError
from strategies import BUILT_INS, strategy_registry
from strategies.base import ParamSpec
from strategies.ema_cross import EmaCross
from strategies.registry import Origin, install


def test_term_words_are_taken_out_of_the_strategys_parameters() -> None:
    given = {"fast": "5", "fee": "0.002", "share": "0.1", "risk.max_drawdown": "0"}
    assert strategy_words("ema_cross", given) == {"fast": "5"}
    overrides = term_overrides(given)
    assert (overrides.fee_rate, overrides.capital_share) == (0.002, 0.1)
    assert overrides.risk == {"max_drawdown": "0"}


def test_no_strategy_has_a_parameter_named_as_a_term_word() -> None:
    clashing = [
        f"{name}.{spec.name}"
        for name, strategy in BUILT_INS.items()
        for spec in strategy.specs()
        if is_term(spec.name)
    ]
    assert not clashing


class Sharing(EmaCross):
    """An EMA crossover with a parameter named as a term word."""

    name = "sharing"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        *EmaCross.param_specs,
        ParamSpec("share", float, 0.5, 0.0, 1.0),
    )


def test_a_term_word_that_is_also_a_strategy_parameter_is_refused() -> None:
    install(strategy_registry().adding(Sharing, Origin("file", __file__)))
    with pytest.raises(UserInputError, match="share= is both a term word and a parameter of"):
        strategy_words("sharing", {"fast": "5", "share": "0.1"})
    assert strategy_words("sharing", {"fast": "5", "fee": "0.002"}) == {"fast": "5"}
