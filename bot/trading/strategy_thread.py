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

The threads are daemon ``threading.Thread``s kept between calls, their answers handed back
with ``call_soon_threadsafe``, not the loop's default executor (``asyncio.to_thread``):
``asyncio.run`` waits for the executor's threads at its end (up to 300 s) and the interpreter
joins them at exit, so a strategy stuck in an endless loop would hold the process. Nothing
waits for a daemon thread. A service stop (``abandon``) ends every wait after a short grace:
the tick acts on nothing for a pair still computing then (it was asked before anything was
written or sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bot.core.errors import StrategyFailed
from strategies import Strategy
from strategies.output import last_line


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
        earlier = self._computing.get(id(strategy))
        if earlier is not None and not earlier.done.is_set():
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


class _Workers:
    """Daemon threads kept between calls, each taking the next call when idle; a new one is
    started only when none is idle (a stuck computation keeps its thread for good), so there
    are as many as calls ever ran at once. Kept, not started per call: ``Thread.start`` waits
    until the new thread runs, a wake-up on the loop (~0.1 ms, more on a busy machine). One
    set for the process: the services of one process (tests build hundreds) share them."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, call: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1  # that thread takes it
        self._calls.put(call)
        if start:
            threading.Thread(target=self._serve, name="strategy", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._calls.get()()  # never raises: _compute hands back whatever happened
            with self._lock:
                self._idle += 1


_WORKERS = _Workers()


def _compute[T](
    answer: asyncio.Future[T], computation: _Computation, pair: str, work: Callable[[], T]
) -> None:
    """In the thread: ``work()``, its outcome handed to ``answer`` on its loop."""
    strategy = computation.strategy
    outcome: list[T] = []
    error: BaseException | None = None
    try:
        outcome.append(work())
    except StrategyFailed as failure:
        error = failure
    except BaseException as raised:  # user code: in a thread, even CancelledError is its own
        error = StrategyFailed(strategy.name, pair, last_line(raised))
        error.__cause__ = raised
    finally:
        computation.done.set()  # before the answer: the next tick may ask it again

    def hand_back() -> None:
        if answer.done():  # timed out, cancelled or abandoned meanwhile
            return
        if error is None:
            answer.set_result(outcome[0])
        else:
            answer.set_exception(error)

    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
        answer.get_loop().call_soon_threadsafe(hand_back)
