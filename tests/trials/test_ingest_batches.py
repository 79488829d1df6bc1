"""How received files are split into processing tasks: the fewest batches, of nearly equal size."""

from __future__ import annotations

import pytest

from trials.ingest.services import BATCH_SIZE, processing_batches


@pytest.mark.parametrize(
    ("files", "sizes"),
    [(0, []), (1, [1]), (BATCH_SIZE, [BATCH_SIZE]), (BATCH_SIZE + 1, [17, 16]), (300, [30] * 10), (65, [22, 22, 21])],
)
def test_files_are_processed_in_the_fewest_batches_of_nearly_equal_size(files, sizes):
    ids = list(range(1000, 1000 + files))
    batches = processing_batches(ids)
    assert [len(batch) for batch in batches] == sizes
    assert [i for batch in batches for i in batch] == ids  # every file once, in order
