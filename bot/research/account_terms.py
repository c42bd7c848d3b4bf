"""The terms of the account a backtest or a sweep stands for: balance, fee, slippage, where
the daily loss limit's days start, and whether stops rest on the venue.

One piece serves `pairpilot backtest --config`, `pairpilot sweep` and chat's /backtest and
/sweep, so the four simulate the same account the bot trades (review F1, F2). Light on
purpose: no numba, no pandas; the chat builds it at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from bot.core.domain import MAX_BALANCE, RiskLimits
from bot.core.errors import UserInputError
from bot.exchange.venues import profile_for
from bot.risk.settings import RiskSettings, checked_limits

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
    """The account part of the config's terms; no defaults: built by ``account_terms`` only,
    read by ``research_terms`` (a run's terms are a ``ResearchTerms``)."""

    balance: float
    fee_rate: float
    slippage: float
    timezone: str
    # The account's stops rest on the exchange (a live account on a venue that holds stop
    # orders); else the engine checks them per candle and sells at the next open (paper).
    resting_stops: bool
    # A buy's fee is taken from the coins bought (a live account on ``BUY_FEE_IN_COIN``).
    fee_in_coin: bool


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


class _Pair(Protocol):
    @property
    def pair(self) -> str: ...
    @property
    def capital_share(self) -> float: ...


class TermsConfig(AccountConfig, Protocol):
    """The whole config a research run's terms come from: the account's, the paper volume cap,
    [risk] and the pairs' capital shares (bot/app/config.py's Settings)."""

    @property
    def paper(self) -> _CappedPaper: ...
    @property
    def risk(self) -> RiskSettings: ...
    @property
    def pairs(self) -> Sequence[_Pair]: ...


class _CappedPaper(_Paper, Protocol):
    @property
    def max_volume_share(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Overrides:
    """Values a command gives in place of the config's; None (or no risk key): the config's."""

    balance: float | None = None
    fee_rate: float | None = None
    slippage: float | None = None
    volume_share: float | None = None
    capital_share: float | None = None
    resting_stops: bool | None = None
    risk: Mapping[str, str] = field(default_factory=dict)


NONE = Overrides()  # every value from the config


@dataclass(frozen=True, slots=True)
class ResearchTerms:
    """Every setting that shapes a research result, from one source (``research_terms``).

    No defaults on purpose: a path that forgets a value fails loudly instead of simulating
    slippage 0 or UTC (issue 17, M9)."""

    balance: float
    fee_rate: float
    fee_in_coin: bool
    slippage: float
    volume_share: float  # of a candle's volume per order; 0: no cap
    timezone: str
    resting_stops: bool
    capital_share: float  # the pair's in [[pairs]]; 1.0 for a pair not configured
    limits: RiskLimits
    given: frozenset[str]  # the fields a command overrode

    @property
    def stops(self) -> str:
        """How stops are modelled, as the reports say it."""
        return RESTING if self.resting_stops else PER_CANDLE

    def as_dict(self) -> dict[str, object]:
        """Plain JSON values: every field, the limits as an object, ``given`` as a sorted list."""
        return {
            "balance": self.balance,
            "fee_rate": self.fee_rate,
            "fee_in_coin": self.fee_in_coin,
            "slippage": self.slippage,
            "volume_share": self.volume_share,
            "timezone": self.timezone,
            "resting_stops": self.resting_stops,
            "stops": self.stops,
            "capital_share": self.capital_share,
            "limits": asdict(self.limits),
            "given": sorted(self.given),
        }

    def statement(self, shares: Mapping[str, float] | None = None) -> list[str]:
        """The values used, as every output states them: the account, the pair's share (or
        each pair's ``shares`` in a portfolio) and the volume cap, then the risk limits. A value
        a command gave is marked "(given)"."""

        def given(name: str) -> str:
            return " (given)" if name in self.given else ""

        fee_in = "in the coin bought" if self.fee_in_coin else "in the quote"
        cap = (
            f"entries fill <= {self.volume_share * 100:g}% of a candle's volume"
            f"{given('volume_share')}"
            "; sales too, their rest sold at the next close"
            if self.volume_share
            else f"no volume cap{given('volume_share')}"
        )
        account = (
            f"balance {self.balance:,.2f}{given('balance')}; fee {self.fee_rate:.4%} {fee_in}"
            f"{given('fee_rate')}, slippage {self.slippage:.4%}{given('slippage')}; days in "
            f"{self.timezone}; stops {self.stops}{given('resting_stops')}"
        )
        share = (
            f"capital share {self.capital_share * 100:g}%{given('capital_share')}"
            if shares is None
            else "capital shares " + ", ".join(f"{p} {v * 100:g}%" for p, v in shares.items())
        ) + f"; {cap}"
        return [account, share, f"risk{given('limits')}: {limits_text(self.limits)}"]


def limits_text(limits: RiskLimits) -> str:
    """Every risk limit in one line, "off" where a limit is switched off."""

    def pct(share: float) -> str:
        return f"{share * 100:g}%"

    cooldown = (
        f"{limits.cooldown_candles} candles after {limits.cooldown_losses} losses"
        if limits.cooldown_losses
        else "off"
    )
    volatility = (
        f"{limits.volatility_short}/{limits.volatility_long} candles, floor "
        f"{pct(limits.volatility_floor)}"
        if limits.volatility_short
        else "off"
    )
    return (
        f"entry {pct(limits.position_fraction)} (<= {pct(limits.max_position_fraction)}/asset, "
        f"<= {pct(limits.max_total_exposure)} exposure, <= {limits.max_open_positions} open, "
        f"min {limits.min_order_value:g}), risk per trade "
        f"{pct(limits.risk_per_trade) if limits.risk_per_trade else 'off'}, daily loss "
        f"{pct(limits.daily_loss_limit)}, drawdown {pct(limits.max_drawdown)}, "
        f"cooldown {cooldown}, volatility {volatility}"
    )


# Each override's name as a command spells it, and the range it must lie in.
_RATES = {"fee_rate": "fee", "slippage": "slippage"}


def research_terms(
    config: TermsConfig,
    pair: str | None,
    overrides: Overrides = NONE,
    *,
    flag: str = "--",
    fee_rate: float | None = None,
    limits: RiskLimits | None = None,
    capital_share: float | None = None,
) -> ResearchTerms:
    """The terms a run of ``pair`` simulates: the config's account (``account_terms``), its
    paper volume cap (live: 0, the real book caps), [risk], the pair's capital share, and
    ``overrides`` on top. A bad override raises UserInputError naming it (``flag`` + its name,
    as the command spells it) before anything runs. ``fee_rate``, ``limits`` and
    ``capital_share``: what a running engine knows better than the file (the account's fee;
    the limits /risk set changed; the share the pair runs on, /startpair's included)."""
    account = account_terms(config)
    shares = {entry.pair: entry.capital_share for entry in config.pairs}
    base: dict[str, Any] = {
        "balance": account.balance,
        "fee_rate": account.fee_rate if fee_rate is None else fee_rate,
        "fee_in_coin": account.fee_in_coin,
        "slippage": account.slippage,
        "volume_share": config.paper.max_volume_share if config.mode == "paper" else 0.0,
        "timezone": account.timezone,
        "resting_stops": account.resting_stops,
        "capital_share": shares.get(pair or "", 1.0) if capital_share is None else capital_share,
    }
    given = {
        name: value
        for name in ("balance", "fee_rate", "slippage", "volume_share", "capital_share")
        if (value := getattr(overrides, name)) is not None
    }
    if overrides.resting_stops is not None:
        given["resting_stops"] = overrides.resting_stops
    _check(given, flag)
    start = config.risk.model_dump() if limits is None else asdict(limits)
    checked = checked_limits(start, overrides.risk, option=f"{flag}risk")
    names = set(given) | ({"limits"} if overrides.risk else set())
    return ResearchTerms(**{**base, **given}, limits=checked, given=frozenset(names))


def _check(given: Mapping[str, Any], flag: str) -> None:
    for name, spelt in _RATES.items():
        if name in given and not 0 <= given[name] < 0.05:
            raise UserInputError(
                f"{flag}{spelt} {given[name]}: expected a rate from 0 to 0.05, like 0.001"
            )
    if "balance" in given and not 0 < given["balance"] <= MAX_BALANCE:
        raise UserInputError(
            f"{flag}balance {given['balance']}: expected a positive amount up to {MAX_BALANCE:,.0f}"
        )
    if "volume_share" in given and not 0 <= given["volume_share"] <= 1:
        raise UserInputError(
            f"{flag}volume-share {given['volume_share']}: expected a share from 0 (no cap) to 1"
        )
    if "capital_share" in given and not 0 < given["capital_share"] <= 1:
        raise UserInputError(
            f"{flag}capital-share {given['capital_share']}: expected a share above 0, at most 1"
        )
