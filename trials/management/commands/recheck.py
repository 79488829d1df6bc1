"""manage.py recheck [--trial CODE]: records and stored files kept from before a rule or check existed, checked
against today's (trials.recheck, trials.ingest.recheck)."""

from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from trials.ingest.recheck import store_recheck
from trials.models import Trial
from trials.recheck import records_recheck


class Command(BaseCommand):
    help = (
        "Check the trials' records against today's rules (roles, visit names, subject codes, site countries) and "
        "every stored file of sites' uploads against today's checks (its SHA-256 against the index, the receipt "
        "checks and the re-verification of de-identified bytes); list what they refuse, by codes and pseudonymous "
        "UIDs. Changes nothing; exits with status 1 if anything is listed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--trial", help="only this trial (its code, e.g. DEMO)")

    def handle(self, *args, trial: str | None = None, **options):
        trial_obj = None
        if trial:
            trial_obj = Trial.objects.filter(code=trial.upper()).first()
            if trial_obj is None:
                raise CommandError(f"No trial with the code {trial!r}.")
        records = 0
        for finding in records_recheck(trial=trial_obj):
            records += 1
            self.stdout.write(f"{finding.trial}\trecord\t{finding.code}: {finding.text}")
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
            summary += f"; {sum(refused.values())} refused ({counts})"
        summary += f". {records} record{'' if records == 1 else 's'} outside today's rules."
        if refused or records:
            self.stdout.write(self.style.ERROR(summary))
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS(summary))
