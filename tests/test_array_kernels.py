"""Each numba kernel of the fast array path equals its plain NumPy reference twin."""

import numpy as np
import pytest
from scipy import stats

from norsim.array import kernels as K
from norsim.array import rtn_kernels as R


def test_hash_normals_equal_numpy_twin_and_are_standard_normal():
    z = K.hash_normal(1234567, 10, 400_000)
    zr = K.hash_normal_numpy(1234567, 10, 400_000)
    np.testing.assert_array_equal(z, zr)
    # distribution: KS against N(0,1), tails included
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(np.mean(np.abs(z) > 3.0) - 2 * stats.norm.sf(3.0)) < 4 * np.sqrt(0.0027 / 4e5)
    # different keys / counters give different streams
    assert not np.array_equal(z[:100], K.hash_normal(7654321, 10, 100))
    np.testing.assert_array_equal(z[5:105], K.hash_normal(1234567, 15, 100))


def test_bitplanes_and_wordline_stats_equal_numpy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 32, size=(37, 19))
    np.testing.assert_array_equal(K.bitplanes(x, 5), K.bitplanes_numpy(x, 5))
    # transposed uint8 planes (RTN walk): blocks of 64 vectors, a partial last block
    xl = rng.integers(0, 32, size=(150, 19))
    bt = K.bitplanes_t(xl, 5)
    assert bt.dtype == np.uint8 and bt.shape == (19, 150 * 5)
    np.testing.assert_array_equal(bt, K.bitplanes_numpy(xl, 5).T.astype(np.uint8))
    a, r = K.wl_stats(x, 5)
    ar, rr = K.wl_stats_numpy(x, 5)
    np.testing.assert_array_equal(a, ar)
    assert r == rr
    # runs of ones counted by brute force over the bit strings
    brute = sum(len([s for s in format(int(v), "05b").split("0") if s]) for v in x.ravel())
    assert r == brute


