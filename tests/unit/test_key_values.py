"""bot.core.key_values: the one KEY=VALUE parser, each caller wording its own error."""

from __future__ import annotations

import pytest

from bot.core.errors import UserInputError
from bot.core.key_values import key_values


def _worded(item: str) -> str:
    return f"--x {item!r}: bad"


def test_items_become_a_dict_stripped_with_a_later_key_winning() -> None:
    assert key_values(["fast=12", " slow = 26 ", "fast=5"], _worded) == {"fast": "5", "slow": "26"}


@pytest.mark.parametrize("item", ["fast", "=12", "fast=", " = ", "fast= "])
def test_a_malformed_item_is_refused_in_the_callers_words(item: str) -> None:
    with pytest.raises(UserInputError) as raised:
        key_values(["slow=26", item], _worded)
    assert str(raised.value) == f"--x {item!r}: bad"


def test_a_value_may_hold_an_equals_sign() -> None:
    assert key_values(["expr=a=b"], _worded) == {"expr": "a=b"}
