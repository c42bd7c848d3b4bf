"""Work run on kept daemon threads, awaited from the event loop (issue 18: user strategy code).

A strategy is the user's code, and may never return. Run with ``asyncio.to_thread`` (the
loop's default executor), a stuck one would hold the process at its end: ``asyncio.run``
waits up to 300 s for the executor's threads, and the interpreter joins them at exit. So the
tick's calls into a strategy (bot/trading/strategy_thread.py) and the chat's and research's
work on one (a backtest, a check, a sweep, a chart's lines) run on daemon ``threading.Thread``s
kept between calls, their answers handed back with ``call_soon_threadsafe``: nothing waits for
a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from functools import partial

from bot.core.errors import BotError


class DaemonWorkers:
    """Daemon threads kept between calls, each taking the next call when idle; a new one is
    started only when none is idle (a stuck computation keeps its thread for good), so there
    are as many as calls ever ran at once. Kept, not started per call: ``Thread.start`` waits
    until the new thread runs, a wake-up on the loop (~0.1 ms, more on a busy machine). One
    set for the process: the services of one process (tests build hundreds) share them."""

    def __init__(self, name: str) -> None:
        self._name = name
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
            threading.Thread(target=self._serve, name=self._name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._calls.get()()  # never raises: each call hands back whatever happened
            with self._lock:
                self._idle += 1


_CHAT_WORKERS = DaemonWorkers("strategy-chat")  # the chat's: backtests, checks, charts, starts


def hand_back[T](answer: asyncio.Future[T], outcome: list[T], error: BaseException | None) -> None:
    """``answer`` set, on its loop, to ``error`` or the one ``outcome``."""

    def settle() -> None:
        if answer.done():  # timed out, cancelled or abandoned meanwhile
            return
        if error is None:
            answer.set_result(outcome[0])
        else:
            answer.set_exception(error)

    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
        answer.get_loop().call_soon_threadsafe(settle)


async def in_daemon_thread[T](work: Callable[[], T]) -> T:
    """``work()`` (the chat's work on a user strategy: a backtest, a check, a chart's lines, a
    strategy built) in a kept daemon thread, not the loop's default executor: a strategy stuck
    there must not hold a service stop. What it raises is raised here as it is (``work``
    turns the strategy's own exceptions into ours). No timeout of its own (a backtest of a
    year may take long): a caller's ``asyncio.timeout`` leaves the computation going on
    unwatched."""
    answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    context = contextvars.copy_context()  # as asyncio.to_thread hands it
    _CHAT_WORKERS.submit(partial(_run, answer, partial(context.run, work)))
    return await answer


def _run[T](answer: asyncio.Future[T], work: Callable[[], T]) -> None:
    """In the thread: ``work()``, its outcome handed to ``answer``, always."""
    outcome: list[T] = []
    error: BaseException | None = None
    try:
        outcome.append(work())
    except Exception as raised:  # handed to the loop, which raises it in the caller
        error = raised
    except BaseException as raised:  # sys.exit() in a strategy: asyncio would re-raise it
        # named by its type only: its message's str() is user code
        error = BotError(f"the strategy's code raised {type(raised).__name__}")
    finally:
        if not outcome and error is None:
            error = RuntimeError("the work ended without an answer")
        hand_back(answer, outcome, error)
