"""deploy/'s systemd units: what the watchdog does with each exit of `pairpilot health`, run
through a real shell with a recording `systemctl`, and the settings that keep the service
stopped when restarting cannot help. `make lint` runs `systemd-analyze verify` on them too."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import ccxt
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bot.app.config import load_settings
from bot.cli.main import EXIT_BAD_INPUT
from bot.ops.health import EXIT_OK, EXIT_RESTART, EXIT_UNHEALTHY
from handlers.frontend import STOP_GRACE

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent


def unit(name: str) -> dict[str, list[str]]:
    """Every ``key=value`` of a unit file (keys may repeat, as systemd allows)."""
    entries: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


@pytest.mark.parametrize(
    ("status", "restarts"),
    [
        (str(EXIT_OK), False),
        (str(EXIT_UNHEALTHY), False),
        (str(EXIT_BAD_INPUT), False),
        (str(EXIT_RESTART), True),
        ("KILL", False),
    ],
)
def test_the_watchdog_restarts_only_when_a_restart_helps_and_never_starts_a_stopped_service(
    tmp_path: Path, status: str, restarts: bool
) -> None:
    command = unit("pairpilot-health.service")["ExecStopPost"][0].removeprefix("+")
    log = tmp_path / "systemctl.log"
    fake = tmp_path / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n', encoding="utf-8")
    fake.chmod(0o755)
    environment = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "EXIT_STATUS": status}
    subprocess.run(shlex.split(command), env=environment, check=True, timeout=10)
    called = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    # try-restart does nothing to a stopped unit: a stop for maintenance or a restore holds
    assert called == (["--no-block try-restart pairpilot.service"] if restarts else [])


def test_bad_input_stops_the_service_for_good_instead_of_restarting_it_forever() -> None:
    service = unit("pairpilot.service")
    assert service["Restart"] == ["on-failure"]
    assert str(EXIT_BAD_INPUT) in service["RestartPreventExitStatus"][0].split()


def test_the_health_timer_runs_only_alongside_the_service() -> None:
    timer = unit("pairpilot-health.timer")
    assert timer["PartOf"] == ["pairpilot.service"]  # stops with it
    assert timer["WantedBy"] == ["pairpilot.service"]  # starts with it
    assert "pairpilot-health.timer" in unit("pairpilot.service")["Wants"]


@pytest.mark.parametrize("name", ["pairpilot.service", "pairpilot-health.service"])
def test_a_missing_or_late_mounted_data_dir_is_refused_by_pairpilot_not_created(name: str) -> None:
    """systemd.exec: a ReadWritePaths= path without "-" that does not exist fails the unit's
    namespace set-up (exit 226, which Restart=on-failure retries forever); StateDirectory=
    creates the directory (on the bare mount point when the disk is late). Without either,
    pairpilot itself refuses a missing data_dir, exit 2 naming it (test_data_dir), and
    RequiresMountsFor= waits for the disk."""
    entries = unit(name)
    data = "/var/lib/pairpilot"  # the install comment's data_dir
    assert entries["ReadWritePaths"] == [f"-{data}"]
    assert "StateDirectory" not in entries
    assert data in entries["RequiresMountsFor"][0].split()


def test_the_stop_timeouts_outlast_a_stop_in_an_outage_whatever_the_number_of_pairs() -> None:
    """A stop ends every retry and the tick at the next pair (test_operations measures it):
    left are at most 5 requests (the one in flight, an order's two look-ups, its protective
    stop and that one's look-up) and the goodbye: the outbox drain and the held alerts (a
    Telegram request each, PTB's 5 s connect + 5 s read), the front end's grace and its last
    getUpdates."""
    request = ccxt.binance().timeout / 1000
    bound = 5 * request + 2 * 10 + STOP_GRACE + 10
    stop = int(unit("pairpilot.service")["TimeoutStopSec"][0])
    assert stop >= bound
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))["services"]
    assert compose["pairpilot"]["stop_grace_period"] == f"{stop}s"  # Docker stops alike


def test_the_container_config_puts_the_database_on_the_volume_and_loads() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))["services"]
    service = compose["pairpilot"]
    settings = load_settings(DEPLOY / "docker" / "config.toml", None)
    assert settings.data_dir == Path("/data")
    assert "COPY deploy/docker/config.toml /etc/pairpilot/config.toml" in dockerfile
    assert 'VOLUME ["/data"]' in dockerfile
    assert "pairpilot-data:/data" in service["volumes"]
    assert "./config.toml:/etc/pairpilot/config.toml:ro" in service["volumes"]
    command = service["command"]
    assert command[command.index("--config") + 1] == "/etc/pairpilot/config.toml"
    # Telegram's token reaches the service: compose's secret file, passed with --secrets
    assert command[command.index("--secrets") + 1] == "/run/secrets/pairpilot"
    assert service["secrets"] == ["pairpilot"]
    assert service["init"] is True  # an init as PID 1 reaps the worker processes
    assert re.search(r"^USER \d+:\d+$", dockerfile, re.M)  # numeric, for runAsNonRoot
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
    assert "requirements.lock" in dockerfile
    assert "--require-hashes" in dockerfile


def test_the_syscall_filter_lets_numpy_and_dask_load() -> None:
    # OpenBLAS (under numpy) calls mbind as it loads: denied, the bot died of SIGSYS at start
    # and was restarted every 10 s. /proc/meminfo (ProcSubset=pid hides it) is read by dask.
    service = unit("pairpilot.service")
    assert service["SystemCallErrorNumber"] == ["EPERM"]  # a denied call fails, never kills
    assert "ProcSubset" not in service
    denied = {
        group
        for line in service["SystemCallFilter"]
        if line.startswith("~")
        for group in line[1:].split()
    }
    if shutil.which("systemd-analyze") is None:
        assert "@resources" not in denied
        return
    for group in denied:
        listed = subprocess.run(
            ["systemd-analyze", "syscall-filter", group], check=True, capture_output=True, text=True
        ).stdout.split()
        assert not {"mbind", "set_mempolicy", "sched_getaffinity"} & set(listed), group


def locked(name: str) -> dict[str, list[str]]:
    """Package -> the versions pinned in a lock file (one per environment marker)."""
    pins: dict[str, list[str]] = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        found = re.match(r"^([A-Za-z0-9_.\-]+)==([^ ;\\]+)", line)
        if found:
            pins.setdefault(canonicalize_name(found.group(1)), []).append(found.group(2))
    return pins


@pytest.mark.parametrize(
    ("lock", "extras"), [("requirements.lock", ()), ("requirements-dev.lock", ("dev",))]
)
def test_every_requirement_of_pyproject_is_locked_within_its_range(
    lock: str, extras: tuple[str, ...]
) -> None:
    # bootstrap and the image install the lock, then pairpilot with --no-deps: a requirement
    # added to pyproject.toml but not re-locked (scripts/lock.sh) would be silently missing.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(text) for text in project["dependencies"]]
    wanted += [
        Requirement(text) for extra in extras for text in project["optional-dependencies"][extra]
    ]
    pins = locked(lock)
    for requirement in wanted:
        versions = pins.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in {lock}: run scripts/lock.sh"
        inside = [v for v in versions if requirement.specifier.contains(v, prereleases=True)]
        assert inside == versions, f"{lock}: {requirement.name} {versions} outside its range"
