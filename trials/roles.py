"""What each role may do, as django-guardian object permissions on the trial and its sites.

This table is the only place that says which permission a role carries; the membership services
grant and revoke exactly these.
"""

from __future__ import annotations

from .models import Role

TRIAL_PERMS: dict[str, frozenset[str]] = {
    Role.TRIAL_ADMIN: frozenset({"view_trial", "manage_trial", "view_all_subjects", "view_audit"}),
    Role.SITE_COORDINATOR: frozenset({"view_trial"}),
    Role.QC_REVIEWER: frozenset({"view_trial", "view_all_subjects", "review_qc"}),
    Role.READER: frozenset({"view_trial"}),
    Role.ADJUDICATOR: frozenset({"view_trial"}),
    Role.SPONSOR_VIEWER: frozenset({"view_trial", "view_results"}),
}

# Granted on each of the membership's sites (only coordinators have sites).
SITE_PERMS: dict[str, frozenset[str]] = {
    Role.SITE_COORDINATOR: frozenset({"view_site_subjects", "upload_to_site"}),
}

ROLES_WITH_SITES = frozenset(SITE_PERMS)
