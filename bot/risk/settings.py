"""The [risk] settings and their bounds: shared by the config file, `backtest --risk` and chat.

Kept apart from bot.app.config so the backtest path builds one small model, not the whole file's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.core.domain import RiskLimits
from bot.core.errors import UserInputError


class RiskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    position_fraction: float = Field(0.99, gt=0, le=1)
    min_order_value: float = Field(10.0, ge=0)
    max_position_fraction: float = Field(0.20, gt=0, le=1)
    max_total_exposure: float = Field(1.0, gt=0, le=1)
    max_open_positions: int = Field(5, ge=1, le=100)
    risk_per_trade: float = Field(0.0, ge=0, le=0.02)
    daily_loss_limit: float = Field(0.05, ge=0, lt=1)
    max_drawdown: float = Field(0.15, ge=0, lt=1)
    cooldown_losses: int = Field(0, ge=0, le=100)
    cooldown_candles: int = Field(0, ge=0, le=10_000)
    volatility_short: int = Field(0, ge=0, le=1000)
    volatility_long: int = Field(0, ge=0, le=5000)
    volatility_floor: float = Field(0.25, gt=0, le=1)

    @model_validator(mode="after")
    def _volatility_windows(self) -> RiskSettings:
        if (self.volatility_short or self.volatility_long) and not (
            2 <= self.volatility_short < self.volatility_long
        ):
            raise ValueError(
                f"volatility_short {self.volatility_short} and volatility_long "
                f"{self.volatility_long}: both on (short at least 2, long above short) or both 0"
            )
        return self


def checked_limits(
    base: Mapping[str, object], overrides: Mapping[str, str], option: str
) -> RiskLimits:
    """``base`` with ``overrides`` (text values) on top, validated against the bounds.

    Raises UserInputError naming ``option``, the key, the value given and what is expected.
    """
    try:
        checked = RiskSettings.model_validate({**base, **overrides})
    except ValidationError as error:
        item = error.errors()[0]
        key = ".".join(str(part) for part in item["loc"])
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        raise UserInputError(f"{option} {key}={overrides.get(key, '')}: {message}") from None
    return RiskLimits(**checked.model_dump())


def effective_limits(configured: RiskLimits, stored: Mapping[str, Any] | None) -> RiskLimits:
    """The limits the engine runs on: the config's, with those changed from chat (/risk set,
    stored under bot.risk.guard.LIMITS_KEY) on top. One rule for start-up and the CLI's
    research commands, so a backtest of the config simulates the limits the bot trades."""
    if not stored:
        return configured
    return RiskLimits(**{**dataclasses.asdict(configured), **stored})
