import pytest

from reads.services import read_design_set
from tests.conftest import _world_keys, _world_load, build_world
from tests.snapshot import RowSnapshot


def _build_double_read_world():
    w = build_world()
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double")
    return w


# Replayed as the same rows for each test (tests.snapshot), so that what a test builds on it replays too.
_double_read_world = RowSnapshot(_build_double_read_world, _world_keys, _world_load)


@pytest.fixture
def world(db, stores, on_commit_now):
    """The cast of tests.conftest with a double-read design on ALPHA."""
    return _double_read_world()
