"""Circuit mode's ground network: shared vertical straps, their pads, and bad wire values."""

import numpy as np
import pytest
from _circuit_helpers import assert_operating_point, tile

from norsim.array.circuit import CircuitSolver, wire_network
from norsim.config.presets import load_preset
from norsim.errors import ConfigError, InputError


def _dense_strap_rise(rows, cols, w, i):
    """Hand-built nodal analysis of row source lines with shared vertical straps: node
    (line, c) for the lines, one node per (line, strap) for the straps, pads to ground."""
    n_lines = (rows + 1) // 2 if w.sl_pair_shared else rows
    line = (lambda r: r // 2) if w.sl_pair_shared else (lambda r: r)
    taps = [c for c in range(cols) if c % w.strap_pitch_cols == 0 or c == cols - 1]
    n_l = n_lines * cols
    n = n_l + n_lines * len(taps)
    g = np.zeros((n, n))

    def res(a, b, r_ohm):  # resistor between nodes a and b (b None: ground)
        gg = 1.0 / r_ohm
        g[a, a] += gg
        if b is not None:
            g[b, b] += gg
            g[a, b] -= gg
            g[b, a] -= gg

    for ln in range(n_lines):
        for c in range(1, cols):
            res(ln * cols + c, ln * cols + c - 1, w.r_sl_segment_ohm)
        for j, c in enumerate(taps):
            st = n_l + ln * len(taps) + j
            res(ln * cols + c, st, w.r_sl_segment_ohm + w.r_strap_ohm)
            if ln > 0:
                res(st, st - len(taps), w.r_strap_pitch_ohm)
            if ln == 0:
                res(st, None, w.r_strap_pad_ohm)
            if ln == n_lines - 1 and w.strap_pads == "both":
                res(st, None, w.r_strap_pad_ohm)
    rhs = np.zeros(n)
    for r in range(rows):
        for c in range(cols):
            rhs[line(r) * cols + c] += i[r, c]
    x = np.linalg.solve(g, rhs)
    return np.array([[x[line(r) * cols + c] for c in range(cols)] for r in range(rows)])


def _wires(**over):
    base = dict(strap_model="network", strap_pitch_cols=8, r_strap_pitch_ohm=1.5,
                r_strap_pad_ohm=3.0, r_strap_ohm=4.0, r_sl_segment_ohm=1.2)
    base.update(over)
    return load_preset("nor40").array.wires.replace(**base)


@pytest.mark.parametrize("shared,pads,rows", [(True, "both", 14), (False, "one", 9),
                                              (True, "one", 13), (False, "both", 1)])
def test_strap_network_matches_hand_built_nodal_analysis(shared, pads, rows):
    w = _wires(sl_pair_shared=shared, strap_pads=pads)
    cols = 21  # taps at columns 0, 8, 16 and 20
    net = wire_network(rows, cols, w, 1000.0)
    i = np.random.default_rng(5).uniform(0, 1e-6, (2, rows, cols))
    got = net.sl_rise(i)
    for b in range(2):
        np.testing.assert_allclose(got[b], _dense_strap_rise(rows, cols, w, i[b]), rtol=1e-11)


def test_strap_network_limits_and_monotonicity():
    rows, cols = 16, 40
    u = np.full((1, rows, cols), 1e-7)
    # metal and pads -> 0: the ideal-tap model (each tap to its own ground)
    tiny = _wires(r_strap_pitch_ohm=1e-7, r_strap_pad_ohm=1e-7)
    ideal = _wires(strap_model="ideal")
    np.testing.assert_allclose(wire_network(rows, cols, tiny, 1e3).sl_rise(u),
                               wire_network(rows, cols, ideal, 1e3).sl_rise(u), rtol=1e-5)
    # the shared strap raises every source line; more metal, fewer pads: higher still
    r_ideal = wire_network(rows, cols, ideal, 1e3).sl_rise(u)
    r1 = wire_network(rows, cols, _wires(), 1e3).sl_rise(u)
    r2 = wire_network(rows, cols, _wires(r_strap_pitch_ohm=3.0), 1e3).sl_rise(u)
    r_one = wire_network(rows, cols, _wires(strap_pads="one"), 1e3).sl_rise(u)
    assert np.all(r1 > r_ideal)
    assert r2.max() > r1.max() and np.all(r2[0, rows // 2] > r1[0, rows // 2])
    assert r_one.max() > r1.max()
    # both pads: the rise is symmetric about the middle of the strap; one pad: worst at the end
    np.testing.assert_allclose(r1[0], r1[0, ::-1], rtol=1e-9)
    assert r_one[0, -1].max() > r_one[0, 0].max()


@pytest.mark.parametrize("cell_type", ["split_gate", "stacked_gate"])
def test_strap_network_kernel_reference_and_newton_agree(cell_type):
    cfg = load_preset("nor40").with_overrides([f"device.cell.cell_type='{cell_type}'"])
    vth, wl, model = tile(cfg, 24, 36, seed=3, lo=0.05e-6, hi=0.3e-6)
    solver = CircuitSolver(vth, cfg, model, wires=_wires(strap_pads="one").scaled(3.0))
    fused = solver.solve(wl)
    assert solver.last_stats["reference_vectors"] == 0  # the kernel solved them itself
    ref = solver.solve(wl, method="reference")
    np.testing.assert_allclose(fused.column_currents, ref.column_currents, rtol=1e-9)
    for b in range(wl.shape[0]):
        nw = solver._solve_newton(wl[b], b)
        np.testing.assert_allclose(nw.column_currents[0], fused.column_currents[b], rtol=1e-9)
        np.testing.assert_allclose(nw.sl_drop[0], fused.sl_drop[b], rtol=0, atol=1e-11)
    # the drops are the network's response to the cells' exact currents (KCL)
    i_check = model.current(wl[:, :, None], cfg.device.read.v_cg_read_v, fused.bl_node_v,
                            fused.sl_node_v, vth)
    np.testing.assert_allclose(fused.cell_currents, i_check, rtol=1e-8, atol=1e-20)
    np.testing.assert_allclose(solver.network.sl_rise(fused.cell_currents), fused.sl_drop,
                               rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("field", ["r_bl_segment_ohm", "r_sl_segment_ohm", "r_strap_pitch_ohm",
                                   "r_strap_pad_ohm", "clamp_gm_s"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_bad_wire_values_are_one_line_errors_naming_the_field(field, value):
    cfg = load_preset("nor40")
    with pytest.raises(ConfigError, match=f"array.wires.{field}") as exc:
        CircuitSolver(np.full((4, 4), 1.0), cfg, wires=cfg.array.wires.replace(**{field: value}))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("field", ["r_strap_ohm", "r_bl_terminal_ohm", "r_sl_driver_ohm"])
def test_negative_contact_resistances_are_errors(field):
    cfg = load_preset("nor40")
    with pytest.raises(ConfigError, match=f"array.wires.{field}"):
        CircuitSolver(np.full((4, 4), 1.0), cfg, wires=cfg.array.wires.replace(**{field: -1.0}))


def test_strap_pitch_beyond_the_array_and_nan_biases_are_errors():
    cfg = load_preset("nor40")
    wide = cfg.array.wires.replace(strap_pitch_cols=cfg.array.cols + 1)
    with pytest.raises(ConfigError, match="array.wires.strap_pitch_cols.*array.cols"):
        CircuitSolver(np.full((4, 4), 1.0), cfg, wires=wide)
    read = cfg.device.read.replace(v_sl_read_v=float("nan"))
    bad = cfg.replace(device=cfg.device.replace(read=read))
    with pytest.raises(ConfigError, match="device.read.v_sl_read_v"):
        CircuitSolver(np.full((4, 4), 1.0), bad)
    solver = CircuitSolver(np.full((4, 4), 1.0), cfg)
    with pytest.raises(InputError, match="wl_voltages_batch"):
        solver.solve(np.array([[1.0, np.nan, 1.0, 1.0]]))


def test_thomas_varying_equals_dense_solve():
    from norsim.array.circuit_kernels import thomas_varying, thomas_varying_reference

    rng = np.random.default_rng(2)
    diag = rng.uniform(2.1, 3.0, (9, 7))
    rhs = rng.normal(size=(9, 7))
    out = np.empty_like(rhs)
    thomas_varying(diag, -1.0, rhs, out)
    np.testing.assert_allclose(out, thomas_varying_reference(diag, -1.0, rhs), rtol=1e-12)


@pytest.mark.parametrize("cell_type,layout", [("split_gate", "rows"), ("stacked_gate", "rows"),
                                              ("split_gate", "cols")])
def test_newton_krylov_equals_sparse_lu_newton_on_heavy_ir(cell_type, layout):
    """The batched Newton-Krylov path (matrix-free GMRES, line-chain preconditioner, the
    kernel's exact cell evaluation) reaches the sparse-LU Newton's operating point where the
    sweeps diverge (every row on, 0.3-1 uA cells, wires x50)."""
    cfg = load_preset("nor40").with_overrides([f"device.cell.cell_type='{cell_type}'",
                                               f"array.wires.sl_layout='{layout}'"])
    vth, wl, model = tile(cfg, 32, 32, seed=7, lo=0.3e-6, hi=1e-6, p_on=0.7, batch=3)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(50.0))
    res, ok = solver._solve_newton_krylov(wl)
    assert ok.all()
    for b in range(wl.shape[0]):
        nw = solver._solve_newton(wl[b], b)
        np.testing.assert_allclose(res.column_currents[b], nw.column_currents[0], rtol=1e-9)
        np.testing.assert_allclose(res.sl_drop[b], nw.sl_drop[0], rtol=0, atol=1e-10)
        np.testing.assert_allclose(res.bl_drop[b], nw.bl_drop[0], rtol=0, atol=1e-10)
    assert 1 - res.column_currents[0].sum() / res.ideal_column_currents[0].sum() > 0.2


@pytest.mark.parametrize("n,scale,temp_k", [(128, 20.0, 300.0), (96, 100.0, 358.15),
                                            (96, 100.0, 233.15)])
def test_envelope_cases_converge_to_an_operating_point(n, scale, temp_k):
    """The issue's second diverging case (128 x 128, wires x20, every row on, 0.3-1 uA cells)
    and x100 corners at both temperature ends: solve() returns a point where every cell
    obeys its exact I-V and the wires carry exactly those currents (KCL)."""
    cfg = load_preset("nor40").with_overrides([f"device.read.temperature_k={temp_k}"])
    vth, wl, model = tile(cfg, n, n, seed=13, lo=0.3e-6, hi=1e-6, p_on=1.0, batch=1)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(scale))
    res = solver.solve(wl)
    assert_operating_point(solver, res, wl, vth, model, cfg)
