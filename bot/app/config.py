"""Settings: one TOML file validated at start-up, secrets from the environment only."""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.app.secret_values import Secrets
from bot.app.strategy_loading import DEFAULT_FOLDER, LoadedStrategies, load_strategies
from bot.core.domain import MAX_BALANCE
from bot.core.errors import ConfigError, UserInputError
from bot.core.pairs import check_quote
from bot.core.telegram_options import TelegramOptions
from bot.core.timeframes import timeframe_seconds
from bot.risk.settings import RiskSettings
from bot.trading.drift import DriftSettings
from strategies import StrategyConfigError, strategy_registry
from strategies.registry import install

# Key names that hold secrets wherever they appear in the file, mapped to the variable to use.
_SECRET_KEYS = {
    "token": "PAIRPILOT_TELEGRAM_TOKEN",
    "bot_token": "PAIRPILOT_TELEGRAM_TOKEN",
    "apikey": "PAIRPILOT_EXCHANGE_KEY",
    "api_key": "PAIRPILOT_EXCHANGE_KEY",
    "key": "PAIRPILOT_EXCHANGE_KEY",
    "secret": "PAIRPILOT_EXCHANGE_SECRET",
    "api_secret": "PAIRPILOT_EXCHANGE_SECRET",
    "privatekey": "PAIRPILOT_EXCHANGE_SECRET",
    "password": "PAIRPILOT_EXCHANGE_PASSWORD",
    "passphrase": "PAIRPILOT_EXCHANGE_PASSWORD",
}
log = logging.getLogger(__name__)
_PAIR = re.compile(r"^[A-Z0-9]{2,15}/[A-Z0-9]{2,15}$")
_CLOCK_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExchangeSettings(_Section):
    name: str = "binance"
    ccxt_config: dict[str, Any] = Field(default_factory=dict)


class MarketDataSettings(_Section):
    source: Literal["exchange", "replay"] = "exchange"
    replay_files: dict[str, Path] = Field(default_factory=dict)
    replay_speed: float = Field(3600.0, gt=0, description="simulated seconds per real second")


class PaperSettings(_Section):
    balance: float = Field(1000.0, gt=0, le=MAX_BALANCE)
    fee: float = Field(0.001, ge=0, lt=0.05)
    slippage: float = Field(0.0005, ge=0, lt=0.05)
    max_volume_share: float = Field(0.1, ge=0, le=1)  # of a candle's volume per order; 0: off


class PairSettings(_Section):
    pair: str
    strategy: str = "ema_cross"
    timeframe: str = "1h"
    params: dict[str, int | float] = Field(default_factory=dict)
    capital_share: float = Field(gt=0, le=1)

    @field_validator("pair")
    @classmethod
    def _pair(cls, value: str) -> str:
        if not _PAIR.match(value):
            raise ValueError("expected BASE/QUOTE in capitals, like BTC/USDT")
        return value

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        try:
            timeframe_seconds(value)
        except UserInputError as error:
            raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _strategy(self, info: ValidationInfo) -> PairSettings:
        """Against the config's own strategies (load_settings passes them), else the process's;
        not at all for the commands that load none (health, backup, restore)."""
        context = info.context if isinstance(info.context, dict) else {}
        if context.get("strategies_unchecked"):
            return self
        registry = context.get("strategies") or strategy_registry()
        try:
            registry.build(self.strategy, self.params)
        except StrategyConfigError as error:
            raise ValueError(str(error)) from None
        return self


class TelegramUser(_Section):
    id: int = Field(gt=0)
    role: Literal["viewer", "trader", "admin"]


class WebhookSettings(_Section):
    url: str = Field(pattern=r"^https?://")  # where Telegram posts updates (public, HTTPS)
    listen: str = "127.0.0.1"  # behind a reverse proxy that terminates TLS
    port: int = Field(8443, ge=1, le=65535)


