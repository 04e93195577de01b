"""The circuit kernel's certified stop with one ideal line (issue 26, mutation testing).

``certified_error`` bounds the distance to the local model's fixed point by Banach's
theorem in the weighted norm max(|u|, |v| / t): with the Lipschitz bound
rho(t) = f max(A_u + t B_u, A_v / t + B_v), f = exp(amax (dist_u + 2 res) + bmax (dist_v +
2 t res)), res = max(du, dv / t), a map with rho <= 2/3 puts the fixed point within
rho / (1 - rho) res max(1, t) of the new iterate. The optimal weight
t* = (-(A_u - B_v) + sqrt((A_u - B_v)^2 + 4 B_u A_v)) / (2 B_u) exists only when the two
lines couple both ways (B_u > 0 and A_v > 0). With an ideal bit line (B_u = 0: the bit-line
drops feel no source-line rise) the bound must come from the other weights (t = 1 and the
residual balance dv / du) -- a mutant that tried t* whenever *either* coupling was present
divided by B_u = 0 and survived every circuit test (none has one ideal line of the two)."""

import math

import numpy as np
import pytest

from norsim.array.circuit_batch import RHO_MAX, certified_error


def _bound(t, au, bu, av, bv, du, dv, dist_u, dist_v, amax, bmax):
    """The Banach radius at weight t (inf when rho(t) > 2/3), from the formula above."""
    res = max(du, dv / t)
    f = math.exp(amax * (dist_u + 2 * res) + bmax * (dist_v + 2 * t * res))
    rho = f * max(au + t * bu, av / t + bv)
    return (rho / (1 - rho) * res * max(1.0, t), rho) if rho <= 2.0 / 3.0 else (math.inf, math.inf)


@pytest.mark.parametrize("au,bu,av,bv", [(0.1, 0.0, 0.2, 0.05),    # ideal bit-line coupling
                                         (0.0, 0.0, 0.3, 0.1)])    # and an ideal bit line
def test_certified_error_with_one_coupling_absent(au, bu, av, bv):
    du, dv, dist_u, dist_v, amax, bmax = 1e-4, 3e-4, 1e-3, 2e-3, 10.0, 5.0
    e, rho = certified_error(au, bu, av, bv, du, dv, dist_u, dist_v, amax, bmax)
    cands = [1.0, dv / du]
    want = min((_bound(t, au, bu, av, bv, du, dv, dist_u, dist_v, amax, bmax)
                for t in cands if t > 0), key=lambda x: x[0])
    assert math.isfinite(e) and rho <= RHO_MAX
    assert e == pytest.approx(want[0], rel=1e-12) and rho == pytest.approx(want[1], rel=1e-12)


def test_certified_error_none_beyond_the_contraction_limit():
    """rho > 2/3 for every weight tried: no certificate (inf, inf)."""
    e, rho = certified_error(0.5, 0.0, 0.5, 0.5, 1e-4, 1e-4, 0.0, 0.0, 0.0, 0.0)
    assert e == np.inf and rho == np.inf
    # just inside the limit: a certificate of rho / (1 - rho) res = 2 res at most
    e, rho = certified_error(0.6, 0.0, 0.0, 0.6, 1e-4, 1e-4, 0.0, 0.0, 0.0, 0.0)
    assert rho == pytest.approx(0.6) and e == pytest.approx(0.6 / 0.4 * 1e-4, rel=1e-12)


def test_newton_kernel_reports_its_line_solves():
    """The per-vector Newton kernel (heavy IR drop) reports its work: every outer Newton step
    makes at least one pass of line solves, so inner_iterations >= iterations >= 1 (a
    mutant that counted the passes down, ``inner_total -= 1``, passed every test: none
    read the Newton path's counts)."""
    from _circuit_helpers import tile

    from norsim.array.circuit import CircuitSolver
    from norsim.config.presets import load_preset

    cfg = load_preset("nor40")
    vth, wl, model = tile(cfg, 20, 14, seed=30, lo=0.3e-6, hi=1e-6, batch=3)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(80.0))
    res = solver.solve(wl, method="newton")
    assert solver.last_stats["reference_vectors"] == 0
    inner, outer = np.asarray(res.inner_iterations), np.asarray(res.iterations)
    assert np.all(outer >= 1) and np.all(inner >= outer), (inner, outer)


@pytest.mark.parametrize("rows", [6, 7])
def test_newton_kernel_on_a_one_column_tile(rows):
    """One column: its source lines have a single strap tap (column 0 is also the last),
    the smallest strap system of the Newton kernel's block-Thomas solve. Under heavy IR the
    kernel solves every vector and equals the reference path (sparse LU) to 1e-9."""
    from _circuit_helpers import tile

    from norsim.array.circuit import CircuitSolver
    from norsim.config.presets import load_preset

    cfg = load_preset("nor40")
    vth, wl, model = tile(cfg, rows, 1, seed=31, lo=0.3e-6, hi=1e-6, batch=3)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(400.0))
    fast = solver.solve(wl, method="newton")
    assert solver.last_stats["reference_vectors"] == 0
    ref = solver.solve(wl, method="reference")
    scale = np.abs(ref.column_currents).max()
    ideal = fast.ideal_column_currents[0]
    assert ((ideal - fast.column_currents[0]) / ideal).max() > 0.02  # the IR drop matters
    assert np.abs(fast.column_currents - ref.column_currents).max() <= 1e-9 * scale
    assert np.abs(fast.sl_drop - ref.sl_drop).max() <= 1e-10
