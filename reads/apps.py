from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _enqueue_read_tasks(sender, timepoint_id: int, **kwargs) -> None:
    from .tasks import create_read_tasks

    create_read_tasks.delay(timepoint_id)


def _released_reads(trial_id: int):
    """The SR series of a trial's locked results: what its trial admins see of the reads at the trial root."""
    from django.db.models import Q

    from trials.models import Series, Timepoint

    from .models import TimepointResult

    # The standing results only (TimepointResult.objects): the accepted read's SR, and the result SR an
    # adjudication wrote.
    results = TimepointResult.objects.filter(
        timepoint__subject__trial_id=trial_id, timepoint__state=Timepoint.State.LOCKED
    )
    return Series.objects.filter(
        Q(pk__in=results.values("read__sr_instance__series_id")) | Q(pk__in=results.values("sr_instance__series_id"))
    )


def _transfer_files():
    """The built transfers' zips (key, SHA-256, size): what `manage.py backup` copies from the transfers store."""
    from .models import Transfer

    ready = Transfer.objects.filter(state=Transfer.State.READY).exclude(storage_key="").order_by("pk")
    return ready.values_list("storage_key", "sha256", "size").iterator()


def _released_reads_retrieved(actor, trial_id, retrieved, study_uid, sr_uids) -> None:
    """Released SRs retrieved through the trial's DICOMweb root: audited as a download of results."""
    from .results import dicomweb_sr_retrieve_record

    dicomweb_sr_retrieve_record(actor, trial_id, retrieved, study_uid, sr_uids)


def _read_signature_check(signature) -> str:
    """`audit_verify`'s check of a reader's signature against the read it signs (imported when used)."""
    from .read_services import read_signature_check

    return read_signature_check(signature)


def _adjudication_signature_check(signature) -> str:
    """`audit_verify`'s check of an adjudicator's signature against the adjudication it signs."""
    from .results import adjudication_signature_check

    return adjudication_signature_check(signature)


class ReadsConfig(AppConfig):
    name = "reads"
    verbose_name = _("Reads")

    def ready(self) -> None:
        from ctims.signatures import SIGNED_RECORDS
        from trials.backup import KEPT_FILES, KeptFiles
        from trials.dicomweb.scopes import RELEASED_READS, RELEASED_READS_RETRIEVED
        from trials.signals import timepoint_ready

        from .inbox import register_sources

        register_sources()
        SIGNED_RECORDS["reads.read"] = _read_signature_check
        SIGNED_RECORDS["reads.adjudication"] = _adjudication_signature_check
        if _released_reads not in RELEASED_READS:
            RELEASED_READS.append(_released_reads)
        if _released_reads_retrieved not in RELEASED_READS_RETRIEVED:
            RELEASED_READS_RETRIEVED.append(_released_reads_retrieved)
        KEPT_FILES["transfers"] = KeptFiles(storage="transfers", rows=_transfer_files)
        timepoint_ready.connect(_enqueue_read_tasks, dispatch_uid="reads.create_read_tasks")
