"""Circuit mode: closed forms, the R -> 0 limit, KCL, batching, errors."""

import numpy as np
import pytest
from _circuit_helpers import assert_operating_point, tile

from norsim.array import circuit
from norsim.array.circuit import CircuitSolver, ir_drop_map, solve_tile, wire_network
from norsim.config.presets import load_preset
from norsim.device.iv import cell_model
from norsim.errors import ConfigError, ConvergenceError, InputError


def _cfg(cell_type="split_gate", **over):
    cfg = load_preset("nor40").with_overrides([f"device.cell.cell_type='{cell_type}'"])
    if over:
        cfg = cfg.with_overrides(over)
    return cfg


@pytest.mark.parametrize("cell_type", ["split_gate", "stacked_gate"])
def test_fast_mode_is_the_r_to_zero_limit_error_proportional_to_r(cell_type):
    cfg = _cfg(cell_type)
    vth, wl, model = tile(cfg, 16, 12, seed=1)
    errs = []
    scales = [1e-1, 1e-2, 1e-3]
    for s in scales:
        res = solve_tile(vth, wl, cfg, model, wires=cfg.array.wires.scaled(s))
        ideal = res.ideal_column_currents
        errs.append(np.abs(res.column_currents - ideal).max() / ideal.max())
    errs = np.array(errs)
    assert errs[-1] < 1e-5
    ratio = errs / np.array(scales)  # error / R is constant: first order in R
    assert np.all(np.abs(ratio / ratio[-1] - 1.0) < 0.02), ratio
    # the fast-mode reference is the cell I-V at the clamp's open-circuit voltage
    a = cfg.array.sense.clamp_gain
    v_clamp = cfg.device.read.v_bl_read_v * a / (1 + a)
    direct = model.current(wl[:, :, None], cfg.device.read.v_cg_read_v, v_clamp,
                           cfg.device.read.v_sl_read_v, vth).sum(axis=1)
    np.testing.assert_allclose(res.ideal_column_currents, direct, rtol=1e-12)


def test_uniformly_loaded_bit_line_matches_closed_form():
    # stacked-gate cells without DIBL draw a current independent of V_D (the reverse term is
    # ~e^(-V_DS/U_T) = e^-58 at V_DS = 1.5 V), so a column of identical cells is a uniformly
    # loaded line driven at row 0
    cfg = _cfg("stacked_gate", **{"device.cell.dibl_eta": 0.0, "array.sense.clamp_gain": 1e9,
                                   "device.read.v_bl_read_v": 1.5})
    rows, cols = 40, 3
    wires = cfg.array.wires.replace(r_bl_segment_ohm=2.0, r_sl_segment_ohm=1e-9, r_strap_ohm=0.0,
                                    r_bl_terminal_ohm=0.0, clamp_gm_s=1e6, strap_model="ideal")
    model = cell_model(cfg.device.cell, cfg.device.read.temperature_k)
    vth = np.full((rows, cols), 0.9)
    wl = np.full((1, rows), cfg.device.read.v_cg_read_v)
    res = solve_tile(vth, wl, cfg, model, wires=wires)
    i_cell = res.cell_currents[0, 0, 0]
    np.testing.assert_allclose(res.cell_currents[0], i_cell, rtol=1e-12)
    k = np.arange(1, rows + 1)
    expected = i_cell * 2.0 * k * (2 * rows - k + 1) / 2.0
    np.testing.assert_allclose(res.bl_drop[0, :, 1], expected, rtol=1e-7)
    assert np.abs(res.sl_drop).max() < 1e-12


