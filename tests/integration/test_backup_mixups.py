"""Found by a hostile review (session 22): `pairpilot restore` given a backup whose twin copy
belongs to another backup (real files, the real CLI)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.integration.test_backup import books, counts, pairpilot


def test_a_twin_copy_from_another_backup_is_not_restored_beside_the_database(
    tmp_path: Path,
) -> None:
    """Backup a (live books 1 row, twin 2) and later backup b (live 3, twin 5); an operator
    tidying the backup disk puts b's twin copy beside a's database (a.twin.sqlite). Restoring
    a must not make b's twin books, ahead of a's live books, the twin's: restore's own rule
    sets aside twin books ahead of the restored live books. Refused (or the twin copy set
    aside), the data directory as it was."""
    data = tmp_path / "data"
    data.mkdir()
    database, twin = data / "pairpilot.sqlite", data / "twin.sqlite"
    books(database, 1)
    books(twin, 2)
    assert pairpilot("backup", str(tmp_path / "a.sqlite"), cwd=tmp_path).returncode == 0
    books(database, 2)
    books(twin, 3)
    assert pairpilot("backup", str(tmp_path / "b.sqlite"), cwd=tmp_path).returncode == 0
    shutil.copyfile(tmp_path / "b.twin.sqlite", tmp_path / "a.twin.sqlite")  # mixed up

    restored = pairpilot("restore", str(tmp_path / "a.sqlite"), cwd=tmp_path)

    twin_books = counts(twin)["notes"] if twin.exists() else None
    assert twin_books != 5, (
        "b's twin books (5 rows) now sit beside a's live books (1 row)",
        restored.returncode,
        restored.stdout,
    )


def test_a_broken_twin_file_does_not_stop_the_live_books_being_backed_up(tmp_path: Path) -> None:
    """A twin.sqlite that cannot be used (corrupt: a disk error, a bad copy) only turns the
    drift monitor off; the service trades on (twin_root.open_twin). The backup of the live
    books must go on too: the twin's copy left out, said so, and the database copied."""
    data = tmp_path / "data"
    data.mkdir()
    books(data / "pairpilot.sqlite", 3)
    (data / "twin.sqlite").write_bytes(b"this is not a database, it is a disk error " * 200)

    taken = pairpilot("backup", str(tmp_path / "b.sqlite"), cwd=tmp_path)

    assert (tmp_path / "b.sqlite").exists(), (taken.returncode, taken.stderr)
    assert counts(tmp_path / "b.sqlite")["notes"] == 3
    assert "twin" in taken.stdout + taken.stderr  # the twin's copy left out, said so


def test_restoring_the_twins_copy_as_the_database_is_refused(tmp_path: Path) -> None:
    """`pairpilot restore b.twin.sqlite` (a tab completion too far) would make the paper twin's
    books the LIVE books: the service would then believe it holds the twin's paper positions
    on the real exchange. The twin's copy has the same schema, so the "no pairpilot
    database" check lets it through. Refused, the data directory as it was."""
    data = tmp_path / "data"
    data.mkdir()
    books(data / "pairpilot.sqlite", 1)
    books(data / "twin.sqlite", 7)
    assert pairpilot("backup", str(tmp_path / "b.sqlite"), cwd=tmp_path).returncode == 0

    restored = pairpilot("restore", str(tmp_path / "b.twin.sqlite"), cwd=tmp_path)

    assert restored.returncode != 0, restored.stdout
    assert counts(data / "pairpilot.sqlite")["notes"] == 1  # the live books untouched
    assert counts(data / "twin.sqlite")["notes"] == 7


def test_a_nightly_backup_to_a_freed_name_keeps_working_with_a_twin(tmp_path: Path) -> None:
    """The rotation scripts written before the twin's copy existed: `rm nightly.sqlite &&
    pairpilot backup nightly.sqlite`. Since backup writes nightly.twin.sqlite beside, the
    second night refuses ("exists already") and no backup at all is taken from then on. An
    orphan twin copy (its database copy gone) should not stop the backup of the live books."""
    data = tmp_path / "data"
    data.mkdir()
    books(data / "pairpilot.sqlite", 1)
    books(data / "twin.sqlite", 2)
    nightly = tmp_path / "nightly.sqlite"
    assert pairpilot("backup", str(nightly), cwd=tmp_path).returncode == 0
    nightly.unlink()  # the script's rotation, as before the twin
    books(data / "pairpilot.sqlite", 4)

    again = pairpilot("backup", str(nightly), cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert counts(nightly)["notes"] == 5
