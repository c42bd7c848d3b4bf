"""Start-up with 50 user strategy files against start-up with none (issue 18: at most 1 s more).

    .venv/bin/python -m bench.strategy_loading [--files 50] [--runs 5]

Each file is what `pairpilot strategy new` writes (pandas-ta, a parameter with bounds, an exit
default), under its own name. A run is a fresh process that reads a config the way every
command does (bot.app.config.load_settings: the built-ins, the entry points, the folder); the
figure is the median wall time of the process with the folder full, less the one with it
empty. The in-process load of the folder (import, check and register every file) is timed too.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bot.cli.strategy_template import strategy_source

TARGET_SECONDS = 1.0
START = (  # what every command does first with its --config
    "import sys, pathlib; from bot.app.config import load_settings; "
    "load_settings(pathlib.Path(sys.argv[1]), None)"
)


def folder_of(root: Path, files: int) -> Path:
    """A config beside a user_strategies/ folder of ``files`` strategies; the config's path."""
    folder = root / "user_strategies"
    folder.mkdir(parents=True)
    for number in range(files):
        name = f"user_{number:03d}"
        (folder / f"{name}.py").write_text(strategy_source(name), encoding="utf-8")
    config = root / "config.toml"
    config.write_text('data_dir = "data"\n', encoding="utf-8")
    return config


def process_seconds(config: Path) -> tuple[float, float]:
    """The process's wall time, and its CPU time (user + system: what a busy shared machine
    disturbs least)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", START, str(config)], check=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        empty = folder_of(Path(scratch) / "empty", 0)
        full = folder_of(Path(scratch) / "full", args.files)
        process_seconds(empty)  # the disk cache and .pyc files warm for both
        first, _ = process_seconds(full)  # compiles the user files (their .pyc are written)
        bare, loaded = [], []
        for _ in range(args.runs):  # interleaved, so drift in the machine's speed hits both
            bare.append(process_seconds(empty))
            loaded.append(process_seconds(full))
        from bot.app.strategy_loading import load_strategies

        began = time.perf_counter()
        result = load_strategies(full.parent / "user_strategies", explicit=True)
        in_process = time.perf_counter() - began
        assert not result.problems, result.problems
        assert len(result.registry) == 7 + args.files
    print(f"start-up (load_settings in a fresh process), {args.runs} runs each, median:")
    added = {}
    for what, column in (("wall", 0), ("cpu", 1)):
        without = [run[column] for run in bare]
        with_files = [run[column] for run in loaded]
        added[what] = statistics.median(with_files) - statistics.median(without)
        print(
            f"  {what:<4} none {statistics.median(without):.3f} s {_runs(without)}; "
            f"{args.files} files {statistics.median(with_files):.3f} s {_runs(with_files)}; "
            f"added {added[what]:.3f} s"
        )
    print(f"  first run with the files (compiling them) {first:.3f} s")
    print(f"in-process load_strategies of {args.files} files: {in_process:.3f} s")
    worst = max(added.values())
    print(f"added by the files: at most {worst:.3f} s (target <= {TARGET_SECONDS} s)")
    print("MET" if worst <= TARGET_SECONDS else "MISSED")


def _runs(seconds: list[float]) -> str:
    return "[" + ", ".join(f"{s:.3f}" for s in seconds) + "]"


if __name__ == "__main__":
    main()
