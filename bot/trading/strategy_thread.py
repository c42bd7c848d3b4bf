"""A strategy's code run off the event loop: in a thread of its own, awaited, with a timeout.

A strategy is the user's code, and may compute for seconds (a heavy indicator, a blocking
call). On the event loop that would hold every chat command for as long, /halt included. So
each call of a tick into a strategy (bot/trading/strategy_calls.py) runs in a worker thread
while the loop goes on answering; a pure-Python strategy holding the GIL still lets the loop
in at every switch interval (5 ms).

A strategy taking longer than the timeout (the ``strategy_timeout`` setting) fails as any
other strategy failure does: ``StrategyFailed`` "took longer than N s on the candle of ...",
its pair paused (bot/trading/faults.py). A thread cannot be killed, so its computation goes on
unwatched; until it returns, that strategy object is never handed to a second thread: a tick
after a /resume fails again, "still computing the candle of ...".

The threads are daemon ``threading.Thread``s kept between calls (bot/core/daemon_threads.py),
their answers handed back with ``call_soon_threadsafe``, not the loop's default executor:
``asyncio.run`` waits for the executor's threads at its end (up to 300 s) and the interpreter
joins them at exit, so a strategy stuck in an endless loop would hold the process. Nothing
waits for a daemon thread. A service stop (``abandon``) ends every wait after a short grace:
the tick acts on nothing for a pair still computing then (it was asked before anything was
written or sent).

Nothing of the strategy's own objects comes back to the loop: whatever it raises (its own
subclass of StrategyFailed too, whose ``reason`` or ``__str__`` is its code) is read in the
thread and handed back as a fresh StrategyFailed of plain, capped strings, always, so a
failure is seen at once. The chat's work on a strategy (a backtest, a check, a /chart, a
/startpair's constructor) runs on daemon threads of its own the same way (``chat_call`` here,
``in_daemon_thread`` for research), so a strategy stuck there holds neither the loop nor a
service stop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bot.core.daemon_threads import DaemonWorkers, hand_back, in_daemon_thread
from bot.core.errors import StrategyFailed
from strategies import Strategy, StrategyConfigError
from strategies.output import REASON_LIMIT, last_line


class Abandoned(Exception):
    """The service stops: a strategy's answer is no longer waited for."""


class Unanswered(Exception):
    """The strategy did not answer within the wait asked (shorter than its timeout): not a
    failure; it computes on, and is not handed a second call until it returns."""


@dataclass(slots=True)
class _Computation:
    strategy: Strategy  # held, so its id is not reused while it computes
    what: str  # "the candle of 2025-06-21 13:00 UTC"
    asked: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)


class StrategyThreads:
    """Runs strategy calls in threads, one at a time per strategy object."""

    def __init__(self, timeout: float) -> None:
        """``timeout``: seconds a call may take before its strategy is failed."""
        self.timeout = timeout
        self._computing: dict[int, _Computation] = {}  # id(strategy) -> its last computation
        self._waiting: set[asyncio.Future[Any]] = set()
        self.abandoned = False

    async def call[T](
        self,
        pair: str,
        strategy: Strategy,
        what: str,
        work: Callable[[], T],
        within: float | None = None,
    ) -> T:
        """``work()`` (``strategy``'s code, for ``pair``, on ``what``) in a thread; whatever it
        raises, and a timeout, as StrategyFailed. Raises Abandoned once the service stops, and
        Unanswered after ``within`` s when that is shorter than the timeout."""
        if self.abandoned:
            raise Abandoned
        if self.computing(strategy):
            earlier = self._computing[id(strategy)]
            since = time.monotonic() - earlier.asked
            raise StrategyFailed(
                strategy.name, pair, f"still computing {earlier.what}, asked {since:.0f} s ago"
            )
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        computation = _Computation(strategy, what)
        self._computing[id(strategy)] = computation
        _WORKERS.submit(partial(_compute, answer, computation, pair, work))
        self._waiting.add(answer)
        patient = within is not None and within < self.timeout
        try:
            return await asyncio.wait_for(answer, within if patient else self.timeout)
        except TimeoutError:
            if patient:
                raise Unanswered from None
            raise StrategyFailed(
                strategy.name, pair, f"took longer than {self.timeout:g} s on {what}"
            ) from None
        finally:
            self._waiting.discard(answer)
            if computation.done.is_set():  # else kept: the object is still computing
                self._computing.pop(id(strategy), None)

    def computing(self, strategy: Strategy) -> bool:
        """Whether a call into ``strategy`` has not yet returned in its thread (the output
        checks after its ``signals`` included)."""
        earlier = self._computing.get(id(strategy))
        return earlier is not None and not earlier.done.is_set()

    def abandon(self, grace: float = 0.0) -> None:
        """The service stops: no call starts, and every wait for a strategy ends (Abandoned)
        ``grace`` seconds from now (capped at the timeout), the calls answered by then kept:
        a quick strategy of the pair in progress still has its decision acted on."""
        self.abandoned = True
        waiting = list(self._waiting)
        if not waiting:
            return
        loop = waiting[0].get_loop()
        loop.call_later(min(grace, self.timeout), _end, waiting)


