"""The command line turns numpy's transparent huge pages off (bot/cli/__init__.py says why:
on the project's machine they doubled a large backtest's system time); the environment's own
choice wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import bot.cli.main\n"
    "from numpy._core.multiarray import _get_madvise_hugepage\n"
    "print(_get_madvise_hugepage())\n"
)


def numpy_huge_pages(setting: str | None) -> str:
    env = {key: value for key, value in os.environ.items() if key != "NUMPY_MADVISE_HUGEPAGE"}
    if setting is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = setting
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="numpy advises huge pages on Linux only")
def test_the_command_line_asks_numpy_for_small_pages() -> None:
    assert numpy_huge_pages(None) == "False"


@pytest.mark.skipif(sys.platform != "linux", reason="numpy advises huge pages on Linux only")
def test_a_setting_in_the_environment_wins() -> None:
    assert numpy_huge_pages("1") == "True"
