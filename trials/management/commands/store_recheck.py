"""manage.py store_recheck [--trial CODE]: the stored files of sites' uploads checked again (trials.ingest.recheck)."""

from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from trials.ingest.recheck import store_recheck
from trials.models import Trial


class Command(BaseCommand):
    help = (
        "Check every stored file of sites' uploads again with today's checks (its SHA-256 against the index, the "
        "receipt checks and the re-verification of de-identified bytes) and list the files they refuse, by "
        "pseudonymous UIDs and reason. Changes nothing; exits with status 1 if any file is refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("--trial", help="only this trial's files (its code, e.g. DEMO)")

    def handle(self, *args, trial: str | None = None, **options):
        trial_obj = None
        if trial:
            trial_obj = Trial.objects.filter(code=trial.upper()).first()
            if trial_obj is None:
                raise CommandError(f"No trial with the code {trial!r}.")
        checked, refused = 0, Counter()
        for finding in store_recheck(trial=trial_obj):
            checked += 1
            if finding is None:
                continue
            refused[finding.code] += 1
            reason = (
                finding.reason
                if finding.code in ("missing", "changed")
                else f"refused by today's receipt checks, which tell a coordinator: {finding.reason}"
            )
            self.stdout.write(
                f"{finding.trial}\t{finding.subject}\tstudy {finding.study_instance_uid}\t"
                f"series {finding.series_instance_uid}\tinstance {finding.sop_instance_uid}\t{finding.code}: {reason}"
            )
        summary = f"Checked {checked} stored files: {checked - sum(refused.values())} pass today's checks"
        if refused:
            counts = ", ".join(f"{count} {code}" for code, count in sorted(refused.items()))
            self.stdout.write(self.style.ERROR(f"{summary}; {sum(refused.values())} refused ({counts})."))
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS(f"{summary}."))
