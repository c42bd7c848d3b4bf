"""bot.core.key_values: the one KEY=VALUE parser, each caller wording its own error."""

from __future__ import annotations

import pytest

from bot.core.errors import UserInputError
from bot.core.key_values import key_values


def _worded(item: str) -> str:
    return f"--x {item!r}: bad"


def test_items_become_a_dict_stripped() -> None:
    assert key_values(["fast=12", " slow = 26 "], _worded) == {"fast": "12", "slow": "26"}


def test_a_key_given_twice_is_refused_naming_both_values() -> None:
    """Which of two values was meant is unknowable: the later one won silently before."""
    with pytest.raises(UserInputError, match=r"fast is given twice \(12 and 5\)"):
        key_values(["fast=12", " slow = 26 ", "fast = 5"], _worded)


@pytest.mark.parametrize("item", ["fast", "=12", "fast=", " = ", "fast= "])
def test_a_malformed_item_is_refused_in_the_callers_words(item: str) -> None:
    with pytest.raises(UserInputError) as raised:
        key_values(["slow=26", item], _worded)
    assert str(raised.value) == f"--x {item!r}: bad"


def test_a_value_may_hold_an_equals_sign() -> None:
    assert key_values(["expr=a=b"], _worded) == {"expr": "a=b"}
