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


class ExchangeRejected(BotError):
    """The exchange refused the order: never retry, alert."""
