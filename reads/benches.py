"""The reads app's benchmarks for `manage.py bench` (ctims.bench.register)."""

from __future__ import annotations

from ctims.bench import add_series_arguments, register


def _reads_arguments(parser) -> None:
    add_series_arguments(parser)
    parser.add_argument("--tasks", type=int, default=500, help="tasks in the reader's worklist")


def _reads(out, *, slices: int, runs: int, small: bool, tasks: int, **_options) -> None:
    from .bench import bench_reads

    bench_reads(out, slices=min(slices, 20), runs=runs, small=small, tasks=tasks)


def _transfers_arguments(parser) -> None:
    add_series_arguments(parser)
    parser.add_argument("--subjects", type=int, default=20, help="subjects read and locked")


def _transfers(out, *, slices: int, runs: int, small: bool, subjects: int, **_options) -> None:
    from .bench_transfers import bench_transfers

    bench_transfers(out, subjects=subjects, slices=max(5, min(slices, 8)), runs=runs, small=small)


register(
    "reads",
    help="What a reader waits for: saving a draft, signing, the worklist, the read page.",
    add_arguments=_reads_arguments,
    run=_reads,
)
register(
    "transfers",
    help="Building a sponsor transfer of a double-read trial, against reading its locked series and copying its SRs.",
    add_arguments=_transfers_arguments,
    run=_transfers,
)
