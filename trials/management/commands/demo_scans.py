"""Write folders of synthetic scanner output for the demo trial, to drop on the upload page by hand."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from django.core.management.base import BaseCommand

from trials.ingest.synthetic import real_ct_template, synthesize_ct_series

SUBJECTS = {
    # subject code: (the patient's name and ID at the hospital, baseline scan date)
    "DEMO-SEO-001": ("KIM^MINJUN", "SNUH-0042117", date(2026, 3, 2)),
    "DEMO-BUS-001": ("PARK^SEOYEON", "BOH-7781203", date(2026, 3, 9)),
}
VISITS = [("BL", 0), ("W6", 42), ("W12", 84)]


class Command(BaseCommand):
    help = (
        "Write DEST/<subject>/<visit>/ folders as a scanner exports them: a CT series of the subject (with "
        "identifying headers), a DICOMDIR, a text file, and one image of another patient."
    )

    def add_arguments(self, parser):
        parser.add_argument("dest", type=Path)
        parser.add_argument("--slices", type=int, default=48)

    def handle(self, *args, dest: Path, slices: int, **options):
        template = real_ct_template(large=False)
        for subject, (name, patient_id, baseline) in SUBJECTS.items():
            for visit, day in VISITS:
                folder = dest / subject / visit
                series_dir = folder / "DICOM" / "S0002"
                series_dir.mkdir(parents=True, exist_ok=True)
                files = synthesize_ct_series(
                    template,
                    slices=slices,
                    seed=f"demo/{subject}/{visit}",
                    patient_name=name,
                    patient_id=patient_id,
                    study_date=baseline + timedelta(days=day),
                )
                for n, data in enumerate(files):
                    (series_dir / f"I{n + 1:04d}").write_bytes(data)
                (folder / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
                (folder / "README.TXT").write_text("Exported by the scanner console.\n")
                stray = synthesize_ct_series(
                    template,
                    slices=1,
                    seed=f"demo/stray/{subject}/{visit}",
                    patient_name="LEE^JIHO",
                    patient_id="SNUH-0099871",
                    study_date=baseline + timedelta(days=day),
                )
                (series_dir / "I9999").write_bytes(stray[0])
        self.stdout.write(
            f"Demo scans written to {dest}: one folder per subject and visit, e.g. {dest / 'DEMO-SEO-001' / 'BL'}"
        )
