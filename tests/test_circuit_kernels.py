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
