"""Throughput of deidentify (with verification) against a plain pydicom read + write of the same files.

Run: .venv/bin/python -m tests.trials.deid._perf_check  (the requirement is a ratio of at least 0.8)
"""

from __future__ import annotations

import io
import time

import pydicom
from pydicom.data import get_testdata_file

from trials.deid import DeidOptions, PseudonymSpace, deidentify

SLICES = 100
ROUNDS = 7


def synthesize_series(slices: int = SLICES) -> list[bytes]:
    """A series of `slices` 512x512 CT instances made from 693_UNCI.dcm, with their own UIDs and positions."""
    template = pydicom.dcmread(get_testdata_file("693_UNCI.dcm"))
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    files = []
    for n in range(slices):
        ds = template.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n + 1
        ds.ImagePositionPatient = [-122.5, -112.4, 47.0 - 5.0 * n]
        ds.PatientName, ds.PatientID, ds.StudyDate = "PERF^PATIENT", "PERF0001", "20240105"
        buffer = io.BytesIO()
        ds.save_as(buffer)
        files.append(buffer.getvalue())
    return files


def baseline(files: list[bytes]) -> None:
    for data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.save_as(io.BytesIO())


def ours(files: list[bytes], space: PseudonymSpace, options: DeidOptions) -> None:
    for data in files:
        deidentify(data, space=space, subject_code="PERF-001", options=options)


def best_seconds(run, rounds: int = ROUNDS) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    files = synthesize_series()
    space, options = PseudonymSpace(b"\x07" * 32), DeidOptions()
    ours(files[:5], space, options)  # warm the profile cache and imports
    base = best_seconds(lambda: baseline(files))
    deid = best_seconds(lambda: ours(files, space, options))
    print(f"pydicom read+write: {len(files) / base:8.1f} instances/s")
    print(f"deidentify+verify:  {len(files) / deid:8.1f} instances/s")
    print(f"ratio: {base / deid:.2f} (required >= 0.80)")


if __name__ == "__main__":
    main()
