"""The pairs file parser: the real CoCosNet format, BOM, blank lines, and bad lines with their line number."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from evalkit.data.ade20k import Pair, pair_files, read_pairs, read_pairs_file
from evalkit.errors import InputError


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "pairs.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_real_pairs_file(real_pairs_file: Path) -> None:
    pairs = read_pairs(real_pairs_file)
    assert len(pairs) == 2000
    assert pairs[0] == Pair(index=0, line=1, val_id="ADE_val_00000001", exemplar_id="ADE_train_00013948")
    # file order is evaluation order; ids are unique
    assert [p.index for p in pairs] == list(range(2000))
    assert len({p.val_id for p in pairs}) == 2000
    # field 2 is the exemplar, the other 19 candidates are ignored
    fields = real_pairs_file.read_text(encoding="utf-8-sig").splitlines()[1999].split(",")
    assert len(fields) == 21
    assert pairs[1999].exemplar_id == fields[1].removesuffix(".jpg")


def test_limit_keeps_first_n(real_pairs_file: Path) -> None:
    pairs = read_pairs(real_pairs_file, limit=5)
    assert [p.val_id for p in pairs] == [f"ADE_val_{i:08d}" for i in range(1, 6)]


def test_bom_blank_lines_extra_fields_and_crlf(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        b"\xef\xbb\xbfADE_val_1.jpg,ADE_train_7.jpg,ADE_train_missing.jpg\r\n"
        b"\r\n  \nADE_val_2.jpg,ADE_train_8.jpg\n",
    )
    pairs = read_pairs(path)
    assert [(p.val_id, p.exemplar_id, p.line) for p in pairs] == [
        ("ADE_val_1", "ADE_train_7", 1),
        ("ADE_val_2", "ADE_train_8", 4),
    ]


def test_pair_files_layout(tmp_path: Path) -> None:
    files = pair_files(tmp_path, Pair(0, 1, "ADE_val_00000001", "ADE_train_00013948"))
    assert files.input_mask == tmp_path / "annotations/validation/ADE_val_00000001.png"
    assert files.exemplar == tmp_path / "images/training/ADE_train_00013948.jpg"
    assert files.exemplar_mask == tmp_path / "annotations/training/ADE_train_00013948.png"
    assert files.ground_truth == tmp_path / "images/validation/ADE_val_00000001.jpg"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ADE_val_1.jpg\n", "pairs.txt:1: expected"),
        ("ADE_val_1.jpg,\n", "pairs.txt:1: field 2 (exemplar image) is empty"),
        (",ADE_train_1.jpg\n", "pairs.txt:1: field 1 (validation image) is empty"),
        ("ok.jpg,ok2.jpg\n../x.jpg,ADE_train_1.jpg\n", "pairs.txt:2: field 1 (validation image) '../x.jpg'"),
        ("ADE_val_1.jpg,/etc/ADE_train_1.jpg\n", "must be a bare file name"),
        ("ADE_val_1.png,ADE_train_1.jpg\n", "must be a .jpg file name"),
        (
            "ADE_val_1.jpg,ADE_train_1.jpg\nADE_val_1.jpg,ADE_train_2.jpg\n",
            "pairs.txt:2: validation image ADE_val_1.jpg repeats line 1",
        ),
        ("\n\n", "has no pairs"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=None) as info:
        read_pairs(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="pairs file not found"):
        read_pairs(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="not UTF-8"):
        read_pairs(write(tmp_path, b"ADE_val_\xff.jpg,ADE_train_1.jpg\n"))


def test_pairs_file_record_hashes_the_bytes_parsed(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfa.jpg,b.jpg\r\n\r\nc.jpg,d.jpg,x\n"
    path = tmp_path / "pairs.txt"
    path.write_bytes(data)
    record = read_pairs_file(path, limit=1)
    # the hash covers every byte read (the whole file), also when limit keeps fewer pairs
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.n_lines == 3 and [p.val_id for p in record.pairs] == ["a"]
    assert read_pairs(path) == list(read_pairs_file(path).pairs)


def test_a_named_pipe_is_read_once_and_hashed(tmp_path: Path) -> None:
    data = "".join(f"v{i}.jpg,e{i}.jpg\n" for i in range(50)).encode()
    fifo = tmp_path / "pairs.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as fh:  # blocks until the reader opens the pipe
            for i in range(0, len(data), 64):  # in pieces, as a slow producer would
                fh.write(data[i : i + 64])

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    record = read_pairs_file(fifo)
    writer.join(timeout=10)
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert len(record.pairs) == 50 and record.pairs[-1].val_id == "v49"
