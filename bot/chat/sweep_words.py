"""The words /sweep and /sweep portfolio share: NAME=LOW:HIGH:STEP or NAME=A,B,C items, the
options (objective=, max_drawdown=, random=) and the term words, read into a checked sweep
spec no larger than chat runs."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.chat.requests import number, whole_number
from bot.chat.term_words import strategy_words, term_overrides
from bot.core.daemon_threads import in_daemon_thread
from bot.core.errors import UserInputError
from bot.core.key_values import key_values
from bot.research.account_terms import Overrides

if TYPE_CHECKING:
    from bot.research.account_terms import ResearchTerms
    from bot.research.sweep import SweepSpec

SPACE_USAGE = (
    "NAME=LOW:HIGH:STEP ... [objective=sharpe|calmar|return] [max_drawdown=0.2] [random=N]"
)
OPTIONS = ("objective", "max_drawdown", "random")
MAX_COMBINATIONS = 5_000
MAX_GRID = 200_000  # combinations a random=N sweep may draw from (the grid is built first)


@dataclass(frozen=True, slots=True)
class SweepWords:
    """What a sweep's KEY=VALUE words asked, checked but for the space's values."""

    strategy: str
    items: tuple[str, ...]  # NAME=VALUES, as parse_space reads them
    objective: str
    max_drawdown: float
    samples: int  # random=N (0: the whole grid)
    overrides: Overrides  # the term words


def sweep_words(strategy: str, keyed: Sequence[str]) -> SweepWords:
    """``keyed``: the sweep's KEY=VALUE words. A space past what chat runs is refused by
    arithmetic, before any grid is built."""
    given = key_values(keyed, _malformed)  # NAME=VALUES, options, terms
    words_left = strategy_words(strategy, given)
    items = tuple(f"{k}={v}" for k, v in words_left.items() if k not in OPTIONS)
    samples = whole_number("random", given.get("random", "0"), 0, MAX_COMBINATIONS)
    size = grid_size(items)
    most = MAX_GRID if samples else MAX_COMBINATIONS
    if size > most:
        wanted = "over 10^15" if size == math.inf else f"{int(size):,}"
        raise UserInputError(
            f"{wanted} combinations; at most {most:,} "
            + (
                "for random=N from chat"
                if samples
                else "from chat (use random=N, or pairpilot sweep)"
            )
        )
    max_drawdown = number("max_drawdown", given.get("max_drawdown", "1"))
    return SweepWords(
        strategy,
        items,
        given.get("objective", "sharpe"),
        max_drawdown,
        samples,
        term_overrides(given),
    )


async def sweep_spec(
    words: SweepWords,
    terms: Mapping[str, ResearchTerms],
    sets: Callable[[SweepSpec], Sized] | None = None,
) -> tuple[SweepSpec, int]:
    """The spec ``words`` ask for with ``terms`` per series, and how many combinations it
    runs (built in a thread: a grid takes time); refused past MAX_COMBINATIONS. ``sets``:
    the combinations it runs, in place of those the strategy takes on its defaults (a
    portfolio sweep's are those its pairs take). The caller has loaded bot.research.sweep
    off the loop."""
    from bot.research.sweep import SweepSpec, check, parse_space

    def build() -> tuple[SweepSpec, int]:
        space = parse_space(words.strategy, list(words.items))
        spec = SweepSpec(
            words.strategy,
            space,
            objective=words.objective,
            max_drawdown=words.max_drawdown,
            random_samples=words.samples,
            terms=terms,
        )
        return spec, len(check(spec) if sets is None else sets(spec))

    spec, count = await in_daemon_thread(build)
    if count > MAX_COMBINATIONS:
        raise UserInputError(
            f"{count:,} combinations; at most {MAX_COMBINATIONS:,} from "
            "chat (use random=N, or pairpilot sweep)"
        )
    return spec, count


def _malformed(item: str) -> str:
    return f"{item!r}: expected NAME=LOW:HIGH:STEP, NAME=A,B,C or an option like random=N"


def grid_size(items: Sequence[str]) -> float:
    """How many combinations NAME=LOW:HIGH:STEP / NAME=A,B,C items make, by arithmetic, before
    anything is built (math.inf past any sane size). A malformed item counts as one value:
    parsing it names the problem."""
    size = 1.0
    for item in items:
        text = item.partition("=")[2]
        if ":" in text:
            try:
                low, high, step = (float(part) for part in text.split(":"))
            except ValueError:
                continue
            if not all(math.isfinite(v) for v in (low, high, step)):
                raise UserInputError(f"{item}: LOW, HIGH and STEP must be finite numbers")
            if not (step > 0 and high >= low):
                continue
            if not math.isfinite((high - low) / step):
                return math.inf
            size *= math.floor((high - low) / step + 1e-9) + 1
        else:
            size *= max(1, len([part for part in text.split(",") if part.strip()]))
        if size > 1e15:
            return math.inf
    return size
