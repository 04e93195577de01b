"""The per-vector Newton kernel of circuit mode (heavy IR drop): its block solves against
dense linear algebra, and its answers against the reference path and the exact I-V."""

import numpy as np
import pytest
from _circuit_helpers import assert_operating_point, tile

from norsim.array import circuit_newton as cn
from norsim.array.circuit import CircuitSolver
from norsim.config.presets import load_preset


def _cfg(cell_type="split_gate", **over):
    cfg = load_preset("nor40")
    sets = [f"device.cell.cell_type='{cell_type}'"]
    sets += [f"{k}={v!r}" if isinstance(v, str) else f"{k}={str(v).lower()}"
             for k, v in over.items()]
    return cfg.with_overrides(sets)


def _chain_dense(d0, off, extra_col):
    n = d0.size
    return np.diag(d0 + extra_col) + off * (np.eye(n, k=1) + np.eye(n, k=-1))


def test_chain_factor_and_solve_equal_dense_solve():
    rng = np.random.default_rng(0)
    n, m = 9, 5
    d0 = 2.0 + rng.random(n)
    extra = rng.random((n, m))
    rhs = rng.normal(size=(n, m))
    inv, cp, out = np.empty((n, m)), np.empty((n, m)), np.empty((n, m))
    cn._factor0(d0, -1.0, extra, inv, cp)
    cn._solve0(-1.0, inv, cp, rhs, out)
    for j in range(m):
        np.testing.assert_allclose(out[:, j], np.linalg.solve(_chain_dense(d0, -1.0, extra[:, j]),
                                                              rhs[:, j]), rtol=1e-12)


def test_small_inverse_equals_numpy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 5))
    a = a @ a.T + 5 * np.eye(5)
    out, scratch = np.empty((5, 5)), np.empty((5, 5))
    cn._inv_small(a, out, scratch)
    np.testing.assert_allclose(out, np.linalg.inv(a), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("pads", ["both", "one"])
def test_source_lines_with_shared_straps_equal_dense_nodal_solve(pads):
    """Lines with cell conductances on their diagonal and the straps that tie their taps:
    the block-Thomas solve against a dense solve of the same nodal matrix."""
    rng = np.random.default_rng(2)
    lines, cols = 6, 11
    taps = np.array([0, 4, 8, 10])
    g_seg, g_tap, g_p, g_pad = 1.0, 0.3, 2.0, 0.7
    g_last = g_pad if pads == "both" else 0.0
    d0 = np.full(cols, 2 * g_seg)
    d0[0] = d0[-1] = g_seg
    d0[taps] += g_tap
    ext = rng.random((cols, lines)) * 0.2  # (C, lines): the kernel's chain-major layout
    b = rng.normal(size=(cols, lines))
    by = rng.normal(size=(lines, taps.size))
    nj = taps.size
    inv, cp = np.empty((cols, lines)), np.empty((cols, lines))
    cn._factor0(d0, -g_seg, ext, inv, cp)
    winv = np.zeros((lines, nj, nj))
    cn._strap_factor(taps, g_tap, g_p, g_pad, g_last, -g_seg, inv, cp, np.empty((cols, lines)),
                     np.zeros((lines, nj, nj)), winv, np.zeros((nj, nj)), np.zeros((nj, nj)))
    out, oy = np.empty((cols, lines)), np.empty((lines, nj))
    cn._sl_solve(-g_seg, inv, cp, taps, g_tap, g_p, winv, b.copy(), by, out, oy,
                 np.empty(nj), np.empty((lines, nj)))
    # dense: line nodes ln * C + c, then strap nodes L C + ln J + j
    n_l = lines * cols
    g = np.zeros((n_l + lines * nj,) * 2)
    for ln in range(lines):
        g[ln * cols:(ln + 1) * cols, ln * cols:(ln + 1) * cols] = _chain_dense(d0, -g_seg,
                                                                               ext[:, ln])
        for j, t in enumerate(taps):
            s = n_l + ln * nj + j
            g[ln * cols + t, s] = g[s, ln * cols + t] = -g_tap
            g[s, s] += g_tap + (g_pad if ln == 0 else 0) + (g_last if ln == lines - 1 else 0)
            if ln > 0:
                g[s, s] += g_p
                g[s - nj, s - nj] += g_p
                g[s, s - nj] = g[s - nj, s] = -g_p
    x = np.linalg.solve(g, np.concatenate([b.T.ravel(), by.ravel()]))
    np.testing.assert_allclose(out.T.ravel(), x[:n_l], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(oy.ravel(), x[n_l:], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell_type,over,scale", [
    ("split_gate", {}, 80.0), ("stacked_gate", {}, 80.0),
    ("split_gate", {"array.wires.sl_layout": "cols"}, 80.0),
    # a clamp of gain 10 (output resistance 0.9 kOhm before scaling): heavier at x20
    ("split_gate", {"array.wires.sl_pair_shared": False, "array.sense.clamp_gain": 10.0}, 20.0),
    ("split_gate", {"array.wires.strap_model": "ideal"}, 80.0),
    ("split_gate", {"array.wires.strap_pads": "one", "array.wires.strap_pitch_cols": 4}, 80.0)])
def test_newton_kernel_equals_reference_path_under_heavy_ir(cell_type, over, scale):
    cfg = _cfg(cell_type, **over)
    vth, wl, model = tile(cfg, 20, 14, seed=30, lo=0.3e-6, hi=1e-6, batch=5)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(scale))
    fast = solver.solve(wl, method="newton")
    assert solver.last_stats["reference_vectors"] == 0  # every vector solved in the kernel
    ref = solver.solve(wl, method="reference")
    scale = np.abs(ref.column_currents).max()
    # the IR effect of the all-rows-on vector: above issue 19's 20 % stress threshold
    ideal = fast.ideal_column_currents[0]
    assert ((ideal - fast.column_currents[0]) / ideal).max() > 0.2
    assert np.abs(fast.column_currents - ref.column_currents).max() <= 1e-9 * scale
    assert np.abs(fast.cell_currents - ref.cell_currents).max() <= 1e-9 * scale
    for a, b in ((fast.bl_drop, ref.bl_drop), (fast.sl_drop, ref.sl_drop)):
        assert np.abs(a - b).max() <= 1e-10
    np.testing.assert_array_equal(fast.ideal_column_currents, ref.ideal_column_currents)


@pytest.mark.parametrize("n,scale", [(64, 50.0), (128, 20.0)])
def test_issue_cases_solved_by_the_newton_kernel(n, scale):
    """The two cases that diverged before issue 19 (every row on): the default 'auto' solve
    takes the Newton kernel, which solves every vector, at an exact operating point."""
    cfg = _cfg()
    vth, wl, model = tile(cfg, n, n, seed=3, batch=2)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(scale))
    res = solver.solve(wl)
    assert solver.last_stats["newton_vectors"] == 2
    assert solver.last_stats["reference_vectors"] == 0
    assert_operating_point(solver, res, wl, vth, model, cfg, min_ir_effect=0.0)
    assert 1 - res.column_currents[0].sum() / res.ideal_column_currents[0].sum() > 0.05
