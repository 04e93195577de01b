"""Per-cell device parameters reach the split-gate kernel each through its own stride
(issue 26): one parameter per cell while the others stay scalars (stride 0), and the
reverse, against the NumPy reference of the same I-V."""

from __future__ import annotations

import numpy as np
import pytest

from norsim.device.config import DeviceConfig
from norsim.device.iv import cell_model, vth_for_current

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


# ---- the V_th solvers (vth_for_current): each argument through its own stride -------------

_VTH_ARGS = ("i_target", "v_wl", "v_cg", "v_d", "v_s", "n", "beta", "dibl_eta")


def _vth_case(cell_type: str, per_cell: str, m: int = 48):
    """A read bias with one argument per cell (spread so that it matters) and the rest scalars."""
    from norsim.device.config import CellConfig

    model = cell_model(CellConfig(cell_type=cell_type), DEV.read.temperature_k)
    r, fg = DEV.read, model.fg
    v_wl = r.v_select_on_v if cell_type == "split_gate" else r.v_cg_read_v
    args = {"i_target": 50e-9, "v_wl": v_wl, "v_cg": r.v_cg_read_v, "v_d": r.v_bl_read_v,
            "v_s": r.v_sl_read_v, "n": float(fg.n), "beta": float(fg.beta),
            "dibl_eta": float(fg.dibl_eta) or 0.05}
    u = np.random.default_rng(5).uniform(0.0, 1.0, m)
    spread = {"i_target": 10e-9 + 90e-9 * u,
              # the select gate from 0.2 V above its threshold (where the select transistor
              # limits the current) to fully on; a stacked cell's control gate over 0.6 V
              "v_wl": (model.select_vth + 0.2 + 1.2 * u) if cell_type == "split_gate"
              else v_wl - 0.3 + 0.6 * u,
              "v_cg": r.v_cg_read_v - 0.3 + 0.6 * u, "v_d": 0.15 + 0.45 * u,
              "v_s": -0.1 + 0.1 * u}
    args[per_cell] = spread.get(per_cell, args[per_cell] * (0.7 + 0.6 * u))
    return model, args


@pytest.mark.parametrize("newton", [False, True], ids=["direct", "newton"])
@pytest.mark.parametrize("cell_type", ["split_gate", "stacked_gate"])
@pytest.mark.parametrize("per_cell", _VTH_ARGS)
def test_vth_for_current_reads_each_argument_with_its_own_stride(per_cell, cell_type, newton):
    # the V_th found for each cell gives that cell's target current back through the NumPy
    # I-V at that cell's own bias (a kernel reading one argument with another's stride solves
    # every cell at cell 0's value of it)
    if cell_type == "stacked_gate" and per_cell == "v_cg":
        pytest.skip("a stacked-gate cell has no separate control gate (v_cg is unused)")
    model, a = _vth_case(cell_type, per_cell)
    vth = vth_for_current(model, a["i_target"], a["v_wl"], a["v_cg"], a["v_d"], a["v_s"],
                          n=a["n"], beta=a["beta"], dibl_eta=a["dibl_eta"], newton=newton)
    # the per-cell values matter: 1e-5 V of V_th is ~1e-4 of the current, 1e3 x the tolerance
    assert vth.shape == (48,) and np.ptp(vth) > 1e-5
    back = model.current(a["v_wl"], a["v_cg"], a["v_d"], a["v_s"], vth, n=a["n"],
                         beta=a["beta"], dibl_eta=a["dibl_eta"], fast=False)
    np.testing.assert_allclose(back, np.broadcast_to(a["i_target"], back.shape), rtol=1e-7)


def test_stacked_cell_vth_follows_its_gate_volt_for_volt():
    # closed form: a stacked cell's current depends on V_G - V_th alone, so the V_th for a
    # fixed current moves with the word line one for one, on both V_th solvers
    model, a = _vth_case("stacked_gate", "v_wl")
    for newton in (False, True):
        vth = vth_for_current(model, a["i_target"], a["v_wl"], a["v_cg"], a["v_d"], a["v_s"],
                              n=a["n"], beta=a["beta"], dibl_eta=a["dibl_eta"], newton=newton)
        np.testing.assert_allclose(vth - a["v_wl"], np.full(48, vth[0] - a["v_wl"][0]),
                                   atol=1e-9)


def test_node_table_is_built_only_for_a_common_read():
    # the split-gate kernel's node table is the kernel's own solution on a V_th grid of
    # _SG_PREDICT_POINTS points with the call's other inputs: only a common read (one bias,
    # one n, beta, eta) can be reused that way. With a per-cell bias the table would describe
    # cell 0's bias, and a per-cell input shorter than the grid would be read past its end
    from norsim.device.iv import (_CELL_NAMES, _SG_PREDICT_MIN, _SG_PREDICT_POINTS,
                                  _flat_inputs, _node_predictor)

    model = cell_model(DEV.cell, DEV.read.temperature_k)
    fg, r = model.fg, DEV.read
    consts = model._kernel_constants()

    def table(size, per_cell_vd):
        vd = np.full(size, r.v_bl_read_v) if per_cell_vd else r.v_bl_read_v
        _, flat, steps, ranges = _flat_inputs(
            (r.v_select_on_v, r.v_cg_read_v, vd, r.v_sl_read_v, np.linspace(0.5, 1.5, size),
             fg.n, fg.beta, fg.dibl_eta), _CELL_NAMES, _CELL_NAMES)
        return _node_predictor(flat, steps, size, consts, ranges["v_th"])[2]

    assert table(100, True).size == 0                     # per-cell bias, shorter than the grid
    assert table(2 * _SG_PREDICT_MIN, True).size == 0     # per-cell bias, a large call
    assert table(2 * _SG_PREDICT_MIN, False).size == _SG_PREDICT_POINTS   # a large common read


