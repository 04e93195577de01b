"""Per-vector IR drop for network runs: a modal first-order surrogate, checked on exact solves.

Circuit mode costs milliseconds per vector; a network run needs the IR drop of every
bit-plane vector of every tile at the cost of a few matrix products. To first order in the
drops, a cell (r, c) on in vector x (x_r in {0, 1}) changes its current by

    dI_rc = -g_d,rc u_rc + g_s,rc v_rc,   u = K_bl (x o I0) per bit line,
                                          v = K_sl S (x o I0) over the source-line network,

with g_d = dI/dV_D, g_s = dI/dV_S (< 0) at the nominal bias, I0 the fast-mode cell currents,
K_bl, K_sl the wire networks' Green's functions (the inverses of their conductance
matrices; K_sl with the shared straps eliminated). Both are symmetric positive definite and
smooth: their largest eigenvalues carry the drop (the clamp's and terminal's shared
resistance, the straps' common rise), so each is kept as its top modes,
K ~ sum_m lambda_m psi_m psi_m^T. Then the column-current change of vector x is

    dI_c = -sum_m lambda_m (x . (psi_m o g_d))_c (x . (psi_m o I0))_c
           + sum_m mu_m alpha_m(x) (x . (g_s o phi_m[line(r), c]))_c,
    alpha_m(x) = x . p_m,  p_m[r] = sum_c phi_m[line(r), c] I0_rc,

a handful of matrix products per batch of vectors (one GEMM against a stacked weight
matrix). Second order in the drop, two corrections multiply it by (1 + eps + t / 2): the
currents it lowers lower the drops in turn (eps, the vector's relative current change: the
straps' rise is shared by every column) and each cell's current is exponential in its drops
(t, the column's relative change). What is left (third order, per-cell spread of t, the
truncated modes: the local rises between straps) :class:`IrCheck` measures against exact
circuit-mode solves of vectors sampled during the run. See docs/physics.md "Circuit mode".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh, splu

from norsim.array.circuit import CircuitSolver, _wire_key, clamp_gain_of, wire_network
from norsim.array.circuit_config import WireConfig
from norsim.errors import InputError

__all__ = ["ModalIrSurrogate", "IrCheck"]


@lru_cache(maxsize=16)
def _modes(rows: int, cols: int, key: tuple, clamp_gain: float, m_bl: int, m_sl: int):
    """Top eigenpairs of the bit-line chain's and the source-line network's Green's
    functions (cached per geometry): (lam (m_bl,), psi (R, m_bl), mu (m_sl,),
    phi (lines, C, m_sl) or, layout 'cols', (R, m_sl) per column chain)."""
    w = WireConfig.from_dict(dict(key))
    net = wire_network(rows, cols, w, clamp_gain)
    g_chain = net.g_bl[:rows, :rows].toarray()  # one bit line (chain order, all identical)
    lam, psi = np.linalg.eigh(np.linalg.inv(g_chain))
    order = np.argsort(lam)[::-1][:m_bl]
    lam, psi = lam[order], psi[:, order]
    if net.layout == "cols":
        k = np.linalg.inv(net.g_sl[:rows, :rows].toarray())
        mu, phi = np.linalg.eigh(k)
        order = np.argsort(mu)[::-1][:m_sl]
        return lam, psi, mu[order], phi[:, order]
    g = (net.g_sl if net.g_sl_full is None else net.g_sl_full).tocsc()
    n_l = net.n_sl_lines * cols
    lu = splu(g)

    def apply(v):
        rhs = np.zeros(g.shape[0])
        rhs[:n_l] = v
        return lu.solve(rhs)[:n_l]

    op = LinearOperator((n_l, n_l), matvec=apply, dtype=np.float64)
    k = min(m_sl, n_l - 1)
    if k < 1:  # a single source-line node: its Green's function is a number
        return lam, psi, np.array([apply(np.ones(1))[0]]), np.ones((1, cols, 1))
    mu, phi = eigsh(op, k=k, which="LM", v0=np.ones(n_l))
    order = np.argsort(mu)[::-1]
    return lam, psi, mu[order], phi[:, order].reshape(net.n_sl_lines, cols, k)


class ModalIrSurrogate:
    """First-order per-vector IR drop of one tile from the top modes of its wire networks.

    ``i_on`` (R, C): the fast-mode on-currents of the cells (with any current scale); the
    sensitivities g_d, g_s are the cells' own at the nominal bias, scaled with them.
    ``delta(planes)`` -> (N, C) column-current changes (A) of N binary word-line vectors.
    """

    def __init__(self, vth_map, cfg, i_on, *, modes_bl: int = 2, modes_sl: int = 4,
                 model=None, **iv_kwargs):
        vth = np.asarray(vth_map, dtype=np.float64)
        for name, v in (("modes_bl", modes_bl), ("modes_sl", modes_sl)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(name, v, "a whole number >= 1")
        solver = CircuitSolver(vth, cfg, model, **iv_kwargs)
        # the exact solver is rebuilt per check (it holds megabytes of tables per tile)
        self._solver_args = (vth, cfg, solver.model, iv_kwargs)
        rows, cols = vth.shape
        read = cfg.device.read
        v_on = read.v_select_on_v if cfg.device.cell.cell_type == "split_gate" else \
            read.v_cg_read_v
        self.v_on, self.v_off = float(v_on), float(read.v_select_off_v)
        i0, gd, gs = (t[0] for t in solver.nominal(np.full((1, rows), v_on)))
        i_on = np.asarray(i_on, dtype=np.float64)
        if i_on.shape != vth.shape:
            raise InputError("i_on", f"shape {i_on.shape}", f"the V_th map's {vth.shape}")
        ratio = np.where(i0 > 0, i_on / np.where(i0 > 0, i0, 1.0), 0.0)
        gd, gs = gd * ratio, gs * ratio
        net = solver.network
        lam, psi, mu, phi = _modes(rows, cols, _wire_key(solver.wires), clamp_gain_of(cfg),
                                   int(min(modes_bl, rows)), int(modes_sl))
        blocks = []
        for m in range(lam.size):  # bit lines: products of two projections per mode
            blocks += [psi[:, m:m + 1] * gd, psi[:, m:m + 1] * i_on]
        self.lam = lam
        if net.layout == "cols":
            for m in range(mu.size):
                blocks += [phi[:, m:m + 1] * gs, phi[:, m:m + 1] * i_on]
            self.p = None
        else:
            lr = net.sl_line_of_row
            self.p = np.ascontiguousarray(
                np.stack([(phi[lr, :, m] * i_on).sum(axis=1) for m in range(mu.size)], axis=1),
                dtype=np.float32)
            for m in range(mu.size):
                blocks.append(gs * phi[lr, :, m])
        self.mu = mu
        self.cols = cols
        blocks.append(i_on)  # the vector's own column currents (second-order terms)
        self.w = np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32)
        self.layout = net.layout

    def delta(self, planes) -> np.ndarray:
        """Column-current change (N, C) of binary word-line vectors ``planes`` (N, R)."""
        x = np.asarray(planes, dtype=np.float32)
        y = (x @ self.w).astype(np.float64)
        c = self.cols
        out = np.zeros((x.shape[0], c))
        k = 0
        for lam in self.lam:
            out -= lam * y[:, k * c:(k + 1) * c] * y[:, (k + 1) * c:(k + 2) * c]
            k += 2
        if self.p is None:
            for mu in self.mu:
                out += mu * y[:, k * c:(k + 1) * c] * y[:, (k + 1) * c:(k + 2) * c]
                k += 2
        else:
            alpha = (x @ self.p).astype(np.float64)
            for m, mu in enumerate(self.mu):
                out += mu * alpha[:, m:m + 1] * y[:, k * c:(k + 1) * c]
                k += 1
        # second order: the lowered currents lower the drops (the vector's relative change
        # eps feeds back on every drop) and each cell's current is exponential in its drop
        # (half its relative change t again)
        icol = y[:, k * c:(k + 1) * c]
        tot = icol.sum(axis=1, keepdims=True)
        eps = out.sum(axis=1, keepdims=True) / np.where(tot > 0, tot, 1.0)
        t = out / np.where(icol > 0, icol, np.inf)
        return out * (1.0 + eps + 0.5 * t)

    def exact_delta(self, planes) -> np.ndarray:
        """Circuit mode's column-current change (circuit minus nominal) of ``planes``."""
        x = np.asarray(planes)
        wl = np.where(x > 0.5, self.v_on, self.v_off)
        vth, cfg, model, kw = self._solver_args
        res = CircuitSolver(vth, cfg, model, **kw).solve(wl)
        return res.column_currents - res.ideal_column_currents


@dataclass
class IrCheck:
    """Surrogate against exact circuit-mode solves of vectors sampled during a run: the
    largest column-current error (A and in ADC LSB), vectors checked and vectors run."""

    n_checked: int = 0
    n_vectors: int = 0
    max_error_a: float = 0.0
    max_error_lsb: float = 0.0
    max_effect_lsb: float = 0.0  # largest IR effect itself on the checked vectors (LSB)
    per_tile: list = field(default_factory=list)

    def add(self, err_a: float, lsb_a: float, effect_a: float, n_checked: int) -> None:
        self.n_checked += n_checked
        self.max_error_a = max(self.max_error_a, err_a)
        self.max_error_lsb = max(self.max_error_lsb, err_a / lsb_a)
        self.max_effect_lsb = max(self.max_effect_lsb, effect_a / lsb_a)

    @property
    def fraction_checked(self) -> float:
        return self.n_checked / self.n_vectors if self.n_vectors else 0.0

    def to_dict(self) -> dict:
        return {"n_checked": self.n_checked, "n_vectors": self.n_vectors,
                "fraction_checked": self.fraction_checked,
                "max_error_lsb": self.max_error_lsb, "max_error_a": self.max_error_a,
                "max_ir_effect_lsb": self.max_effect_lsb}
