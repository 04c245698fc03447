"""Peak memory of reading an image at the pixel bound, and of refusing one whose header declares far more.

Run: ``python benchmarks/memory_bound.py`` (each case runs in a fresh process; its own peak RSS,
VmHWM from /proc/self/status: ru_maxrss would carry over the parent's peak across fork and exec).
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from evalkit import defaults

CASE = """
import sys
from pathlib import Path
from evalkit.data.ade20k import read_ground_truth
from evalkit.errors import InputError
try:
    read_ground_truth(Path(sys.argv[1]))
    outcome = "read"
except InputError:
    outcome = "refused"
print(outcome, next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024)
"""


def huge_png(path: Path, width: int, height: int) -> None:
    """A few hundred bytes whose PNG header declares ``width x height`` RGB pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 999)))


def peak(path: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", CASE, str(path)], capture_output=True, text=True, check=True)
    outcome, mib = proc.stdout.split()
    return f"{outcome}, peak RSS {mib} MiB"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        huge = Path(tmp) / "huge.png"
        huge_png(huge, 60000, 60000)
        side = int(defaults.MAX_PIXELS**0.5)  # the largest square image allowed
        largest = Path(tmp) / "largest.png"
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(largest, compress_level=1)
        baseline = Path(tmp) / "small.png"
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(baseline)
        print(f"8 x 8 image (interpreter + imports): {peak(baseline)}")
        print(f"60000 x 60000 header (3.6 Gpx): {peak(huge)}")
        print(f"{side} x {side} image (the {defaults.MAX_PIXELS} pixel bound): {peak(largest)}")


if __name__ == "__main__":
    main()