def _channels(analog, n_ch, n_out, rng, with_ref=False):
    if analog:
        pos = 2 * np.arange(n_ch)
        neg = pos + 1
    else:
        pos = np.arange(n_ch)
        neg = -np.ones(n_ch, dtype=np.int64)
    tgt = rng.integers(0, n_out, size=n_ch)
    if with_ref:
        tgt[-1] = -1
    return {"pos": pos.astype(np.int64), "neg": neg.astype(np.int64), "tgt": tgt.astype(np.int64),
            "coef": rng.choice([-4.0, -1.0, 1.0, 2.0], size=n_ch),
            "adc": (np.arange(n_ch) // 3).astype(np.int64)}


def readout_setup(analog, n_ch, n_out, rng):
    """Channels, ADC gains/offsets and readout parameters of the readout-twin tests, with
    output clipping, INL and integrator saturation exercised."""
    ch = _channels(analog, n_ch, n_out, rng, with_ref=not analog)
    n_adc = int(ch["adc"].max()) + 1
    gain = 1 + 0.02 * rng.standard_normal(n_adc)
    offset = 0.3 * rng.standard_normal(n_adc)
    par = np.zeros(K.N_PARAMS)
    par[K.P_STEP] = 5e-8
    par[K.P_LO], par[K.P_HI] = (-31, 31) if analog else (0, 31)  # clipping exercised
    par[K.P_INL] = 0.4
    par[K.P_SHOT] = 1.602e-19 / 1e-7
    par[K.P_CONST_VAR] = 1e-18
    par[K.P_NOISE_LSB] = 0.3
    par[K.P_ISAT] = 2.0e-6  # integrator clipping exercised
    return ch, gain, offset, par


@pytest.mark.parametrize("analog", [False, True])
@pytest.mark.parametrize("use_z", [False, True])
@pytest.mark.parametrize("summed_var", [False, True])
def test_readout_equals_numpy_twin(analog, use_z, summed_var):
    rng = np.random.default_rng(3 + analog + 2 * use_z + 4 * summed_var)
    nbits, nvec, n_ch, n_out = 3, 41, 10, 4
    phys = 2 * n_ch if analog else n_ch
    cur = (rng.random((nvec * nbits, phys)) * 2.2e-6).astype(np.float32)
    vleak = None
    if summed_var:  # per-column summed cell variances stacked beside the currents
        cur = np.concatenate([cur, (rng.random(cur.shape) * 1e-16).astype(np.float32)], axis=1)
        vleak = rng.random(phys) * 1e-18
    leak = rng.random(phys) * 1e-9
    ch, gain, offset, par = readout_setup(analog, n_ch, n_out, rng)
    z = rng.standard_normal((nvec * nbits, n_ch)) if use_z else None
    kw = dict(key=987654321, counter0=17, z=z, n_out_cols=n_out, vleak=vleak)
    out, charge = K.readout(cur, leak, nbits, ch, gain, offset, par, **kw)
    out_r, charge_r = K.readout_numpy(cur, leak, nbits, ch, gain, offset, par, **kw)
    np.testing.assert_array_equal(out, out_r)
    np.testing.assert_allclose(charge, charge_r, rtol=1e-12)
    assert np.all(out == np.round(out))


@pytest.mark.parametrize("bitserial", [True, False])
@pytest.mark.parametrize("ntrap", [1, 3])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("majority_base", [False, True])
def test_rtn_kernel_equals_numpy_twin(bitserial, ntrap, sparse, majority_base):
    rng = np.random.default_rng(11 + ntrap)
    nvec, rows, cols, nbits = 300, 6, 5, (3 if bitserial else 1)
    x = rng.integers(0, 8, size=(nvec, rows))
    if sparse:  # zero codes (ReLU activations) and a row never driven
        x[rng.random(x.shape) < 0.6] = 0
        x[:, 1] = 0  # a row never driven
    n = 9
    row = rng.integers(0, rows, n)
    col = rng.integers(0, cols, n)
    d_tab = rng.standard_normal((n, 2**ntrap, 2 if bitserial else 8))
    state = rng.integers(0, 2, (n, ntrap))
    p01 = rng.uniform(0.0, 0.3, (n, ntrap))
    p10 = rng.uniform(0.0, 0.3, (n, ntrap))
    p01[0, 0], p10[0, 0] = 1.0, 1.0  # a trap flipping every multiply
    cur = np.zeros((nvec * nbits, cols))
    cur_r = cur.copy()
    st, st_r = state.copy(), state.copy()
    # corrections relative to the present joint states, or to the likelier ones
    base = R.rtn_majority_base(state, p01, p10, nvec) if majority_base else None
    # time blocks of 7 multiplies: chains carried across 43 block boundaries
    R.rtn_apply(x, nbits, bitserial, row, col, d_tab, st, p01, p10, 99, cur, base=base, block=7)
    R.rtn_apply_numpy(x, nbits, bitserial, row, col, d_tab, st_r, p01, p10, 99, cur_r, base=base)
    np.testing.assert_allclose(cur, cur_r, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(st, st_r)
    assert np.any(cur != 0)


def test_rtn_markov_chain_has_the_stationary_occupancy_and_correlation():
    # one cell, one trap, d = 1 for state 1 on a row always on: cur = state - state0
    nvec = 200_000
    p, mix = 0.3, 0.05  # occupancy, 1 - exp(-dt/tau)
    x = np.ones((nvec, 1), dtype=np.int64)
    cur = np.zeros((nvec, 1))
    state = np.zeros((1, 1), dtype=np.int64)
    d_tab = np.array([[[0.0, 0.0], [0.0, 1.0]]])  # (cell, joint state, drive code)
    R.rtn_apply(x, 1, False, np.zeros(1, np.int64), np.zeros(1, np.int64), d_tab, state,
                np.array([[p * mix]]), np.array([[(1 - p) * mix]]), 5, cur)
    s = cur[:, 0]
    assert abs(s.mean() - p) < 0.03
    # lag-1 autocorrelation of a two-state chain = 1 - p01 - p10 = 1 - mix
    c = np.corrcoef(s[:-1], s[1:])[0, 1]
    assert abs(c - (1 - mix)) < 0.01


def test_rtn_majority_base_is_the_likelier_state_over_the_window():
    # slow traps keep their state; a fast trap with p = 0.8 -> 1, p = 0.2 -> 0 whatever its
    # start; the window mean p + (s - p)(1 - (1 - m)^N)/(N m) decides in between
    state = np.array([[1], [0], [0], [1], [1]])
    p01 = np.array([[0.0], [1e-7], [0.8 * 0.5], [0.2 * 0.5], [0.45 * 0.01]])
    p10 = np.array([[0.0], [1e-7], [0.2 * 0.5], [0.8 * 0.5], [0.55 * 0.01]])
    base = R.rtn_majority_base(state, p01, p10, 100)
    n, m, p, s = 100, 0.01, 0.45, 1.0
    mean_last = p + (s - p) * (1 - (1 - m) ** n) / (n * m)
    assert base.tolist() == [1, 0, 1, 0, int(mean_last > 0.5)]
    # the joint state packs trap t into bit t
    assert R.rtn_majority_base(np.array([[1, 1]]), np.zeros((1, 2)), np.zeros((1, 2)), 9)[0] == 3


def test_add_corrections_equals_numpy_transposed_add():
    rng = np.random.default_rng(4)
    cur = rng.standard_normal((150, 12)).astype(np.float32)
    corr = rng.standard_normal((5, 400)).astype(np.float32)
    cols = np.array([0, 2, 3, 7, 11])
    want = cur.copy()
    want[:, cols] += corr[:, 30:180].T
    R.add_corrections(cur, cols, corr, start=30)
    np.testing.assert_array_equal(cur, want)


def test_rtn_walk_does_not_depend_on_the_time_block():
    rng = np.random.default_rng(8)
    nvec, rows, cols, nbits, n = 500, 7, 4, 4, 20
    x = rng.integers(0, 16, size=(nvec, rows))
    row, col = rng.integers(0, rows, n), rng.integers(0, cols, n)
    d_tab = rng.standard_normal((n, 4, 2))
    state = rng.integers(0, 2, (n, 2))
    p01, p10 = rng.uniform(0, 0.5, (n, 2)), rng.uniform(0, 0.5, (n, 2))
    p01[0] = p10[0] = 1.0  # switches at every multiply, also exactly at the batch end
    outs = []
    for block in (1, 13, 500, 4096):
        st = state.copy()
        cur = np.zeros((nvec * nbits, cols))
        R.rtn_apply(x, nbits, True, row, col, d_tab, st, p01, p10, 3, cur, block=block)
        outs.append((cur, st))
    for cur, st in outs[1:]:
        np.testing.assert_array_equal(cur, outs[0][0])
        np.testing.assert_array_equal(st, outs[0][1])
