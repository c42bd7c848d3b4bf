"""Rules every pair obeys, wherever it comes from (the config file or a chat command)."""

from __future__ import annotations

from bot.core.errors import UserInputError


def check_quote(pair: str, quote: str) -> None:
    """A pair must be quoted in the books' currency (else cash and PnL would mix currencies):
    the one rule for the config's pairs and /startpair. Raises UserInputError."""
    if pair.split("/")[-1] != quote:
        raise UserInputError(
            f"pair {pair} is not quoted in {quote} (the key quote): the "
            "books are kept in it, so every pair must be"
        )