@pytest.mark.parametrize("layout,shared", [("cols", False), ("rows", True), ("rows", False)])
def test_uniformly_loaded_source_line_matches_closed_form(layout, shared):
    cfg = _cfg()
    wires = cfg.array.wires.replace(sl_layout=layout, sl_pair_shared=shared, r_sl_segment_ohm=3.0,
                                    r_strap_ohm=0.0, r_sl_driver_ohm=0.0, strap_pitch_cols=1000,
                                    strap_model="ideal")
    rows, cols = 10, 24
    net = wire_network(rows, cols, wires, 1000.0)
    i = 7e-8
    rise = net.sl_rise(np.full((2, rows, cols), i))
    if layout == "cols":  # driven at row 0 only: dV_k = I R k (2N - k + 1) / 2
        k = np.arange(1, rows + 1)
        np.testing.assert_allclose(rise[1, :, 5], i * 3.0 * k * (2 * rows - k + 1) / 2, rtol=1e-10)
    else:  # strapped at both ends of each row line: V_k = I' R k (N + 1 - k) / 2
        k = np.arange(1, cols + 1)
        load = i * (2 if shared else 1)
        np.testing.assert_allclose(rise[0, 3, :], load * 3.0 * k * (cols + 1 - k) / 2, rtol=1e-10)
        if shared:
            np.testing.assert_array_equal(rise[:, 2, :], rise[:, 3, :])


def _dense_reference_rise(rows, cols, w, i):
    """Hand-built nodal analysis of strapped row source lines (no pair sharing)."""
    n = rows * cols
    g = np.zeros((n, n))
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c
            if c > 0:
                j = k - 1
                gs = 1.0 / w.r_sl_segment_ohm
                g[k, k] += gs
                g[j, j] += gs
                g[k, j] -= gs
                g[j, k] -= gs
            if c % w.strap_pitch_cols == 0 or c == cols - 1:
                g[k, k] += 1.0 / (w.r_sl_segment_ohm + w.r_strap_ohm)
    return np.linalg.solve(g, i.reshape(-1)).reshape(rows, cols)


def test_strapped_source_lines_match_dense_nodal_analysis():
    cfg = _cfg()
    w = cfg.array.wires.replace(r_strap_ohm=4.0, strap_pitch_cols=8, sl_pair_shared=False,
                                r_sl_segment_ohm=1.5, strap_model="ideal")
    rows, cols = 3, 21  # taps at columns 0, 8, 16 and 20
    net = wire_network(rows, cols, w, 1000.0)
    i = np.random.default_rng(8).uniform(0, 1e-6, (rows, cols))
    np.testing.assert_allclose(net.sl_rise(i[None])[0], _dense_reference_rise(rows, cols, w, i),
                               rtol=1e-10)
    # a strap every 8 columns lowers the worst rise of a uniform load against one at each end
    far = wire_network(rows, cols, w.replace(strap_pitch_cols=1000), 1000.0)
    u = np.full((1, rows, cols), 1e-7)
    assert net.sl_rise(u).max() < 0.5 * far.sl_rise(u).max()


@pytest.mark.parametrize("cell_type", ["split_gate", "stacked_gate"])
def test_kcl_signs_and_batch_equals_single(cell_type):
    cfg = _cfg(cell_type)
    vth, wl, model = tile(cfg, 24, 10, seed=2, batch=4)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(20.0))
    res = solver.solve(wl)
    # KCL at the clamp: the terminal resistor carries the column sum
    g_t = solver.network.g_bl_terminal
    np.testing.assert_allclose(g_t * res.bl_drop[:, 0, :], res.column_currents, rtol=1e-6)
    assert res.bl_drop.min() >= 0 and res.sl_drop.min() >= 0
    assert np.all(res.column_currents < res.ideal_column_currents)  # IR drop lowers currents
    # the drops are the voltages of the solved nodes
    a = cfg.array.sense.clamp_gain
    np.testing.assert_allclose(res.bl_node_v, 0.3 * a / (1 + a) - res.bl_drop, rtol=0, atol=1e-15)
    for b in range(wl.shape[0]):
        one = solver.solve(wl[b])
        np.testing.assert_allclose(one.column_currents[0], res.column_currents[b], rtol=1e-9)
    # every cell obeys its I-V at the solved node voltages
    i_check = model.current(wl[:, :, None], cfg.device.read.v_cg_read_v, res.bl_node_v,
                            res.sl_node_v, vth)
    np.testing.assert_allclose(res.cell_currents, i_check, rtol=1e-8, atol=1e-20)


