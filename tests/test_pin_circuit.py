"""What the circuit solver's stop certifies (issue 26): a vector it returns at tolerance
``solver_tol_v`` has every node drop within ``solver_tol_v`` of the converged network
solution (here a reference solve at 1e-15 V), whichever path solved it, and so each column
current within about tol / U_T relative (ln I moves 1/U_T per volt of drop)."""

from __future__ import annotations

import numpy as np
import pytest
from _circuit_helpers import tile

from norsim.array.circuit import CircuitSolver
from norsim.config.presets import load_preset

CFG = load_preset("nor40")


@pytest.fixture(scope="module", params=[(5.0, 10e-9, 100e-9), (20.0, 0.3e-6, 1e-6)],
                ids=["ir-2%", "ir-80%"])
def case(request):
    scale, lo, hi = request.param
    vth, wl, model = tile(CFG, 48, 40, seed=7, lo=lo, hi=hi, batch=6)
    wires = CFG.array.wires.scaled(scale)
    tight = CircuitSolver(vth, CFG, model, wires=wires.replace(solver_tol_v=1e-15)).solve(
        wl, method="reference")
    ir = np.abs(tight.column_currents - tight.ideal_column_currents).max() / tight.column_currents.max()
    return vth, wl, model, wires, tight, ir


@pytest.mark.parametrize("method", ["auto", "newton", "reference"])
@pytest.mark.parametrize("tol", [1e-5, 1e-8])
def test_stopped_vectors_are_within_the_tolerance_of_a_tight_solve(case, method, tol):
    vth, wl, model, wires, tight, ir = case
    assert ir > 0.01  # the wires matter: an ideal answer would be far outside the tolerance
    solver = CircuitSolver(vth, CFG, model, wires=wires.replace(solver_tol_v=tol))
    res = solver.solve(wl, method=method)
    err_v = max(np.abs(res.bl_drop - tight.bl_drop).max(), np.abs(res.sl_drop - tight.sl_drop).max())
    assert err_v <= tol
    u_t = model.fg.u_t
    col = np.abs(res.column_currents - tight.column_currents).max() / tight.column_currents.max()
    assert col <= tol / u_t
    # the drops themselves are far larger than the tolerance: the bound is not vacuous
    assert np.abs(tight.bl_drop).max() > 100 * tol


@pytest.mark.parametrize("method", ["auto", "newton", "reference"])
def test_ideal_column_currents_are_the_zero_resistance_limit(case, method):
    vth, wl, model, wires, tight, _ = case
    res = CircuitSolver(vth, CFG, model, wires=wires).solve(wl, method=method)
    assert res.ideal_column_currents.shape == (wl.shape[0], vth.shape[1])  # 48 rows, 40 columns
    np.testing.assert_allclose(res.ideal_column_currents, tight.ideal_column_currents, rtol=1e-12)
    # R -> 0: the wires (x1e-6) no longer move the currents off the ideal ones
    r0 = CircuitSolver(vth, CFG, model, wires=CFG.array.wires.scaled(1e-6)).solve(wl, method=method)
    np.testing.assert_allclose(r0.column_currents, res.ideal_column_currents, rtol=1e-5)


def test_anderson_mixing_accelerates_the_reference_iteration():
    # heavy IR drop (wires x60, 0.3-1 uA cells): the plain fixed-point iteration needs ~140
    # inner sweeps, Anderson mixing of depth 3 about 30, to the same solution
    vth, wl, model = tile(CFG, 32, 24, seed=7, lo=0.3e-6, hi=1e-6, batch=4)
    wires = CFG.array.wires.scaled(60.0)
    plain = CircuitSolver(vth, CFG, model, wires=wires).solve(wl, method="reference")
    mixed = CircuitSolver(vth, CFG, model, wires=wires.replace(anderson_depth=3)).solve(wl)
    assert mixed.inner_iterations <= 0.5 * plain.inner_iterations
    np.testing.assert_allclose(mixed.column_currents, plain.column_currents, rtol=1e-8)


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_short_source_lines_match_the_uniform_load_closed_form(rows):
    # layout 'cols', driven at row 0 only: dV_k = I R k (2N - k + 1) / 2, down to N = 1, 2
    from norsim.array.circuit import wire_network

    wires = CFG.array.wires.replace(sl_layout="cols", sl_pair_shared=False, r_sl_segment_ohm=3.0,
                                    r_strap_ohm=0.0, r_sl_driver_ohm=0.0, strap_model="ideal")
    cols, i = 4, 7e-8
    net = wire_network(rows, cols, wires, 1000.0)
    k = np.arange(1, rows + 1)
    want = i * 3.0 * k * (2 * rows - k + 1) / 2
    rise = net.sl_rise(np.full((2, rows, cols), i))
    np.testing.assert_allclose(rise[1, :, 2], want, rtol=1e-10)
    # the (R, C, B) form, into a caller's buffer
    buf = np.empty((rows, cols, 2))
    got = net.sl_rise_t(np.full((rows, cols, 2), i), out=buf)
    assert got is buf
    np.testing.assert_allclose(buf[:, 2, 1], want, rtol=1e-10)


def test_sparse_newton_fallback_reports_the_same_ideal_currents_and_meets_the_tolerance(case):
    vth, wl, model, wires, tight, _ = case
    solver = CircuitSolver(vth, CFG, model, wires=wires)
    for b in range(2):
        nw = solver._solve_newton(wl[b], b)   # the last-resort path, called directly
        np.testing.assert_allclose(nw.ideal_column_currents[0], tight.ideal_column_currents[b],
                                   rtol=1e-12)
        assert np.abs(nw.bl_drop[0] - tight.bl_drop[b]).max() <= wires.solver_tol_v
