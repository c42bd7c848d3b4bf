from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.app.config import load_settings
from bot.app.secret_values import Secrets, read_secrets_file
from bot.core.errors import ConfigError

NO_SECRETS = Secrets()


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pairpilot.toml"
    path.write_text(text)
    return path


def test_defaults_are_paper_binance_sqlite_1000_usdt_and_0_1_percent_fee() -> None:
    settings = load_settings(None, NO_SECRETS)
    assert settings.mode == "paper"
    assert settings.exchange.name == "binance"
    assert settings.paper.balance == 1000.0
    assert settings.quote == "USDT"
    assert settings.paper.fee == 0.001
    assert settings.database_path == Path("data") / "pairpilot.sqlite"


def test_the_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    settings = load_settings(example, NO_SECRETS)
    assert settings.mode == "paper"
    assert [pair.pair for pair in settings.pairs] == ["BTC/USDT", "ETH/USDT"]


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = config(tmp_path, 'data_dir = "state"\n')
    assert load_settings(path, NO_SECRETS).data_dir == tmp_path / "state"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('mode = "yolo"', "mode = 'yolo': Input should be 'paper' or 'live'"),
        ("[paper]\nfee = -0.5", "paper.fee = -0.5: Input should be greater than or equal to 0"),
        ('[paper]\nbalance = "lots"', "paper.balance = 'lots': Input should be a valid number"),
        ("[paper]\nfees = 0.1", "paper.fees: unknown key"),
        ('timezone = "Mars/Olympus"', "timezone = 'Mars/Olympus': expected an IANA time zone"),
        ('[[pairs]]\npair = "btcusdt"\ncapital_share = 0.5', "pairs.0.pair = 'btcusdt': expected"),
        ('[[pairs]]\npair = "BTC/USDT"', "pairs.0.capital_share: required key is missing"),
        (
            '[[pairs]]\npair = "BTC/USDT"\ntimeframe = "7x"\ncapital_share = 0.5',
            "pairs.0.timeframe = '7x': timeframe '7x' is not valid",
        ),
        (
            '[[pairs]]\npair = "BTC/USDT"\nstrategy = "magic"\ncapital_share = 0.5',
            "pairs.0: unknown strategy 'magic'",
        ),
        (
            '[[pairs]]\npair = "BTC/USDT"\ncapital_share = 0.5\nparams = { fast = 300 }',
            "pairs.0: parameter fast=300 is out of bounds",
        ),
        (
            '[[pairs]]\npair = "BTC/USDT"\ncapital_share = 0.7\n'
            '[[pairs]]\npair = "ETH/USDT"\ncapital_share = 0.7',
            "capital_share adds up to 1.4",
        ),
        (
            '[[pairs]]\npair = "ETH/BTC"\ncapital_share = 0.5',
            "pair ETH/BTC is not quoted in USDT (the key quote)",
        ),
        (
            '[market_data]\nsource = "replay"\n[[pairs]]\npair = "BTC/USDT"\ncapital_share = 1',
            "replay_files has no file for BTC/USDT",
        ),
        ('[telegram]\ndaily_report = "25:00"', "telegram.daily_report = '25:00': expected"),
        ("[[telegram.users]]\nid = 5\nrole = 'god'", "telegram.users.0.role = 'god'"),
        ("[drift]\nthreshold = 0", "drift.threshold = 0: "),
        ("[drift]\ndemote = true", "drift.demote"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_was_expected(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config(tmp_path, text), NO_SECRETS)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("text", "key", "variable"),
    [
        ('[telegram]\ntoken = "123:CANARY"', "telegram.token", "PAIRPILOT_TELEGRAM_TOKEN"),
        (
            '[exchange]\nccxt_config = { apiKey = "CANARY" }',
            "exchange.ccxt_config.apiKey",
            "PAIRPILOT_EXCHANGE_KEY",
        ),
        ('[exchange]\nsecret = "CANARY"', "exchange.secret", "PAIRPILOT_EXCHANGE_SECRET"),
        ('[exchange]\npassword = "CANARY"', "exchange.password", "PAIRPILOT_EXCHANGE_PASSWORD"),
    ],
)
def test_secrets_in_the_file_are_refused_without_echoing_them(
    tmp_path: Path, text: str, key: str, variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config(tmp_path, text), NO_SECRETS)
    message = str(caught.value)
    assert key in message
    assert variable in message
    assert "CANARY" not in message