def test_ir_drop_map_parts_sum_and_separate():
    cfg = _cfg()
    vth, wl, model = tile(cfg, 16, 16, seed=3)
    m = ir_drop_map(vth, wl, cfg, model, wires=cfg.array.wires.scaled(10.0))
    np.testing.assert_allclose(m.bl_part_a + m.sl_part_a, m.cell_error_a, rtol=1e-9, atol=1e-22)
    assert np.all(m.bl_part_a[m.ideal_cell_currents > 1e-9] < 0)
    # no source-line resistance -> no source-line part
    w = cfg.array.wires.replace(r_sl_segment_ohm=1e-9, r_strap_ohm=0.0, strap_model="ideal")
    m2 = ir_drop_map(vth, wl, cfg, model, wires=w)
    assert np.abs(m2.sl_part_a).max() < 1e-8 * np.abs(m2.bl_part_a).max()


def test_non_convergence_raises_clear_error():
    cfg = _cfg()
    vth, wl, model = tile(cfg, 16, 16, seed=4, lo=0.3e-6, hi=1e-6)
    wires = cfg.array.wires.scaled(20.0).replace(solver_max_iter=2)
    with pytest.raises(ConvergenceError, match="did not converge.*solver_max_iter"):
        solve_tile(vth, wl, cfg, model, wires=wires)


def test_bad_input_names_the_field():
    cfg = _cfg()
    vth, wl, model = tile(cfg, 8, 8)
    bad = vth.copy()
    bad[2, 3] = np.nan
    with pytest.raises(InputError, match="vth_map"):
        solve_tile(bad, wl, cfg, model)
    with pytest.raises(InputError, match="wl_voltages_batch"):
        solve_tile(vth, wl[:, :5], cfg, model)
    wl_bad = wl.copy()
    wl_bad[0, 0] = np.inf
    with pytest.raises(InputError, match="wl_voltages_batch"):
        solve_tile(vth, wl_bad, cfg, model)
    with pytest.raises(ConfigError, match="r_bl_segment_ohm"):
        cfg.with_overrides(["array.wires.r_bl_segment_ohm=-1.0"])
    with pytest.raises(ConfigError, match="r_strap_ohm"):
        solve_tile(vth, wl, cfg, model, wires=cfg.array.wires.replace(r_strap_ohm=-5.0))


def test_multi_level_word_lines_take_the_direct_path():
    cfg = _cfg()
    vth, _, model = tile(cfg, 12, 8, seed=5)
    wl = np.random.default_rng(5).uniform(0.0, 1.8, (6, 12))  # 72 distinct levels
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(20.0))
    res = solver.solve(wl)
    i_check = model.current(wl[:, :, None], cfg.device.read.v_cg_read_v, res.bl_node_v,
                            res.sl_node_v, vth)
    np.testing.assert_allclose(res.cell_currents, i_check, rtol=1e-8, atol=1e-20)
    nominal = solver.nominal(wl)[0]
    np.testing.assert_allclose(nominal.sum(axis=1), res.ideal_column_currents, rtol=1e-12)


def test_anderson_acceleration_reaches_the_same_solution():
    cfg = _cfg()
    vth, wl, model = tile(cfg, 16, 12, seed=6, lo=0.3e-6, hi=1e-6)
    w = cfg.array.wires.scaled(20.0)
    # plain sweeps: the reference path without Anderson mixing
    plain = CircuitSolver(vth, cfg, model, wires=w).solve(wl, method="reference")
    acc = solve_tile(vth, wl, cfg, model, wires=w.replace(anderson_depth=3))
    np.testing.assert_allclose(acc.column_currents, plain.column_currents, rtol=1e-9)
    assert acc.inner_iterations <= plain.inner_iterations


