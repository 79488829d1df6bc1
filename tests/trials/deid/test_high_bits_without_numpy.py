"""Bits above Bits Stored, judged without numpy as in the site's browser: the same answers as the array path."""

from __future__ import annotations

import random

import numpy as np
import pytest

from trials.deid import burned_in


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("little", [True, False])
def test_the_high_bytes_give_the_arrays_answer_for_every_bits_stored(signed, little):
    rng = random.Random(f"{signed}{little}")
    kind = ("<" if little else ">") + ("i2" if signed else "u2")
    for bits_stored in range(9 if signed else 8, 16):
        module = burned_in.PixelModule(
            rows=8, columns=8, samples=1, frames=1, bits_allocated=16, bits_stored=bits_stored,
            signed=signed, little=little, photometric="MONOCHROME2",
        )  # fmt: skip
        low, high = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
        for case in range(200):
            values = [rng.choice((low, high, rng.randint(low, high))) for _ in range(64)]
            if case % 2:
                values[rng.randrange(64)] = rng.randint(-32768, 32767) if signed else rng.randint(0, 65535)
            data = np.array(values, dtype=kind).tobytes()
            assert burned_in._high_bytes_set(data, module) == burned_in.high_bits_set(data, module), values
