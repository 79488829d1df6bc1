"""`manage.py bench stow`: the STOW body parser's time at doubling sizes, to show it grows linearly."""

from __future__ import annotations

import io
import os
import statistics
import time

from .multipart import MultipartReader
from .stow import MAX_FILE_BYTES

BOUNDARY = "bench-boundary-5c1d"
PART = 512 * 1024  # one 512x512 16-bit CT slice


def _body(size: int, part: int) -> bytes:
    block = b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + os.urandom(part) + b"\r\n"
    return block * max(size // len(block), 1) + b"--" + BOUNDARY.encode() + b"--\r\n"


def _parse(body: bytes) -> int:
    """Parse as the STOW view does: each part spooled, then read whole; returns the parts' bytes."""
    total = 0
    for part in MultipartReader(io.BytesIO(body), BOUNDARY, max_part=MAX_FILE_BYTES):
        total += len(part.read())
        part.close()
    return total


def bench_stow(stdout, *, runs: int, max_mib: int) -> None:
    sizes = []
    mib = 64
    while mib <= max_mib:
        sizes.append(mib)
        mib *= 2
    stdout.write(f"STOW multipart/related parsing, median of {runs} runs, one process, body in memory.")
    for label, part in (("parts of 512 KiB (a CT series)", PART), ("one part of the whole size (spooled to disk)", 0)):
        stdout.write(f"  {label}:")
        medians = {}
        for mib in sizes:
            body = _body(mib << 20, part or (mib << 20) - 128)
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                parsed = _parse(body)
                times.append(time.perf_counter() - start)
            assert parsed > 0
            medians[mib] = statistics.median(times)
            ratio = f"   x{medians[mib] / medians[mib // 2]:.2f} for twice the size" if mib // 2 in medians else ""
            stdout.write(f"    {mib:5d} MiB  {medians[mib]:7.3f} s  {mib / medians[mib]:8.1f} MiB/s{ratio}")
            del body
        doublings = [medians[b] / medians[a] for a, b in zip(sizes, sizes[1:], strict=False)]
        if doublings:
            stdout.write(f"    ratio per doubling, median: {statistics.median(doublings):.2f} (linear: 2.0)")
