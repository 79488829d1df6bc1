"""`manage.py bench <name>`: run one of the benchmarks the apps register (ctims.bench.register) and print its figures."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ctims.bench import benchmarks


class Command(BaseCommand):
    help = (
        "Run a benchmark and print its figures: medians over several runs and ratios against a baseline run in the "
        "same command. `bench <name> --help` lists a benchmark's own options."
    )

    def add_arguments(self, parser):
        names = parser.add_subparsers(dest="name", required=True, metavar="name", title="benchmarks")
        for name, benchmark in benchmarks().items():
            own = names.add_parser(name, help=benchmark.help, description=benchmark.help)
            if benchmark.add_arguments is not None:
                benchmark.add_arguments(own)

    def handle(self, *args, name: str, **options):
        benchmarks()[name].run(self.stdout, **options)