@pytest.mark.parametrize("derivatives", [False, True])
@pytest.mark.parametrize("per_cell", ["n", "beta", "dibl_eta"])
def test_ekv_kernel_reads_a_per_element_parameter_among_scalars(per_cell, derivatives):
    """One EKV transistor parameter per element while the other two are scalars (stride 0):
    the kernel's scalar shortcut (one n, beta, eta for all elements) must not take it; the
    currents equal the NumPy reference (a mutant that let the shortcut read n[0] for every
    element survived the split-gate tests, issue 26)."""
    from norsim.device.iv_ekv import ekv_current, ekv_current_numpy

    rng = np.random.default_rng(7)
    m = 300
    par = {"n": 1.3, "beta": 5e-4, "dibl_eta": 0.05}
    par[per_cell] = par[per_cell] * rng.uniform(0.6, 1.4, m)
    vth = rng.uniform(0.3, 0.9, m)
    args = (1.2, 0.5, 0.0, vth, par["n"], 0.6, par["beta"], par["dibl_eta"], 0.0259)
    ref = ekv_current_numpy(*args)
    got = ekv_current(*args, derivatives=derivatives)
    got = got[0] if derivatives else got
    assert np.ptp(ref / ekv_current_numpy(1.2, 0.5, 0.0, vth, 1.3, 0.6, 5e-4, 0.05, 0.0259)) > 0.1
    np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize("vth", [0.6, 1.0, 1.4])
def test_split_gate_conductances_at_zero_bias_are_the_current_slopes(vth):
    """At V_D = V_S the safeguarded split-gate solver skips its Newton loop (an empty
    bracket) and returns I = 0 with the implicit-function conductances dI/dV_D and dI/dV_S
    of its final evaluation; they must equal central differences of the current around the
    zero-bias point (a mutant of the final dI/dV_S survived every I-V test, issue 26)."""
    from norsim.device.iv_split import _split_solve

    model = cell_model(DEV.cell, DEV.read.temperature_k)
    fg, sel, r = model.fg, model.sel, DEV.read

    def solve(vd, vs):
        return _split_solve(r.v_select_on_v, r.v_cg_read_v, vd, vs, vth, fg.n, fg.beta,
                            fg.dibl_eta, fg.alpha_g, fg.u_t, model.select_vth, sel.n,
                            sel.beta, sel.dibl_eta, model.max_iter)

    v, h = r.v_sl_read_v, 1e-6
    i, gd, gs, _, _ = solve(v, v)
    assert i == 0.0 and gd > 0.0 > gs
    np.testing.assert_allclose(gd, (solve(v + h, v)[0] - solve(v - h, v)[0]) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(gs, (solve(v, v + h)[0] - solve(v, v - h)[0]) / (2 * h), rtol=1e-6)


@pytest.mark.parametrize("sel_eta", [0.0, 0.05])
@pytest.mark.parametrize("vth", [0.6, 1.0, 1.4])
def test_split_gate_vth_slope_at_the_iteration_cap_is_the_current_slope(vth, sel_eta):
    """The split-gate solver returns dI/dV_th (the implicit-function theorem at its node) on
    both exits: the Newton step test (the usual one) and the end of its loop, reached at a
    read bias only when ``max_iter`` runs out. Capped one iteration before the step test
    fires, it stops at a node already converged to ~1e-10 V: its current equals the full
    solve's and its dI/dV_th must equal a central difference of the current in V_th (a
    mutant of that return, -p * b / den -> -p / b / den, off by b^2 with b = dI_sel/dx in
    A/V, survived every I-V test, issue 26; the V_th kernel's Newton uses this value)."""
    from norsim.device.iv_split import _split_solve

    model = cell_model(DEV.cell, DEV.read.temperature_k)
    fg, sel, r = model.fg, model.sel, DEV.read

    def solve(v_th, max_iter=200):
        return _split_solve(r.v_select_on_v, r.v_cg_read_v, r.v_bl_read_v, r.v_sl_read_v, v_th,
                            fg.n, fg.beta, fg.dibl_eta, fg.alpha_g, fg.u_t, model.select_vth,
                            sel.n, sel.beta, sel_eta, max_iter)

    full = solve(vth)
    h = 1e-5
    slope = (solve(vth + h)[0] - solve(vth - h)[0]) / (2 * h)
    np.testing.assert_allclose(full[4], slope, rtol=1e-6)   # the Newton exit
    capped = 0
    for max_iter in range(1, 60):
        got = solve(vth, max_iter)
        if got == full:          # the step test fired: the full solve's Newton exit
            break
        if abs(got[0] / full[0] - 1.0) < 1e-9:   # stopped by the cap at a converged node
            capped += 1
            np.testing.assert_allclose(got[4], slope, rtol=1e-6)
            np.testing.assert_allclose(got[1:3], full[1:3], rtol=1e-6)
    else:
        raise AssertionError("the solver did not reach its step test within 60 iterations")
    assert capped >= 1
