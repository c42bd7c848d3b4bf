"""The account on a venue through ccxt: balances, its own taker fee, dust conversion."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.core.domain import DustConversion, to_ms
from bot.core.errors import BotError
from bot.exchange import dust
from bot.exchange.ccxt_market import CcxtMarket
from bot.exchange.ccxt_replies import DEFAULT_TAKER_FEE

log = logging.getLogger(__name__)


class CcxtAccount(CcxtMarket):
    """What the account holds and pays: balances, fees, and its dust converted."""

    def taker_fee(self, pair: str) -> float:
        """The fee rate a market order in ``pair`` pays: the account's own (``load_account_fees``;
        for a pair not read, the highest of those read and its own published one), else the
        venue's published one its markets state."""
        fee = self.account_fees.fee(pair, self._published_fee(pair))
        return fee if fee is not None else DEFAULT_TAKER_FEE

    def _published_fee(self, pair: str) -> float | None:
        fee = (self._client.markets or {}).get(pair, {}).get("taker")
        return float(fee) if fee is not None else None

    async def load_account_fees(self, pairs: Sequence[str]) -> dict[str, float]:
        """Read the account's own taker fee for ``pairs`` where the venue tells it (its volume
        tier, a VIP rate, a promotion): entries are sized with it, since an account charged
        more than the published fee is refused a buy of all its cash, and the books would
        assume the wrong cost. Read again before a pair's buy once a day, and when a buy is
        refused for insufficient funds (bot/exchange/account_fees.py). Where the venue cannot
        say, or the read fails (a pair's failure keeps the others'), the published fee stays,
        and a log line says so. Returns the fees kept."""
        has = self._client.has
        found: dict[str, Any] = {}
        for pair in pairs:
            self.account_fees.tried(pair)
        try:
            if has.get("fetchTradingFee") is True:  # one request a pair: Binance, OKX, Kraken
                for pair in pairs:
                    found[pair] = await self._pair_fee(pair)
            elif has.get("fetchTradingFees"):  # the account's tier for every pair at once
                fees = await self._call(self._client.fetch_trading_fees, attempts=2)
                found = {pair: (fees.get(pair) or {}).get("taker") for pair in pairs}
        except BotError as error:
            log.warning(
                "%s: the account's fee could not be read (%s); sizing with the published taker fee",
                self.name,
                error,
            )
        read: dict[str, float] = {}
        for pair, fee in found.items():
            published = self._published_fee(pair)
            kept = None if fee is None else self.account_fees.record(pair, float(fee), published)
            if kept is not None:
                read[pair] = kept
                log.info(
                    "%s %s: the account's taker fee is %.4f%% (published %s)",
                    self.name,
                    pair,
                    kept * 100,
                    "unknown" if published is None else f"{published:.4%}",
                )
        unread = [pair for pair in pairs if pair not in read]
        if unread:
            log.warning(
                "%s tells no account fee for %s: sizing with %s",
                self.name,
                ", ".join(unread),
                ", ".join(f"{self.taker_fee(pair):.4%}" for pair in unread),
            )
        return read

    async def _pair_fee(self, pair: str) -> Any:
        """``pair``'s taker fee as the venue answers it; None when the read fails."""
        try:
            fee = await self._call(self._client.fetch_trading_fee, pair, attempts=2)
        except BotError as error:
            log.warning("%s %s: the account's fee could not be read (%s)", self.name, pair, error)
            return None
        return fee.get("taker")

    async def fetch_balances(self) -> dict[str, float]:
        """Totals: what open orders hold counts."""
        return (await self.fetch_balance_parts())[0]

    async def fetch_balance_parts(self) -> tuple[dict[str, float], dict[str, float]]:
        """Totals and the free part of them (what no open order holds), in one request."""
        balance = await self._call(self._client.fetch_balance)
        totals, free = balance.get("total") or {}, balance.get("free") or {}
        return (
            {asset: float(amount) for asset, amount in totals.items() if amount},
            {asset: float(amount) for asset, amount in free.items() if amount},
        )

    @property
    def dust_target(self) -> str | None:
        """What the venue converts dust into through its API; None: it offers no conversion."""
        return self.profile.dust_to or None

    async def convertible_dust(self) -> dict[str, float]:
        """The assets the venue would convert now (bot/exchange/dust.py), with their amount."""
        return dust.convertible(await self._call(self._client.sapiPostAssetDustBtc, {}))

    async def convert_dust(self, assets: Sequence[str]) -> list[DustConversion]:
        """Convert ``assets`` once, never retried: an unknown outcome is read back from the
        venue's dust log (``dust_conversions``)."""
        reply = await self._call(
            self._client.sapiPostAssetDust, {"asset": list(assets)}, attempts=1
        )
        return dust.transfers(reply, self.dust_target or "")

    async def dust_conversions(self, since: datetime) -> list[DustConversion]:
        """What the venue's dust log holds from ``since`` on."""
        start = to_ms(since)
        span = {"startTime": start, "endTime": start + dust.LOG_SPAN_MS}
        reply = await self._call(self._client.sapiGetAssetDribblet, span)
        return dust.log_entries(reply, self.dust_target or "")
