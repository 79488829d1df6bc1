"""The trials app's benchmarks for `manage.py bench` (ctims.bench.register): each one's options, and a call of
the function in its own module (trials/ingest/bench.py, trials/dicomweb/bench.py, ...) that measures."""

from __future__ import annotations

from django.core.management.base import CommandError

from ctims.bench import add_series_arguments, register


def _ingest_arguments(parser) -> None:
    add_series_arguments(parser)
    parser.add_argument("--screens", type=int, default=5, help="dose report screens read by OCR (0 to skip)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        help="real Celery worker processes on the --redis broker, e.g. --workers 1 2 (PostgreSQL only)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10", help="--workers: the Redis broker")
    parser.add_argument(
        "--io-threads",
        type=int,
        help="INGEST_PROCESSING_IO_THREADS for the processing measured (default: the setting's); 0: none",
    )


def _ingest(
    out, *, slices: int, runs: int, small: bool, screens: int, workers, redis: str, io_threads, **_options
) -> None:
    from django.conf import settings
    from django.test import override_settings

    threads = settings.INGEST_PROCESSING_IO_THREADS if io_threads is None else max(0, io_threads)
    out.write(
        f"INGEST_RECEIVE_IO_THREADS = {settings.INGEST_RECEIVE_IO_THREADS}, INGEST_PROCESSING_IO_THREADS = {threads}"
    )
    with override_settings(INGEST_PROCESSING_IO_THREADS=threads):
        if workers:
            from .ingest.workers_bench import bench_ingest_workers

            bench_ingest_workers(out, slices=slices, runs=runs, small=small, counts=workers, broker_url=redis)
            return
        from .ingest.bench import bench_ingest

        bench_ingest(out, slices=slices, runs=runs, small=small, screens=screens)


def _dicomweb_arguments(parser) -> None:
    add_series_arguments(parser)
    parser.add_argument("--index-rows", type=int, default=1_000_000, help="instance rows in the QIDO index")
    _dicomweb_http_arguments(parser)


def _dicomweb_http_arguments(parser) -> None:
    parser.add_argument(
        "--http",
        action="store_true",
        help="frames and instances over HTTP from a server process, with concurrent clients",
    )
    parser.add_argument("--clients", default="1,8", help="--http: numbers of concurrent clients")
    parser.add_argument(
        "--orthanc", action="store_true", help="--http: the same files from Debian's Orthanc, and the ratio"
    )
    from .dicomweb.bench import add_http_arguments

    add_http_arguments(parser)


def _dicomweb(out, *, slices: int, runs: int, small: bool, index_rows: int, **options) -> None:
    from .dicomweb.bench import bench_dicomweb, bench_dicomweb_http

    if options["http"] or options["orthanc"]:
        try:
            clients = [int(n) for n in options["clients"].split(",")]
        except ValueError:
            raise CommandError("--clients is a comma-separated list of whole numbers, e.g. 1,8") from None
        bench_dicomweb_http(
            out,
            slices=slices,
            runs=runs,
            small=small,
            clients=clients,
            orthanc=options["orthanc"],
            servers=options["server"],
            web_workers=options["web_workers"],
            access_cache_seconds=options["access_cache_seconds"],
        )
        return
    bench_dicomweb(out, slices=slices, runs=runs, small=small, index_rows=index_rows)


def _stow_arguments(parser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="runs per size; the median is reported")
    parser.add_argument("--max-mib", type=int, default=512, help="the largest body, from 64 MiB doubling")


def _stow(out, *, runs: int, max_mib: int, **_options) -> None:
    from .dicomweb.stow_bench import bench_stow

    bench_stow(out, runs=runs, max_mib=max_mib)


def _browser_deid(out, *, slices: int, runs: int, small: bool, **_options) -> None:
    from .ingest.browser_bench import bench_browser_deid

    bench_browser_deid(out, slices=slices, runs=runs, small=small)


def _upload_browser(out, *, slices: int, runs: int, small: bool, **_options) -> None:
    from .ingest.browser_bench import bench_upload_browser

    bench_upload_browser(out, slices=slices, runs=runs, small=small)


register(
    "ingest",
    help="De-identification and the whole ingest pipeline against pydicom reading and writing the same files; "
    "with --workers, end to end through real Celery workers.",
    add_arguments=_ingest_arguments,
    run=_ingest,
)
register(
    "dicomweb",
    help="What a viewer waits for: series metadata, frames, QIDO; with --http, over HTTP with concurrent clients.",
    add_arguments=_dicomweb_arguments,
    run=_dicomweb,
)
register(
    "stow",
    help="The STOW body parser at doubling sizes.",
    add_arguments=_stow_arguments,
    run=_stow,
)
register(
    "browser_deid",
    help="The browser's de-identification engine (Pyodide under Node) against the server's.",
    add_arguments=add_series_arguments,
    run=_browser_deid,
)
register(
    "upload_browser",
    help="The whole upload in Chromium: the browser path against files sent as they are.",
    add_arguments=add_series_arguments,
    run=_upload_browser,
)
