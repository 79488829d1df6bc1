"""Two readers who sign the same visit at the same moment: the visit is settled once, whoever commits last.

Signing transactions are ordered (the audit chain's head and the visit's row are locked): the one that settles
second sees the other's signature, so the visit never stays "in read" with both reads signed.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from reads import read_services
from reads.models import TimepointResult
from reads.services import read_design_set
from tests.conftest import PASSWORD, build_world
from tests.reads.flow import baseline_content, ready, task_of
from trials.models import Timepoint


@pytest.fixture
def live_world(transactional_db, stores):
    world = build_world()
    read_design_set(actor=world.alice, trial=world.trial, paradigm="double")
    return world


def test_two_readers_signing_at_once_lock_the_visit(live_world, monkeypatch):
    world = live_world
    ready(world, "BL")
    tasks = {reader: task_of(reader, "BL") for reader in (world.rhea, world.ravi)}
    for reader, task in tasks.items():
        read_services.read_save(actor=reader, task_id=task.pk, raw=baseline_content(task))

    # Both signing transactions start together, each holding its own task; neither has committed.
    both_started = threading.Barrier(2, timeout=20)
    lock_task = read_services._task_for_reader

    def lock_then_wait(actor, task_id, *, lock=False):
        task = lock_task(actor, task_id, lock=lock)
        both_started.wait()
        return task

    monkeypatch.setattr(read_services, "_task_for_reader", lock_then_wait)
    errors = []

    def sign(reader, task):
        try:
            read_services.read_sign(
                actor=reader, task_id=task.pk, password=PASSWORD, meaning_confirmed=True, confirmed_response="baseline"
            )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sign, args=item) for item in tasks.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
    assert timepoint.state == "locked"
    assert TimepointResult.objects.filter(timepoint=timepoint).count() == 1
