"""The terms of the account a backtest or a sweep stands for: balance, fee, slippage, where
the daily loss limit's days start, and whether stops rest on the venue.

One piece serves `pairpilot backtest --config`, `pairpilot sweep` and chat's /backtest and
/sweep, so the four simulate the same account the bot trades (review F1, F2). Light on
purpose: no numba, no pandas; the chat builds it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.exchange.venues import profile_for

RESTING = "resting on the venue: a stop fills at its level inside the candle"
# Venues whose spot buys pay their fee in the coin bought: OKX and Bybit always, Binance by
# default (an account that pays fees in BNB keeps every coin bought: not told apart here).
BUY_FEE_IN_COIN = frozenset({"binance", "okx", "bybit"})
PER_CANDLE = "checked per candle: a stop sells at the next open"


class _Paper(Protocol):
    @property
    def balance(self) -> float: ...
    @property
    def fee(self) -> float: ...
    @property
    def slippage(self) -> float: ...


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Source(Protocol):
    @property
    def source(self) -> str: ...


class AccountConfig(Protocol):
    """The parts of the config (bot/app/config.py's Settings) the account's terms come from."""

    @property
    def mode(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def paper(self) -> _Paper: ...
    @property
    def exchange(self) -> _Named: ...
    @property
    def market_data(self) -> _Source: ...


@dataclass(frozen=True, slots=True)
class AccountTerms:
    balance: float = 1000.0
    fee_rate: float = 0.001
    slippage: float = 0.0
    timezone: str = "UTC"
    # The account's stops rest on the exchange (a live account on a venue that holds stop
    # orders); else the engine checks them per candle and sells at the next open (paper).
    resting_stops: bool = False
    # A buy's fee is taken from the coins bought (a live account on ``BUY_FEE_IN_COIN``).
    fee_in_coin: bool = False

    @property
    def stops(self) -> str:
        """How stops are modelled, as the reports say it."""
        return RESTING if self.resting_stops else PER_CANDLE


def account_terms(settings: AccountConfig) -> AccountTerms:
    """The terms of the account ``settings`` trade: the paper account's balance and slippage
    (live mode sizes with the same slippage), its fee (live: the venue's taker fee, as the
    engine pays it), the config's timezone, and resting stops where the account's stops rest
    (``rests_stops``), and buys paying their fee in the coin bought where the live venue
    takes it so."""
    paper = settings.paper
    if settings.mode == "live":  # an offline backtest cannot load the markets the engine reads
        from bot.exchange.ccxt_exchange import published_taker_fee  # ccxt: heavy, live only

        fee = published_taker_fee(settings.exchange.name)
    else:
        fee = paper.fee
    return AccountTerms(
        balance=paper.balance,
        fee_rate=fee,
        slippage=paper.slippage,
        timezone=settings.timezone,
        resting_stops=rests_stops(settings),
        fee_in_coin=settings.mode == "live" and settings.exchange.name in BUY_FEE_IN_COIN,
    )


def rests_stops(settings: AccountConfig) -> bool:
    """Whether the account's stops rest on the exchange: where it trades a venue's market
    (live, or paper on the venue's candles) and that venue holds stop orders. A paper account
    then rests them as the venue does; a replay stands for no venue and checks per candle."""
    on_venue = settings.mode == "live" or settings.market_data.source == "exchange"
    return on_venue and profile_for(settings.exchange.name).stop_orders
