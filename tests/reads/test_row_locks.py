"""A row lock takes the rows it means to, not every row its query joins.

PostgreSQL's SELECT ... FOR UPDATE (or FOR NO KEY UPDATE, FOR SHARE) locks a row of every table in the FROM
clause unless OF names the tables. Django joins a table into the query for select_related, and for a model's
Meta.ordering on a related field: a visit's state change locked the trial's schedule row of that visit (every
subject's baseline waited for each other), making a subject's read tasks locked the trial's row, and a batch of
an upload locked the upload's row for its whole transaction (so batches on several workers took turns).
"""

from __future__ import annotations

import re

from django.db import connection

from reads import transfers
from reads.models import ReaderAssignment
from reads.services import assignment_replace
from tests.conftest import make_user
from tests.reads.flow import adjudicated_for_reader_1
from trials import qc_services, services
from trials.models import Membership, Role, Timepoint

LOCK = re.compile(r"\bFOR (UPDATE|NO KEY UPDATE|SHARE|KEY SHARE)\b(?P<rest>.*)$", re.DOTALL)


def test_no_row_lock_in_the_life_of_a_case_reaches_a_row_through_a_join(world):
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        if LOCK.search(sql):
            statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        # Upload, QC, read tasks, reads saved and signed, an adjudication signed (tests.reads.flow).
        adjudicated_for_reader_1(world)
        # A query raised, answered and closed.
        baseline = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="W6")
        Timepoint.objects.filter(pk=baseline.pk).update(state=Timepoint.State.UPLOADED)
        query = qc_services.qc_fail(actor=world.quinn, timepoint=baseline, series=[], reason="Slices missing")
        qc_services.query_answer(actor=world.cora, query=query, body="They are all there.")
        qc_services.query_close(actor=world.quinn, query=query, body="Checked.")
        # A reader who left is replaced; a transfer is requested and built.
        newcomer = make_user("nora")
        services.membership_grant(actor=world.alice, trial=world.trial, user=newcomer, role=Role.READER)
        leaving = ReaderAssignment.objects.get(subject__code="ALPHA-SEO-001", reader=world.ravi)
        services.membership_revoke(
            actor=world.alice, membership=Membership.objects.get(user=world.ravi, trial=world.trial)
        )
        assignment_replace(actor=world.alice, assignment_id=leaving.pk, trial=world.trial, reader=newcomer)
        transfers.transfer_request(actor=world.sam, trial=world.trial)

    assert statements, "the flow took no row lock: the wrapper saw nothing"
    joined = [s for s in statements if " JOIN " in s.upper() and not LOCK.search(s)["rest"].lstrip().startswith("OF")]
    assert not joined, "\n\n".join(joined)


def test_upload_items_in_their_default_order_join_no_other_table(db):
    """Ordering by the relation ("upload") ordered by the upload's own ordering, a join in every query of items."""
    from trials.models import UploadItem

    assert " JOIN " not in str(UploadItem.objects.filter(state="quarantined").query)
    assert " JOIN " not in str(UploadItem.objects.select_for_update().filter(pk=1).query)
