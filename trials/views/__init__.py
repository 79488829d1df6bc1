"""Server-rendered pages of trials.

Each page finds the trial through ``selectors.trial_get`` (404 outside the person's trials, 403 without the
right), reads through selectors, changes through services, and answers a successful POST with a redirect.
"""

from ._common import home
from .inbox import inbox
from .invitations import invitation
from .qc import (
    qc_fail,
    qc_pass,
    qc_relabel,
    qc_timepoint,
    qc_worklist,
    query_answer,
    query_close,
    query_detail,
    query_list,
)
from .setup import (
    invitation_withdraw,
    membership_revoke,
    protocol_create,
    token_revoke,
    trial_audit,
    trial_audit_export,
    trial_create,
    trial_detail,
    trial_edit,
    trial_people,
    trial_schedule,
    trial_sites,
    trial_tokens,
)
from .subjects import subject_detail, timepoint_upload, timepoint_viewer, trial_subjects

__all__ = [
    "home",
    "inbox",
    "invitation",
    "invitation_withdraw",
    "membership_revoke",
    "protocol_create",
    "qc_fail",
    "qc_pass",
    "qc_relabel",
    "qc_timepoint",
    "qc_worklist",
    "query_answer",
    "query_close",
    "query_detail",
    "query_list",
    "subject_detail",
    "timepoint_upload",
    "timepoint_viewer",
    "token_revoke",
    "trial_audit",
    "trial_audit_export",
    "trial_create",
    "trial_detail",
    "trial_edit",
    "trial_people",
    "trial_schedule",
    "trial_sites",
    "trial_subjects",
    "trial_tokens",
]
