"""What evalkit expects of a data set on disk, and a comparison of a data root and pairs file with it.

A manifest is a small JSON file (the real one ships as ``configs/ade20k_manifest.json``)::

    {
      "name": "...",                      # what the manifest describes (shown in findings)
      "pairs_file": {"name": "ade20k_ref_test.txt", "sha256": "...", "lines": 2000,
                     "pairs_sha256": "..."},  # sha256 of the evaluated part: "VAL.jpg,EXEMPLAR.jpg\n" lines
      "pairs": 2000,                      # number of pairs the file must hold
      "files": {"relative/path": "sha256", ...}   # optional: further files under the data root
    }

Every key but ``pairs`` is optional; a hash or count that is absent is not checked. The file names
the pairs reference (four per pair, see :func:`evalkit.data.ade20k.pair_files`) are derived from the
pairs file at run time rather than stored: the pairs file's hash already pins them. ``pairs_sha256`` lets a
copy with other trailing fields (the OMZ keeps only fields 1 and 2) be recognised as the same evaluation;
for a clean file it equals ``cut -d, -f1,2 FILE | sha256sum``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from evalkit.data.ade20k import Pair, check_root, pair_files, read_pairs
from evalkit.errors import InputError
from evalkit.fileio import sha256_file

_SHA256 = re.compile(r"[0-9a-f]{64}")

#: At most this many missing files are named one per line; the rest are counted in one more line.
MAX_LISTED_MISSING = 20


@dataclass(frozen=True)
class PairsFileSpec:
    """What the pairs file must be: its usual name, and its hash and line count when known."""

    name: str | None = None
    sha256: str | None = None
    lines: int | None = None
    pairs_sha256: str | None = None  #: :func:`pairs_digest` of the pairs the file holds


@dataclass(frozen=True)
class Manifest:
    """What evalkit expects of a data root and pairs file (see the module docstring for the JSON form)."""

    name: str
    pairs: int
    pairs_file: PairsFileSpec = PairsFileSpec()
    files: dict[str, str] = field(default_factory=dict)  #: path relative to the data root -> sha256


def _sha(value: object, where: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise InputError(f"{where}: expected 64 lower-case hex digits (a sha256), got {value!r}")
    return value


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _optional(data: dict, key: str, check, path: Path):
    return None if data.get(key) is None else check(data[key], f"{path}: pairs_file.{key}")


def pairs_digest(pairs: list[Pair]) -> str:
    """sha256 of the pairs as evalkit evaluates them: ``"VAL.jpg,EXEMPLAR.jpg\\n"`` per pair, in order."""
    text = "".join(f"{p.val_id}.jpg,{p.exemplar_id}.jpg\n" for p in pairs)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest JSON file.

    Parameters
    ----------
    path
        The manifest, e.g. ``configs/ade20k_manifest.json``.

    Returns
    -------
    Manifest

    Raises
    ------
    InputError
        When the file is missing, not JSON, or a key has the wrong type (the message names the key).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read manifest: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: manifest must be a JSON object")
    known = {"name", "description", "pairs", "pairs_file", "files"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if "pairs" not in data:
        raise InputError(f"{path}: missing key 'pairs' (the number of pairs expected)")
    pairs = _count(data["pairs"], f"{path}: pairs")
    spec_data = data.get("pairs_file", {})
    if not isinstance(spec_data, dict):
        raise InputError(f"{path}: pairs_file must be an object")
    bad = sorted(set(spec_data) - {"name", "sha256", "lines", "pairs_sha256"})
    if bad:
        raise InputError(
            f"{path}: pairs_file: unknown key {bad[0]!r} (known: lines, name, pairs_sha256, sha256)"
        )
    name = spec_data.get("name")
    if name is not None and not isinstance(name, str):
        raise InputError(f"{path}: pairs_file.name: expected a string, got {name!r}")
    spec = PairsFileSpec(
        name=name,
        sha256=_optional(spec_data, "sha256", _sha, path),
        lines=_optional(spec_data, "lines", _count, path),
        pairs_sha256=_optional(spec_data, "pairs_sha256", _sha, path),
    )
    files = data.get("files", {})
    if not isinstance(files, dict):
        raise InputError(f"{path}: files must be an object of 'relative path': 'sha256'")
    for rel in files:
        if Path(rel).is_absolute() or ".." in Path(rel).parts or Path(rel) == Path("."):
            raise InputError(f"{path}: files: {rel!r} must be a path relative to the data root")
    return Manifest(
        name=str(data.get("name", path.name)),
        pairs=pairs,
        pairs_file=spec,
        files={rel: _sha(h, f"{path}: files.{rel}") for rel, h in files.items()},
    )


def _line_count(path: Path) -> int:
    # Lines as a text editor counts them: a final line without a newline still counts.
    text = path.read_bytes()
    return text.count(b"\n") + (1 if text and not text.endswith(b"\n") else 0)


def verify_data(root: str | Path, pairs_path: str | Path, manifest: Manifest) -> list[str]:
    """Compare a data root and a pairs file with ``manifest``.

    Parameters
    ----------
    root
        The ``ADEChallengeData2016`` folder itself.
    pairs_path
        The pairs file (``ade20k_ref_test.txt``).
    manifest
        What is expected (:func:`load_manifest`).

    Returns
    -------
    list of str
        One line per finding (a missing file, a different hash or count), each naming the file; empty
        when everything matches.
    """
    root, pairs_path = Path(root), Path(pairs_path)
    findings: list[str] = []
    spec = manifest.pairs_file
    file_differs = None  # index of the finding "the pairs file's sha256 differs", if any
    if not pairs_path.is_file():
        findings.append(f"{pairs_path}: pairs file not found")
    else:
        digest = sha256_file(pairs_path)
        if spec.sha256 is not None and digest != spec.sha256:
            file_differs = len(findings)
            findings.append(
                f"{pairs_path}: sha256 {digest} differs from the manifest's {spec.sha256} "
                f"(not the {spec.name or 'expected'} pairs file, or edited)"
            )
        if spec.lines is not None and (lines := _line_count(pairs_path)) != spec.lines:
            findings.append(f"{pairs_path}: {lines} lines, the manifest expects {spec.lines}")
    pairs: list[Pair] = []
    if pairs_path.is_file():
        try:
            pairs = read_pairs(pairs_path)
        except InputError as exc:
            findings.append(str(exc))
        else:
            if len(pairs) != manifest.pairs:
                findings.append(f"{pairs_path}: {len(pairs)} pairs, the manifest expects {manifest.pairs}")
            if spec.pairs_sha256 is not None:
                digest = pairs_digest(pairs)
                if digest == spec.pairs_sha256 and file_differs is not None:
                    # e.g. the OMZ's two-field copy: a different file, the same evaluation.
                    findings[file_differs] += "; its pairs (fields 1 and 2) match, so results are comparable"
                elif digest != spec.pairs_sha256:
                    findings.append(
                        f"{pairs_path}: the evaluated pairs (fields 1 and 2) have sha256 {digest}, the "
                        f"manifest's are {spec.pairs_sha256}: another pair list, results not comparable"
                    )
    try:
        check_root(root)
    except InputError as exc:
        findings.append(str(exc))
        return findings
    missing: list[Path] = []
    seen: set[Path] = set()
    for pair in pairs:
        files = pair_files(root, pair)
        for path in (files.input_mask, files.exemplar, files.exemplar_mask, files.ground_truth):
            if path not in seen:
                seen.add(path)
                if not path.is_file():
                    missing.append(path)
                elif path.stat().st_size == 0:  # a truncated download: present, but no image
                    findings.append(f"{path}: empty file (referenced by {pairs_path})")
    for path in missing[:MAX_LISTED_MISSING]:
        findings.append(f"{path}: missing (referenced by {pairs_path})")
    if len(missing) > MAX_LISTED_MISSING:
        findings.append(
            f"{root}: {len(missing) - MAX_LISTED_MISSING} more referenced files missing "
            f"({len(missing)} of {len(seen)} in all)"
        )
    for rel, expected in manifest.files.items():
        path = root / rel
        if not path.is_file():
            findings.append(f"{path}: missing (listed in the manifest)")
        elif (digest := sha256_file(path)) != expected:
            findings.append(f"{path}: sha256 {digest} differs from the manifest's {expected}")
    return findings
