"""`pairpilot backup` while the service trades on a fast replay (it writes many times a
second), and `pairpilot restore`: refused while the service runs, then the round trip."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from storage.db import latest_schema

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "bot" / "sample_data" / "BTC_USDT-1h.csv.gz"
ENVIRONMENT = {
    **{k: v for k, v in os.environ.items() if not k.startswith("PAIRPILOT_")},
    "PYTHONPATH": str(ROOT),
}


def pairpilot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=ENVIRONMENT,
        check=False,
    )


def counts(path: Path) -> dict[str, int]:
    """Rows per table, after SQLite's own integrity check passed."""
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in tables
        }


def test_backups_while_the_service_writes_are_whole_and_restore_round_trips(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'data_dir = "state"\n[market_data]\nsource = "replay"\nreplay_speed = '
        f'36000\nreplay_files = {{ "BTC/USDT" = "{SAMPLE}" }}\n[[pairs]]\n'
        'pair = "BTC/USDT"\ncapital_share = 1.0\n',
        encoding="utf-8",
    )
    database = tmp_path / "state" / "pairpilot.sqlite"
    service = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "run", "--config", str(config)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENVIRONMENT,
    )
    try:
        backups, seen = [], []
        deadline = time.monotonic() + 90
        while len(backups) < 4 and time.monotonic() < deadline:
            if not database.exists() or not counts(database).get("fills"):
                time.sleep(0.2)
                continue
            target = tmp_path / f"backup-{len(backups)}.sqlite"
            result = pairpilot("backup", str(target), "--config", str(config), cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            backups.append(target)
            seen.append(counts(target))  # whole: it passes the integrity check
        assert len(backups) == 4, "the service never traded"
        assert service.poll() is None, "the replay ended before the backups were taken"
        assert [copy["equity_snapshots"] for copy in seen] == sorted(
            copy["equity_snapshots"] for copy in seen
        )
        assert seen[0]["equity_snapshots"] < seen[-1]["equity_snapshots"]  # taken under load

        refused = pairpilot("restore", str(backups[1]), "--config", str(config), cwd=tmp_path)
        assert refused.returncode == 1
        assert f"is in use by another pairpilot (pid {service.pid}" in refused.stderr
        (tmp_path / "state" / "pairpilot.lock").unlink()  # "stale", thinks a tired operator
        again = pairpilot("restore", str(backups[1]), "--config", str(config), cwd=tmp_path)
        assert again.returncode == 1
        assert f"{database} is open in another process" in again.stderr
        assert counts(database)["equity_snapshots"] >= seen[-1]["equity_snapshots"]
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
    assert service.returncode == 0, service.stderr.read().decode()[-2000:] if service.stderr else ""
    before = counts(database)

    restored = pairpilot("restore", str(backups[1]), "--config", str(config), cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert counts(database) == seen[1]
    kept = [path for path in database.parent.iterdir() if ".before-restore-" in path.name]
    assert len(kept) == 1  # nothing lost: the replaced database is kept, whole
    assert counts(kept[0]) == before
    assert f"kept as {kept[0]}" in restored.stdout


def test_restore_refuses_what_is_no_pairpilot_backup_and_changes_nothing(tmp_path: Path) -> None:
    database = tmp_path / "data" / "pairpilot.sqlite"
    stranger, newer = tmp_path / "other.sqlite", tmp_path / "newer.sqlite"
    with closing(sqlite3.connect(stranger)) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    with closing(sqlite3.connect(newer)) as connection:
        connection.execute("CREATE TABLE pair_runs (id INTEGER)")
        connection.execute("PRAGMA user_version = 99")
    (tmp_path / "text.sqlite").write_text("not a database", encoding="utf-8")
    for source, words in [
        (stranger, "is not a pairpilot database"),
        (newer, f"has schema 99, newer than this pairpilot knows ({latest_schema()})"),
        (tmp_path / "text.sqlite", "is not a SQLite database"),
        (tmp_path / "missing.sqlite", "does not exist"),
    ]:
        result = pairpilot("restore", str(source), cwd=tmp_path)
        assert result.returncode == 2
        assert words in result.stderr
        assert not database.exists()
        assert not any(database.parent.glob("*.sqlite*"))
    taken = pairpilot("backup", str(tmp_path / "b.sqlite"), cwd=tmp_path)
    assert (taken.returncode, "no database at") == (2, taken.stderr[18:32])


def test_a_restore_run_as_root_leaves_files_the_service_user_can_write(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        return  # only root can create files for another user
    data = tmp_path / "data"
    data.mkdir()
    backup = tmp_path / "b.sqlite"
    with closing(sqlite3.connect(backup)) as connection:
        connection.execute("CREATE TABLE pair_runs (id INTEGER)")
    current = data / "pairpilot.sqlite"
    current.write_bytes(backup.read_bytes())
    for path in (data, current):
        os.chown(path, 12345, 12345)
    current.chmod(0o600)
    result = pairpilot("restore", str(backup), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for path in (current, data / "pairpilot.lock"):
        assert (path.stat().st_uid, path.stat().st_gid) == (12345, 12345), path
    assert current.stat().st_mode & 0o777 == 0o600


def test_a_backup_into_a_missing_directory_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "data" / "pairpilot.sqlite"
    database.parent.mkdir()
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE pair_runs (id INTEGER)")
    result = pairpilot("backup", str(tmp_path / "nosuchdir") + "/", cwd=tmp_path)
    assert result.returncode == 2
    assert f"directory {tmp_path / 'nosuchdir'} does not exist" in result.stderr
    assert not (tmp_path / "nosuchdir").exists()


def killed_writing(database: Path, note: str) -> None:
    """A process killed with 300 committed ``note`` rows still in ``database``'s -wal (no
    checkpoint, no close)."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import os, sqlite3; c = sqlite3.connect(os.environ['DB'], isolation_level=None); "
                "c.execute('PRAGMA journal_mode = WAL'); "
                "c.execute('PRAGMA wal_autocheckpoint = 0'); "
                "[c.execute(\"INSERT INTO notes VALUES (?)\", (os.environ['NOTE'],)) "
                "for _ in range(300)]; "
                "os._exit(9)"
            ),
        ],
        env={**ENVIRONMENT, "DB": str(database), "NOTE": note},
        check=False,
        timeout=60,
    )


def test_a_restore_sets_aside_a_write_ahead_log_left_without_its_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    backup = tmp_path / "b.sqlite"
    with closing(sqlite3.connect(backup)) as connection:
        connection.execute("CREATE TABLE pair_runs (id INTEGER)")
        connection.execute("CREATE TABLE notes (text TEXT)")
    crashed = data / "pairpilot.sqlite"
    crashed.write_bytes(backup.read_bytes())
    # a process killed with committed rows still in its -wal (no checkpoint, no close)
    killed_writing(crashed, "lost?")
    assert Path(f"{crashed}-wal").stat().st_size > 0
    crashed.rename(tmp_path / "moved-aside.sqlite")  # by hand; its -wal stays behind
    result = pairpilot("restore", str(backup), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert counts(crashed)["notes"] == 0  # the backup's rows, none replayed from the old log
    assert not Path(f"{crashed}-wal").exists()
    assert [path.name for path in data.glob("*.before-restore-*-wal")]


def test_a_restore_replaces_a_corrupt_database(tmp_path: Path) -> None:
    database = tmp_path / "data" / "pairpilot.sqlite"
    database.parent.mkdir()
    backup = tmp_path / "b.sqlite"
    with closing(sqlite3.connect(backup)) as connection:
        connection.execute("CREATE TABLE pair_runs (id INTEGER)")
    database.write_bytes(b"\x00garbage header" * 64)  # what `run` says to restore for
    result = pairpilot("restore", str(backup), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert counts(database) == {"pair_runs": 0}
    kept = list(database.parent.glob("pairpilot.sqlite.before-restore-*"))
    assert [path.read_bytes()[:15] for path in kept] == [b"\x00garbage header"]


def test_a_backup_that_would_starve_the_data_dir_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """A nightly backup on the data directory's own disk must not walk it into the service's
    "entries off" (64 MiB free) and later into a refused start."""
    from tests.integration.test_data_dir import fill, mounted

    for disk in mounted(tmp_path / "disk", 80):
        database = disk / "data" / "pairpilot.sqlite"
        database.parent.mkdir()
        with closing(sqlite3.connect(database)) as connection:
            connection.execute("CREATE TABLE pair_runs (id INTEGER, blob BLOB)")
            connection.execute("INSERT INTO pair_runs VALUES (1, zeroblob(2000000))")
            connection.commit()
        fill(disk, leave=65 * 2**20)  # above the floor now, under it after a 2 MB copy
        (disk / "backups").mkdir()
        result = pairpilot("backup", str(disk / "backups") + "/", cwd=disk)
        assert result.returncode == 2, result.stderr
        assert f"{disk / 'backups'} has" in result.stderr
        assert "64 MiB" in result.stderr
        assert list((disk / "backups").iterdir()) == []


def books(path: Path, notes: int) -> None:
    """A pairpilot-like database file holding ``notes`` rows."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE IF NOT EXISTS pair_runs (id INTEGER)")
        connection.execute("CREATE TABLE IF NOT EXISTS notes (text TEXT)")
        connection.executemany("INSERT INTO notes VALUES (?)", [("n",)] * notes)
        connection.commit()


def test_a_backup_takes_the_paper_twins_books_and_a_restore_puts_them_back(
    tmp_path: Path,
) -> None:
    """twin.sqlite (the drift monitor's paper books) is copied with the database, by the same
    online backup: its rows still in the write-ahead log of a killed service are in the copy."""
    data = tmp_path / "data"
    data.mkdir()
    database, twin = data / "pairpilot.sqlite", data / "twin.sqlite"
    books(database, 1)
    books(twin, 2)
    killed_writing(twin, "wal")  # a killed service's last rows, in the twin's -wal
    assert Path(f"{twin}-wal").stat().st_size > 0
    taken = pairpilot("backup", str(tmp_path / "b.sqlite"), cwd=tmp_path)
    assert taken.returncode == 0, taken.stderr
    assert counts(tmp_path / "b.sqlite")["notes"] == 1
    assert counts(tmp_path / "b.twin.sqlite")["notes"] == 302
    assert f"{tmp_path / 'b.twin.sqlite'}" in taken.stdout

    (tmp_path / "dated").mkdir()
    dated = pairpilot("backup", str(tmp_path / "dated") + "/", cwd=tmp_path)
    assert dated.returncode == 0, dated.stderr
    names = sorted(path.name for path in (tmp_path / "dated").iterdir())
    assert len(names) == 2
    assert names[0].endswith("Z.sqlite")
    assert names[1] == names[0].replace(".sqlite", ".twin.sqlite")

    books(twin, 5)  # the twin trades on after the backup
    again = pairpilot("backup", str(tmp_path / "b.sqlite"), cwd=tmp_path)
    assert again.returncode == 2
    assert "exists already" in again.stderr
    restored = pairpilot("restore", str(tmp_path / "b.sqlite"), cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert counts(database)["notes"] == 1
    assert counts(twin)["notes"] == 302
    kept = [path for path in data.glob("twin.sqlite.before-restore-*") if path.name[-1] == "Z"]
    assert [counts(path)["notes"] for path in kept] == [307]
    assert f"books it replaced are kept as data/{kept[0].name}\n" in restored.stdout


def test_without_a_twin_a_backup_is_the_database_alone_and_its_restore_sets_a_twin_aside(
    tmp_path: Path,
) -> None:
    """No twin file (paper mode, drift off) is no error; restoring such a backup where a twin
    trades moves the twin's books aside (kept): they would be ahead of the restored live
    books, and the twin starts anew from them."""
    data = tmp_path / "data"
    data.mkdir()
    books(data / "pairpilot.sqlite", 1)
    taken = pairpilot("backup", str(tmp_path / "b.sqlite"), cwd=tmp_path)
    assert taken.returncode == 0, taken.stderr
    assert sorted(path.name for path in tmp_path.glob("b*")) == ["b.sqlite"]
    assert taken.stdout.count("backed up") == 1
    books(data / "twin.sqlite", 4)
    restored = pairpilot("restore", str(tmp_path / "b.sqlite"), cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert not (data / "twin.sqlite").exists()
    kept = [path for path in data.glob("twin.sqlite.before-restore-*") if path.name[-1] == "Z"]
    assert [counts(path)["notes"] for path in kept] == [4]
