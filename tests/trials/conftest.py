"""Fixtures shared by the trials tests."""

from __future__ import annotations

import uuid

import pytest

from tests.trials.durability import use_storages


@pytest.fixture(params=["filesystem", "s3"])
def stores_on_both_backends(request, tmp_path, settings):
    """The image store and the quarantine on the file system, then (the test runs twice) on S3 (moto).

    A module whose every test must hold on both backends names it its `stores`.
    """
    filesystem = "django.core.files.storage.FileSystemStorage"
    if request.param == "s3":
        use_storages(settings, request.getfixturevalue("s3_server").storages(prefix=f"t{uuid.uuid4().hex[:12]}"))
    else:
        use_storages(
            settings,
            {
                "images": {"BACKEND": filesystem, "OPTIONS": {"location": tmp_path / "images"}},
                "quarantine": {"BACKEND": filesystem, "OPTIONS": {"location": tmp_path / "quarantine"}},
            },
        )
    yield tmp_path
    use_storages(settings, {})
