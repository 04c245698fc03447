"""The shared file helpers: atomic writes, file hashes, JSON-safe numbers."""

from __future__ import annotations

import hashlib
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from evalkit.fileio import atomic_path, finite_or_none, sha256_file, write_bytes_atomic, write_text_atomic


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "results.json"
    write_text_atomic(target, "first\r\n")
    write_text_atomic(target, "second\n")
    assert target.read_bytes() == b"second\n"  # newlines as given, never translated
    write_bytes_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        assert tmp.parent == tmp_path and tmp.name.startswith(".report.md.") and tmp.suffix == ".md"
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_file_mode_is_the_umask_default_or_the_one_asked_for(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")  # mkstemp's 0600 would hide a shared report
        write_bytes_atomic(tmp_path / "b.feat", b"x", mode=0o640)
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.feat").stat().st_mode) == 0o640


def test_sha256_of_one_file_and_of_several_in_a_row(tmp_path: Path) -> None:
    a, b = tmp_path / "a.xml", tmp_path / "a.bin"
    a.write_bytes(b"<net/>")
    b.write_bytes(os.urandom(3 << 20))  # more than one read block
    assert sha256_file(a) == hashlib.sha256(b"<net/>").hexdigest()
    assert sha256_file(a, b) == hashlib.sha256(a.read_bytes() + b.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, 1.5),
        (3, 3.0),
        (np.float32(0.25), 0.25),
        (np.int64(7), 7.0),
        (math.inf, None),
        (-math.inf, None),
        (math.nan, None),
        (np.float64("nan"), None),
        (None, None),
        (True, None),
        ("1.0", None),
    ],
)
def test_finite_or_none(value: object, expected: float | None) -> None:
    got = finite_or_none(value)
    assert got == expected and (got is None or type(got) is float)
