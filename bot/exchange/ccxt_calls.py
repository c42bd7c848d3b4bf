"""One ccxt client and the calls to it: retries with backoff, a stop that ends them.

Retries live here and nowhere else: exponential backoff with jitter, never shorter than a
Retry-After the exchange sent. Errors are translated by ``bot/exchange/ccxt_errors.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
)
from tenacity.wait import wait_exponential_jitter

from bot.core.errors import BotError, ClockSkew, ExchangeUnavailable
from bot.exchange.account_fees import AccountFees
from bot.exchange.ccxt_errors import classify
from bot.exchange.venues import profile_for

log = logging.getLogger(__name__)
T = TypeVar("T")


class CcxtCalls:
    """One ccxt client, its venue's profile, and what the adapter's parts share."""

    def __init__(
        self,
        client: ccxt_async.Exchange,
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``sleep`` waits between attempts (a soak passes simulated time)."""
        self._client = client
        self._retries = attempts
        # Set by one_attempt() for the task that asked only (and the tasks it starts): another
        # chat's read served meanwhile keeps its retries.
        self._one: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"one_attempt_{id(self)}", default=False
        )
        self._backoff = backoff
        self._sleep = sleep
        self._giving_up = asyncio.Event()  # a stop was asked: no more retries
        self.name: str = client.id
        # What differs between exchanges and ccxt does not say (bot/exchange/venues.py).
        self.profile = profile_for(client.id)
        self._stops: set[str] = set()  # client ids placed as stops by this process
        self._ours: dict[str, str] = {}  # wire id -> our id, for venues that cannot carry ours
        self.account_fees = AccountFees(client.id)  # the account's own, where read

    @property
    def client(self) -> ccxt_async.Exchange:
        """The ccxt client itself (its markets, options and what the venue offers). A call
        made on it directly gets none of this adapter's retries, error translation or id
        mapping: another program's orders on the same account, say."""
        return self._client

    async def close(self) -> None:
        await self._client.close()

    def stop_retrying(self) -> None:
        """A stop was asked: the request in flight is each call's last attempt and a wait
        between attempts ends now, so a tick in an outage ends within one request's timeout
        (an order still gets its one look-up: its outcome is never guessed)."""
        self._giving_up.set()

    @contextlib.contextmanager
    def one_attempt(self) -> Iterator[None]:
        """Within it each call of the task that entered it makes one attempt: an admin's
        command that must answer soon (its refusal is the outcome of a failure anyway)."""
        token = self._one.set(True)
        try:
            yield
        finally:
            self._one.reset(token)

    @property
    def _attempts(self) -> int:
        """How many attempts a call makes here: one within this task's one_attempt()."""
        return 1 if self._one.get() else self._retries

    async def _pause(self, seconds: float) -> None:
        """``sleep``, cut short by ``stop_retrying``."""
        if self._giving_up.is_set():
            return
        waits = [
            asyncio.ensure_future(self._sleep(seconds)),
            asyncio.ensure_future(self._giving_up.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _call(
        self, method: Callable[..., Awaitable[T]], *args: Any, attempts: int | None = None
    ) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts or self._attempts)
            # tenacity annotates threading.Event but only calls is_set(), as asyncio's has.
            | stop_when_event_set(self._giving_up),  # type: ignore[arg-type]
            wait=self._wait,
            retry=retry_if_exception_type(ExchangeUnavailable),
            reraise=True,
            sleep=self._pause,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1 and self._giving_up.is_set():
                    raise ExchangeUnavailable(
                        f"{self.name} {method.__name__}: not retried, the service is stopping"
                    )
                try:
                    return await method(*args)
                except ccxt.BaseError as error:
                    translated = classify(error, self.profile, self._client)
                    log.warning("%s %s: %s", self.name, method.__name__, translated)
                    await self._resync_clock(translated)
                    raise translated from error
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _resync_clock(self, error: BotError) -> None:
        """After a clock-skew refusal, measure the offset again so the retry is signed right."""
        if not isinstance(error, ClockSkew):
            return
        with contextlib.suppress(ccxt.BaseError):  # the retry reports it if this failed too
            await self._client.load_time_difference()

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=self._backoff, max=60, jitter=self._backoff)(
            state
        )
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after", None) or 0.0
        return max(backoff, asked)
