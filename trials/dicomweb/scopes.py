"""What a DICOMweb root exposes: a scope yields the studies a person may see there, and blinds what it must.

Every DICOMweb view works on a Scope and nothing else, so a new root (a read task's, say) is a new scope
function and not a change to the views.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet
from django.http import Http404, QueryDict
from pydicom.dataset import Dataset

from ..access import Actor, trial_access
from ..models import Instance, Series, Study

READ_RESULTS = frozenset({Series.Origin.READ})

# How to find a trial's released read results (the SR series of its locked results), registered by the app
# that writes them (reads, in its AppConfig.ready): trials knows nothing of reads. Each takes a trial id and
# returns a queryset of Series.
RELEASED_READS: list[Callable[[int], QuerySet[Series]]] = []


# How to record that released read results (SRs) were retrieved through a root, registered likewise: each takes the
# actor, the trial id, what was retrieved ("instances" or "metadata"), the study's UID and the SRs' SOP Instance
# UIDs (pseudonymous, as the root serves them).
RELEASED_READS_RETRIEVED: list[Callable[[Actor, int, str, str, list[str]], None]] = []


def released_reads(trial_id: int) -> QuerySet[Series]:
    """The SR series of the trial's locked results: the only central-read series a trial admin sees."""
    found = Series.objects.none()
    for finder in RELEASED_READS:
        found = found | finder(trial_id)
    return found


@dataclass
class Scope:
    """The studies visible through one DICOMweb root, and how their metadata is blinded there."""

    studies: QuerySet[Study]
    root: str  # the root's absolute path, e.g. /dicomweb/trials/DEMO
    # Applied to every instance's DICOM JSON before it leaves the server (read-task roots remove more).
    blind: Callable[[dict], dict] = field(default=lambda metadata: metadata)
    # The same test as `studies`, on one study already loaded (with its subject): the hot path of frames.
    allows: Callable[[Study], bool] | None = None
    # Whole instances are served as stored; where this is set (a blinded root), each is rebuilt through it from
    # the stored file, so that it carries no more than `blind` lets through metadata. Frames, bulk data and
    # rendered images are pixels alone, read as stored.
    blind_dataset: Callable[[Dataset], Dataset] | None = None
    # What the blinding depends on (a case label), in the ETag of what it makes.
    blinding: str = ""
    # Series of these modalities do not exist through this root (a read task's root hides every SR: the
    # other reader's results live in the same study).
    hidden_modalities: frozenset[str] = frozenset()
    # Series of these origins do not exist through this root (sites and QC never see the central reads).
    hidden_origins: frozenset[str] = frozenset()
    # Search keys (keyword and tag) a QIDO search here ignores: matching on what `blind` removes would let a
    # reader test a guessed subject code or date, or find a hidden series, by counting answers.
    ignored_keys: frozenset[str] = frozenset()
    # Series of a hidden origin that exist here nonetheless (a trial admin's locked results).
    released: QuerySet[Series] | None = None
    # What a Store (STOW-RS POST on /studies or /studies/{study}) here is told besides 405: where files go.
    stores: str = ""
    # Where `released` is set: records that released SRs were retrieved (what, the study's UID, the SRs' UIDs).
    retrieved: Callable[[str, str, list[str]], None] | None = None

    def record_retrieved(self, what: str, study_uid: str, sr_uids: list[str]) -> None:
        """Record a retrieval of released SRs (one call a request, the SRs it carried); nothing when none."""
        if self.retrieved is not None and sr_uids:
            self.retrieved(what, study_uid, sr_uids)

    def visible(self, prefix: str = "") -> Q:
        """The condition on a series (reached through `prefix`, e.g. "series__") for it to exist here."""
        hidden = Q()
        if self.hidden_modalities:
            hidden |= Q(**{f"{prefix}modality__in": self.hidden_modalities})
        if self.hidden_origins:
            origin = Q(**{f"{prefix}origin__in": self.hidden_origins})
            if self.released is not None:
                origin &= ~Q(**{f"{prefix}pk__in": self.released.values("pk")})
            hidden |= origin
        return ~hidden if hidden else Q()

    def series(self) -> QuerySet[Series]:
        return Series.objects.filter(self.visible(), study__in=self.studies)

    def instances(self) -> QuerySet[Instance]:
        return Instance.objects.filter(self.visible("series__"), series__study__in=self.studies)

    def hides(self, series: Series) -> bool:
        if series.modality in self.hidden_modalities:
            return True
        if series.origin not in self.hidden_origins:
            return False
        return self.released is None or not self.released.filter(pk=series.pk).exists()

    def query(self, params: QueryDict) -> QueryDict:
        """The search keys of a QIDO request, without those this root ignores."""
        if not self.ignored_keys or not any(key in self.ignored_keys for key in params):
            return params
        kept = params.copy()
        for key in self.ignored_keys:
            kept.pop(key, None)
        return kept

    def study(self, study_uid: str) -> Study:
        study = self.studies.filter(study_instance_uid=study_uid).first()
        if study is None:
            raise Http404("No such study.")
        return study

    def one_series(self, study_uid: str, series_uid: str) -> Series:
        """The series (with its study and subject) if it is visible here, else 404."""
        found = list(
            self.series()
            .filter(series_instance_uid=series_uid, study__study_instance_uid=study_uid)
            .select_related("study__subject")
            .order_by()[:1]  # no ORDER BY: the UID is unique (see `instance`)
        )
        if not found:
            raise Http404("No such series.")
        return found[0]

    def find_instance(self, sop_uid: str) -> Instance | None:
        """The instance row with its series, study and subject, before `admits`; where the scope has `allows`,
        the same row whoever asks (the rows never change: a process may keep them)."""
        candidates = Instance.objects if self.allows else self.instances()
        # No ORDER BY: the UID is unique, and an ordered first() lets PostgreSQL walk another index.
        found = list(
            candidates.filter(sop_instance_uid=sop_uid)
            .select_related("series__study__subject")
            .defer("metadata")
            .order_by()[:1]
        )
        return found[0] if found else None

    def admits(self, instance: Instance, study_uid: str, series_uid: str) -> bool:
        """Whether the instance found is the one asked for (its series and study UIDs) and exists here."""
        return (
            instance.series.series_instance_uid == series_uid
            and instance.series.study.study_instance_uid == study_uid
            and (self.allows is None or self.allows(instance.series.study))
            and not self.hides(instance.series)
        )

    def instance(self, study_uid: str, series_uid: str, sop_uid: str) -> Instance:
        instance = self.find_instance(sop_uid)
        if instance is None or not self.admits(instance, study_uid, series_uid):
            raise Http404("No such instance.")
        return instance


