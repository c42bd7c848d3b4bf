"""Which pushed alerts each chat user wants: on, silent (no notification sound) or off.

Kept per user in the state store, so they survive restarts. The critical kinds (halts and
resumes, storage trouble, exchange errors, books out of line with the exchange, refused
orders, commands that cannot be received, a strategy that failed) can be made silent, never
switched off: a trader must always learn them.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.core.errors import UserInputError
from bot.core.ports import Clock, StateStore

KINDS: Mapping[str, str] = {
    "trade": "a trade opened or closed",
    "order_rejected": "the exchange or the risk check refused an order",
    "risk_halt": "trading halted (drawdown, daily loss, kill switch)",
    "risk_resume": "trading resumed",
    "reconciliation_drift": "the books and the exchange disagree",
    "candle_gap": "candles missing from the exchange",
    "exchange_error": "the exchange is unreachable or refuses the keys, and when it is back",
    "unauthorised": "people not in the config wrote to the bot (admins, hourly summary)",
    "chat_down": "commands cannot be received from the chat (admins)",
    "clock_skew": "the host's clock is off Telegram's, and when it agrees again (admins)",
    "dust": "a position too small to sell is left on the exchange",
    "risk_change": "a risk limit confirmed from chat (a protection switched off, a late /risk)",
    "daily_report": "the daily PnL report (also the heartbeat)",
    "startup": "the service started",
    "shutdown": "the service stopped",
    "storage": "the data directory is full or read-only (no new entries), and when it is fixed",
    "order_unknown": "an order's outcome cannot be read from the exchange: its pair waits (admins)",
    "drift": "a live pair departs from its paper twin, is demoted to paper or promoted back",
    "strategy_gate": "a live pair held for its strategy's check, or an /allow given or revoked",
    "strategy_failed": "a strategy raised or returned garbage: its pair is paused",
    "strategy": "a running pair's strategy no longer loads after /reload (it keeps its code)",
}
MODES = ("on", "silent", "off")
ALWAYS_SENT = frozenset(
    {
        "risk_halt",
        "risk_resume",
        "storage",
        "exchange_error",
        "reconciliation_drift",
        "order_rejected",
        "chat_down",
        "risk_change",
        "order_unknown",
        "strategy_gate",
        "strategy_failed",
    }
)
# only admins can act on these
ADMINS_ONLY = frozenset({"unauthorised", "chat_down", "clock_skew", "order_unknown"})


def _key(user_id: int) -> str:
    return f"alerts.preferences:{user_id}"


class AlertPreferences:
    def __init__(self, state: StateStore, clock: Clock) -> None:
        self._state = state
        self._clock = clock

    async def of(self, user_id: int) -> dict[str, str]:
        """Every kind with the user's choice (on unless they chose otherwise)."""
        chosen = await self._state.get(_key(user_id)) or {}
        return {kind: _allowed(kind, chosen.get(kind, "on")) for kind in KINDS}

    async def mode(self, user_id: int, kind: str) -> str:
        return (await self.of(user_id)).get(kind, "on")  # kinds added later default to on

    async def choose(self, user_id: int, kind: str, mode: str) -> None:
        if kind not in KINDS:
            raise UserInputError(f"no alert kind {kind!r}; the kinds: {', '.join(KINDS)}")
        if mode not in MODES:
            raise UserInputError(f"mode {mode!r}: choose on, silent or off")
        if mode == "off" and kind in ALWAYS_SENT:
            raise UserInputError(f"{kind} alerts cannot be switched off; make them silent")
        chosen = await self._state.get(_key(user_id)) or {}
        await self._state.set(_key(user_id), {**chosen, kind: mode}, self._clock.now())


def _allowed(kind: str, mode: str) -> str:
    """A critical kind switched off before it was critical is delivered silently."""
    return "silent" if mode == "off" and kind in ALWAYS_SENT else mode
