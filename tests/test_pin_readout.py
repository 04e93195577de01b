"""The column-major readout's charge (issue 26, mutation testing): the charge a physical
column draws in one multiply is, by definition, the sum over its read cycles of its current
(the cells' current, its RTN correction where it has one) plus the leakage times the cycles.

Pinned for batches of 1, 2 and 3 read cycles: a mutant that skipped the RTN corrections of
the charge for a 2-cycle batch (``corr.shape[1] > 2``) survived the twin tests, whose
batches are hundreds of cycles long."""

import numpy as np
import pytest

from norsim.array import readout_t as RT

from test_array_kernels import readout_setup


@pytest.mark.parametrize("readers", ["one each", "shared"])
@pytest.mark.parametrize("analog", [False, True])
@pytest.mark.parametrize("nbits,nvec", [(1, 1), (2, 1), (1, 2), (3, 1)])
def test_charge_is_the_sum_of_currents_corrections_and_leakage(analog, nbits, nvec, readers):
    """``readers``: every physical column read by one channel (the kernel sums the charge as
    it reads), or one column read by two channels and another by none (a separate pass):
    the charge is every physical column's, whoever reads it."""
    rng = np.random.default_rng(100 + 10 * nbits + nvec + analog)
    n_ch, n_out = 6, 3
    phys = 2 * n_ch if analog else n_ch
    cycles = nbits * nvec
    cur_t = (rng.random((phys, cycles)) * 2e-6).astype(np.float32)
    slot = np.full(phys, -1, dtype=np.int64)
    with_corr = rng.choice(phys, size=phys // 2, replace=False)
    slot[with_corr] = np.arange(with_corr.size)
    start = 1
    # the corrections of exactly this batch, read from an offset (one extra cycle before)
    corr = (rng.standard_normal((with_corr.size, start + cycles)) * 3e-8).astype(np.float32)
    leak = rng.random(phys) * 1e-9
    ch, gain, offset, par = readout_setup(analog, n_ch, n_out, rng)
    if readers == "shared":
        ch = dict(ch, pos=ch["pos"].copy())
        ch["pos"][1] = ch["pos"][0]
    _, charge = RT.readout_t(cur_t, leak, nbits, ch, gain, offset, par, corr=corr, slot=slot,
                             start=start, key=7, counter0=0, n_out_cols=n_out)
    want = cur_t.astype(np.float64).sum(axis=1) + cycles * leak
    for p in range(phys):
        if slot[p] >= 0:
            want[p] += corr[slot[p], start:start + cycles].astype(np.float64).sum()
    np.testing.assert_allclose(charge, want, rtol=1e-12, atol=0.0)
    # the corrections matter at this size: without them the charge differs
    assert np.max(np.abs(want - (cur_t.astype(np.float64).sum(axis=1) + cycles * leak))) > 1e-9


def test_rtn_joint_states_enumerate_every_trap_combination_once():
    """The joint-state table of exact RTN has 2^T columns (docs: 'tabulated for all 2^T joint
    states'), column J the sum of the amplitudes of the traps whose bit is set in J, and a
    cell's joint state indexes its current shift. A table of 3^T columns (mutation testing:
    its extra columns are never indexed) would tabulate the I-V 3^T times per cell: at the
    8-trap limit, 6,561 evaluations instead of 256."""
    from norsim.array.noise_read import RtnCells

    rng = np.random.default_rng(8)
    n, t = 5, 3
    amp = rng.random((n, t)) * 1e-2
    state = rng.integers(0, 2, size=(n, t))
    z = np.zeros((n, t))
    cells = RtnCells(np.arange(n), np.zeros(n, np.int64), amp, z, z, state)
    shifts = cells.joint_shifts()
    assert shifts.shape == (n, 2 ** t)
    for j in range(2 ** t):
        bits = np.array([(j >> k) & 1 for k in range(t)])
        np.testing.assert_allclose(shifts[:, j], amp @ bits, rtol=1e-15, atol=0.0)
    js = cells.joint_state()
    np.testing.assert_allclose(shifts[np.arange(n), js], (amp * state).sum(axis=1), rtol=1e-15)


def test_charge_of_a_one_cycle_batch_keeps_its_rtn_corrections():
    """Regression (issue 26, found by mutation testing): a one-cycle batch (one vector, one
    input bit) at start 0 kept its RTN corrections out of the integrated charge."""
    rng = np.random.default_rng(1)
    n_ch = n_out = 3
    cur_t = (rng.random((n_ch, 1)) * 2e-6).astype(np.float32)
    slot = np.arange(n_ch, dtype=np.int64)
    corr = (rng.standard_normal((n_ch, 1)) * 3e-8).astype(np.float32)
    leak = np.zeros(n_ch)
    ch, gain, offset, par = readout_setup(False, n_ch, n_out, rng)
    _, charge = RT.readout_t(cur_t, leak, 1, ch, gain, offset, par, corr=corr, slot=slot,
                             start=0, key=1, counter0=0, n_out_cols=n_out)
    want = cur_t[:, 0].astype(np.float64) + corr[:, 0].astype(np.float64)
    np.testing.assert_allclose(charge, want, rtol=1e-12, atol=0.0)
