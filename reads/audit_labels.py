"""What the reads app's audit codes mean, for the audit page in the reader's language (see ctims.audit_display).

A read design's settings are named by its fields' names; responses stay RECIST's codes (CR, PR, SD, PD, NE).
"""

from django.utils.translation import gettext_lazy, pgettext_lazy

from .models import Lesion, ReadDesign, ReadTask, TimepointResult
from .read_services import READER_MEANING
from .results import ADJUDICATOR_MEANING
from .selectors import STATUS_LABELS

ACTIONS = {
    "read_design.create": pgettext_lazy("audit action", "Read design set"),
    "read_design.update": pgettext_lazy("audit action", "Read design changed"),
    "read_task.create": pgettext_lazy("audit action", "Read task created"),
    "read_task.open": pgettext_lazy("audit action", "Read task opened"),
    "read.save": pgettext_lazy("audit action", "Read draft saved"),
    "read.sign": pgettext_lazy("audit action", "Read signed"),
    "read.correct": pgettext_lazy("audit action", "Correction started"),
    "read.correction_discard": pgettext_lazy("audit action", "Correction discarded"),
    "assignment.replace": pgettext_lazy("audit action", "Case given to another reader"),
    "read_result.lock": pgettext_lazy("audit action", "Visit result locked"),
    "read_result.change": pgettext_lazy("audit action", "Visit result changed by adjudication"),
    "read_result.confirm": pgettext_lazy("audit action", "Visit result confirmed by adjudication"),
    "adjudication.open": pgettext_lazy("audit action", "Adjudication opened"),
    "adjudication.extend": pgettext_lazy("audit action", "Adjudication extended"),
    "adjudication.assign": pgettext_lazy("audit action", "Adjudicator assigned"),
    "adjudication.decide": pgettext_lazy("audit action", "Adjudication decided"),
    "delivery_settings.set": pgettext_lazy("audit action", "Delivery settings changed"),
    "transfer.request": pgettext_lazy("audit action", "Transfer requested"),
    "transfer.build": pgettext_lazy("audit action", "Transfer built"),
    "transfer.download": pgettext_lazy("audit action", "Transfer downloaded"),
    "transfer.fail": pgettext_lazy("audit action", "Transfer failed"),
    "results.download": pgettext_lazy("audit action", "Results downloaded"),
}
OBJECT_TYPES = {
    "reads.readdesign": pgettext_lazy("audit object", "read design"),
    "reads.readerassignment": pgettext_lazy("audit object", "reader assignment"),
    "reads.readtask": pgettext_lazy("audit object", "read task"),
    "reads.read": pgettext_lazy("audit object", "read"),
    "reads.adjudication": pgettext_lazy("audit object", "adjudication"),
    "reads.timepointresult": pgettext_lazy("audit object", "visit result"),
    "reads.deliverysettings": pgettext_lazy("audit object", "delivery settings"),
    "reads.transfer": pgettext_lazy("audit object", "transfer"),
}
KEYS = {
    "case": pgettext_lazy("audit key", "case"),
    "reader": pgettext_lazy("audit key", "reader"),
    "state": pgettext_lazy("audit key", "state"),
    "slot": pgettext_lazy("audit key", "reader number"),
    "tasks": pgettext_lazy("audit key", "tasks"),
    "read_again_from_baseline": pgettext_lazy("audit key", "read again from baseline"),
    "drafts_discarded": pgettext_lazy("audit key", "drafts discarded"),
    "source": pgettext_lazy("audit key", "source"),
    "reader_slot": pgettext_lazy("audit key", "reader number"),
    "read": pgettext_lazy("audit key", "read"),
    "overall_response": pgettext_lazy("audit key", "overall response"),
    "why": pgettext_lazy("audit key", "why"),
    "adjudicator": pgettext_lazy("audit key", "adjudicator"),
    "visits": pgettext_lazy("audit key", "visits"),
    "chosen_slot": pgettext_lazy("audit key", "reader chosen"),
    "signature": pgettext_lazy("audit key", "signature"),
    "locked_visits_changed": pgettext_lazy("audit key", "locked visits changed"),
    "adjudication": pgettext_lazy("audit key", "adjudication"),
    "supersedes": pgettext_lazy("audit key", "replaces"),
    "from_read": pgettext_lazy("audit key", "read before"),
    "to_read": pgettext_lazy("audit key", "read after"),
    "from_reader_slot": pgettext_lazy("audit key", "reader before"),
    "to_reader_slot": pgettext_lazy("audit key", "reader after"),
    "from_overall_response": pgettext_lazy("audit key", "response before"),
    "to_overall_response": pgettext_lazy("audit key", "response after"),
    "real_dates": pgettext_lazy("audit key", "real dates"),
    "number": pgettext_lazy("audit key", "number"),
    "cutoff": pgettext_lazy("audit key", "cut-off"),
    "sha256": pgettext_lazy("audit key", "SHA-256"),
    "subjects": pgettext_lazy("audit key", "subjects"),
    "version": pgettext_lazy("audit key", "version"),
    "sr": pgettext_lazy("audit key", "structured report (SOP Instance UID)"),
    "sr_sha256": pgettext_lazy("audit key", "structured report's SHA-256"),
    "lesions": pgettext_lazy("audit key", "lesions changed (before, after)"),
    "new_lesions": pgettext_lazy("audit key", "new lesions (before, after)"),
    # The fields of a lesion in a draft save's changes (reads.read_services.AUDITED_FIELDS).
    "lesion_category": pgettext_lazy("audit key", "category"),
    "finding_site": pgettext_lazy("audit key", "finding site (SNOMED CT)"),
    "lymph_node": pgettext_lazy("audit key", "lymph node"),
    "lesion_status": pgettext_lazy("audit key", "status"),
    "long_axis_mm": pgettext_lazy("audit key", "long axis (mm)"),
    "short_axis_mm": pgettext_lazy("audit key", "short axis (mm)"),
    "long_axis_line": pgettext_lazy("audit key", "long axis line (image column, row)"),
    "short_axis_line": pgettext_lazy("audit key", "short axis line (image column, row)"),
    "measured_on": pgettext_lazy("audit key", "image (UID/frame)"),
    # A download of results (reads.results.results_download_record).
    "kind": pgettext_lazy("audit key", "download"),
    "excel": pgettext_lazy("audit key", "for Excel"),
    "rows": pgettext_lazy("audit key", "rows"),
    "offset": pgettext_lazy("audit key", "from row (offset)"),
    "limit": pgettext_lazy("audit key", "rows asked for (limit)"),
    "total": pgettext_lazy("audit key", "rows in all"),
    "token": pgettext_lazy("audit key", "API token"),
    "table": pgettext_lazy("audit key", "table"),
    "chart": pgettext_lazy("audit key", "chart"),
    "format": pgettext_lazy("audit key", "format"),
    "start": pgettext_lazy("audit key", "period from"),
    "end": pgettext_lazy("audit key", "period to"),
    # SRs retrieved through the trial's DICOMweb root (reads.results.dicomweb_sr_retrieve_record).
    "retrieved": pgettext_lazy("audit key", "retrieved (DICOMweb)"),
    "study": pgettext_lazy("audit key", "study (Study Instance UID)"),
}
_BASELINE = {"baseline": pgettext_lazy("audit value", "baseline")}
_WHY = {
    "overall_response": pgettext_lazy("audit value", "overall response differs"),
    "best_response": pgettext_lazy("audit value", "best overall response differs"),
    "progression_date": pgettext_lazy("audit value", "date of progression differs"),
    "case_in_adjudication": pgettext_lazy("audit value", "the case is in adjudication"),
}
VALUES = {
    "kind": {
        "results_csv": pgettext_lazy("download", "read results (CSV)"),
        "lesions_csv": pgettext_lazy("download", "lesion measurements (CSV)"),
        "results_api": pgettext_lazy("download", "read results (API)"),
        "sr": pgettext_lazy("download", "structured report (DICOM SR)"),
        "sr_api": pgettext_lazy("download", "structured report (DICOM SR, API)"),
        "sr_dicomweb": pgettext_lazy("download", "structured report (DICOM SR, DICOMweb)"),
        "quality_csv": pgettext_lazy("download", "reader quality data (CSV)"),
        "quality_chart": pgettext_lazy("download", "reader quality chart"),
    },
    # A signature's meaning is stored in English, as signed (21 CFR 11.50); its words are the catalogue's.
    "meaning": {meaning: gettext_lazy(meaning) for meaning in (READER_MEANING, ADJUDICATOR_MEANING)},
    "criteria": dict(ReadDesign.Criteria.choices),
    "paradigm": dict(ReadDesign.Paradigm.choices),
    "adjudication_trigger": dict(ReadDesign.AdjudicationTrigger.choices),
    "state": dict(ReadTask.State.choices),
    "source": dict(TimepointResult.Source.choices),
    "overall_response": _BASELINE,
    "from_overall_response": _BASELINE,
    "to_overall_response": _BASELINE,
    "why": _WHY,
    "lesion_category": dict(Lesion.Category.choices),
    "lesion_status": STATUS_LABELS,
    "retrieved": {
        "instances": pgettext_lazy("dicomweb retrieval", "instances"),
        "metadata": pgettext_lazy("dicomweb retrieval", "metadata (the whole report)"),
    },
    "new_lesions": {
        "none": pgettext_lazy("new lesions", "none"),
        "equivocal": pgettext_lazy("new lesions", "equivocal"),
        "unequivocal": pgettext_lazy("new lesions", "unequivocal"),
    },
    "reason": {
        "read tasks created": pgettext_lazy("audit value", "read tasks created"),
        "readers disagree": pgettext_lazy("audit value", "readers disagree"),
        "read result: single": pgettext_lazy("audit value", "result of a single read"),
        "read result: agreement": pgettext_lazy("audit value", "result of readers who agree"),
        "read result: adjudication": pgettext_lazy("audit value", "result of an adjudication"),
    },
}
