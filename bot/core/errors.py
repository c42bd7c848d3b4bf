"""Domain exceptions, classified by what the caller should do with them."""


class BotError(Exception):
    """Base of every error pairpilot raises on purpose."""


class UserInputError(BotError):
    """Bad input from a person (CLI or chat): tell them, change nothing."""


class NotFound(UserInputError):
    """The thing asked for does not exist."""


class DataError(UserInputError):
    """A candle file or series is missing, malformed, unsorted or duplicated."""


class ConfigError(BotError):
    """The configuration is invalid: stop at start-up."""


class RiskRejected(BotError):
    """The risk step vetoed an order: record the reason, notify, go on."""


class InsufficientFunds(RiskRejected):
    """The account cannot pay for the order."""


class ExchangeUnavailable(BotError):
    """A transient exchange failure: retry with backoff inside the adapter only."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the exchange asked us to wait, if it said


class OrderOutcomeUnknown(ExchangeUnavailable):
    """The venue answers, but reading it cannot tell what became of one order (its lists hold
    more orders around it than a lookup reads): unlike an outage this does not clear with
    time. Only that order's pair waits (see bot/execution/unknown_orders.py), until it is found or
    an admin settles it by hand. An ExchangeUnavailable still, so a caller that does not know it
    keeps treating the outcome as unknown, never as "never sent"."""


class ClockSkew(ExchangeUnavailable):
    """The exchange says our request's timestamp is off: reload the clock offset, retry."""


class ExchangeAuthFailed(BotError):
    """The exchange refused our keys: halt trading and alert; retrying will not help."""


class ExchangeRejected(BotError):
    """The exchange refused the order: never retry, alert."""


class StrategyFailed(BotError):
    """A strategy's own code raised, or returned something that is not one action per candle,
    while trading: only its pair is paused (bot/trading/faults.py); ``reason`` is the
    exception's last line (``ValueError: boom``) or what is wrong with the output, never a
    traceback."""

    def __init__(self, strategy: str, pair: str, reason: str) -> None:
        super().__init__(f"strategy {strategy} failed on {pair}: {reason}")
        self.strategy = strategy
        self.pair = pair
        self.reason = reason
