"""tests/once.py: a value built once per run, shared by the run's workers through its temporary directory."""

from __future__ import annotations

import pytest

from tests.once import once_per_run


class Factory:
    """A stand-in for pytest's tmp_path_factory: every worker's base folder lies in the run's shared one."""

    def __init__(self, run, worker: str):
        self.base = run / f"popen-{worker}"

    def getbasetemp(self):
        return self.base


def test_the_second_worker_reads_what_the_first_built(tmp_path):
    built = []

    def build():
        built.append(1)
        return {"screens": [1, 2, 3]}

    first = once_per_run(Factory(tmp_path, "gw0"), "gw0", "value", build)
    second = once_per_run(Factory(tmp_path, "gw1"), "gw1", "value", build)
    assert first == second == {"screens": [1, 2, 3]}
    assert len(built) == 1


def test_a_build_that_fails_leaves_nothing_for_the_next_worker(tmp_path):
    def failing():
        raise RuntimeError("tesseract missing")

    with pytest.raises(RuntimeError):
        once_per_run(Factory(tmp_path, "gw0"), "gw0", "value", failing)
    assert once_per_run(Factory(tmp_path, "gw1"), "gw1", "value", lambda: "built again") == "built again"


def test_one_process_builds_each_time_it_is_asked(tmp_path):
    built = []
    for _ in range(2):
        once_per_run(Factory(tmp_path, "master"), "master", "value", lambda: built.append(1))
    assert len(built) == 2


def test_a_worker_asking_while_another_builds_builds_too_rather_than_wait(tmp_path):
    """The first worker holds the lock while it builds; the second, asking meanwhile, builds its own at once."""
    built = []

    def build_while_another_asks():
        built.append("gw0")
        value = once_per_run(Factory(tmp_path, "gw1"), "gw1", "value", lambda: built.append("gw1") or "gw1's")
        assert value == "gw1's"
        return "gw0's"

    assert once_per_run(Factory(tmp_path, "gw0"), "gw0", "value", build_while_another_asks) == "gw0's"
    assert built == ["gw0", "gw1"]
    assert once_per_run(Factory(tmp_path, "gw1"), "gw1", "value", lambda: "not built") == "gw0's"
