"""What the trials app's audit codes mean, for the audit page in the reader's language (see ctims.audit_display).

The stored events keep their codes; these are only read at display time. Summary keys that are fields of the
event's object (a trial's title, a protocol's contrast) are named by the field and need no entry here.
"""

from django.utils.functional import lazy
from django.utils.translation import pgettext_lazy

from . import qc
from .forms import kind_label
from .models import Role, Timepoint

ACTIONS = {
    "trial.create": pgettext_lazy("audit action", "Trial created"),
    "trial.update": pgettext_lazy("audit action", "Trial changed"),
    "site.create": pgettext_lazy("audit action", "Site added"),
    "visit.create": pgettext_lazy("audit action", "Visit added to the schedule"),
    "protocol.create": pgettext_lazy("audit action", "Imaging protocol added"),
    "subject.enroll": pgettext_lazy("audit action", "Subject enrolled"),
    "membership.grant": pgettext_lazy("audit action", "Role granted"),
    "membership.update": pgettext_lazy("audit action", "Role changed"),
    "membership.revoke": pgettext_lazy("audit action", "Role revoked"),
    "invitation.create": pgettext_lazy("audit action", "Invitation sent"),
    "invitation.accept": pgettext_lazy("audit action", "Invitation accepted"),
    "invitation.withdraw": pgettext_lazy("audit action", "Invitation withdrawn"),
    "token.create": pgettext_lazy("audit action", "API token created"),
    "token.revoke": pgettext_lazy("audit action", "API token revoked"),
    "timepoint.transition": pgettext_lazy("audit action", "Visit state changed"),
    "upload.open": pgettext_lazy("audit action", "Upload started"),
    "upload.finish": pgettext_lazy("audit action", "Upload finished sending"),
    "upload.complete": pgettext_lazy("audit action", "Upload processed"),
    "upload.discard": pgettext_lazy("audit action", "Upload cancelled: no file sent"),
    "upload.close_idle": pgettext_lazy("audit action", "Upload closed unfinished: no file arrived for a long time"),
    "upload.subject_key": pgettext_lazy("audit action", "Subject key given to the browser"),
    "qc.run": pgettext_lazy("audit action", "Automatic QC checks run"),
    "qc.relabel": pgettext_lazy("audit action", "Series classification corrected"),
    "qc.fail": pgettext_lazy("audit action", "QC failed: query sent"),
    "qc.pass": pgettext_lazy("audit action", "QC passed"),
    "query.answer": pgettext_lazy("audit action", "Query answered"),
    "query.close": pgettext_lazy("audit action", "Query closed"),
}
OBJECT_TYPES = {
    "trials.trial": pgettext_lazy("audit object", "trial"),
    "trials.site": pgettext_lazy("audit object", "site"),
    "trials.visit": pgettext_lazy("audit object", "visit"),
    "trials.imagingprotocol": pgettext_lazy("audit object", "imaging protocol"),
    "trials.subject": pgettext_lazy("audit object", "subject"),
    "trials.timepoint": pgettext_lazy("audit object", "subject's visit"),
    "trials.membership": pgettext_lazy("audit object", "role"),
    "trials.invitation": pgettext_lazy("audit object", "invitation"),
    "trials.apitoken": pgettext_lazy("audit object", "API token"),
    "trials.upload": pgettext_lazy("audit object", "upload"),
    "trials.series": pgettext_lazy("audit object", "series"),
    "trials.query": pgettext_lazy("audit object", "query"),
}
# Their stored label is their own data: a code, a name, a subject code and visit label, a token's name.
DATA_LABELS = {"trials.trial", "trials.site", "trials.visit", "trials.subject", "trials.timepoint", "trials.apitoken"}
KEYS = {
    "code": pgettext_lazy("audit key", "code"),
    "title": pgettext_lazy("audit key", "title"),
    "sponsor": pgettext_lazy("audit key", "sponsor"),
    "status": pgettext_lazy("audit key", "status"),
    "name": pgettext_lazy("audit key", "name"),
    "country": pgettext_lazy("audit key", "country"),
    "label": pgettext_lazy("audit key", "label"),
    "order": pgettext_lazy("audit key", "order"),
    "target_day": pgettext_lazy("audit key", "target day"),
    "window": pgettext_lazy("audit key", "window (days before, after)"),
    "visit": pgettext_lazy("audit key", "visit"),
    "modality": pgettext_lazy("audit key", "modality"),
    "site": pgettext_lazy("audit key", "site"),
    "sites": pgettext_lazy("audit key", "sites"),
    "user": pgettext_lazy("audit key", "person"),
    "role": pgettext_lazy("audit key", "role"),
    "prefix": pgettext_lazy("audit key", "prefix"),
    "from": pgettext_lazy("audit key", "from"),
    "to": pgettext_lazy("audit key", "to"),
    "reason": pgettext_lazy("audit key", "reason"),
    "subject": pgettext_lazy("audit key", "subject"),
    "files": pgettext_lazy("audit key", "files"),
    "series": pgettext_lazy("audit key", "series"),
    "blocking": pgettext_lazy("audit key", "blocking findings"),
    "warnings": pgettext_lazy("audit key", "warnings"),
    "rules": pgettext_lazy("audit key", "rules version"),
    "query": pgettext_lazy("audit key", "query"),
    "due": pgettext_lazy("audit key", "due"),
    "upload": pgettext_lazy("audit key", "upload"),
    "comment": pgettext_lazy("audit key", "comment"),
    "message": pgettext_lazy("audit key", "message"),
    "accepted": pgettext_lazy("audit key", "stored"),
    "duplicate": pgettext_lazy("audit key", "already stored"),
    "rejected": pgettext_lazy("audit key", "rejected"),
    "resend": pgettext_lazy("audit key", "to send again"),
    "quarantined": pgettext_lazy("audit key", "waiting"),
    "total": pgettext_lazy("audit key", "total"),
    "visit_state": pgettext_lazy("audit key", "visit's state before"),
    "idle_hours": pgettext_lazy("audit key", "hours without a file"),
}
# Coded values under these keys: a visit's states (a transition's from and to), series kinds (a relabelling's),
# roles, the reasons of transitions.
_STATES = dict(Timepoint.State.choices)
_KINDS = {kind: lazy(kind_label, str)(kind) for kind in qc.KINDS}
VALUES = {
    "from": _STATES | _KINDS,
    "to": _STATES | _KINDS,
    "state": _STATES,
    "visit_state": _STATES,
    "role": dict(Role.choices),
    "reason": {
        "QC failed": pgettext_lazy("audit value", "QC failed"),
        "QC passed": pgettext_lazy("audit value", "QC passed"),
        "query closed": pgettext_lazy("audit value", "query closed"),
        "upload discarded: no file sent": pgettext_lazy("audit value", "Upload cancelled: no file sent"),
        "upload discarded: idle": pgettext_lazy("audit value", "Upload cancelled: no file arrived for a long time"),
    },
}
