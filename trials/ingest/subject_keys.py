"""Which pseudonym space a subject's images go into, and the subject key the site's browser may hold."""

from __future__ import annotations

from ..deid.pseudonym import PseudonymSpace, subject_key
from ..models import Trial


def subject_space(trial: Trial, subject_code: str) -> PseudonymSpace:
    """The space of one subject under the trial's scheme: the same for the server and the browser path."""
    return PseudonymSpace.for_subject(bytes(trial.pseudonym_key), subject_code, scheme=trial.pseudonym_scheme)


def browser_subject_key(trial: Trial, subject_code: str) -> bytes | None:
    """The key a browser de-identifies one subject with; None for a one-key trial (its key must stay here)."""
    if trial.pseudonym_scheme != Trial.PseudonymScheme.SUBJECT:
        return None
    return subject_key(bytes(trial.pseudonym_key), subject_code)
