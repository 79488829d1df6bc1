"""The core's benchmarks for `manage.py bench` (ctims.bench.register)."""

from __future__ import annotations

from .bench import register


def _broker_arguments(parser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="kills per broker; the median is reported")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10", help="the Redis to measure")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672//", help="the RabbitMQ to measure")
    parser.add_argument(
        "--visibility", type=int, nargs="+", default=[10, 30], help="Redis visibility timeouts to measure"
    )


def _broker(out, *, runs: int, redis: str, amqp: str, visibility: list[int], **_options) -> None:
    from .broker_bench import bench_broker

    bench_broker(out, runs=runs, redis_url=redis, amqp_url=amqp, visibilities=visibility)


register(
    "broker",
    help="How soon a killed worker's task runs again: RabbitMQ against Redis at its visibility timeouts.",
    add_arguments=_broker_arguments,
    run=_broker,
)
