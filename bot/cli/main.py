"""The `pairpilot` command line. Heavy imports stay inside the commands that need them."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bot.cli.terms_options import add_terms_options
from bot.core.errors import BotError, ConfigError, UserInputError
from bot.ops.logs import configure_logging
from storage.db import UnusableDatabase

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pairpilot", description="A crypto trading bot driven from Telegram."
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO for `run` (a line per trading decision), WARNING otherwise",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="json: one JSON object per line, decisions with their pair, action and reason",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the trading service")
    run.add_argument("--config", type=Path, help="TOML config file (defaults when omitted)")
    run.add_argument(
        "--secrets",
        type=Path,
        metavar="FILE",
        help="KEY=VALUE file with the PAIRPILOT_* secrets (chmod 600); "
        "the environment wins over it",
    )
    run.set_defaults(handler=_run)

    health = commands.add_parser(
        "health",
        help="check the service; exit 0 healthy, 1 unhealthy (a restart would not "
        "help), 3 unhealthy (a restart would help)",
    )
    health.add_argument("--config", type=Path, help="TOML config file (for data_dir)")
    health.add_argument(
        "--max-alert-age",
        type=float,
        default=10.0,
        metavar="MINUTES",
        help="how long an alert may wait for delivery (default 10)",
    )
    health.set_defaults(handler=_health)

    backup = commands.add_parser(
        "backup", help="copy the database to DEST safely, also while the service runs"
    )
    backup.add_argument("dest", help="a new file, or a directory (DIR/) for a dated one")
    backup.add_argument("--config", type=Path, help="TOML config file (for data_dir)")
    backup.set_defaults(handler=_backup)

    restore = commands.add_parser(
        "restore", help="replace the database by a backup (refused while the service runs)"
    )
    restore.add_argument("source", type=Path, help="a file `pairpilot backup` wrote")
    restore.add_argument("--config", type=Path, help="TOML config file (for data_dir)")
    restore.set_defaults(handler=_restore)

    demo = commands.add_parser("demo", help="offline demo on bundled real candles")
    demo.add_argument(
        "--output",
        type=Path,
        default=Path("demo-output"),
        help="where the demo's database and chart go (default: demo-output)",
    )
    demo.set_defaults(handler=_demo)

    backtest = commands.add_parser(
        "backtest",
        help="backtest a strategy on a candle file or on stored candles; with only --config, "
        "every configured pair together (its replay files, else its stored candles)",
    )
    backtest.add_argument("--data", type=Path, help="candle CSV (gzip or plain)")
    backtest.add_argument("--since", help="with stored candles: from this UTC date")
    backtest.add_argument("--until", help="with stored candles: up to this UTC date")
    backtest.add_argument("--exchange", help="with stored candles: whose (default binance)")
    backtest.add_argument(
        "--config",
        type=Path,
        help="TOML config: data_dir, and the account "
        "simulated (its paper balance, fee, slippage, timezone, [risk], and "
        "whether its venue rests stops)",
    )
    backtest.add_argument("--strategy", help="the strategy (default ema_cross)")
    backtest.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="strategy parameter, repeatable (e.g. --param fast=12)",
    )
    backtest.add_argument("--pair", help="the pair; with --data, default from the file name")
    backtest.add_argument("--timeframe", help="the timeframe; with --data, default from the file")
    add_terms_options(backtest)
    backtest.add_argument("--json", action="store_true", help="print JSON instead of a table")
    backtest.add_argument("--chart", type=Path, help="write the equity chart PNG here")
    backtest.add_argument(
        "--monte-carlo",
        metavar="N",
        help="resample the closed trades N times (bootstrap, compounded): percentiles of final "
        "return and max drawdown, and the chance of a drawdown past the halt; one pair only",
    )
    backtest.add_argument(
        "--seed", type=int, help="with --monte-carlo: the resampling seed (default: a fixed one)"
    )
    backtest.add_argument(
        "--rerun",
        metavar="ID",
        help="run a stored receipt again (every backtest prints its id) and say whether it "
        "made the same trades; refused when its candles, strategy or version changed",
    )
    backtest.set_defaults(handler=_backtest)

    from bot.cli.data import add_data_commands
    from bot.cli.strategy import add_strategy_command
    from bot.cli.sweep import add_sweep_command

    add_data_commands(commands)
    add_sweep_command(commands)
    add_strategy_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(
        args.log_level or ("INFO" if args.command == "run" else "WARNING"), args.log_format
    )
    try:
        return int(args.handler(args))
    except (UserInputError, ConfigError, UnusableDatabase) as error:
        _report(args, f"pairpilot: error: {error}")
        return EXIT_BAD_INPUT
    except BotError as error:
        _report(args, f"pairpilot: {error}")
        return 1
    except Exception:
        if args.log_format != "json":
            raise  # the traceback, as Python prints it
        logging.getLogger("pairpilot").exception(
            "pairpilot: unexpected error", extra={"event": "exit"}
        )
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the service had installed its own handlers
        print("pairpilot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = None  # no flush of a closed pipe at exit
        return 0


def _report(args: argparse.Namespace, message: str) -> None:
    """Why a command failed: a log record under JSON logs (one object per line), else text."""
    if args.log_format == "json":
        logging.getLogger("pairpilot").error(message, extra={"event": "exit"})
    else:
        print(message, file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import signal
    from importlib.metadata import version

    from bot.app.config import load_settings, telegram_options
    from bot.app.secret_values import Secrets, read_secrets_file
    from bot.app.serve import run_service
    from bot.ops.logs import alert_logger
    from bot.ops.redaction import install as redact_secrets

    from_file = read_secrets_file(args.secrets) if args.secrets else {}
    secrets = Secrets.from_environment({**from_file, **os.environ})
    redact_secrets(secrets.values())
    settings = load_settings(args.config, secrets)
    chat = telegram = None
    if secrets.telegram_token:  # the entry point is where Telegram (handlers/) is plugged in
        from handlers.frontend import telegram_factory

        telegram = telegram_options(settings, secrets)
        chat = telegram_factory(telegram)

    write = alert_logger if args.log_format == "json" else print

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await run_service(settings, secrets, stop=stop, chat=chat, write=write)
        except (ConfigError, UnusableDatabase) as error:  # exit 2: never restarted
            if telegram is not None:
                from handlers.notice import tell_admins_once

                await tell_admins_once(telegram, f"pairpilot cannot start: {error}")
            raise

    log = logging.getLogger("pairpilot")
    if settings.telegram.users and chat is None:
        log.warning(
            "telegram.users lists %d user(s) but PAIRPILOT_TELEGRAM_TOKEN is not set "
            "(environment or --secrets): Telegram is off, alerts go to the log only",
            len(settings.telegram.users),
        )
    if chat is not None and not any(user.role == "admin" for user in settings.telegram.users):
        log.warning(
            "no admin in telegram.users: the alerts sent without the disk and the "
            "notice of a refused start go to every user listed, if any"
        )
    log.info(
        "pairpilot %s starting: %s mode on %s candles, data_dir %s, pid %d",
        version("pairpilot"),
        settings.mode,
        settings.market_data.source,
        settings.data_dir,
        os.getpid(),
        extra={"event": "start"},
    )
    try:
        asyncio.run(serve())
    except BaseException as error:
        log.info("pairpilot stopped: %s", type(error).__name__, extra={"event": "stop"})
        raise
    log.info("pairpilot stopped", extra={"event": "stop"})
    return 0


def _health(args: argparse.Namespace) -> int:
    """Needs no secrets and never writes: see bot/ops/health.py for the checks and exit codes."""
    from datetime import timedelta

    from bot.app.config import load_settings
    from bot.app.health_check import inspect
    from bot.core.clock import SystemClock

    path = load_settings(args.config, None, strategies=False).database_path
    health = inspect(
        path, now=SystemClock().now(), max_alert_age=timedelta(minutes=args.max_alert_age)
    )
    print(health.report())
    return health.exit_code


def _backup(args: argparse.Namespace) -> int:
    from bot.app.config import load_settings
    from bot.cli.backup import backup
    from bot.core.clock import SystemClock

    settings = load_settings(args.config, None, strategies=False)
    database, twin = settings.database_path, settings.twin_database_path
    done = backup(database, args.dest, SystemClock().now(), twin)
    for source, copy in ((database, done.copied), (twin, done.twin)):
        if copy is not None:
            print(
                f"backed up {source} to {copy.path} ({copy.size:,} bytes, schema "
                f"{copy.schema}, integrity ok)"
            )
    for note in done.notes:  # the live books are backed up: still a success (exit 0)
        print(f"warning: {note}", file=sys.stderr)
    return 0


def _restore(args: argparse.Namespace) -> int:
    from bot.app.config import load_settings
    from bot.cli.backup import restore
    from bot.core.clock import SystemClock

    settings = load_settings(args.config, None, strategies=False)
    database, twin = settings.database_path, settings.twin_database_path
    done = restore(args.source, database, SystemClock().now(), twin)
    print(f"restored {args.source} to {database} (schema {done.copied.schema}, integrity ok)")
    if done.kept is not None:
        print(f"the database it replaced is kept as {done.kept}")
    if done.twin is not None:
        print(f"restored the paper twin's books to {twin} (schema {done.twin.schema})")
    if done.twin_left is not None:
        print(f"{done.twin_left}; the paper twin starts anew")
    if done.twin_kept is not None:
        print(f"the paper twin's books it replaced are kept as {done.twin_kept}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bot.cli.demo import run_demo

    run_demo(args.output)
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from bot.market.candle_files import read_candle_file

    if args.rerun:
        if args.monte_carlo is not None:
            raise UserInputError("--monte-carlo goes with a backtest, not --rerun")
        from bot.cli.rerun import rerun_command

        return rerun_command(args)

    # Reading a candle file runs mostly outside the GIL (zlib, pandas' tokenizer), so it overlaps
    # the imports of numba and pandas-ta below (what that saves: bench/RESULTS.md).
    if args.config and not (args.data or args.pair or args.strategy or args.param):
        if args.monte_carlo is not None:
            raise UserInputError(
                "--monte-carlo resamples one pair's trades: give --pair or --data "
                "(a portfolio's pairs trade at once, so their trades are not a sequence)"
            )
        from bot.cli.portfolio_backtest import portfolio_command

        return portfolio_command(args)
    with ThreadPoolExecutor(max_workers=1) as reader:
        early = reader.submit(read_candle_file, args.data) if args.data else None
        from bot.cli.backtest import backtest_command

        return backtest_command(args, early)


def run() -> NoReturn:
    """The console script: main(), then exit without a final garbage-collection sweep.

    Freezing moves every live object out of the collector's reach, so the interpreter's last
    collection skips numba's and pandas' hundreds of thousands of objects (what that saves:
    bench/RESULTS.md). Objects are still released, files flushed and atexit handlers run as
    usual.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