def test_far_beyond_the_envelope_the_circuit_still_has_its_operating_point():
    # column currents x wire resistance far above the bit-line bias (wires x3000): the sweeps
    # diverge, damped Newton finds the operating point: each cell's current is its I-V at its
    # node voltages, and the starved columns deliver far less than the nominal current
    cfg = _cfg()
    vth, wl, model = tile(cfg, 16, 8, seed=7, lo=1e-6, hi=5e-6)
    res = solve_tile(vth, wl, cfg, model, wires=cfg.array.wires.scaled(3000.0))
    i_check = model.current(wl[:, :, None], cfg.device.read.v_cg_read_v, res.bl_node_v,
                            res.sl_node_v, vth)
    np.testing.assert_allclose(res.cell_currents, i_check, rtol=1e-9, atol=1e-18)
    assert np.all(res.column_currents >= 0)
    assert res.column_currents[0].sum() < 0.5 * res.ideal_column_currents[0].sum()


# --------------------------------------------- per-vector kernel vs reference path ----
@pytest.mark.parametrize("cell_type,over", [
    ("split_gate", {}), ("stacked_gate", {}),
    ("split_gate", {"array.wires.sl_layout": "cols"}),
    ("split_gate", {"array.wires.sl_pair_shared": False, "array.sense.clamp_gain": 10.0})])
def test_kernel_equals_reference_path(cell_type, over, monkeypatch):
    monkeypatch.setattr(circuit, "NEWTON_LOOP_GAIN", np.inf)  # the default kernel first
    cfg = _cfg(cell_type, **over)
    vth, wl, model = tile(cfg, 20, 14, seed=30, batch=6)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(20.0))
    fast = solver.solve(wl)
    assert solver.last_stats["reference_vectors"] == 0  # every vector certified in-kernel
    ref = solver.solve(wl, method="reference")
    assert solver.last_stats is None
    scale = np.abs(ref.column_currents).max()
    assert np.abs(fast.column_currents - ref.column_currents).max() <= 1e-9 * scale
    assert np.abs(fast.cell_currents - ref.cell_currents).max() <= 1e-9 * scale
    for a, b in ((fast.bl_drop, ref.bl_drop), (fast.sl_drop, ref.sl_drop),
                 (fast.bl_node_v, ref.bl_node_v), (fast.sl_node_v, ref.sl_node_v)):
        assert np.abs(a - b).max() <= 1e-11
    np.testing.assert_array_equal(fast.ideal_column_currents, ref.ideal_column_currents)
    np.testing.assert_array_equal(fast.iterations, ref.iterations)


def test_kernel_answer_is_a_full_exact_solution():
    """Without any cell evaluated by the local model: the returned node voltages and
    currents solve the complete nonlinear network. Every cell's exact I-V at the returned
    nodes matches the returned current, and the wire network carries those currents to the
    returned drops."""
    cfg = _cfg()
    vth, wl, model = tile(cfg, 48, 40, seed=31, batch=8)
    wl[1] = cfg.device.read.v_select_off_v  # every row off
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(5.0))
    res = solver.solve(wl)
    assert solver.last_stats["reference_vectors"] == 0
    read = cfg.device.read
    exact = model.current(wl[:, :, None], read.v_cg_read_v, res.bl_node_v, res.sl_node_v, vth,
                          fast=False)
    scale = np.abs(exact).max()
    assert np.abs(res.cell_currents - exact).max() <= 1e-9 * scale
    net = solver.network
    np.testing.assert_allclose(net.bl_drop(res.cell_currents), res.bl_drop, rtol=0,
                               atol=1e-14)
    np.testing.assert_allclose(net.sl_rise(res.cell_currents), res.sl_drop, rtol=0,
                               atol=1e-14)
    # the residual of the full system at the returned drops, in volts, is within tolerance
    tol = cfg.array.wires.solver_tol_v
    assert np.abs(net.bl_drop(exact) - res.bl_drop).max() <= tol
    assert np.abs(net.sl_rise(exact) - res.sl_drop).max() <= tol
    np.testing.assert_allclose(res.column_currents, res.cell_currents.sum(axis=1), rtol=1e-14)


