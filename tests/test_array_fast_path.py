"""Issue 17's fast array path: the column-major readout equals its NumPy twin, the
bounded-ratio cell variance keeps its error bound, and a tile on the fast tier gives the
codes of the exact tier (the equivalence test of the approximation at tile level)."""

import numpy as np
import pytest

from norsim.array import kernels as K
from norsim.array import readout_t as RT
from norsim.array.nor_array import NorArray
from norsim.config import load_preset

from test_array_kernels import readout_setup


@pytest.mark.parametrize("analog", [False, True])
@pytest.mark.parametrize("use_z", [False, True])
@pytest.mark.parametrize("var_mode", [0, 1, 2])
def test_column_major_readout_equals_numpy_twin(analog, use_z, var_mode):
    rng = np.random.default_rng(11 + analog + 2 * use_z + 4 * var_mode)
    nbits, nvec, n_ch, n_out = 3, 300, 10, 4  # 300 vectors: several parallel chunks
    phys = 2 * n_ch if analog else n_ch
    cur_t = (rng.random((phys, nvec * nbits)) * 2.2e-6).astype(np.float32)
    if var_mode == 1:
        cur_t = np.concatenate([cur_t, (rng.random(cur_t.shape) * 1e-16).astype(np.float32)])
    # RTN corrections on some columns, read from an offset into a longer batch
    start = 2 * nbits
    slot = np.full(phys, -1, dtype=np.int64)
    with_corr = rng.choice(phys, size=phys // 2, replace=False)
    slot[with_corr] = np.arange(with_corr.size)
    corr = (rng.standard_normal((with_corr.size, start + nvec * nbits + 5)) * 3e-8)
    corr = corr.astype(np.float32)
    leak = rng.random(phys) * 1e-9
    ch, gain, offset, par = readout_setup(analog, n_ch, n_out, rng)
    z = rng.standard_normal((nvec * nbits, n_ch)) if use_z else None
    kw = dict(corr=corr, slot=slot, start=start, key=123456789, counter0=29, z=z,
              n_out_cols=n_out, var_mode=var_mode, vratio=rng.random(phys) * 1e-10,
              vleak=rng.random(phys) * 1e-18)
    out, charge = RT.readout_t(cur_t, leak, nbits, ch, gain, offset, par, **kw)
    out_r, charge_r = RT.readout_t_numpy(cur_t, leak, nbits, ch, gain, offset, par, **kw)
    np.testing.assert_array_equal(out, out_r)
    np.testing.assert_allclose(charge, charge_r, rtol=1e-9)
    assert np.all(out == np.round(out)) and np.ptp(out) > 0


def test_variance_ratio_bound_holds_for_every_row_set_and_is_zero_when_proportional():
    rng = np.random.default_rng(5)
    g = rng.random((12, 3)) * 1e-7
    v = 3e-12 * g + 1e-21 * rng.random((12, 3))  # nearly proportional
    r, bound = RT.variance_ratio(g, v)
    worst = np.zeros(3)
    for mask in range(1 << 12):  # every set of active rows
        s = ((mask >> np.arange(12)) & 1).astype(bool)
        worst = np.maximum(worst, np.abs((v[s] - r * g[s]).sum(axis=0)))
    np.testing.assert_allclose(worst, bound, rtol=1e-9)  # the bound is attained: tight
    r0, b0 = RT.variance_ratio(g, 3e-12 * g)
    np.testing.assert_allclose(r0, 3e-12)
    assert np.all(b0 <= 1e-12 * (3e-12 * g).sum(axis=0))


def test_sigma_error_bound_is_the_sqrt_slope_at_the_variance_floor():
    ch = {"pos": np.array([0, 1]), "neg": np.array([-1, -1])}
    e = RT.sigma_error_bound_lsb(np.array([4e-18, 1e-18]), ch, 1e-8, 0.01, np.zeros(2))
    # 4e-18 A^2 / (1e-8 A)^2 = 0.04 LSB^2 over 2 sqrt(0.01 LSB^2)
    assert e == pytest.approx(0.04 / 0.2)
    assert RT.sigma_error_bound_lsb(np.ones(2), ch, 1.0, 0.0, np.zeros(2)) == np.inf


def _tile(cell_variance, seed=3):
    cfg = load_preset("nor40").with_overrides([f"array.noise.cell_variance='{cell_variance}'"])
    rng = np.random.default_rng(seed)
    w = rng.integers(-7, 8, size=(256, 64))
    x = rng.integers(0, 16, size=(1500, 256))
    arr = NorArray.from_weights(w, cfg, np.random.default_rng(seed))
    arr.calibrate(x[:200], np.random.default_rng(1))
    return arr, x


def test_bounded_ratio_tier_gives_the_exact_tiers_codes():
    fast, x = _tile("bounded_ratio")
    exact, _ = _tile("exact")
    assert fast.variance_mode() == 2 and exact.variance_mode() == 1
    bound = fast.variance_error_bound_lsb()
    assert 0 < bound * RT.Z_MAX < RT.VARIANCE_ERROR_LIMIT_LSB
    a = fast.matmul(x, np.random.default_rng(7))
    b = exact.matmul(x, np.random.default_rng(7))
    step = fast.adc.step_a / fast.unit_a  # output units per ADC code
    diff = (a - b) / step
    # same draws, sigma within the bound: a code moves only where the reading sits within
    # |d sigma z| of a rounding edge, i.e. almost never; the mean shift is far below 0.05 LSB
    assert np.mean(diff != 0) < 1e-3
    assert np.abs(diff.mean(axis=0)).max() < 0.05


def test_bounded_ratio_falls_back_to_exact_without_a_variance_floor():
    cfg = load_preset("nor40").with_overrides(["array.noise.ktc_enabled=false",
                                               "array.adc.noise_lsb=0.0"])
    rng = np.random.default_rng(1)
    arr = NorArray.from_weights(rng.integers(-7, 8, size=(64, 8)), cfg, rng)
    arr.calibrate(rng.integers(0, 16, size=(64, 64)), rng)
    # the leaking cells' variance is the only floor left: tiny, so the bound fails
    assert arr.variance_error_bound_lsb() * RT.Z_MAX > RT.VARIANCE_ERROR_LIMIT_LSB
    assert arr.variance_mode() == 1


@pytest.mark.parametrize("nbits", [1, 4, 6, 8])
def test_word_line_statistics_kernels_equal_the_numpy_twin(nbits):
    # nbits <= 6: per-vector code histograms; wider codes: the per-row bit loop
    rng = np.random.default_rng(nbits)
    x = rng.integers(0, 1 << nbits, size=(133, 41)) * (rng.random((133, 41)) < 0.7)
    a, r = K.wl_stats(x, nbits)
    ar, rr = K.wl_stats_numpy(x, nbits)
    np.testing.assert_array_equal(a, ar)
    assert r == rr and r > 0
    act = np.empty_like(a)
    assert K._wl_stats_kernel(np.ascontiguousarray(x, dtype=np.int64), nbits, act) == r
    np.testing.assert_array_equal(act, a)


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint8])
def test_narrow_integer_codes_give_the_int64_result(dtype):
    """The bit-serial path reads a network's int32 (im2col) codes, or narrower ones, as they
    are, column slices in place: the same outputs, RTN walk and events as int64 codes, on
    two arrays built alike with the full preset's noise."""
    cfg = load_preset("nor40")
    w = np.random.default_rng(2).integers(-7, 8, size=(48, 6))
    wide = np.random.default_rng(3).integers(0, 16, size=(40, 70))
    outs, evs = [], []
    for codes in (wide.astype(np.int64)[:, 11:59], wide.astype(dtype)[:, 11:59]):
        arr = NorArray.from_weights(w, cfg, np.random.default_rng(4))
        arr.calibrate(wide[:, :48], np.random.default_rng(5))
        rng = np.random.default_rng(6)
        outs.append(np.concatenate([arr.matmul(codes, rng), arr.matmul(codes[:7], rng)]))
        evs.append((arr.events.wl_toggles, arr.events.bitline_charge_c.copy(),
                    arr.traps.state.copy()))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert evs[0][0] == evs[1][0]
    np.testing.assert_array_equal(evs[0][1], evs[1][1])
    np.testing.assert_array_equal(evs[0][2], evs[1][2])
    assert np.ptp(outs[0], axis=0).any()  # not a constant output
