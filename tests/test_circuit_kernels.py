"""Circuit-mode numba kernels equal their NumPy reference twins."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from norsim.array.circuit_kernels import FactorSolver, split_gate_reference, split_gate_warm
from norsim.config.presets import load_preset
from norsim.device.iv import cell_model


@pytest.mark.parametrize("start", ["cold", "warm", "outside"])
def test_split_gate_warm_kernel_equals_device_reference(start):
    cfg = load_preset("nor40")
    model = cell_model(cfg.device.cell, 330.0)
    rng = np.random.default_rng(5)
    n = 400
    v_wl = np.where(rng.random(n) < 0.6, 1.8, rng.uniform(-0.2, 1.8, n))
    v_d = rng.uniform(0.0, 0.6, n)
    v_s = rng.uniform(0.0, 0.1, n)
    v_d[:5] = v_s[:5]  # V_DS = 0: zero current, finite conductances
    vth = rng.uniform(-0.5, 2.5, n)
    beta = rng.uniform(3e-4, 7e-4, n)
    ref = split_gate_reference(model, v_wl, 1.0, v_d, v_s, vth, beta=beta)
    x0 = {"cold": None, "warm": ref[3] + rng.normal(0, 1e-3, n),
          "outside": np.full(n, 5.0)}[start]
    fast = split_gate_warm(model, v_wl, 1.0, v_d, v_s, vth, x0, beta=beta)
    # currents are differences of forward and reverse terms: compare on their scale
    scale = model.current_scale(v_wl, 1.0, v_d, v_s, vth, beta=beta)
    err = np.abs(fast[0] - ref[0])
    assert np.all(err <= 1e-9 * np.abs(ref[0]) + 1e-12 * scale + 1e-18), err.max()
    for f, r in zip(fast[1:3], ref[1:3]):
        np.testing.assert_allclose(f, r, rtol=1e-6, atol=1e-9 * np.abs(r).max())
    np.testing.assert_allclose(fast[3], ref[3], rtol=0, atol=1e-10)


def test_factor_solver_equals_superlu_solve():
    rng = np.random.default_rng(6)
    n = 60
    a = sp.random(n, n, density=0.08, random_state=7) + sp.diags(rng.uniform(1, 3, n))
    lu = splu(a.tocsc())  # default COLAMD ordering and partial pivoting: general factors
    fs = FactorSolver(lu)
    b = rng.normal(size=(n, 5))
    np.testing.assert_allclose(fs.solve(b), fs.reference_solve(b), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a @ fs.solve(b), b, atol=1e-10)
    np.testing.assert_allclose(fs.solve(b[:, 0]), fs.reference_solve(b[:, 0]), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("cell_type", ["split_gate", "stacked_gate"])
def test_tile_kernel_equals_device_reference(cell_type):
    from norsim.array.circuit_kernels import tile_iv, tile_iv_reference

    cfg = load_preset("nor40").with_overrides([f"device.cell.cell_type='{cell_type}'"])
    model = cell_model(cfg.device.cell, 310.0)
    rng = np.random.default_rng(9)
    r, c, b = 5, 4, 3
    vth = rng.uniform(-0.3, 2.0, (r, c))
    beta = rng.uniform(3e-4, 7e-4, (r, c))
    wl = np.where(rng.random((r, b)) < 0.5, 1.8, rng.uniform(0.0, 1.8, (r, b)))
    v_d = 0.3 - rng.uniform(0, 0.05, (r, c, b))
    v_s = rng.uniform(0, 0.02, (r, c, b))
    fast = tile_iv(model, wl, 1.0, v_d, v_s, vth, beta=beta)
    ref = tile_iv_reference(model, wl, 1.0, v_d, v_s, vth, beta=beta)
    for f, q in zip(fast[:3], ref):
        np.testing.assert_allclose(f, q, rtol=1e-7, atol=1e-12 * np.abs(q).max())
    if cell_type == "split_gate":  # internal node sensitivities: finite differences
        h = 1e-6
        up = tile_iv(model, wl, 1.0, v_d + h, v_s, vth, beta=beta)[3]
        np.testing.assert_allclose((up - fast[3]) / h, fast[4], rtol=1e-3, atol=1e-6)
        up = tile_iv(model, wl, 1.0, v_d, v_s + h, vth, beta=beta)[3]
        np.testing.assert_allclose((up - fast[3]) / h, fast[5], rtol=1e-3, atol=1e-6)
    else:
        assert fast[3] is None


def test_local_model_and_max_abs_diff_equal_numpy():
    from norsim.array.circuit_kernels import (local_model, local_model_reference,
                                              max_abs_diff_cols)

    rng = np.random.default_rng(10)
    shape = (6, 5, 4)
    i_k = rng.uniform(-1e-9, 1e-6, shape)
    args = [i_k] + [rng.normal(0, s, shape) for s in (40.0, 40.0, 1e-6, 1e-5, 1e-3, 1e-3,
                                                      1e-3, 1e-3)]
    np.testing.assert_allclose(local_model(*args), local_model_reference(*args), rtol=1e-14,
                               atol=0)
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    np.testing.assert_array_equal(max_abs_diff_cols(a, b), np.abs(a - b).max(axis=0))
    a[3, 2] = np.nan
    assert np.isnan(max_abs_diff_cols(a, b)[2])


def test_gather_levels_and_log_sensitivities_equal_numpy():
    from norsim.array.circuit_kernels import (gather_levels, gather_levels_reference,
                                              log_sensitivities, log_sensitivities_reference)

    rng = np.random.default_rng(11)
    tab = rng.normal(size=(5, 4, 3))
    inv = rng.integers(0, 3, size=(6, 5))
    np.testing.assert_array_equal(gather_levels(tab, inv), gather_levels_reference(tab, inv))
    i = rng.uniform(-1e-9, 1e-6, (7, 3))
    i[0, 0] = 0.0
    gd, gs = rng.normal(0, 1e-6, (2, 7, 3))
    for f, r in zip(log_sensitivities(i, gd, gs), log_sensitivities_reference(i, gd, gs)):
        np.testing.assert_array_equal(f, r)


def test_local_model_lines_equals_numpy():
    from norsim.array.circuit_kernels import local_model_lines, local_model_lines_reference

    rng = np.random.default_rng(12)
    shape, lines = (6, 5, 4), (3, 5, 4)
    i_k = rng.uniform(-1e-9, 1e-6, shape)
    a, b = rng.normal(0, 40.0, (2,) + shape)
    gd, gs = rng.normal(0, 1e-6, (2,) + shape)
    u, u_k = rng.normal(0, 1e-3, (2,) + shape)
    v, v_k = rng.normal(0, 1e-3, (2,) + lines)
    lr = np.arange(6) // 2
    np.testing.assert_allclose(local_model_lines(i_k, a, b, gd, gs, u, v, u_k, v_k, lr),
                               local_model_lines_reference(i_k, a, b, gd, gs, u, v, u_k, v_k, lr),
                               rtol=1e-14, atol=0)