def _end(waiting: list[asyncio.Future[Any]]) -> None:
    for answer in waiting:
        if not answer.done():
            answer.set_exception(Abandoned())


_WORKERS = DaemonWorkers("strategy")  # the ticks'


def _compute[T](
    answer: asyncio.Future[T], computation: _Computation, pair: str, work: Callable[[], T]
) -> None:
    """In the thread: ``work()``, its outcome handed to ``answer`` on its loop, always (a
    failure is seen at once, not at the timeout). Whatever it raises, a StrategyFailed of the
    strategy's own included, reaches the loop as a fresh StrategyFailed of plain strings
    made here: nothing of the strategy's objects is read on the loop."""
    outcome: list[T] = []
    error: StrategyFailed | None = None
    try:
        outcome.append(work())
    except BaseException as raised:  # user code: in a thread, even CancelledError is its own
        error = _failure(computation.strategy, pair, raised)
    finally:
        computation.done.set()  # before the answer: the next tick may ask it again
        if not outcome and error is None:  # unreachable unless _failure itself failed
            error = StrategyFailed("strategy", pair, "its failure could not be read")
        hand_back(answer, outcome, error)


def _failure(strategy: Strategy, pair: str, raised: BaseException) -> StrategyFailed:
    """``raised`` as a StrategyFailed of plain strings: the reason of one of ours (the exact
    class: its output found wrong), else the exception's last line (its ``str()`` is user code:
    run here, in the thread)."""
    try:
        name = _plain(strategy.name)
        if type(raised) is StrategyFailed and type(raised.reason) is str:
            reason = _plain(raised.reason)
        else:
            reason = last_line(raised)
    except BaseException:  # a name that cannot be read: the strategy's own doing
        name, reason = type(strategy).__name__, last_line(raised)
    return StrategyFailed(name, pair, reason)


def _plain(text: object) -> str:
    """``text`` when it is a real ``str`` (not a subclass: its methods are user code), cut at
    REASON_LIMIT characters; else what it is."""
    if type(text) is not str:
        return f"<a {type(text).__name__}>"
    return text if len(text) <= REASON_LIMIT else f"{text[: REASON_LIMIT - 1]}…"


async def chat_call[T](name: str, pair: str, what: str, work: Callable[[], T], seconds: float) -> T:
    """``work()``, a chat command's call into strategy ``name``'s code for ``pair`` (its
    constructor, its chart's lines; ``what``: "building it"), in a kept daemon thread, waited
    for at most ``seconds`` as a tick's calls are. Whatever it raises is made in the thread
    into a fresh exception of plain strings: StrategyConfigError (its message: the parameters
    are wrong) or StrategyFailed (its last line); past ``seconds``, StrategyFailed "``what``
    took longer than N s", its computation going on unwatched."""

    def guarded() -> T:
        wrong: Exception
        try:
            return work()
        except StrategyConfigError as error:
            wrong = StrategyConfigError(_said(error))
        except BaseException as error:  # user code: whatever it raises is its failure
            wrong = StrategyFailed(name, pair, last_line(error))
        raise wrong  # outside the except: the strategy's exception is not its context

    try:
        async with asyncio.timeout(seconds):
            return await in_daemon_thread(guarded)
    except TimeoutError:
        raise StrategyFailed(name, pair, f"{what} took longer than {seconds:g} s") from None


def _said(error: BaseException) -> str:
    """``error``'s message, a plain capped string (its ``str()`` may be user code)."""
    try:
        return _plain(str.__str__(str(error)))
    except BaseException:
        return last_line(error)
