import pytest

from reads.services import read_design_set


@pytest.fixture
def world(db, stores, on_commit_now):
    """The cast of tests.conftest with a double-read design on ALPHA."""
    from tests.conftest import build_world

    w = build_world()
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double")
    return w
