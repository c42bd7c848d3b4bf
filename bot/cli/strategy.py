"""`pairpilot strategy new NAME` and `pairpilot strategy list`: user strategies' files and what
the config's strategies are (docs/strategies.md)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bot.app.strategy_loading import NAME, LoadedStrategies
from bot.cli.check_reads import stored_statuses
from bot.cli.strategy_check import add_strategy_check_command
from bot.core.errors import UserInputError

if TYPE_CHECKING:
    from bot.research.check_status import CheckStatus


def add_strategy_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    strategy = commands.add_parser(
        "strategy", help="user strategies: write a new one from the template, list them all"
    )
    actions = strategy.add_subparsers(dest="action", required=True)
    new = actions.add_parser(
        "new", help="write a commented template strategy NAME.py into the strategies folder"
    )
    new.add_argument("name", help="the strategy's name: lower-case letters, digits and _")
    listing = actions.add_parser(
        "list", help="every strategy: where it came from, its parameters and their bounds"
    )
    for parser in (new, listing):
        parser.add_argument(
            "--config",
            type=Path,
            help="TOML config (its strategies_dir; default user_strategies/ beside it, or in "
            "the current folder without a config)",
        )
        parser.set_defaults(handler=strategy_command)
    add_strategy_check_command(actions)


def strategy_command(args: argparse.Namespace) -> int:
    from bot.app.config import load_settings

    settings = load_settings(args.config, None)
    loaded = settings.strategies
    assert loaded is not None  # load_settings always loads them
    if args.action == "new":
        return _new(args, loaded)
    print(strategy_table(loaded, stored_statuses(settings.database_path, loaded.registry)))
    return 0


def _new(args: argparse.Namespace, loaded: LoadedStrategies) -> int:
    from bot.app.config import load_settings
    from bot.cli.strategy_template import strategy_source

    name = args.name
    if not NAME.match(name):
        raise UserInputError(
            f"strategy name {name!r}: expected lower-case letters, digits and _ (at most 40), "
            "starting with a letter, like my_trend"
        )
    if name in loaded.registry:
        raise UserInputError(
            f"strategy name {name!r} is taken by {loaded.registry.origin(name)}; pick another"
        )
    folder = loaded.folder or _default_folder(args)
    path = folder / f"{name}.py"
    if path.exists():
        raise UserInputError(f"{path} exists; not overwritten")
    folder.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as file:  # never over a file made meanwhile
        file.write(strategy_source(name))
    again = load_settings(args.config, None).strategies
    if again is None or name not in again.registry:  # e.g. an entry point of that name
        path.unlink()
        problems = "; ".join(str(p) for p in again.problems) if again else ""
        raise UserInputError(f"{path} would not load ({problems}); removed")
    config = f" --config {args.config}" if args.config else ""
    print(
        f"wrote {path}\n"
        f"try it: pairpilot backtest{config} --strategy {name} --data CANDLES.csv.gz\n"
        "the interface and its rules: docs/strategies.md"
    )
    return 0


def _default_folder(args: argparse.Namespace) -> Path:
    from bot.app.strategy_loading import DEFAULT_FOLDER

    return (args.config.parent if args.config else Path()) / DEFAULT_FOLDER


def strategy_table(loaded: LoadedStrategies, statuses: Mapping[str, CheckStatus]) -> str:
    """Each strategy: name, origin and check status, its description, then each parameter with
    its bounds; then what could not be loaded, and why."""
    registry = loaded.registry
    lines = []
    for name in sorted(registry):
        cls = registry[name]
        lines.append(f"{name}  ({registry.origin(name)})  check: {statuses[name].text()}")
        lines.append(f"    {cls.description}")
        for spec in cls.specs():
            kind = "int" if spec.kind is int else "float"
            lines.append(
                f"    {spec.name:<14} {kind:<5} default {spec.default:<8g} "
                f"[{spec.minimum:g} .. {spec.maximum:g}]  {spec.help}".rstrip()
            )
    if loaded.problems:
        lines.append("")
        lines.append("not loaded:")
        lines.extend(f"  {problem}" for problem in loaded.problems)
    folder = loaded.folder if loaded.folder else "none (the default folder is absent)"
    lines.append("")
    lines.append(f"strategies folder: {folder}")
    return "\n".join(lines)
