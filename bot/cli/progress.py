"""A progress bar over a command's stages, drawn on a terminal's stderr and nowhere else.

A backtest is one compiled call, so its progress is counted in stages (reading candles,
trading, drawing, writing) rather than in candles. When stderr is not a terminal (a pipe, a
file, CI), nothing is drawn and tqdm is not even imported: scripted runs stay clean and fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def stage_bar(stages: Sequence[str]) -> Iterator[Callable[[str], None]]:
    """Yield ``begin(stage)``: it marks the stages before ``stage`` done and shows it running.

    The bar is removed when the block ends, so the command's own output is all that stays;
    print that output after the block, not inside it.
    """
    if not sys.stderr.isatty():
        yield lambda _stage: None
        return
    from tqdm import tqdm

    with tqdm(
        total=len(stages),
        file=sys.stderr,
        leave=False,
        bar_format="{desc} {bar} {n_fmt}/{total_fmt} {elapsed}",
    ) as bar:

        def begin(stage: str) -> None:
            bar.n = stages.index(stage)  # the stages before it are done
            bar.set_description(stage)  # and redraws the bar

        yield begin
