"""Cell I-V: closed-form limits, symmetry, monotonicity, numba == NumPy, derivatives."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from norsim.config import SimConfig
from norsim.device.config import CellConfig
from norsim.device.iv import (cell_model, ekv_current, ekv_current_numpy, thermal_voltage,
                              vth_for_current)
from norsim.errors import InputError

SPLIT = CellConfig(n_tempco_per_k=0.0)  # kernel tests: the pre-n(T) numerics (n(T): test_device_issue20)
STACKED = CellConfig(cell_type="stacked_gate", n_tempco_per_k=0.0)


def _cg_swing(cell, temperature_k, vth=1.0):
    """Swing seen from the control gate, deep in subthreshold, split- or stacked-gate."""
    m = cell_model(cell, temperature_k)
    v = np.linspace(vth - 1.2, vth - 0.8, 41)  # ~1e-7..1e-4 of I_S: deep weak inversion
    if cell.cell_type == "split_gate":
        i = m.current(1.8, v, 0.5, 0.0, vth)
    else:
        i = m.current(v, 0.0, 0.5, 0.0, vth)
    assert np.all(i < 1e-3 * m.fg.i_spec)
    slope = np.polyfit(v, np.log10(i), 1)[0]
    return 1.0 / slope, m


@pytest.mark.parametrize("cell", [SPLIT, STACKED], ids=["split", "stacked"])
@pytest.mark.parametrize("t", [233.0, 300.0, 358.0])
def test_subthreshold_swing_matches_closed_form(cell, t):
    ss, m = _cg_swing(cell, t)
    n_t = cell.slope_factor_n * (1 + cell.n_tempco_per_k * (t - cell.t_ref_k))  # n(T)
    expected = np.log(10) * n_t * thermal_voltage(t) / cell.alpha_g
    assert ss == pytest.approx(expected, rel=0.01)


def test_strong_inversion_saturation_limit():
    c = STACKED
    u_t = thermal_voltage(300.0)
    m = cell_model(c, 300.0)
    v_ov = 25 * c.slope_factor_n * u_t  # floating-gate-referred overdrive >= 20 n U_T
    v_ds = 3.0  # deep saturation: V_D far above the pinch-off voltage
    # FG-referred overdrive alpha (V_G - V_th) + eta V_DS = v_ov
    v_g = 0.5 + (v_ov - c.dibl_eta * v_ds) / c.alpha_g
    i = m.current(v_g, 0.0, v_ds, 0.0, 0.5)
    limit = m.fg.beta / (2 * c.slope_factor_n) * v_ov**2
    assert i == pytest.approx(limit, rel=1e-3)


@pytest.mark.parametrize("cell", [SPLIT, STACKED], ids=["split", "stacked"])
def test_zero_current_at_zero_vds(cell):
    m = cell_model(cell, 300.0)
    v = np.linspace(-0.5, 2.0, 11)
    for fast in (True, False):
        assert np.all(m.current(1.8, 1.0, v, v, 0.8, fast=fast) == 0.0)


@settings(max_examples=60, deadline=None)
@given(vg=st.floats(-1.0, 3.0), dvg=st.floats(1e-3, 1.0), vd=st.floats(0.01, 1.5),
       dvd=st.floats(1e-3, 0.5), vth=st.floats(-0.5, 2.5),
       split=st.booleans())
def test_monotone_in_gate_and_drain(vg, dvg, vd, dvd, vth, split):
    m = cell_model(SPLIT if split else STACKED, 300.0)
    def cur(g, d):
        return float(m.current(1.8 if split else g, g, d, 0.0, vth))
    base = cur(vg, vd)
    assert cur(vg + dvg, vd) >= base
    assert cur(vg, vd + dvd) >= base


@pytest.mark.parametrize("cell", [SPLIT, STACKED], ids=["split", "stacked"])
def test_numba_equals_numpy_reference(cell):
    m = cell_model(cell, 320.0)
    rng = np.random.default_rng(3)
    n = 4000
    args = (rng.uniform(0.0, 2.5, n), rng.uniform(-0.5, 2.5, n), rng.uniform(-0.2, 1.2, n),
            rng.uniform(-0.2, 1.2, n), rng.uniform(-1.0, 3.0, n))
    kw = dict(n=rng.uniform(1.1, 1.5, n), beta=rng.uniform(2e-4, 8e-4, n),
              dibl_eta=rng.uniform(0.0, 0.1, n))
    i_fast, gd_fast, gs_fast = m.current(*args, **kw, derivatives=True)
    i_ref, gd_ref, gs_ref = m.current(*args, **kw, derivatives=True, fast=False)
    scale = m.current_scale(*args, **kw)
    assert np.all(scale > 0)
    assert np.max(np.abs(i_fast - i_ref) / scale) < 1e-12
    # derivatives agree to rounding of the solved internal node
    gscale = np.abs(gd_ref) + np.abs(gs_ref) + 1e-30
    assert np.max(np.abs(gd_fast - gd_ref) / gscale) < 1e-6
    assert np.max(np.abs(gs_fast - gs_ref) / gscale) < 1e-6


def test_plain_ekv_numba_equals_numpy():
    rng = np.random.default_rng(0)
    v = rng.uniform(-1, 3, (4, 1000))
    a = ekv_current(v[0], v[1], v[2], v[3], 1.3, 0.6, 5e-4, 0.05, 0.0259)
    b = ekv_current_numpy(v[0], v[1], v[2], v[3], 1.3, 0.6, 5e-4, 0.05, 0.0259)
    assert np.allclose(a, b, rtol=1e-12, atol=1e-25)


@pytest.mark.parametrize("layout", ["bias-scalars", "all-arrays", "mixed", "per-cell-params"])
def test_plain_ekv_layouts_equal_numpy(layout):
    """Every input layout of the chunked SIMD kernel (one bias and a V_th per element, every
    terminal per element, broadcast rows and columns, per-element n/beta/eta), over a size
    that is not a multiple of its chunk, deep subthreshold to strong inversion, equals the
    NumPy reference."""
    rng = np.random.default_rng(7)
    n = 10_007
    vth = rng.uniform(-1.5, 4.0, n)
    par = (1.3, 0.6, 5e-4, 0.05, 0.0259)
    if layout == "bias-scalars":
        args = (1.2, 0.8, 0.1, vth)
    elif layout == "all-arrays":
        args = (rng.uniform(-1, 3, n), rng.uniform(-0.5, 1.5, n), rng.uniform(-0.5, 1.5, n), vth)
    elif layout == "mixed":  # (rows, 1) gate against (cols,) thresholds
        args = (rng.uniform(-1, 3, (17, 1)), 0.9, rng.uniform(0, 0.2, 59), rng.uniform(-1, 3, 59))
    else:
        args = (1.2, 0.8, 0.1, vth)
        par = (rng.uniform(1.1, 1.5, n), 0.6, rng.uniform(2e-4, 8e-4, n),
               rng.uniform(0.0, 0.1, n), 0.0259)
    a = ekv_current(*args, *par)
    b = ekv_current_numpy(*args, *par)
    assert a.shape == b.shape
    assert np.allclose(a, b, rtol=1e-12, atol=1e-25)
    assert np.all(np.isfinite(a))


@pytest.mark.parametrize("cell", [SPLIT, STACKED], ids=["split", "stacked"])
def test_derivatives_match_finite_differences(cell):
    m = cell_model(cell, 300.0)
    rng = np.random.default_rng(1)
    n = 300
    vwl, vcg = rng.uniform(1.0, 2.5, n), rng.uniform(0.0, 2.5, n)
    vd, vs = rng.uniform(0.05, 1.0, n), rng.uniform(0.0, 0.04, n)
    vth = rng.uniform(-0.5, 2.0, n)
    i, gd, gs = m.current(vwl, vcg, vd, vs, vth, derivatives=True)
    h = 1e-6
    fd_d = (m.current(vwl, vcg, vd + h, vs, vth) - m.current(vwl, vcg, vd - h, vs, vth)) / (2 * h)
    fd_s = (m.current(vwl, vcg, vd, vs + h, vth) - m.current(vwl, vcg, vd, vs - h, vth)) / (2 * h)
    tol = 1e-5 * (np.abs(fd_d) + np.abs(fd_s)) + 1e-9 * m.current_scale(vwl, vcg, vd, vs, vth) / h
    assert np.all(np.abs(gd - fd_d) <= tol)
    assert np.all(np.abs(gs - fd_s) <= tol)


def test_split_gate_series_limits():
    """Select transistor off -> cell off; select far on -> the FG transistor alone."""
    m = cell_model(SPLIT, 300.0)
    ms = cell_model(STACKED, 300.0)
    vth = np.array([0.8, 1.2, 1.6])
    off = m.current(-1.0, 1.0, 0.3, 0.0, vth)
    on = m.current(1.8, 1.0, 0.3, 0.0, vth)
    assert np.all(off < 1e-6 * on)
    fg_alone = ms.current(1.0, 0.0, 0.3, 0.0, vth)
    # the strong select transistor drops only I / g_sel: relative error ~ I/(g_sel U_T)
    assert np.allclose(on, fg_alone, rtol=1e-2)
    assert np.all(on < fg_alone)


@pytest.mark.parametrize("cell", [SPLIT, STACKED], ids=["split", "stacked"])
def test_vth_for_current_inverts_current(cell):
    m = cell_model(cell, 300.0)
    vth = np.linspace(-0.3, 2.2, 26)
    vwl = 1.8 if cell.cell_type == "split_gate" else 1.0
    i = m.current(vwl, 1.0, 0.3, 0.0, vth)
    back = vth_for_current(m, i, vwl, 1.0, 0.3, 0.0)
    assert np.max(np.abs(back - vth)) < 1e-6


def test_temperature_shifts_vth_and_beta():
    c = STACKED
    m300, m358 = cell_model(c, 300.0), cell_model(c, 358.0)
    assert m358.fg.dvth == pytest.approx(c.dvth_dt_v_per_k * 58.0)
    assert m358.fg.beta == pytest.approx(c.beta_a_per_v2 * (358 / 300) ** -c.mobility_exponent)


# ------------------------------------------------------------------ bad input ------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_voltage_rejected(bad):
    m = cell_model(SPLIT, 300.0)
    with pytest.raises(InputError, match="v_d"):
        m.current(1.8, 1.0, np.array([0.3, bad]), 0.0, 1.0)


@pytest.mark.parametrize("t", [-1.0, 0.0, np.nan])
def test_bad_temperature_rejected(t):
    with pytest.raises(InputError, match="temperature_k"):
        cell_model(SPLIT, t)


def test_vth_for_current_rejects_bad_targets():
    m = cell_model(SPLIT, 300.0)
    with pytest.raises(InputError, match="i_target"):
        vth_for_current(m, [1e-8, -1e-9], 1.8, 1.0, 0.3, 0.0)
    with pytest.raises(InputError, match="v_d"):
        vth_for_current(m, 1e-8, 1.8, 1.0, 0.0, 0.0)


def test_preset_cell_model_builds():
    cfg = SimConfig()
    m = cell_model(cfg.device.cell, cfg.device.read.temperature_k)
    assert m.cell_type == cfg.device.cell.cell_type and m.sel is not None


def _inversion_inputs(cell, seed, n, eta_lo, vd_range):
    """Targets log-uniform in 1e-13..1e-5 A, the cell's word-line bias, per-cell n, beta,
    DIBL (from ``eta_lo`` to 0.07) and drain voltages in ``vd_range``."""
    rng = np.random.default_rng(seed)
    i_t = np.exp(rng.uniform(np.log(1e-13), np.log(1e-5), n))
    vwl = 1.8 if cell.cell_type == "split_gate" else 1.0
    kw = dict(n=rng.uniform(1.2, 1.4, n), beta=rng.uniform(3e-4, 7e-4, n),
              dibl_eta=rng.uniform(eta_lo, 0.07, n))
    return i_t, vwl, kw, rng.uniform(*vd_range, n)


@pytest.mark.parametrize("cell", [SPLIT, STACKED], ids=["split", "stacked"])
def test_vth_inversion_numba_equals_numpy_reference(cell):
    m = cell_model(cell, 340.0)
    i_t, vwl, kw, vd = _inversion_inputs(cell, 7, 300, 0.03, (0.1, 0.5))
    a = vth_for_current(m, i_t, vwl, 1.0, vd, 0.0, **kw)
    b = vth_for_current(m, i_t, vwl, 1.0, vd, 0.0, **kw, fast=False)
    assert np.max(np.abs(a - b)) < 1e-8
    back = m.current(vwl, 1.0, vd, 0.0, a, **kw)
    assert np.allclose(back, i_t, rtol=1e-9)


@pytest.mark.parametrize("newton", [False, True], ids=["direct", "newton"])
def test_vth_for_current_rejects_unreachable_current(newton):
    m = cell_model(SPLIT, 300.0)
    with pytest.raises(InputError, match="i_target"):
        vth_for_current(m, 1.0, 1.8, 1.0, 0.3, 0.0, newton=newton)  # 1 A: beyond any V_th


@pytest.mark.parametrize("temperature_k", [233.0, 358.0])
@pytest.mark.parametrize("cell", [SPLIT, STACKED], ids=["split", "stacked"])
def test_vth_direct_inversion_equals_newton_on_the_whole_cell(cell, temperature_k):
    """Fast path (node in closed form, Newton on the FG transistor alone) against the
    reference path (Newton on V_th, the cell's node solved per iterate), over 8 decades of
    current, drain biases from 50 mV and per-cell n, beta, DIBL: the same V_th to the
    solvers' 1e-11 V, the same |dI/dV_th|, and the cell reads the target back to 1e-13."""
    m = cell_model(cell, temperature_k)
    i_t, vwl, kw, vd = _inversion_inputs(cell, 21, 3000, 0.0, (0.05, 0.8))
    fast, g_fast = vth_for_current(m, i_t, vwl, 1.0, vd, 0.0, **kw, return_slope=True)
    ref, g_ref = vth_for_current(m, i_t, vwl, 1.0, vd, 0.0, **kw, return_slope=True,
                                 newton=True)
    assert np.max(np.abs(fast - ref)) < 2e-11
    assert np.max(np.abs(g_fast / g_ref - 1.0)) < 1e-7
    back = m.current(vwl, 1.0, vd, 0.0, fast, **kw)
    assert np.max(np.abs(back / i_t - 1.0)) < 1e-13


@pytest.mark.parametrize("cell", [SPLIT, STACKED], ids=["split", "stacked"])
def test_vth_slope_matches_finite_difference(cell):
    m = cell_model(cell, 300.0)
    vwl = 1.8 if cell.cell_type == "split_gate" else 1.0
    i_t = np.array([1e-11, 1e-8, 7e-8, 1e-6])
    vth, slope = vth_for_current(m, i_t, vwl, 1.0, 0.3, 0.0, return_slope=True)
    h = 1e-5
    fd = (m.current(vwl, 1.0, 0.3, 0.0, vth - h) - m.current(vwl, 1.0, 0.3, 0.0, vth + h)) / (2 * h)
    assert np.allclose(slope, fd, rtol=1e-5)


# ------------------------------------------- split gate: vectorised node solve ---------
def _split_kernels(m, v_wl, v_cg, v_d, v_s, v_th, n=None, beta=None, dibl_eta=None,
                   predict=False):
    """The split-gate cell through the vectorised kernel (with the pass that accepted each
    element, -1 = the scalar fallback; pass 0 from the node table if ``predict``) and
    through the safeguarded scalar solver alone."""
    from norsim.device.iv import (_CELL_NAMES, _NO_TABLE, _flat_inputs, _node_predictor,
                                  _split_gate_kernel, _split_gate_scalar_kernel)

    fg, sel = m.fg, m.sel
    shape, flat, steps, ranges = _flat_inputs(
        (v_wl, v_cg, v_d, v_s, v_th, fg.n if n is None else n, fg.beta if beta is None else beta,
         fg.dibl_eta if dibl_eta is None else dibl_eta), _CELL_NAMES, _CELL_NAMES)
    size = int(np.prod(shape))
    common = (float(m.select_vth + sel.dvth), float(sel.n), float(sel.beta),
              float(sel.dibl_eta), int(m.max_iter))
    fast = [np.empty(size) for _ in range(4)]
    passes = np.empty(size, np.int8)
    table = (_node_predictor(flat, steps, size, m._kernel_constants(), ranges["v_th"]) if predict
             else (0.0, 0.0, _NO_TABLE))
    assert (table[2].size > 0) == predict
    _split_gate_kernel(*flat, steps, size, fg.alpha_g, fg.u_t, fg.dvth, *common, *fast, passes,
                       *table)
    slow = [np.empty(size) for _ in range(4)]
    flat_t = list(flat)
    flat_t[4] = flat[4] + fg.dvth
    _split_gate_scalar_kernel(*flat_t, steps, size, fg.alpha_g, fg.u_t, *common, *slow)
    return ([a.reshape(shape) for a in fast], passes.reshape(shape),
            [a.reshape(shape) for a in slow])


def _assert_split_equal(m, fast, slow, args, kw=None):
    """Fast path == safeguarded solver to the tolerance of the numba vs NumPy test."""
    kw = kw or {}
    scale = m.current_scale(*args, **kw)
    assert np.all(np.isfinite(fast[0]))
    assert np.max(np.abs(fast[0] - slow[0]) / scale) < 1e-12
    gscale = np.abs(slow[1]) + np.abs(slow[2]) + 1e-30
    assert np.max(np.abs(fast[1] - slow[1]) / gscale) < 1e-6
    assert np.max(np.abs(fast[2] - slow[2]) / gscale) < 1e-6
    assert np.max(np.abs(fast[3] - slow[3])) < 1e-12


def test_split_gate_fast_path_equals_safeguarded_solver():
    """Wide random biases, thresholds and per-cell parameters at 320 K (temperature shift
    applied in the kernel): the vectorised passes and their fallback give the scalar
    solver's current, derivatives and internal node, and every path is exercised."""
    m = cell_model(SPLIT, 320.0)
    rng = np.random.default_rng(12)
    n = 40_000
    args = (rng.uniform(-0.5, 2.5, n), rng.uniform(-0.5, 2.5, n), rng.uniform(-0.2, 1.5, n),
            rng.uniform(-0.2, 1.5, n), rng.uniform(-2.0, 4.0, n))
    kw = dict(n=rng.uniform(1.1, 1.5, n), beta=rng.uniform(2e-4, 8e-4, n),
              dibl_eta=rng.uniform(0.0, 0.1, n))
    fast, passes, slow = _split_kernels(m, *args, **kw)
    _assert_split_equal(m, fast, slow, args, kw)
    counts = np.bincount(passes.ravel() + 1)
    assert counts[0] > 0 and counts[1] > 0 and counts[2] > 0  # fallback, pass 0, pass 1
    # and the NumPy bisection reference agrees with both
    i_ref = m.current(*args, **kw, fast=False)
    assert np.max(np.abs(fast[0] - i_ref) / m.current_scale(*args, **kw)) < 1e-12


@pytest.mark.parametrize("temperature_k", [300.0, 358.0])
@pytest.mark.parametrize("predict", [False, True], ids=["from_vd", "node_table"])
def test_split_gate_fast_path_read_bias(predict, temperature_k):
    """The preset read (one bias, a V_th per cell, size not a multiple of the chunk or the
    parallel block): every element is accepted by a vectorised pass (no fallback); from
    V_D pass 0 takes the subthreshold cells (node within 1e-4 U_T of V_D), from the
    interpolated node table it takes every cell. The current equals the
    scalar solver's to 1e-13 of its own value (derivatives to 1e-9: the scalar solver's own
    are good to ~step/U_T); against the NumPy bisection reference current and derivatives
    agree to 1e-13 of their values."""
    m = cell_model(SPLIT, temperature_k)
    vth = np.random.default_rng(5).uniform(-0.5, 2.5, 16384 + 301)
    fast, passes, slow = _split_kernels(m, 1.8, 1.0, 0.3, 0.0, vth, predict=predict)
    _assert_split_equal(m, fast, slow, (1.8, 1.0, 0.3, 0.0, vth))
    assert passes.min() >= 0
    u_t = m.fg.u_t
    drop = 0.3 - slow[3]
    if predict:
        assert np.all(passes == 0)
    else:
        assert np.all(passes[drop < 0.5e-4 * u_t] == 0) and np.all(passes[drop > 2e-4 * u_t] > 0)
    assert np.max(np.abs(fast[0] - slow[0]) / slow[0]) < 1e-13
    for k in (1, 2):
        assert np.max(np.abs(fast[k] - slow[k]) / np.abs(slow[k])) < 1e-9
    ref = m.current(1.8, 1.0, 0.3, 0.0, vth, derivatives=True, fast=False)
    for k in range(3):
        assert np.max(np.abs(fast[k] - ref[k]) / np.abs(ref[k])) < 1e-13


def test_split_gate_node_table_only_chooses_the_start():
    """Over a V_th range so wide that the interpolated node misses the pass-0 window the
    later passes finish those elements: results still equal the safeguarded solver. The
    public call takes the table from 16,384 elements up and gives what the kernel without
    it gives; unrequested outputs are not returned."""
    from norsim.device.iv import _SG_PREDICT_MIN

    m = cell_model(SPLIT, 300.0)
    vth = np.random.default_rng(8).uniform(-40.0, 40.0, 20_000)
    fast, passes, slow = _split_kernels(m, 1.8, 1.0, 0.3, 0.0, vth, predict=True)
    _assert_split_equal(m, fast, slow, (1.8, 1.0, 0.3, 0.0, vth))
    assert np.any(passes > 0) and np.mean(passes == 0) > 0.5
    vth = np.random.default_rng(9).uniform(-0.5, 2.5, _SG_PREDICT_MIN)
    plain, _, _ = _split_kernels(m, 1.8, 1.0, 0.3, 0.0, vth)
    i, gd, gs = m.current(1.8, 1.0, 0.3, 0.0, vth, derivatives=True)
    for a, b in zip((i, gd, gs), plain):
        assert np.allclose(a, b, rtol=1e-12, atol=0)
    assert np.array_equal(m.current(1.8, 1.0, 0.3, 0.0, vth), i)
    assert np.array_equal(m.internal_node(1.8, 1.0, 0.3, 0.0, vth),
                          m._evaluate(1.8, 1.0, 0.3, 0.0, vth, None, None, None, True, True,
                                      want_vx=True)[3])
    assert m._evaluate(1.8, 1.0, 0.3, 0.0, vth, None, None, None, True, False)[1:4] == (
        None, None, None)


_EDGE_CASES = ["vth_absurd_low", "vth_absurd_high", "vd_equals_vs", "strong_inversion",
               "reverse_bias", "select_off", "select_saturated"]


@pytest.mark.parametrize("case", _EDGE_CASES)
def test_split_gate_fast_path_edge_cases(case):
    """Elements the vectorised passes handle or hand to the scalar solver: each equals the
    safeguarded solver (and the closed-form facts of the case)."""
    m = cell_model(SPLIT, 300.0)
    rng = np.random.default_rng(100 + _EDGE_CASES.index(case))
    k = 300
    vth = rng.uniform(-0.5, 2.5, k)
    vd = rng.uniform(0.05, 1.0, k)
    if case == "vth_absurd_low":
        args = (1.8, 1.0, vd, 0.0, rng.uniform(-60.0, -10.0, k))
    elif case == "vth_absurd_high":
        args = (1.8, 1.0, vd, 0.0, rng.uniform(10.0, 60.0, k))
    elif case == "vd_equals_vs":
        args = (1.8, rng.uniform(0, 2.5, k), vd, vd, vth)
    elif case == "strong_inversion":
        args = (2.5, 3.0, vd, 0.0, rng.uniform(-1.0, 0.0, k))
    elif case == "reverse_bias":
        args = (1.8, 1.0, 0.0, vd, vth)
    elif case == "select_off":
        args = (rng.uniform(-1.0, 0.0, k), 1.0, vd, 0.0, vth)
    else:
        args = (1.8, 2.5, rng.uniform(1.3, 2.0, k), 0.0, rng.uniform(-0.5, 0.5, k))
    fast, passes, slow = _split_kernels(m, *args)
    _assert_split_equal(m, fast, slow, args)
    if case == "vd_equals_vs":
        assert np.all(fast[0] == 0.0) and np.all(passes == 0) and np.all(fast[3] == vd)
    if case == "vth_absurd_high":
        assert np.all(fast[0] >= 0.0) and np.all(fast[0] < 1e-20)
    if case == "reverse_bias":
        assert np.all(fast[0] < 0.0)
    if case == "select_off":
        assert np.any(passes == -1)  # deep-off select: slow bracket progress, scalar solver
    if case in ("strong_inversion", "vth_absurd_low"):
        assert np.all(passes >= 1)  # the node moves far from V_D: a later pass accepts


def test_split_gate_select_dibl_and_small_calls_use_scalar_solver():
    """A select transistor with DIBL (not produced by cell_model) and calls below the
    vectorised path's minimum size take the scalar solver for every element; results still
    match the NumPy reference."""
    from dataclasses import replace

    from norsim.device.iv import _SG_SCALAR_BELOW

    m = cell_model(SPLIT, 300.0)
    m_dibl = replace(m, sel=replace(m.sel, dibl_eta=0.03))
    vth = np.linspace(-0.5, 2.5, 200)
    for model, v in ((m_dibl, vth), (m, vth[:_SG_SCALAR_BELOW - 1])):
        fast, passes, slow = _split_kernels(model, 1.8, 1.0, 0.3, 0.0, v)
        assert np.all(passes == -1)
        assert np.array_equal(fast[0], slow[0])
        ref = model.current(1.8, 1.0, 0.3, 0.0, v, fast=False)
        assert np.max(np.abs(fast[0] - ref) / model.current_scale(1.8, 1.0, 0.3, 0.0, v)) < 1e-12
    # DIBL in the select transistor changes the current (the parameter is used)
    assert not np.allclose(m_dibl.current(1.8, 1.0, 0.3, 0.0, vth), m.current(1.8, 1.0, 0.3, 0.0, vth),
                           rtol=1e-6, atol=0)


@pytest.mark.parametrize("layout", ["per-element", "rows-cols", "per-row-bias"])
def test_split_gate_fast_path_layouts(layout):
    """Input layouts of the chunked kernel: every terminal per element, a (rows, 1) word line
    against (cols,) thresholds, and per-element select and drain voltages (no shared
    select-transistor term)."""
    m = cell_model(SPLIT, 340.0)
    rng = np.random.default_rng(9)
    if layout == "per-element":
        n = 5000
        args = (rng.uniform(1.0, 2.5, n), rng.uniform(0.0, 2.0, n), rng.uniform(0.05, 1.0, n),
                rng.uniform(0.0, 0.05, n), rng.uniform(-0.5, 2.5, n))
    elif layout == "rows-cols":
        args = (rng.uniform(1.0, 2.5, (37, 1)), 1.0, 0.3, 0.0, rng.uniform(-0.5, 2.5, 301))
    else:
        args = (rng.uniform(1.0, 2.5, (300, 1)), 1.0, rng.uniform(0.1, 0.8, (300, 1)), 0.0,
                rng.uniform(-0.5, 2.5, (300, 40)))
    fast, passes, slow = _split_kernels(m, *args)
    assert fast[0].shape == np.broadcast_shapes(*(np.shape(a) for a in args))
    _assert_split_equal(m, fast, slow, args)
    i_fast, gd, gs = m.current(*args, derivatives=True)
    assert np.array_equal(i_fast, fast[0]) and np.array_equal(gd, fast[1])


_UNIFORM_BIASES = {
    "read": (1.8, 1.0, 0.3, 0.0),
    "select_weak": (0.6, 1.0, 0.3, 0.0),
    "select_off": (-0.5, 1.0, 0.3, 0.0),
    "reverse_bias": (1.8, 1.0, 0.0, 0.3),
    "vd_equals_vs": (1.8, 1.0, 0.3, 0.3),
    "strong_inversion": (2.5, 3.0, 0.5, 0.0),
    "select_saturated": (1.8, 2.5, 1.6, 0.0),
}


@pytest.mark.parametrize("predict", [False, True], ids=["from_vd", "node_table"])
@pytest.mark.parametrize("case", list(_UNIFORM_BIASES))
def test_split_gate_uniform_bias_path(case, predict):
    """One bias for all elements and a V_th per element (the kernel's scalar-state path, with
    the select term's series when the select transistor is far in strong inversion): equal
    to the safeguarded solver, and (to rounding) the same results as the general path given
    the same bias as per-element arrays; from V_D also the same passes. Each case also with
    pass 0 started from the node table (then the partials agree to their Taylor remainders,
    1e-9 of their scale in a deep-off select transistor)."""
    from norsim.device.iv import _SEL_ON_H, _SG_PREDICT_MIN

    m = cell_model(SPLIT, 330.0)
    rng = np.random.default_rng(40 + list(_UNIFORM_BIASES).index(case))
    k = _SG_PREDICT_MIN + 123
    vth = rng.uniform(-0.5, 2.5, k)
    vth[:40] = rng.uniform(-60.0, -10.0, 40)
    vth[40:80] = rng.uniform(10.0, 60.0, 40)
    v_wl, v_cg, v_d, v_s = _UNIFORM_BIASES[case]
    args = (v_wl, v_cg, v_d, v_s, vth)
    fast, passes, slow = _split_kernels(m, *args, predict=predict)
    _assert_split_equal(m, fast, slow, args)
    full = (np.full(k, v_wl), np.full(k, v_cg), np.full(k, v_d), np.full(k, v_s), vth)
    gen, passes_gen, _ = _split_kernels(m, *full)
    assert predict or np.array_equal(passes, passes_gen)
    scale = m.current_scale(*args)
    assert np.max(np.abs(fast[0] - gen[0]) / scale) < 1e-14
    gscale = np.abs(gen[1]) + np.abs(gen[2]) + 1e-30
    for j in (1, 2):  # (from another start the partials' Taylor remainders differ)
        assert np.max(np.abs(fast[j] - gen[j]) / gscale) < (1e-9 if predict else 1e-12)
    assert np.max(np.abs(fast[3] - gen[3])) < 1e-14
    if predict:  # what the public call runs at this size
        assert np.array_equal(m.current(*args), fast[0])
    vp_sel = (v_wl - m.select_vth - m.sel.dvth) / m.sel.n
    sel_on = vp_sel - max(v_d, v_s) >= 2 * _SEL_ON_H * m.fg.u_t
    assert sel_on == (case in ("read", "reverse_bias", "vd_equals_vs", "strong_inversion"))
    if case == "vd_equals_vs":
        assert np.all(fast[0] == 0.0) and np.all(passes == 0)
    if case == "select_off":
        assert np.any(passes == -1)
    if case == "read" and not predict:
        assert np.any(passes == 0) and np.any(passes == 1)
