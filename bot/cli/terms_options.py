"""The options that override a research run's terms, shared by `pairpilot backtest` and
`pairpilot sweep` (issue 17: one source, the same overrides on every path).

Light: the parser is built on every command, so the config and the terms load only when a run
asks for them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.args import malformed
from bot.core.key_values import key_values

if TYPE_CHECKING:
    from bot.research.account_terms import Overrides, ResearchTerms


def add_terms_options(parser: argparse.ArgumentParser) -> None:
    """--fee, --slippage, --balance, --volume-share, --capital-share, --risk and
    --resting-stops: each defaults to the --config's value, else the default config's (the
    account `pairpilot run` trades)."""
    parser.add_argument("--fee", type=float, help="fee rate (default: the config's)")
    parser.add_argument("--slippage", type=float, help="slippage rate (default: the config's)")
    parser.add_argument(
        "--balance",
        type=float,
        help="starting balance in the quote currency (default: the config's)",
    )
    parser.add_argument(
        "--volume-share",
        type=float,
        help="an order fills at most this share of a candle's volume, 0: no cap "
        "(default: the config's [paper] max_volume_share; live: 0)",
    )
    parser.add_argument(
        "--capital-share",
        type=float,
        help="the pair's share of the account an entry is sized on "
        "(default: its capital_share in the config's [[pairs]], else 1)",
    )
    parser.add_argument(
        "--risk",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="risk limit, repeatable: a key of [risk] in the config "
        "(--risk max_drawdown=0 turns the drawdown halt off)",
    )
    parser.add_argument(
        "--resting-stops",
        action=argparse.BooleanOptionalAction,
        help="the venue holds stop orders (Binance, Bybit, OKX, Kraken live): stops fill at "
        "their level in the candle; --no-resting-stops: they sell at the next open "
        "(default: as the config's account does)",
    )


def terms_from_args(args: argparse.Namespace, pair: str | None) -> ResearchTerms:
    """The terms a run of ``pair`` simulates: the --config's (the default config's without
    one) with the limits /risk set stored in the --config's database (as the bot runs them),
    and the
    options of ``add_terms_options`` on top. Raises UserInputError for a bad
    override and ConfigError for a bad config, before anything runs."""
    from bot.app.config import load_settings
    from bot.core.domain import RiskLimits
    from bot.research.account_terms import research_terms
    from bot.risk.settings import effective_limits

    settings = load_settings(args.config, None)  # a research run needs no keys, live or not
    configured = RiskLimits(**settings.risk.model_dump())
    stored = _stored_limits(settings.database_path) if args.config else None
    limits = effective_limits(configured, stored)
    return research_terms(settings, pair, overrides_from_args(args), limits=limits)


def overrides_from_args(args: argparse.Namespace) -> Overrides:
    """The values the options of ``add_terms_options`` override (None: the config's)."""
    from bot.research.account_terms import Overrides

    return Overrides(
        balance=args.balance,
        fee_rate=args.fee,
        slippage=args.slippage,
        volume_share=args.volume_share,
        capital_share=args.capital_share,
        resting_stops=args.resting_stops,
        risk=key_values(args.risk, malformed("--risk")),
    )


def _stored_limits(database: Path) -> dict[str, Any] | None:
    """The limits /risk set stored in the config's database, where it has one."""
    if not database.exists():
        return None
    import asyncio

    from bot.risk.guard import LIMITS_KEY
    from storage.db import open_database
    from storage.state import SqliteStateRepository

    async def read() -> dict[str, Any] | None:
        async with open_database(database) as db:
            stored: dict[str, Any] | None = await SqliteStateRepository(db).get(LIMITS_KEY)
            return stored

    return asyncio.run(read())
