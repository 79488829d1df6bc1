from django.core.management.base import BaseCommand, CommandError

from reads.services import read_design_set
from trials.models import Trial


class Command(BaseCommand):
    help = "Give the demo trial DEMO its read design: RECIST 1.1, double read with adjudication (idempotent)."

    def handle(self, *args, **options):
        trial = Trial.objects.filter(code="DEMO").first()
        if trial is None:
            raise CommandError("Load the demo trial first: python manage.py load_demo")
        design = read_design_set(
            actor=None,
            trial=trial,
            criteria="recist11",
            paradigm="double",
            show_prior_timepoints=True,
            show_visit_label=True,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Read design of {trial.code}: {design}. A visit that passes QC goes to reader1 and reader2."
            )
        )
