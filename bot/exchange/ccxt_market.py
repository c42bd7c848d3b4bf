"""A venue's markets through ccxt: candles and prices (REST and streams), pairs, precision."""

from __future__ import annotations

import difflib

import ccxt
import pandas as pd

from bot.core.errors import NotFound, UserInputError
from bot.exchange.ccxt_calls import CcxtCalls
from bot.exchange.ccxt_errors import translate
from bot.exchange.ccxt_replies import candle_frame


class CcxtMarket(CcxtCalls):
    """What the venue lists and how it trades: its pairs, candles, prices and limits."""

    def check_pair(self, pair: str) -> None:
        markets = self._client.markets or {}
        if pair not in markets:
            close = difflib.get_close_matches(pair, list(markets), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NotFound(f"{pair} is not listed on {self.name}{hint}")

    def check_timeframe(self, timeframe: str) -> None:
        offered = list(self._client.timeframes or {})
        if timeframe not in offered:
            raise UserInputError(
                f"{self.name} does not offer {timeframe} candles; it offers {', '.join(offered)}"
            )

    def price_decimals(self, pair: str) -> int | None:
        """How many decimals the exchange quotes ``pair``'s price in (its market's price
        precision: a tick size or a count of decimals, per the exchange's precision mode);
        None when the market is not loaded or counts significant digits."""
        market = (self._client.markets or {}).get(pair) or {}
        precision = (market.get("precision") or {}).get("price")
        if precision is None or self._client.precisionMode == ccxt.SIGNIFICANT_DIGITS:
            return None
        if self._client.precisionMode == ccxt.TICK_SIZE:
            tick = self._client.number_to_string(precision)
            return max(0, int(self._client.precision_from_string(tick)))
        return max(0, int(precision))

    @property
    def ohlcv_limit(self) -> int:
        return self.profile.ohlcv_limit

    async def fetch_candles(self, pair: str, timeframe: str, since_ms: int) -> pd.DataFrame:
        """Up to ``ohlcv_limit`` candles opening at or after ``since_ms``, oldest first."""
        rows = await self._call(
            self._client.fetch_ohlcv, pair, timeframe, since_ms, self.ohlcv_limit
        )
        return candle_frame(rows)

    async def fetch_price(self, pair: str) -> float:
        """The last traded price."""
        ticker = await self._call(self._client.fetch_ticker, pair)
        return float(ticker["last"])

    @property
    def streams(self) -> bool:
        """Whether the exchange pushes candles and tickers (ccxt.pro); REST is the fallback."""
        has = self._client.has
        return bool(has.get("watchOHLCV") and has.get("watchTicker"))

    async def watch_candles(self, pair: str, timeframe: str) -> pd.DataFrame:
        """Waits for the stream's next update: the candles it changed, the forming one included.

        Not retried here: the caller owns the reconnect policy (ExchangeUnavailable = reconnect).
        """
        try:
            return candle_frame(await self._client.watch_ohlcv(pair, timeframe))
        except ccxt.BaseError as error:
            raise translate(error) from None

    async def watch_price(self, pair: str) -> float:
        """Waits for the next pushed ticker; its last traded price."""
        try:
            ticker = await self._client.watch_ticker(pair)
        except ccxt.BaseError as error:
            raise translate(error) from None
        return float(ticker["last"])

    def too_small(self, pair: str, amount: float, price: float) -> str | None:
        """Why the exchange would refuse to trade ``amount`` of ``pair`` at ``price``, if it
        would: under its minimum order value or amount (dust)."""
        return self._under_minimum(pair, amount * price, amount)

    def _under_minimum(self, pair: str, notional: float, amount: float | None) -> str | None:
        limits = self._client.markets[pair].get("limits") or {}
        minimum_cost = (limits.get("cost") or {}).get("min")
        if minimum_cost and notional < minimum_cost:
            return (
                f"{pair}: order worth {notional:.2f} is under the exchange's minimum of "
                f"{minimum_cost}"
            )
        if amount is None:
            return None
        try:
            rounded = float(self._client.amount_to_precision(pair, amount))
        except ccxt.BaseError:  # ccxt refuses to round some amounts under its precision
            rounded = 0.0
        minimum = (limits.get("amount") or {}).get("min")
        if rounded <= 0 or (minimum and rounded < minimum):
            return (
                f"{pair}: amount {amount:.8g} is under the exchange's minimum of {minimum} "
                "once rounded to its precision"
            )
        return None
