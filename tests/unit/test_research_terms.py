"""One source for every setting that shapes a research result (issue 17, item 1):
``research_terms`` builds them from the config, with a command's overrides on top."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.app.config import load_settings
from bot.core.domain import RiskLimits
from bot.core.errors import UserInputError
from bot.research.account_terms import NONE, Overrides, ResearchTerms, research_terms
from bot.risk.settings import RiskSettings

PAIRS = '\n[[pairs]]\npair = "ETH/USDT"\ncapital_share = 0.4\n'
# Each field -> (the TOML that moves it away from its default, the value it then takes).
MOVED: dict[str, tuple[str, object]] = {
    "balance": ("[paper]\nbalance = 5000.0\n", 5000.0),
    "fee_rate": ("[paper]\nfee = 0.002\n", 0.002),
    "slippage": ("[paper]\nslippage = 0.001\n", 0.001),
    "volume_share": ("[paper]\nmax_volume_share = 0.25\n", 0.25),
    "timezone": ('timezone = "America/New_York"\n', "America/New_York"),
    "resting_stops": ('[exchange]\nname = "coinbase"\n', False),  # holds no stop orders
    "capital_share": (PAIRS, 0.4),
    "fee_in_coin": ('mode = "live"\n[exchange]\nname = "binance"\n', True),
}


def terms_of(tmp_path: Path, text: str, overrides: Overrides = NONE) -> ResearchTerms:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return research_terms(load_settings(path, None), "ETH/USDT", overrides)


def test_defaults_are_the_configs_defaults(tmp_path: Path) -> None:
    terms = terms_of(tmp_path, "")
    assert terms == research_terms(load_settings(None, None), "ETH/USDT")
    assert (terms.balance, terms.fee_rate, terms.slippage) == (1000.0, 0.001, 0.0005)
    assert (terms.volume_share, terms.timezone, terms.capital_share) == (0.1, "UTC", 1.0)
    # The default account trades paper on Binance's candles, whose stops rest on the venue.
    assert terms.resting_stops
    assert not terms.fee_in_coin
    assert terms.given == frozenset()
    assert dataclasses.asdict(terms.limits) == RiskSettings().model_dump()


@pytest.mark.parametrize("name", sorted(MOVED))
def test_a_changed_setting_changes_exactly_its_field(tmp_path: Path, name: str) -> None:
    text, value = MOVED[name]
    default, moved = terms_of(tmp_path, ""), terms_of(tmp_path, text)
    assert getattr(moved, name) == value != getattr(default, name)
    changed = {
        f.name
        for f in dataclasses.fields(ResearchTerms)
        if getattr(moved, f.name) != getattr(default, f.name)
    }
    # Live mode also turns the paper volume cap off: the real book caps.
    assert changed == {name} | ({"volume_share"} if name == "fee_in_coin" else set())


def test_every_risk_setting_reaches_the_limits(tmp_path: Path) -> None:
    moved = {"max_drawdown": 0.3, "max_open_positions": 2, "cooldown_losses": 3}
    text = "[risk]\n" + "".join(f"{key} = {value}\n" for key, value in moved.items())
    limits = terms_of(tmp_path, text).limits
    assert {key: getattr(limits, key) for key in moved} == moved


def test_every_setting_that_shapes_fills_has_a_field() -> None:
    """A new [paper] or [risk] key fails here until the research terms carry it."""
    from bot.app.config import PaperSettings

    fields = {f.name for f in dataclasses.fields(ResearchTerms)}
    paper = {"balance": "balance", "fee": "fee_rate", "slippage": "slippage"}
    paper["max_volume_share"] = "volume_share"
    assert set(PaperSettings.model_fields) == set(paper)
    assert set(paper.values()) <= fields
    limits = {f.name for f in dataclasses.fields(RiskLimits)}
    assert set(RiskSettings.model_fields) == limits
    assert set(MOVED) | {"limits", "given"} == fields


def test_an_override_beats_the_config_and_is_marked_given(tmp_path: Path) -> None:
    overrides = Overrides(slippage=0.0, capital_share=0.5, risk={"max_drawdown": "0.3"})
    terms = terms_of(tmp_path, MOVED["slippage"][0], overrides)
    assert (terms.slippage, terms.capital_share, terms.limits.max_drawdown) == (0.0, 0.5, 0.3)
    assert terms.given == {"slippage", "capital_share", "limits"}
    assert terms.as_dict()["given"] == ["capital_share", "limits", "slippage"]


def test_a_running_pairs_share_beats_the_configs_and_a_given_share_beats_both(
    tmp_path: Path,
) -> None:
    """What the engine knows better than the file is not marked given: nobody typed it."""
    path = tmp_path / "pairs.toml"
    path.write_text(PAIRS, encoding="utf-8")
    settings = load_settings(path, None)
    running = research_terms(settings, "ETH/USDT", capital_share=0.2)
    assert (running.capital_share, running.given) == (0.2, frozenset())
    given = research_terms(settings, "ETH/USDT", Overrides(capital_share=0.1), capital_share=0.2)
    assert (given.capital_share, given.given) == (0.1, {"capital_share"})
    assert research_terms(settings, "ETH/USDT").capital_share == 0.4


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (Overrides(fee_rate=0.2), "--fee 0.2: expected a rate from 0 to 0.05"),
        (Overrides(slippage=-0.1), "--slippage -0.1: expected a rate from 0 to 0.05"),
        (Overrides(balance=0.0), "--balance 0.0: expected a positive amount"),
        (Overrides(volume_share=2.0), "--volume-share 2.0: expected a share from 0"),
        (Overrides(capital_share=0.0), "--capital-share 0.0: expected a share above 0"),
        (Overrides(risk={"max_drawdown": "2"}), "--risk max_drawdown=2: Input should be less"),
        (Overrides(risk={"nope": "1"}), "--risk nope=1: unknown key"),
    ],
)
def test_a_bad_override_is_refused_by_name(
    tmp_path: Path, overrides: Overrides, words: str
) -> None:
    with pytest.raises(UserInputError, match="^" + words.replace("(", r"\(")):
        terms_of(tmp_path, "", overrides)


ROOT = Path(__file__).resolve().parents[2]
# Who may build each piece of a research run's terms: the one source and the one setup.
BUILT_ONLY_IN = {
    "AccountTerms(": {"bot/research/account_terms.py"},
    "BacktestSetup(": {"bot/research/backtest.py"},  # setup_for, from a ResearchTerms
    # Default limits: only the kernel's warm-up (compiles, simulates nothing) and the neutral
    # BacktestSetup the kernel's own tests pin it with (setup_for gives every field).
    "RiskLimits()": {"bot/research/simulation.py", "bot/research/backtest.py"},
}


def test_no_research_path_builds_terms_of_its_own() -> None:
    """Issue 17, M9: every backtest, sweep and bench runs terms ``research_terms`` built (a
    default account is how slippage 0 and UTC crept into research results)."""
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for folder in ("bot", "handlers", "strategies", "storage", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name, homes in BUILT_ONLY_IN.items()
        if name in path.read_text(encoding="utf-8")
        and path.relative_to(ROOT).as_posix() not in homes
    ]
    assert not found, found
