"""Circuit-mode numba kernels equal their NumPy reference twins."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from norsim.array.circuit_kernels import (FactorSolver, local_model_lines_reference,
                                          split_gate_reference, split_gate_warm)
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


# ------------------------------------------------------- per-vector kernel pieces ----
def _ulps(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b) / np.spacing(np.maximum(np.abs(b), np.finfo(float).tiny))


def test_branch_free_exp_and_log1p_match_numpy():
    from norsim.array.circuit_kernels import exp_nonpos, log1p_unit

    rng = np.random.default_rng(20)
    x = np.concatenate([-rng.uniform(0, 40, 3000), -rng.uniform(0, 740, 2000),
                        -10.0 ** rng.uniform(-300, 0, 500),
                        [0.0, -0.0, -1e-300, -0.5 * np.log(2), -700.0, -745.0]])
    got = np.array([exp_nonpos(v) for v in x])
    normal = np.exp(x) > np.finfo(float).tiny
    assert _ulps(got[normal], np.exp(x[normal])).max() <= 2
    assert np.abs(got[~normal] - np.exp(x[~normal])).max() <= 4 * 5e-324
    assert exp_nonpos(-np.inf) == 0.0 and exp_nonpos(-800.0) == 0.0
    e = np.concatenate([rng.uniform(0, 1, 3000), 10.0 ** rng.uniform(-300, 0, 1000),
                        [0.0, 5e-324, 1e-17, np.sqrt(2) - 1, np.nextafter(np.sqrt(2) - 1, 1),
                         1.0]])
    got = np.array([log1p_unit(v) for v in e])
    pos = e > 0
    assert _ulps(got[pos], np.log1p(e[pos])).max() <= 2
    assert log1p_unit(0.0) == 0.0


def test_vectorisable_ekv_equals_device_point():
    from norsim.array.circuit_kernels import _ekv_v
    from norsim.device.iv import _ekv_point

    rng = np.random.default_rng(21)
    for _ in range(400):
        args = (rng.uniform(-0.5, 2.0), rng.uniform(0, 1), rng.uniform(0, 0.3),
                rng.uniform(-0.5, 2.5), rng.uniform(1.1, 1.6), rng.uniform(0.5, 1.0),
                rng.uniform(1e-4, 1e-3), rng.uniform(0, 0.05), 0.0258)
        fast = _ekv_v(*args)
        ref = _ekv_point(*args)
        # I_f + I_r is the rounding scale of the current; e^x far below threshold carries the
        # rounding of its argument x ~ -50 (a few 1e-15 relative): 1e-13
        scale = ref[3]
        assert abs(fast[0] - ref[0]) <= 1e-13 * scale + 1e-300
        for f, r in zip(fast[1:3], ref[1:3]):
            assert abs(f - r) <= 1e-13 * (abs(ref[1]) + abs(ref[2])) + 1e-300
        assert abs(fast[3] - scale) <= 1e-13 * scale


@pytest.mark.parametrize("split", [True, False])
def test_exact_row_equals_scalar_cell_solve(split):
    """The vectorised one-Newton-step row evaluation gives the values of
    ``_split_point`` / the EKV point, including cells it must redo in scalar."""
    from norsim.array.circuit_kernels import (INTERNAL_NODE_STEP_V, _ekv, _exact_row,
                                              _split_point)

    cfg = load_preset("nor40").with_overrides(
        [f"device.cell.cell_type='{'split_gate' if split else 'stacked_gate'}'"])
    model = cell_model(cfg.device.cell, 300.0)
    fg, sel = model.fg, model.sel
    rng = np.random.default_rng(22)
    c = 64
    v_cg, v_bl, v_sl, vwl = 1.0, 0.3, 0.0, 1.8
    vth = rng.uniform(0.0, 1.5, c) + fg.dvth
    n = np.full(c, fg.n)
    beta = rng.uniform(3e-4, 7e-4, c)
    eta = np.full(c, fg.dibl_eta)
    u, v = rng.uniform(0, 2e-3, c), rng.uniform(0, 5e-5, c)
    ua, va = u - rng.uniform(0, 1e-4, c), v - rng.uniform(0, 1e-6, c)
    sel_vth = model.select_vth + sel.dvth if split else 0.0
    sp = (sel.n, sel.beta, sel.dibl_eta) if split else (1.0, 1.0, 0.0)
    xa = np.zeros(c)
    xda = np.zeros(c)
    xsa = np.zeros(c)
    for k in range(c):  # the previous anchor: solved exactly at (ua, va)
        if split:
            _, _, _, xa[k], xda[k], xsa[k] = _split_point(
                vwl, v_cg, v_bl - ua[k], v_sl + va[k], vth[k], n[k], beta[k], eta[k], np.nan,
                fg.alpha_g, fg.u_t, sel_vth, *sp, 200, INTERNAL_NODE_STEP_V)
    xa[:3] = [np.nan, 5.0, -5.0]  # predictions outside the bracket: the scalar redo
    u[3] = v_bl - (v_sl + v[3])  # V_D = V_S
    x0 = xa - xda * (u - ua) + xsa * (v - va)
    wa_max = rng.uniform(0.5, 2.0, c) * 1e-7
    wa_max[5] = 0.0
    wb_max = rng.uniform(0.5, 2.0, c) * 1e-6
    ia, la, lb = np.empty(c), np.empty(c), np.empty(c)
    buf = np.empty((10, c))
    xa_out, xda_out, xsa_out = xa.copy(), xda.copy(), xsa.copy()
    _exact_row(split, vwl, v_cg, v_bl, v_sl, u, v, ua, va, vth, n, beta, eta, fg.alpha_g,
               fg.u_t, sel_vth, *sp, 200, INTERNAL_NODE_STEP_V, wa_max, wb_max, ia, la, lb,
               xa_out, xda_out, xsa_out, buf)
    for k in range(c):
        if split:
            ref = _split_point(vwl, v_cg, v_bl - u[k], v_sl + v[k], vth[k], n[k], beta[k],
                               eta[k], x0[k], fg.alpha_g, fg.u_t, sel_vth, *sp, 200,
                               INTERNAL_NODE_STEP_V)
        else:
            ref = _ekv(vwl, v_bl - u[k], v_sl + v[k], vth[k], n[k], fg.alpha_g, beta[k],
                       eta[k], fg.u_t)
        i, gd, gs = ref[:3]
        assert abs(ia[k] - i) <= 1e-12 * abs(i) + 1e-25
        if i > 0:
            np.testing.assert_allclose([la[k], lb[k]], [gd / i, gs / i], rtol=1e-10, atol=1e-12)
            w1, w2 = abs(gd / i) * i, abs(gs / i) * i
            q = max(w1 / wa_max[k] if wa_max[k] > 0 else np.inf, w2 / wb_max[k])
            assert buf[7, k] == pytest.approx(q, rel=1e-12)
            assert buf[8, k] == pytest.approx(abs(gd / i)) and buf[9, k] == pytest.approx(
                abs(gs / i))
        else:
            np.testing.assert_allclose([la[k], lb[k]], [gd, gs], rtol=1e-10,
                                       atol=1e-12 * (abs(gd) + abs(gs)) + 1e-300)
        if split:
            assert abs(xa_out[k] - ref[3]) <= 1e-12
            np.testing.assert_allclose([xda_out[k], xsa_out[k]], ref[4:], rtol=1e-9,
                                       atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1])
def test_identical_chain_solves_equal_dense_solve(axis):
    from norsim.array.circuit_kernels import (chain_coefficients, solve_chains,
                                              solve_chains_reference)

    rng = np.random.default_rng(23)
    n = 37
    g_end = np.where(rng.random(n) < 0.2, rng.uniform(0.01, 0.3, n), 0.0)
    g_end[-1] = 0.2
    b = rng.normal(size=(n, 9) if axis == 0 else (9, n))
    coef = chain_coefficients(1.7, g_end)
    got = solve_chains(b, coef, axis)
    np.testing.assert_allclose(got, solve_chains_reference(b, 1.7, g_end, axis), rtol=1e-12,
                               atol=1e-12 * np.abs(got).max())
    one = chain_coefficients(0.5, np.array([0.25]))
    np.testing.assert_allclose(solve_chains(np.ones((1, 3)), one, 0), 4.0)


def test_nominal_tables_equal_tile_kernel():
    from norsim.array.circuit_kernels import nominal_tables, tile_iv

    for cell_type in ("split_gate", "stacked_gate"):
        cfg = load_preset("nor40").with_overrides([f"device.cell.cell_type='{cell_type}'"])
        model = cell_model(cfg.device.cell, 300.0)
        rng = np.random.default_rng(24)
        vth = rng.uniform(-0.2, 1.8, (6, 11))
        levels = np.array([0.0, 0.9, 1.8])
        tab = nominal_tables(model, levels, 1.0, 0.3, 0.01, vth)
        ref = tile_iv(model, np.broadcast_to(levels, (6, 3)), 1.0, 0.3, 0.01, vth)
        for j, (t, q) in enumerate(zip(tab, ref)):
            if q is None:
                assert t is None
                continue
            q = np.moveaxis(q, -1, 0)
            # the internal node's Newton steps start elsewhere: equal to its tolerance
            rtol = 1e-12 if j in (0, 3) else 1e-5
            np.testing.assert_allclose(t, q, rtol=rtol, atol=1e-13 * np.abs(q).max())


def test_model_currents_series_equal_exp():
    from norsim.array.circuit_kernels import _exp_mode, _model_currents

    rng = np.random.default_rng(25)
    shape, lines = (6, 9), (3, 9)
    lr = np.arange(6) // 2
    ia = rng.uniform(1e-9, 1e-7, shape)
    ia[0, 0] = -1e-12  # the linear branch
    la, lb = rng.uniform(0, 2, shape), -rng.uniform(20, 40, shape)
    la[0, 0], lb[0, 0] = 3e-9, -2e-9  # conductances on the linear branch
    ua = rng.uniform(0, 1e-3, shape)
    va = rng.uniform(0, 3e-5, lines)
    for t_max, mode in ((5e-5, 1), (2e-3, 2), (2e-2, 3)):
        # drops moved so that |a du + b dv| <= t_max everywhere
        d = t_max / (np.abs(la).max() + np.abs(lb).max())
        u = ua + rng.uniform(-d, d, shape)
        v = va + rng.uniform(-d, d, lines)
        assert _exp_mode(t_max) == mode
        out = [np.empty(shape) for _ in range(2)]
        sums = [np.empty(lines) for _ in range(2)]
        _model_currents(mode, ia, la, lb, ua, u, v, va, lr, out[0], sums[0])
        _model_currents(4, ia, la, lb, ua, u, v, va, lr, out[1], sums[1])
        np.testing.assert_allclose(out[0], out[1], rtol=4e-16, atol=0)
        ref = local_model_lines_reference(ia, la, lb, la, lb, u, v, ua, va, lr)
        np.testing.assert_allclose(out[1], ref, rtol=1e-15, atol=0)
        np.testing.assert_allclose(sums[0], np.add.reduceat(out[0], [0, 2, 4], axis=0),
                                   rtol=1e-15)
    _model_currents(0, ia, la, lb, ua, u, v, va, lr, out[0], sums[0])
    np.testing.assert_array_equal(out[0], ia)
    assert _exp_mode(0.05) == 4


@pytest.mark.parametrize("scale,layout", [(1.0, "rows"), (20.0, "rows"), (20.0, "cols"),
                                          (60.0, "rows")])
def test_certified_error_bounds_the_true_distance(scale, layout):
    """After each sweep of a local model, the certified bound is >= the true distance of the
    iterate to the model's fixed point (found by sweeping to convergence)."""
    from norsim.array.circuit import wire_network
    from norsim.array.circuit_kernels import RHO_MAX, _anchor_ingredients, certified_error

    cfg = load_preset("nor40")
    wires = cfg.array.wires.replace(sl_layout=layout).scaled(scale)
    rows, cols = 24, 40
    net = wire_network(rows, cols, wires, 1000.0)
    rng = np.random.default_rng(26)
    ia = np.exp(rng.uniform(np.log(1e-8), np.log(3e-7), (rows, cols)))
    ia[rng.random((rows, cols)) < 0.5] *= 1e-3  # off cells
    la = rng.uniform(0, 1.5, (rows, cols))
    lb = -rng.uniform(30, 40, (rows, cols))
    lines = rows if layout == "cols" else net.n_sl_lines
    lr = np.asarray(net.sl_line_of_row)
    bl, sl = net.bl_chain, net.sl_chain
    ing = _anchor_ingredients(ia, la, lb, lr, bl[0], bl[1], bl[2], sl[0], sl[1], sl[2],
                              net.sl_along_rows, np.empty((rows, cols)), np.empty((rows, cols)),
                              np.empty((lines, cols)), np.empty((lines, cols)), net.strap)

    def sweep(u, v):
        i = ia * np.exp(np.minimum(la * (0.0 - u) + lb * (v[lr] - 0.0), 50.0))
        return net.bl_drop(i[None])[0], net.sl_line_rise_t(i[:, :, None])[:, :, 0]

    u, v = np.zeros((rows, cols)), np.zeros((lines, cols))
    us, vs = u, v
    for _ in range(300):
        us, vs = sweep(us, vs)
    assert np.all(np.isfinite(us))
    checked = 0
    for _ in range(6):
        gu, gv = sweep(u, v)
        err, rho = certified_error(*ing[:4], np.abs(gu - u).max(), np.abs(gv - v).max(),
                                   np.abs(gu).max(), np.abs(gv).max(), ing[4], ing[5])
        true = max(np.abs(gu - us).max(), np.abs(gv - vs).max())
        if err < np.inf:
            assert true <= err * (1 + 1e-9) + 1e-18, (true, err)
            assert rho <= RHO_MAX
            checked += 1
        u, v = gu, gv
    if scale < 50:
        assert checked >= 4  # the bound certifies the sweeps of a practical array
