"""`evalkit verify-data`: a data root and pairs file against a manifest (evalkit/data/manifest.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.config import bundled_config
from evalkit.data.ade20k import read_pairs
from evalkit.data.manifest import load_manifest, pairs_digest, verify_data
from evalkit.errors import InputError
from evalkit.fileio import sha256_file

N_PAIRS = 6


def _write_manifest(path: Path, pairs_file: Path, *, pairs: int | None = None, files=None) -> Path:
    n = len(read_pairs(pairs_file))
    data = {
        "name": "synthetic",
        "pairs": n if pairs is None else pairs,
        "pairs_file": {
            "name": pairs_file.name,
            "sha256": sha256_file(pairs_file),
            "lines": n,
            "pairs_sha256": pairs_digest(read_pairs(pairs_file)),
        },
        "files": files or {},
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def tree(synthetic_data, tmp_path: Path):
    """A private copy of the synthetic tree and pairs file (tests break them) and a manifest made for it."""
    data = synthetic_data(N_PAIRS)
    root = tmp_path / "ADEChallengeData2016"
    shutil.copytree(data.root, root)
    pairs = tmp_path / "ade20k_ref_test.txt"
    shutil.copyfile(data.pairs, pairs)
    return root, pairs, _write_manifest(tmp_path / "manifest.json", pairs)


def _run(capsys, root: Path, pairs: Path, manifest: Path) -> tuple[int, list[str], str]:
    code = main(["verify-data", "--data-root", str(root), "--pairs", str(pairs), "--manifest", str(manifest)])
    out, err = capsys.readouterr()
    return code, [line for line in err.splitlines() if line], out


def test_all_good_exits_0(tree, capsys) -> None:
    root, pairs, manifest = tree
    code, err, out = _run(capsys, root, pairs, manifest)
    assert code == 0, err
    assert err == []
    assert f"OK ({N_PAIRS} pairs" in out


def test_a_missing_file_is_named(tree, capsys) -> None:
    root, pairs, manifest = tree
    first = read_pairs(pairs)[0]
    gone = root / "images" / "training" / f"{first.exemplar_id}.jpg"
    gone.unlink()
    code, err, _ = _run(capsys, root, pairs, manifest)
    assert code == 2
    assert f"evalkit: {gone}: missing (referenced by {pairs})" in err
    assert err[-1].startswith("evalkit verify-data: 1 finding(s)")


def test_an_empty_file_is_named(tree, capsys) -> None:
    """A truncated download leaves the file in place with no bytes: present is not enough."""
    root, pairs, manifest = tree
    first = read_pairs(pairs)[0]
    empty = root / "images" / "validation" / f"{first.val_id}.jpg"
    empty.write_bytes(b"")
    code, err, _ = _run(capsys, root, pairs, manifest)
    assert code == 2
    assert f"evalkit: {empty}: empty file (referenced by {pairs})" in err


def test_a_changed_pairs_file_is_named(tree, capsys) -> None:
    root, pairs, manifest = tree
    lines = pairs.read_text(encoding="utf-8").splitlines(keepends=True)
    # Swap the exemplars of the first two lines: same count, same files present, other pairs.
    a, b = (line.split(",", 2) for line in lines[:2])
    a[1], b[1] = b[1], a[1]
    lines[:2] = [",".join(a), ",".join(b)]
    pairs.write_text("".join(lines), encoding="utf-8")
    code, err, _ = _run(capsys, root, pairs, manifest)
    assert code == 2
    assert any(line.startswith(f"evalkit: {pairs}: sha256 ") and "differs" in line for line in err)
    assert any("evaluated pairs (fields 1 and 2)" in line and "not comparable" in line for line in err)


def test_extra_trailing_fields_differ_as_a_file_but_not_as_pairs(tree, capsys) -> None:
    root, pairs, manifest = tree
    text = pairs.read_text(encoding="utf-8")
    pairs.write_text(text.replace("\n", ",ADE_train_00000001.jpg\n"), encoding="utf-8")
    code, err, _ = _run(capsys, root, pairs, manifest)
    assert code == 2  # a different file is still reported ...
    assert len(err) == 2  # ... as one finding (plus the summary line)
    assert "pairs (fields 1 and 2) match, so results are comparable" in err[0]


def test_a_wrong_count_is_named(tree, tmp_path: Path, capsys) -> None:
    root, pairs, _ = tree
    manifest = _write_manifest(tmp_path / "m2000.json", pairs, pairs=2000)
    code, err, _ = _run(capsys, root, pairs, manifest)
    assert code == 2
    assert f"evalkit: {pairs}: {N_PAIRS} pairs, the manifest expects 2000" in err


def test_a_line_count_and_a_listed_file_hash_are_checked(tree, tmp_path: Path, capsys) -> None:
    root, pairs, _ = tree
    rel = "images/validation/ADE_val_00000001.jpg"
    listed = {rel: "0" * 64, "objectInfo150.txt": "1" * 64}
    manifest = _write_manifest(tmp_path / "m.json", pairs, files=listed)
    with open(pairs, "a", encoding="utf-8") as fh:
        fh.write("\n")  # a blank line: same pairs, one more line, another file
    code, err, _ = _run(capsys, root, pairs, manifest)
    assert code == 2
    assert f"evalkit: {pairs}: {N_PAIRS + 1} lines, the manifest expects {N_PAIRS}" in err
    assert any(line.startswith(f"evalkit: {root / rel}: sha256 ") for line in err)
    assert f"evalkit: {root / 'objectInfo150.txt'}: missing (listed in the manifest)" in err


def test_not_a_data_root_is_one_finding(tree, tmp_path: Path, capsys) -> None:
    _, pairs, manifest = tree
    code, err, _ = _run(capsys, tmp_path / "nowhere", pairs, manifest)
    assert code == 2
    assert any("not an ADEChallengeData2016 folder" in line for line in err)


def test_many_missing_files_are_summarised(tree) -> None:
    root, pairs, manifest = tree
    shutil.rmtree(root / "images" / "validation")
    (root / "images" / "validation").mkdir()
    findings = verify_data(root, pairs, load_manifest(manifest))
    assert len(findings) == N_PAIRS  # fewer than the listing limit: every file named
    assert all(": missing (referenced by" in f for f in findings)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"pairs_file": {}}, "'pairs'"),
        ({"pairs": 0}, "pairs"),
        ({"pairs": 2, "pairs_file": {"sha256": "abc"}}, "pairs_file.sha256"),
        ({"pairs": 2, "extra": 1}, "'extra'"),
        ({"pairs": 2, "files": {"../x": "0" * 64}}, "'../x'"),
        ({"pairs": 2, "files": {"": "0" * 64}}, "''"),
        ({"pairs": 2, "files": {".": "0" * 64}}, "'.'"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_the_key(tmp_path: Path, data, key: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match=key) as err:
        load_manifest(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_the_committed_manifest_matches_the_real_pairs_file(real_pairs_file: Path) -> None:
    manifest = load_manifest(bundled_config("ade20k_manifest.json"))
    spec = manifest.pairs_file
    assert manifest.pairs == 2000
    assert spec.sha256 == sha256_file(real_pairs_file)
    assert spec.lines == len(real_pairs_file.read_bytes().splitlines()) == 2000
    pairs = read_pairs(real_pairs_file)
    assert len(pairs) == manifest.pairs
    assert spec.pairs_sha256 == pairs_digest(pairs)