def test_live_mode_needs_exchange_keys_from_the_environment(tmp_path: Path) -> None:
    path = config(tmp_path, 'mode = "live"')
    with pytest.raises(ConfigError, match="PAIRPILOT_EXCHANGE_KEY"):
        load_settings(path, NO_SECRETS)
    secrets = Secrets.from_environment(
        {"PAIRPILOT_EXCHANGE_KEY": "k-CANARY", "PAIRPILOT_EXCHANGE_SECRET": "s-CANARY"}
    )
    assert load_settings(path, secrets).mode == "live"
    assert "CANARY" not in repr(secrets)


def test_a_webhook_needs_its_secret_from_the_environment(tmp_path: Path) -> None:
    path = config(tmp_path, '[telegram.webhook]\nurl = "https://bot.example.com/hook"')
    with pytest.raises(ConfigError, match="PAIRPILOT_TELEGRAM_WEBHOOK_SECRET"):
        load_settings(path, NO_SECRETS)
    secrets = Secrets.from_environment({"PAIRPILOT_TELEGRAM_WEBHOOK_SECRET": "w-CANARY"})
    webhook = load_settings(path, secrets).telegram.webhook
    assert webhook is not None
    assert (webhook.url, webhook.port) == ("https://bot.example.com/hook", 8443)
    assert "CANARY" not in repr(secrets)


@pytest.mark.parametrize(
    ("text", "message"),
    [("mode = ", "not valid TOML"), (None, "does not exist")],
)
def test_unreadable_files_are_refused(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "pairpilot.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, NO_SECRETS)


def test_a_secrets_file_others_may_read_is_warned_about_and_still_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(
        "# comment\nPAIRPILOT_EXCHANGE_KEY=abc123456\nexport PAIRPILOT_EXCHANGE_SECRET='s e'\n"
    )
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        assert read_secrets_file(path) == {
            "PAIRPILOT_EXCHANGE_KEY": "abc123456",
            "PAIRPILOT_EXCHANGE_SECRET": "s e",
        }
    assert not caplog.records
    path.chmod(0o640)
    with caplog.at_level(logging.WARNING):
        read_secrets_file(path)
    assert "readable by its group (mode 640): run chmod 600" in caplog.text
    assert "abc123456" not in caplog.text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("PAIRPILOT_EXCHANGE_KY=abc\n", "unknown key PAIRPILOT_EXCHANGE_KY"),
        (None, "cannot be read"),
    ],
)
def test_a_bad_secrets_file_stops_start_up(tmp_path: Path, text: str | None, words: str) -> None:
    path = tmp_path / "secrets.env"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        read_secrets_file(path)


def test_metrics_are_off_by_default_and_the_port_is_checked(tmp_path: Path) -> None:
    assert load_settings(None, NO_SECRETS).metrics.port == 0
    with pytest.raises(ConfigError, match="metrics.port = 70000"):
        load_settings(config(tmp_path, "[metrics]\nport = 70000\n"), NO_SECRETS)


@pytest.mark.parametrize("quoted", ['"123:abc"', "'123:abc'"])
def test_a_quoted_token_reads_the_same_from_the_environment_as_from_secrets(
    tmp_path: Path, quoted: str
) -> None:
    """`docker run --env-file` passes the quotes on; --secrets and compose strip them."""
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(f"PAIRPILOT_TELEGRAM_TOKEN={quoted}\n", encoding="utf-8")
    secrets_file.chmod(0o600)
    from_file = Secrets.from_environment(read_secrets_file(secrets_file))
    from_docker = Secrets.from_environment({"PAIRPILOT_TELEGRAM_TOKEN": quoted})
    assert from_docker.telegram_token == from_file.telegram_token == "123:abc"
    assert Secrets.from_environment({"PAIRPILOT_TELEGRAM_TOKEN": '"1:a'}).telegram_token == '"1:a'