def test_uncertified_vectors_go_to_the_newton_kernel(monkeypatch):
    # drops of ~0.2 V (IR error ~37 %): the contraction bound of the vectors with rows on
    # exceeds 1/2, so the default kernel cannot certify their sweeps; the Newton kernel
    # solves them (here the default kernel is made to go first)
    monkeypatch.setattr(circuit, "NEWTON_LOOP_GAIN", np.inf)
    cfg = _cfg()
    vth, wl, model = tile(cfg, 16, 12, seed=32, lo=0.3e-6, hi=1e-6, batch=5)
    wl[2:] = cfg.device.read.v_select_off_v  # these draw nothing: certified in the kernel
    wires = cfg.array.wires.scaled(150.0)
    solver = CircuitSolver(vth, cfg, model, wires=wires)
    res = solver.solve(wl)
    st = solver.last_stats
    assert st["status"][:2].min() == 1 and st["status"][2:].max() == 0
    assert st["newton_vectors"] == 2 and st["reference_vectors"] == 0
    ref = solver.solve(wl, method="reference")
    np.testing.assert_allclose(res.column_currents, ref.column_currents, rtol=1e-9)
    np.testing.assert_allclose(res.bl_drop, ref.bl_drop, rtol=0, atol=1e-11)


def test_non_convergence_names_the_vector_of_the_batch():
    cfg = _cfg()
    vth, wl, model = tile(cfg, 16, 16, seed=4, lo=0.3e-6, hi=1e-6, batch=3)
    wl[:2] = cfg.device.read.v_select_off_v
    wl[2] = cfg.device.read.v_select_on_v
    wires = cfg.array.wires.scaled(20.0).replace(solver_max_iter=2)
    with pytest.raises(ConvergenceError, match="vector 2 still moves"):
        solve_tile(vth, wl, cfg, model, wires=wires)


def test_unknown_method_is_an_input_error():
    cfg = _cfg()
    vth, wl, model = tile(cfg, 4, 4)
    with pytest.raises(InputError, match="method"):
        CircuitSolver(vth, cfg, model).solve(wl, method="fast")


def test_damped_newton_equals_the_reference_path_where_both_converge():
    """The fallback is an independent method (sparse nodal Newton): on a moderate case it
    reaches the reference path's operating point."""
    cfg = _cfg()
    vth, wl, model = tile(cfg, 24, 20, seed=8, lo=0.1e-6, hi=0.5e-6, batch=3)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(20.0))
    ref = solver.solve(wl, method="reference")
    for b in range(wl.shape[0]):
        nw = solver._solve_newton(wl[b], b)
        np.testing.assert_allclose(nw.column_currents[0], ref.column_currents[b], rtol=1e-9)
        np.testing.assert_allclose(nw.bl_drop[0], ref.bl_drop[b], rtol=0, atol=1e-10)
        np.testing.assert_allclose(nw.sl_drop[0], ref.sl_drop[b], rtol=0, atol=1e-10)


@pytest.mark.parametrize("layout", ["rows", "cols"])
def test_heavy_ir_drop_solution_satisfies_kcl(layout):
    """Where the sweeps diverge (stress currents, all rows on, wires x50) the solve returns
    an operating point: every cell's current is its I-V at its node voltages, and the wire
    network carries exactly those currents (bit-line and source-line KCL)."""
    cfg = _cfg(**{"array.wires.sl_layout": layout, "array.wires.strap_model": "ideal"})
    vth, wl, model = tile(cfg, 64, 64, seed=1, lo=0.3e-6, hi=1e-6, p_on=1.0, batch=1)
    wires = cfg.array.wires.scaled(50.0)
    solver = CircuitSolver(vth, cfg, model, wires=wires)
    if layout == "rows":     # the sweeps diverge here: solve() falls back to damped Newton
        with pytest.raises(ConvergenceError), np.errstate(over="ignore", invalid="ignore"):
            solver._solve_reference(wl)        # (solve() itself runs under this errstate)
        res = solver.solve(wl)
    else:                    # the sweeps converge here: the Newton path checked on its own
        res = solver._solve_newton(wl[0], 0)
    assert_operating_point(solver, res, wl, vth, model, cfg)
