"""De-identify a folder exactly as ingest does, without storing anything, and print a JSON summary per file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from trials.deid import DeidRejected, deidentify
from trials.ingest.services import checked, trial_deid_options
from trials.ingest.subject_keys import subject_space
from trials.models import Subject, Trial


class Command(BaseCommand):
    help = (
        "De-identify every file under SRC_DIR into DEST_DIR with a trial's pseudonym space and options, "
        "verify each output, and print one JSON line per file (accepted, or rejected with the reason)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--trial", required=True, help="trial code, e.g. DEMO")
        parser.add_argument("--subject", required=True, help="subject code, e.g. DEMO-SEO-001")
        parser.add_argument("src", type=Path)
        parser.add_argument("dest", type=Path)

    def handle(self, *args, trial: str, subject: str, src: Path, dest: Path, **options):
        trial_obj = Trial.objects.filter(code=trial.upper()).first()
        if trial_obj is None:
            raise CommandError(f"No trial with code {trial!r}.")
        subject_obj = Subject.objects.filter(trial=trial_obj, code=subject).first()
        if subject_obj is None:
            raise CommandError(f"No subject {subject!r} in trial {trial_obj.code}.")
        if not src.is_dir():
            raise CommandError(f"{src} is not a folder.")
        dest.mkdir(parents=True, exist_ok=True)
        space, deid_options = subject_space(trial_obj, subject_obj.code), trial_deid_options(trial_obj)
        patient = subject_obj.source_patient_hash or None
        totals = {"accepted": 0, "rejected": 0}
        written: dict[str, str] = {}  # output SOP Instance UID -> SHA-256 of what this run wrote under it
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            record = {"file": str(path.relative_to(src))}
            try:
                result = checked(
                    path.read_bytes(),
                    lambda data: deidentify(data, space=space, subject_code=subject_obj.code, options=deid_options),
                )
            except DeidRejected as exc:
                record |= {"status": "rejected", "code": exc.code, "reason": exc.reason}
            except OSError as exc:
                # A file that cannot be read from the folder is that file's rejection; the rest goes on.
                record |= {
                    "status": "rejected",
                    "code": "unreadable",
                    "reason": f"The file could not be read from the folder ({type(exc).__name__}).",
                }
            except Exception as exc:  # noqa: BLE001 - one bad file never stops the folder
                record |= {
                    "status": "rejected",
                    "code": "unreadable",
                    "reason": f"The file could not be de-identified ({type(exc).__name__}).",
                }
            else:
                patient = patient or result.source_patient_hash
                if result.source_patient_hash != patient:
                    record |= {
                        "status": "rejected",
                        "code": "other_patient",
                        "reason": "This file belongs to a different patient than the others; it was not written.",
                    }
                else:
                    record |= self._write(dest, result, written)
            totals[record["status"]] += 1
            self.stdout.write(json.dumps(record, ensure_ascii=False))
        self.stderr.write(f"{totals['accepted']} accepted, {totals['rejected']} rejected")

    @staticmethod
    def _write(dest: Path, result, written: dict[str, str]) -> dict:
        """Write an accepted instance under its UID, unless a different file is already there."""
        out = dest / f"{result.sop_instance_uid}.dcm"
        digest = hashlib.sha256(result.data).hexdigest()
        earlier = written.get(result.sop_instance_uid)
        if earlier is None and out.exists():
            earlier = hashlib.sha256(out.read_bytes()).hexdigest()
        if earlier is not None and earlier != digest:
            return {
                "status": "rejected",
                "code": "duplicate_uid",
                "reason": (
                    "Another, different file with the same SOP Instance UID was already written; this one was not "
                    "written over it. Ask the site which of the two is the right image."
                ),
            }
        if earlier is None:
            out.write_bytes(result.data)
        written[result.sop_instance_uid] = digest
        return {
            "status": "accepted",
            "sop_instance_uid": result.sop_instance_uid,
            "study_instance_uid": result.study_instance_uid,
            "series_instance_uid": result.series_instance_uid,
            "output": str(out),
            "cleaned": [{"attribute": where, "reason": reason} for where, reason in result.cleaned],
            "pixels": result.pixels,
        }
