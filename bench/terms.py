"""The terms a bench's backtests run on: the default config's, built by ``research_terms``
(issue 17: one source) with the benches' plain account on top, and stated where it prints."""

from __future__ import annotations

from collections.abc import Mapping

from bot.app.config import load_settings
from bot.research.account_terms import Overrides, ResearchTerms, research_terms


def bench_terms(
    pair: str, *, balance: float | None = None, risk: Mapping[str, str] | None = None
) -> ResearchTerms:
    """``pair``'s terms on the default config, ``balance`` and ``risk`` given, on the plain
    account the figures in RESULTS.md were measured on: no slippage, no volume cap, stops
    checked per candle (the reference engines model none of the three)."""
    plain = Overrides(
        balance=balance,
        slippage=0.0,
        volume_share=0.0,
        resting_stops=False,
        risk=dict(risk or {}),
    )
    return research_terms(load_settings(None, None), pair, plain)


def stated(terms: ResearchTerms) -> str:
    """The terms as the bench prints them, one line each."""
    return "terms: " + "\n       ".join(terms.statement())
