"""The paper twin's copy beside a backup: marked as the twin's books, stamped with the
database copy it was taken with (real files, the real CLI)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from storage.twin_mark import TWIN_APPLICATION_ID
from tests.integration.test_backup import books, counts, pairpilot


def application_id(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("PRAGMA application_id").fetchone()[0])


def as_before_the_stamp(twin_copy: Path) -> None:
    """A twin copy as a pairpilot from before the mark and the stamp wrote it."""
    with closing(sqlite3.connect(twin_copy)) as connection:
        connection.execute("PRAGMA application_id = 0")
        connection.execute("DROP TABLE backup_of")
        connection.commit()


def backed_up(tmp_path: Path, live: int, twin: int) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    books(data / "pairpilot.sqlite", live)
    books(data / "twin.sqlite", twin)
    taken = pairpilot("backup", str(tmp_path / "b.sqlite"), cwd=tmp_path)
    assert taken.returncode == 0, taken.stderr
    return data


def test_a_twin_copy_is_marked_and_restored_as_the_twins_books_without_its_stamp(
    tmp_path: Path,
) -> None:
    data = backed_up(tmp_path, 1, 2)
    assert application_id(tmp_path / "b.twin.sqlite") == TWIN_APPLICATION_ID
    assert application_id(tmp_path / "b.sqlite") == 0  # the database copy as SQLite made it
    assert "backup_of" in counts(tmp_path / "b.twin.sqlite")

    restored = pairpilot("restore", str(tmp_path / "b.sqlite"), cwd=tmp_path)

    assert restored.returncode == 0, restored.stderr
    assert counts(data / "twin.sqlite") == {"pair_runs": 0, "notes": 2}
    assert application_id(data / "twin.sqlite") == TWIN_APPLICATION_ID
    assert application_id(data / "pairpilot.sqlite") == 0


def test_the_twins_copy_is_refused_as_the_database_with_the_backup_to_restore(
    tmp_path: Path,
) -> None:
    data = backed_up(tmp_path, 1, 2)
    refused = pairpilot("restore", str(tmp_path / "b.twin.sqlite"), cwd=tmp_path)
    assert refused.returncode == 2
    assert "holds the paper twin's books, not the live ones" in refused.stderr
    assert f"restore {tmp_path / 'b.sqlite'}, it brings it" in refused.stderr
    # by its mark alone, under any name
    (tmp_path / "b.twin.sqlite").rename(tmp_path / "renamed.sqlite")
    refused = pairpilot("restore", str(tmp_path / "renamed.sqlite"), cwd=tmp_path)
    assert refused.returncode == 2
    assert "holds the paper twin's books" in refused.stderr
    assert (counts(data / "pairpilot.sqlite")["notes"], counts(data / "twin.sqlite")["notes"]) == (
        1,
        2,
    )
    assert not list(data.glob("*before-restore*"))


def test_a_twin_copy_from_before_the_mark_is_refused_by_its_name_and_not_restored_unstamped(
    tmp_path: Path,
) -> None:
    data = backed_up(tmp_path, 1, 2)
    as_before_the_stamp(tmp_path / "b.twin.sqlite")
    refused = pairpilot("restore", str(tmp_path / "b.twin.sqlite"), cwd=tmp_path)
    assert refused.returncode == 2
    assert "holds the paper twin's books" in refused.stderr

    restored = pairpilot("restore", str(tmp_path / "b.sqlite"), cwd=tmp_path)

    assert restored.returncode == 0, restored.stderr
    assert "b.twin.sqlite was not restored: it does not say which backup" in restored.stdout
    assert "the paper twin starts anew" in restored.stdout
    assert not (data / "twin.sqlite").exists()
    (kept,) = [path for path in data.glob("twin.sqlite.before-restore-*") if path.name[-1] == "Z"]
    assert counts(kept)["notes"] == 2


def test_a_corrupt_twin_is_left_out_of_a_backup_with_a_warning_and_exit_0(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    books(data / "pairpilot.sqlite", 3)
    (data / "twin.sqlite").write_bytes(b"a disk error " * 400)

    taken = pairpilot("backup", str(tmp_path / "b.sqlite"), cwd=tmp_path)

    assert taken.returncode == 0, taken.stderr
    assert "warning: the paper twin's books were left out of the backup" in taken.stderr
    assert "the live books are backed up" in taken.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b.sqlite", "data"]
    assert counts(tmp_path / "b.sqlite")["notes"] == 3


def test_an_orphan_twin_copy_is_replaced_and_anything_else_is_refused(tmp_path: Path) -> None:
    data = backed_up(tmp_path, 1, 2)
    (tmp_path / "b.sqlite").unlink()
    books(data / "twin.sqlite", 4)

    again = pairpilot("backup", str(tmp_path / "b.sqlite"), cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert "an earlier backup's twin copy without its database copy, was replaced" in again.stderr
    assert counts(tmp_path / "b.twin.sqlite")["notes"] == 6
    restored = pairpilot("restore", str(tmp_path / "b.sqlite"), cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert counts(data / "twin.sqlite")["notes"] == 6  # the new copy belongs to its database's

    (tmp_path / "c.twin.sqlite").write_text("my notes", encoding="utf-8")
    refused = pairpilot("backup", str(tmp_path / "c.sqlite"), cwd=tmp_path)
    assert refused.returncode == 2
    assert "c.twin.sqlite exists already and is no paper twin's copy" in refused.stderr
    assert not (tmp_path / "c.sqlite").exists()
    assert (tmp_path / "c.twin.sqlite").read_text(encoding="utf-8") == "my notes"