class TelegramSettings(_Section):
    api_base_url: str = Field("https://api.telegram.org", pattern=r"^https?://")
    webhook: WebhookSettings | None = None  # long polling when absent
    daily_report: str = "20:00"
    users: list[TelegramUser] = Field(default_factory=list)
    # --- chat trust (issue 20): a command older than this (seconds) never changes state by
    # itself: a read says how old it is, a change asks for a fresh Confirm
    max_command_age: float = Field(60.0, ge=5, le=86_400)

    @field_validator("daily_report")
    @classmethod
    def _daily_report(cls, value: str) -> str:
        if not _CLOCK_TIME.match(value):
            raise ValueError("expected a 24-hour time HH:MM, like 20:00")
        return value


class MetricsSettings(_Section):
    port: int = Field(0, ge=0, le=65535)  # 0: no /metrics endpoint
    listen: str = "127.0.0.1"


class ResearchSettings(_Section):
    dask_scheduler: str | None = Field(None, pattern=r"^(tcp|tls|inproc|ucx)://")  # else local


class Settings(_Section):
    mode: Literal["paper", "live"] = "paper"
    data_dir: Path = Path("data")
    timezone: str = "UTC"
    quote: str = Field("USDT", pattern=r"^[A-Z0-9]{2,15}$")  # the currency the books are kept in
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    market_data: MarketDataSettings = Field(default_factory=MarketDataSettings)
    paper: PaperSettings = Field(default_factory=PaperSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    pairs: list[PairSettings] = Field(default_factory=list)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    research: ResearchSettings = Field(default_factory=ResearchSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)  # live mode's paper twin
    # user strategy files (docs/strategies.md); default: user_strategies/ beside the config file
    strategies_dir: Path | None = None
    # seconds a strategy may compute on a candle before its pair is paused (docs/strategies.md)
    strategy_timeout: float = Field(30.0, ge=0.1, le=3600)
    _strategies: LoadedStrategies | None = PrivateAttr(default=None)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone name, like UTC or Europe/Berlin") from None
        return value

    @field_validator("strategy_timeout", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        if isinstance(value, bool):  # a float's lax mode would read true as 1.0 s
            raise ValueError("expected a number of seconds, like 30, not true or false")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        names = [pair.pair for pair in self.pairs]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"pair {duplicated[0]} is listed more than once")
        for name in names:
            try:
                check_quote(name, self.quote)
            except UserInputError as error:
                raise ValueError(str(error)) from None
        total = sum(pair.capital_share for pair in self.pairs)
        if total > 1 + 1e-9:
            raise ValueError(f"capital_share adds up to {total:.12g} over all pairs; at most 1")
        if self.market_data.source == "replay":
            missing = [name for name in names if name not in self.market_data.replay_files]
            if missing:
                raise ValueError(f"market_data.replay_files has no file for {missing[0]}")
        return self

    @property
    def database_path(self) -> Path:
        return self.data_dir / "pairpilot.sqlite"

    @property
    def twin_database_path(self) -> Path:
        """The paper twin's books (``bot/app/twin_root.py``), in live mode with [drift] on."""
        return self.data_dir / "twin.sqlite"

    @property
    def strategies(self) -> LoadedStrategies | None:
        """The user strategies load_settings found, with what it could not load."""
        return self._strategies


def telegram_options(settings: Settings, secrets: Secrets) -> TelegramOptions:
    """What the Telegram front end needs of the config and the secrets; it needs a token."""
    if not secrets.telegram_token:
        raise ValueError("Telegram needs PAIRPILOT_TELEGRAM_TOKEN")
    telegram = settings.telegram
    return TelegramOptions(
        token=secrets.telegram_token,
        api_base_url=telegram.api_base_url,
        users=tuple((user.id, user.role) for user in telegram.users),
        webhook=telegram.webhook,
        webhook_secret=secrets.telegram_webhook_secret,
        max_command_age=telegram.max_command_age,
    )


def load_settings(
    path: Path | None, secrets: Secrets | None, *, strategies: bool = True
) -> Settings:
    """Read and validate the TOML file (defaults when ``path`` is None); raises ConfigError.
    ``secrets`` None: for commands that only read data_dir (health, backup, restore), which
    get no secrets and must not fail for want of them. ``strategies``: load the user
    strategies and make them the process's (False: those commands, which run no user code,
    and leave the pairs' strategies unchecked)."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"config file {path} cannot be read: {error}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
        _refuse_secrets(raw, "")
    loaded = _load_strategies(raw, path) if strategies else None
    context = {"strategies": loaded.registry} if loaded else {"strategies_unchecked": True}
    try:
        settings = Settings.model_validate(raw, context=context)
    except ValidationError as error:
        raise ConfigError(_describe(error, path)) from None
    if path is not None:
        settings = _resolve_paths(settings, path.parent)
    if loaded is not None:
        settings._strategies = loaded
        install(loaded.registry)
    if secrets is not None:
        _check_live(settings, secrets)
        _check_webhook(settings, secrets)
    return settings


def _load_strategies(raw: Mapping[str, Any], path: Path | None) -> LoadedStrategies:
    """The config's user strategies (relative to its folder, else the working directory); each
    one that could not be loaded is logged, and the rest load."""
    named = raw.get("strategies_dir")
    if named is not None and not isinstance(named, str):
        raise ConfigError(f"strategies_dir = {named!r}: expected a folder's path")
    base = path.parent if path is not None else Path()
    loaded = load_strategies(base / (named or DEFAULT_FOLDER), explicit=named is not None)
    for problem in loaded.problems:
        log.warning("strategy not loaded: %s", problem, extra={"event": "strategy"})
    return loaded


def _refuse_secrets(section: Mapping[str, Any], prefix: str) -> None:
    for key, value in section.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _refuse_secrets(value, f"{dotted}.")
        elif key.lower() in _SECRET_KEYS:
            raise ConfigError(
                f"config key {dotted} holds a secret; secrets are not read from the file: "
                f"remove it and set {_SECRET_KEYS[key.lower()]} in the environment instead"
            )


def _describe(error: ValidationError, path: Path | None) -> str:
    where = f"config file {path}" if path else "default config"
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key")
        elif item["type"] == "missing":
            problems.append(f"{key}: required key is missing")
        elif isinstance(item["input"], str | int | float | bool):
            problems.append(f"{key} = {item['input']!r}: {message}")
        else:
            problems.append(f"{key}: {message}")
    return f"{where}: " + "; ".join(problems)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    replay = {pair: base / file for pair, file in settings.market_data.replay_files.items()}
    return settings.model_copy(
        update={
            "data_dir": base / settings.data_dir,
            "strategies_dir": base / (settings.strategies_dir or DEFAULT_FOLDER),
            "market_data": settings.market_data.model_copy(update={"replay_files": replay}),
        }
    )


def _check_webhook(settings: Settings, secrets: Secrets) -> None:
    if settings.telegram.webhook and not secrets.telegram_webhook_secret:
        raise ConfigError(
            "telegram.webhook needs PAIRPILOT_TELEGRAM_WEBHOOK_SECRET in the environment (Telegram "
            "sends it with every update, so nobody else can post commands to the webhook)"
        )
    secret = secrets.telegram_webhook_secret
    if settings.telegram.webhook and secret and not _WEBHOOK_SECRET.fullmatch(secret):
        raise ConfigError(  # Telegram refuses it at setWebhook, which would leave the bot deaf
            f"PAIRPILOT_TELEGRAM_WEBHOOK_SECRET: {len(secret)} characters; Telegram takes 1 to "
            "256 characters, each a letter A-Z or a-z, a digit, _ or -"
        )


# --- chat trust (issue 20) ------------------------------------------------------------------
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # setWebhook's secret_token charset


def _check_live(settings: Settings, secrets: Secrets) -> None:
    if settings.mode != "live":
        return
    if not (secrets.exchange_key and secrets.exchange_secret):
        raise ConfigError(
            "mode = 'live' needs PAIRPILOT_EXCHANGE_KEY and PAIRPILOT_EXCHANGE_SECRET in the "
            "environment"
        )
