"""/drift and /promote: each run asks bot/chat's DriftDesk and words its view in Telegram HTML,
every value escaped; sized for a phone (the last few trades of each pair)."""

from __future__ import annotations

from html import escape

from bot.chat.drift_desk import DriftRow, DriftView, PairDrift
from bot.chat.venue import Venue
from bot.core.domain import Trade
from bot.core.errors import UserInputError
from handlers.request import Request

SHOWN_TRADES = 5  # per pair


def _leg(name: str, trade: Trade | None, pair: str, venue: Venue) -> str:
    if trade is None:
        return f" {name}: no trade"
    entry = venue.price(pair, trade.entry_price)
    if trade.exit_reason == "open":
        return f" {name} {entry} → still open"
    return (
        f" {name} {entry} → {venue.price(pair, trade.exit_price)}"
        f" fee {trade.fee:,.2f} PnL {trade.pnl:+,.2f} ({trade.return_pct:+.2%})"
    )


def _row_text(row: DriftRow, pair: str, venue: Venue) -> list[str]:
    shown = row.live or row.twin or row.backtest
    exit_time = f" → {shown.exit_time:%m-%d %H:%M}" if shown else ""
    lines = [f"{row.candle:%m-%d %H:%M}{exit_time}"]
    lines += [
        _leg("live", row.live, pair, venue),
        _leg("twin", row.twin, pair, venue),
        _leg("test", row.backtest, pair, venue),
    ]
    if row.live and row.twin:
        entry = row.live.entry_price / row.twin.entry_price - 1
        exit_ = 1 - row.live.exit_price / row.twin.exit_price
        lines.append(f" slippage vs twin: in {entry:+.2%}, out {exit_:+.2%}")
    return lines


def pair_drift_text(drift: PairDrift, quote: str, venue: Venue, trades: bool = True) -> str:
    """``drift`` in a few lines, then (``trades``) its last trades side by side."""
    pair = escape(drift.pair)
    lines = [
        f"<b>{pair}</b> since {drift.since:%m-%d %H:%M} UTC, {len(drift.rows)} trade(s)",
        f"live {drift.live_pnl:+,.2f} vs twin {drift.twin_pnl:+,.2f} {escape(quote)}: "
        f"gap at the live size {drift.gap:+,.2f} "
        f"({drift.relative:+.2%} of cost; threshold {drift.threshold:.2%})",
    ]
    if drift.first_apart is not None:
        lines.append(f"They part at the trade of {drift.first_apart:%m-%d %H:%M}.")
    elif len(drift.rows) > drift.one_sided:
        lines.append("Live and twin agree, trade for trade.")
    if drift.one_sided:
        lines.append(
            f"{drift.one_sided} trade(s) only one side made, not measured "
            "(a refused order, /halt, a restart between the two)."
        )
    if drift.demoted:
        lines.append(f"<b>Demoted to paper</b>: no new live entries; /promote {pair} puts it back.")
    if drift.backtest_problem:
        lines.append(f"test: none ({escape(drift.backtest_problem[:120])})")
    if not trades:
        return "\n".join(lines)
    rows = drift.rows[-SHOWN_TRADES:]
    if len(drift.rows) > len(rows):
        lines.append(f"The last {len(rows)} of {len(drift.rows)} trades, times UTC:")
    for row in rows:
        lines += [escape(line) for line in _row_text(row, drift.pair, venue)]
    return "\n".join(lines)


def drift_text(view: DriftView, venue: Venue) -> str:
    """One pair with its trades; several in a few lines each (``/drift PAIR`` for trades)."""
    if not view.pairs:
        return "No pair trades live with a paper twin yet."
    if len(view.pairs) == 1:
        return pair_drift_text(view.pairs[0], view.quote, venue)
    texts = [pair_drift_text(pair, view.quote, venue, trades=False) for pair in view.pairs]
    return "\n\n".join([*texts, "/drift PAIR shows a pair's trades."])


async def run_drift(request: Request) -> str:
    cockpit = request.cockpit
    if cockpit.drift is None:
        raise UserInputError("the drift monitor is not available here")
    return drift_text(await cockpit.drift.drift(request.arguments), cockpit.venue)


async def run_promote(request: Request) -> str:
    cockpit = request.cockpit
    if cockpit.drift is None:
        raise UserInputError("the drift monitor is not available here")
    pair = await cockpit.drift.promote(request.arguments)
    return f"{escape(pair)} trades live again; its drift is measured anew from now."
