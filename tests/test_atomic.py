"""One way to write a file: it appears under its name only when complete."""

import re
from pathlib import Path

import pytest

from repdrift.formats.atomic import atomic_path, atomic_write

PACKAGE = Path(__file__).resolve().parents[1] / "workflow/scripts/repdrift"


def test_the_file_appears_only_when_complete(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("done")
        assert not target.exists() and tmp.parent == target.parent
    assert target.read_text() == "done" and sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_a_failed_writer_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_no_module_renames_temporary_files_itself():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "atomic.py" and re.search(r"os\.replace\(", path.read_text())
    ]
    assert offenders == []
