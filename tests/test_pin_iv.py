"""Per-cell device parameters reach the split-gate kernel each through its own stride
(issue 26): one parameter per cell while the others stay scalars (stride 0), and the
reverse, against the NumPy reference of the same I-V."""

from __future__ import annotations

import numpy as np
import pytest

from norsim.device.config import DeviceConfig
from norsim.device.iv import cell_model

DEV = DeviceConfig()


@pytest.mark.parametrize("per_cell", ["vth", "n", "beta", "dibl_eta"])
def test_one_per_cell_parameter_among_scalars_matches_the_reference(per_cell):
    model = cell_model(DEV.cell, DEV.read.temperature_k)
    r = DEV.read
    rng = np.random.default_rng(3)
    m = 257
    fg = model.fg
    kw = {"n": float(fg.n), "beta": float(fg.beta), "dibl_eta": float(DEV.cell.dibl_eta)}
    vth = 1.0
    if per_cell == "vth":
        vth = rng.uniform(0.6, 1.4, m)
    else:
        kw[per_cell] = (kw[per_cell] or 0.05) * rng.uniform(0.7, 1.3, m)
    vd = np.full(m, r.v_bl_read_v)
    fast = model.current(r.v_select_on_v, r.v_cg_read_v, vd, r.v_sl_read_v, vth, **kw)
    ref = model.current(r.v_select_on_v, r.v_cg_read_v, vd, r.v_sl_read_v, vth, fast=False, **kw)
    assert fast.shape == (m,) and np.ptp(fast) > 0   # the per-cell values matter
    np.testing.assert_allclose(fast, ref, rtol=1e-9)


@pytest.mark.parametrize("per_cell", ["n", "beta", "dibl_eta"])
def test_safeguarded_scalar_solver_takes_each_parameter_with_its_own_stride(per_cell):
    # the scalar solver (the vectorised kernel's reference in tests/test_device_iv.py) with
    # one per-cell parameter and the rest scalars, against the NumPy I-V
    from norsim.device.iv import _CELL_NAMES, _flat_inputs, _split_gate_scalar_kernel

    model = cell_model(DEV.cell, DEV.read.temperature_k)
    fg, sel, r = model.fg, model.sel, DEV.read
    m = 64
    kw = {"n": float(fg.n), "beta": float(fg.beta), "dibl_eta": float(fg.dibl_eta)}
    kw[per_cell] = (kw[per_cell] or 0.05) * np.random.default_rng(4).uniform(0.7, 1.3, m)
    args = (r.v_select_on_v, r.v_cg_read_v, np.full(m, r.v_bl_read_v), r.v_sl_read_v, 1.0)
    shape, flat, steps, _ = _flat_inputs((*args, kw["n"], kw["beta"], kw["dibl_eta"]),
                                         _CELL_NAMES, _CELL_NAMES)
    flat = list(flat)
    flat[4] = flat[4] + fg.dvth
    out = [np.empty(m) for _ in range(4)]
    _split_gate_scalar_kernel(*flat, steps, m, fg.alpha_g, fg.u_t,
                              float(model.select_vth + sel.dvth), float(sel.n), float(sel.beta),
                              float(sel.dibl_eta), int(model.max_iter), *out)
    ref = model.current(*args, fast=False, **kw)
    np.testing.assert_allclose(out[0], ref, rtol=1e-9)
