"""Fixed-point multipliers pinned to their specification (issue 26, docs/model-format.md):
``m / 2**n`` is the closest representable value to the real multiplier, ``m`` has 31
significant bits, and a bad batch split is refused before the kernel runs."""

from __future__ import annotations

import numpy as np
import pytest

from norsim.errors import InputError
from norsim.mapping.requant import (quantize_multiplier, quantize_multiplier_pair,
                                    requantize_rows, requantize_rows_numpy)

# values whose 31-bit mantissa rounds up to 2**31 (the carry case) among ordinary ones
REALS = [1 - 2.0**-40, 0.5 - 2.0**-42, 2.0**-10 * (1 - 2.0**-35), 0.75, 1e-3, 0.1234567, 3.0,
         1000.5, 2.0**-30]


@pytest.mark.parametrize("real", REALS)
def test_multiplier_is_the_closest_31_bit_value(real):
    m, n = quantize_multiplier(real)
    assert 2**30 <= m < 2**31 and 1 <= n <= 62
    assert abs(m / 2.0**n - real) <= 2.0 ** -(n + 1) * (1 + 1e-12)


def test_carry_case_keeps_the_value():
    assert quantize_multiplier(1 - 2.0**-40) == (2**30, 30)   # exactly 1.0
    assert quantize_multiplier(0.5 - 2.0**-42) == (2**30, 31)  # exactly 0.5


@pytest.mark.parametrize("a,b", [(0.3, 0.7), (1 - 2.0**-40, 0.25), (2.0, 2.0 - 2.0**-33)])
def test_pair_shares_one_shift_and_stays_31_bit(a, b):
    ma, mb, n = quantize_multiplier_pair(a, b)
    assert max(ma, mb) < 2**31 and 1 <= n <= 62
    for real, m in ((a, ma), (b, mb)):
        assert abs(m / 2.0**n - real) <= 2.0 ** -(n + 1) * (1 + 1e-12)
    assert max(ma, mb) >= 2**30  # the larger one keeps its 31 significant bits


@pytest.mark.parametrize("batch", [0, 3, -1])
def test_batch_that_does_not_divide_the_rows_is_refused(batch):
    acc = np.arange(8, dtype=np.int64).reshape(4, 2)
    args = (acc, np.zeros(2, np.int64), np.full(2, 2**30, np.int64), np.full(2, 31, np.int64),
            -8, 7)
    with pytest.raises(InputError, match="batch"):
        requantize_rows(*args, batch)
    np.testing.assert_array_equal(requantize_rows(*args, 2), requantize_rows_numpy(*args, 2))