def trial_scope(actor: Actor, *, code: str) -> Scope:
    """The trial root: every study for trial admins and QC reviewers, their sites' for coordinators, else 404.

    The central reads' SRs are hidden from everyone here, except that trial admins see those of locked
    results (as on the results page): a signed read whose visit is not locked yet is nobody's business.
    """
    access = trial_access(actor, code)
    if access is None:
        raise Http404("No such trial.")
    trial_id, root = access.trial.pk, f"/dicomweb/trials/{access.trial.code}"
    studies = Study.objects.filter(trial_id=trial_id)
    sites = access.image_sites()
    released = released_reads(trial_id) if "manage_trial" in access.trial_perms else None

    def retrieved(what: str, study_uid: str, sr_uids: list[str]) -> None:
        for record in RELEASED_READS_RETRIEVED:
            record(actor, trial_id, what, study_uid, sr_uids)

    # PS3.18 10.5 stores on /studies or /studies/{study} of a root; here a file is stored into the upload session
    # of one subject's visit (it is matched, de-identified and checked against it), which this root cannot name.
    stores = (
        "Files are stored through an upload session of a subject's visit: open one (the upload page or the API), "
        f"then POST them to {root}/uploads/{{upload id}}/studies."
    )
    if sites is None:
        return Scope(
            studies=studies,
            root=root,
            stores=stores,
            allows=lambda s: s.trial_id == trial_id,
            hidden_origins=READ_RESULTS,
            released=released,
            retrieved=retrieved if released is not None else None,
        )
    if not sites:
        raise Http404("No such trial.")  # readers and sponsors have no images here: nothing to reveal
    return Scope(
        studies=studies.filter(subject__site__in=sites),
        root=root,
        allows=lambda s: s.trial_id == trial_id and s.subject.site_id in sites,
        hidden_origins=READ_RESULTS,
        stores=stores,
    )
