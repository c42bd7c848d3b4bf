"""The receipt of a portfolio backtest or a portfolio sweep (bot/research/receipts.py says what
a receipt is): every pair's strategy, source hash, timeframe and parameters under ``params``
(``pairs``, in the config's order, the kernel's), with the window (``since``/``until`` in ms,
None where the run had none); the account's terms and each pair's under ``terms``
(``account``, ``by_pair``); a candle series per pair; and the result: the total's figures,
each pair's with its trade hash, ``trade_hash`` over every pair's in order and
``equity_hash`` over the equity curve (a sweep: its best set and ``rows_hash``, see
``sweep_receipts``).

Its ``strategy`` is "portfolio" for a backtest (the pairs' are in ``params``); for a sweep,
the strategy swept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.core.domain import RiskLimits, to_ms
from bot.research.account_terms import Overrides, ResearchTerms, research_terms
from bot.research.receipts import (
    PORTFOLIO,
    PORTFOLIO_SWEEP,
    Receipt,
    SeriesPrint,
    code_hash,
    new_id,
    pairpilot_version,
    source_hash,
    trade_hash,
)
from strategies import strategy_registry

if TYPE_CHECKING:
    import pandas as pd

    from bot.core.domain import SweepRow
    from bot.research.portfolio import PortfolioResult
    from bot.research.portfolio_inputs import PortfolioConfig
    from bot.research.portfolio_sweep import PortfolioSweep

FIGURES = ("trades", "pnl", "total_return", "win_rate", "max_drawdown", "fees")
Window = tuple[datetime | None, datetime | None]


def portfolio_receipt(
    result: PortfolioResult,
    config: PortfolioConfig,
    candles: Mapping[str, pd.DataFrame],
    sources: Mapping[str, Mapping[str, Any]],
    window: Window,
    now: datetime,
) -> Receipt:
    """The receipt of a portfolio backtest that succeeded on ``candles`` (each pair's frame as
    given to ``run_portfolio``); ``sources[pair]``: how to read its candles again."""
    terms: dict[str | None, ResearchTerms] = {None: result.terms}
    terms.update({pair.pair: pair.terms for pair in result.pairs})
    run = (config, terms, candles, sources, window)
    return _receipt(PORTFOLIO, "portfolio", run, {}, portfolio_summary(result), now)


def portfolio_sweep_receipt(
    sweep: PortfolioSweep,
    candles: Mapping[str, pd.DataFrame],
    sources: Mapping[str, Mapping[str, Any]],
    done: tuple[int, Sequence[SweepRow]],
    now: datetime,
) -> Receipt:
    """The receipt of portfolio sweep ``done`` (its id and rows), stored with its rows."""
    from dataclasses import asdict

    from bot.research.sweep_receipts import best_result, rows_hash

    sweep_id, rows = done
    spec = asdict(sweep.spec)
    terms = swept_terms(sweep.config, sweep.overrides, sweep.limits)
    run = (sweep.config, terms, candles, sources, sweep.window)
    params = {
        **{key: spec[key] for key in ("space", "objective", "max_drawdown", "random_samples")},
        **{"seed": spec["seed"], "sweep": sweep_id, "swept": list(sweep.swept)},
    }
    result = {**best_result(rows), "rows_hash": rows_hash(rows)}
    return _receipt(PORTFOLIO_SWEEP, sweep.spec.strategy, run, params, result, now)


def swept_terms(
    config: PortfolioConfig, overrides: Overrides, limits: RiskLimits | None
) -> dict[str | None, ResearchTerms]:
    """The account's terms (None) and each pair's, as ``run_portfolio`` computes them."""
    return {
        None: research_terms(config, None, overrides, limits=limits),
        **{e.pair: research_terms(config, e.pair, overrides, limits=limits) for e in config.pairs},
    }


Run = tuple[
    "PortfolioConfig",
    Mapping[str | None, ResearchTerms],
    Mapping[str, "pd.DataFrame"],
    Mapping[str, Mapping[str, Any]],
    Window,
]


def _receipt(
    kind: str,
    strategy: str,
    run: Run,
    params: Mapping[str, Any],
    result: Mapping[str, Any],
    now: datetime,
) -> Receipt:
    """``run``: the config, the terms (the account's under None), each pair's candles and
    where they came from, and the window."""
    config, terms, candles, sources, (since, until) = run
    pairs = [
        {
            "pair": entry.pair,
            "strategy": entry.strategy,
            "source_hash": source_hash(strategy_registry()[entry.strategy]),
            "timeframe": entry.timeframe,
            "params": dict(entry.params),
        }
        for entry in config.pairs
    ]
    return Receipt(
        id=new_id(),
        created=now,
        kind=kind,
        version=pairpilot_version(),
        strategy=strategy,
        source_hash=_joined(pair["source_hash"] for pair in pairs)
        if kind == PORTFOLIO
        else source_hash(strategy_registry()[strategy]),
        params={
            "pairs": pairs,
            "since": None if since is None else to_ms(since),
            "until": None if until is None else to_ms(until),
            **params,
        },
        terms={
            "account": terms[None].as_dict(),
            "by_pair": {pair: t.as_dict() for pair, t in terms.items() if pair is not None},
        },
        series=tuple(
            SeriesPrint.of(e.pair, e.timeframe, sources[e.pair], candles[e.pair])
            for e in config.pairs
        ),
        result=result,
        code=code_hash(kind),
    )


def portfolio_summary(result: PortfolioResult) -> dict[str, Any]:
    """What a rerun must reproduce and what /compare shows: the total's figures, each pair's
    with its trade hash, every trade's hash and the equity curve's."""
    total = result.metrics.as_dict()
    pairs = {}
    for pair in result.pairs:
        figures = pair.metrics.as_dict()
        pairs[pair.pair] = {
            **{key: figures[key] for key in FIGURES},
            "rows": len(pair.table),
            "trade_hash": trade_hash(pair.table),
        }
    equity = hashlib.blake2b(digest_size=16)
    equity.update(result.close_ms.astype("<i8").tobytes())
    equity.update(result.equity.astype("<f8").tobytes())
    return {
        **{key: total[key] for key in FIGURES},
        "steps": len(result.close_ms),
        "pairs": pairs,
        "trade_hash": _joined(each["trade_hash"] for each in pairs.values()),
        "equity_hash": equity.hexdigest(),
    }


def _joined(hashes: Iterable[object]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for each in hashes:
        digest.update(str(each).encode())
    return digest.hexdigest()
