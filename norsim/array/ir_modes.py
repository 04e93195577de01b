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

import numba
import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh, splu

from norsim.array.circuit import CircuitSolver, _wire_key, clamp_gain_of, wire_network
from norsim.array.circuit_config import WireConfig
from norsim.errors import InputError

__all__ = ["ModalIrSurrogate", "IrCheck"]

#: a column whose largest on-current is below this fraction of the tile's largest gets no
#: IR correction (an unused column of erased-off cells: ~1e-60 A against ~1e-7 A)
COLUMN_FLOOR = 1e-9

#: a batch of bit-planes whose fraction of ones is at most this takes the sparse path (each
#: plane's projections summed from the weight rows of its on word lines, one fused numba
#: pass), a denser one the dense path (one BLAS product, then the combine pass). Measured
#: crossover (one thread, 256 x 1540 and 64 x 772 stacked matrices, random planes,
#: 2026-12-07): the sparse path is x2.4 / x1.5 faster at 10 % ones, x1.2 / x1.1 at 30 %,
#: even at 35-40 %; ResNet-18's bit-planes hold 7-26 % ones (mean 13 %).
SPARSE_MAX_DENSITY = 0.3


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


@numba.njit(cache=True)
def _combine_kernel(y, coef_pair, coef_single, cidx, icol, out, add):
    """Column-current changes of columns ``cidx`` (rows of ``icol`` and ``out``) from the
    projections ``y`` (rows: per pair mode its two blocks of ``cidx.size``, then the single
    (strap) blocks, then one alpha row per strap mode; N vectors along axis 1) and the
    vectors' nominal column currents ``icol`` (>= C, N): first order, then the second-order
    factor (1 + eps + t / 2). ``add``: out += delta (out may be icol itself: each element is
    read before it is written), else out = delta (other rows untouched)."""
    c_n, nv = cidx.size, icol.shape[1]
    n_pair, n_single = coef_pair.size, coef_single.size
    a0 = (2 * n_pair + n_single) * c_n  # first alpha row
    d = np.empty((c_n, nv))
    s = np.zeros(nv)
    tot = np.zeros(nv)
    for c in range(c_n):
        for n in range(nv):
            d[c, n] = 0.0
        for m in range(n_pair):
            ya, yb, k = y[2 * m * c_n + c], y[(2 * m + 1) * c_n + c], coef_pair[m]
            for n in range(nv):
                d[c, n] += k * ya[n] * yb[n]
        for m in range(n_single):
            ys, al, k = y[(2 * n_pair + m) * c_n + c], y[a0 + m], coef_single[m]
            for n in range(nv):
                d[c, n] += k * al[n] * ys[n]
        for n in range(nv):
            s[n] += d[c, n]
            tot[n] += icol[cidx[c], n]
    for n in range(nv):  # eps: the vector's relative current change
        s[n] = s[n] / tot[n] if tot[n] > 0.0 else 0.0
    for c in range(c_n):
        j = cidx[c]
        for n in range(nv):
            i0 = icol[j, n]
            t = d[c, n] / i0 if i0 > 0.0 else 0.0
            v = d[c, n] * (1.0 + s[n] + 0.5 * t)
            out[j, n] = out[j, n] + v if add else v



@numba.njit(cache=True, parallel=True)
def _sparse_kernel(planes, w_r, coef_pair, coef_single, cidx, icol, out, add):
    """:func:`_combine_kernel` fused with its projections for sparse planes: per vector
    (blocks of vectors in parallel), the projections ``y`` are the sum of the rows of
    ``w_r`` ((R, L), the stacked matrix's transpose) of its non-zero word lines (times the
    value where it is not 1) and give the vector's first-order changes at once; then, per
    block, the same second-order combine with ``icol`` into ``out`` (``add`` as there),
    column by column over the block's vectors (contiguous in the column-major currents).
    The same sums as the dense product in another order: equal to float32 rounding of the
    projections."""
    nv, nr = planes.shape
    ln = w_r.shape[1]
    c_n = cidx.size
    n_pair, n_single = coef_pair.size, coef_single.size
    a0 = (2 * n_pair + n_single) * c_n  # first alpha element
    blk = 16
    for ib in numba.prange((nv + blk - 1) // blk):
        n0 = ib * blk
        nb = min(nv, n0 + blk) - n0
        y = np.empty(ln, dtype=np.float32)
        d = np.zeros((c_n, nb))
        idx = np.empty(nr, dtype=np.int64)
        for i in range(nb):
            n = n0 + i
            k = 0
            binary = True
            for r in range(nr):
                v = planes[n, r]
                if v != 0:
                    idx[k] = r
                    k += 1
                    if v != 1:
                        binary = False
            for l in range(ln):
                y[l] = 0.0
            q = 0
            if binary:  # four rows per pass over y
                while q + 4 <= k:
                    w0, w1, w2, w3 = w_r[idx[q]], w_r[idx[q + 1]], w_r[idx[q + 2]], \
                        w_r[idx[q + 3]]
                    for l in range(ln):
                        y[l] += (w0[l] + w1[l]) + (w2[l] + w3[l])
                    q += 4
            while q < k:
                w0, v = w_r[idx[q]], planes[n, idx[q]]
                for l in range(ln):
                    y[l] += v * w0[l]
                q += 1
            for m in range(n_pair):
                kk, ba, bb = coef_pair[m], 2 * m * c_n, (2 * m + 1) * c_n
                for c in range(c_n):
                    d[c, i] += kk * y[ba + c] * y[bb + c]
            for m in range(n_single):
                kk, bs = coef_single[m] * y[a0 + m], (2 * n_pair + m) * c_n
                for c in range(c_n):
                    d[c, i] += kk * y[bs + c]
        s = np.zeros(nb)
        tot = np.zeros(nb)
        for c in range(c_n):
            j = cidx[c]
            for i in range(nb):
                s[i] += d[c, i]
                tot[i] += icol[j, n0 + i]
        for i in range(nb):  # eps: the vector's relative current change
            s[i] = s[i] / tot[i] if tot[i] > 0.0 else 0.0
        for c in range(c_n):
            j = cidx[c]
            for i in range(nb):
                i0 = icol[j, n0 + i]
                t = d[c, i] / i0 if i0 > 0.0 else 0.0
                v = d[c, i] * (1.0 + s[i] + 0.5 * t)
                out[j, n0 + i] = out[j, n0 + i] + v if add else v

class ModalIrSurrogate:
    """First-order per-vector IR drop of one tile from the top modes of its wire networks.

    ``i_on`` (R, C): the fast-mode on-currents of the cells (with any current scale); the
    sensitivities g_d, g_s are the cells' own at the nominal bias, scaled with them.
    ``delta(planes)`` -> (N, C) column-current changes (A) of N binary word-line vectors;
    :meth:`add_t` adds them in place to column-major currents (the array's fast path).

    One product per batch: the projections of every mode and the strap modes' alpha are the
    rows of one stacked matrix ``w_t`` ((2 M_bl + M_sl) C + M_sl, R) against the planes, and
    one numba pass combines them (first order, then the second-order factor) with the
    vectors' nominal column currents, which the array's own product already holds. Sparse
    planes (bit-planes of activations are mostly zeros) skip the product: one fused pass
    sums the stacked rows of each plane's on word lines and combines (``path``, :meth:`add_t`).
    Defaults (``modes_bl`` 1, ``modes_sl`` 4): at 256 x 256 with the preset's wires the
    second bit-line mode changes the error by < 0.1 % of the IR effect, the strap modes 3-4
    by 1 % (1.8 -> 0.6 %; 96 x 96, wires x4: 2.4 -> 1.3 %); see docs/physics.md.
    """

    def __init__(self, vth_map, cfg, i_on, *, modes_bl: int = 1, modes_sl: int = 4,
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
        pairs, singles, alpha = [], [], []
        for m in range(lam.size):  # bit lines: products of two projections per mode
            pairs += [psi[:, m:m + 1] * gd, psi[:, m:m + 1] * i_on]
        coef_pair = [-float(v) for v in lam]
        coef_single = []
        if net.layout == "cols":
            for m in range(mu.size):
                pairs += [phi[:, m:m + 1] * gs, phi[:, m:m + 1] * i_on]
            coef_pair += [float(v) for v in mu]
        else:
            lr = net.sl_line_of_row
            for m in range(mu.size):
                singles.append(gs * phi[lr, :, m])
                alpha.append((phi[lr, :, m] * i_on).sum(axis=1)[:, None])
            coef_single = [float(v) for v in mu]
        self.lam, self.mu, self.cols, self.layout = lam, mu, cols, net.layout
        # columns that conduct (unused columns of a tile hold erased-off cells: their change
        # is their current, < COLUMN_FLOOR of the tile's largest, times the relative drop)
        top = i_on.max(axis=0)
        self.cidx = np.flatnonzero(top > COLUMN_FLOOR * max(float(top.max()), 0.0))
        keep = lambda a: a[:, self.cidx]  # noqa: E731
        pairs, singles = [keep(a) for a in pairs], [keep(a) for a in singles]
        self.coef_pair = np.array(coef_pair, dtype=np.float64)
        self.coef_single = np.array(coef_single, dtype=np.float64)
        # the stacked matrix as (R, L) rows: the sparse path sums rows, the dense product
        # takes its transpose view (w_t)
        self.w_r = np.ascontiguousarray(np.concatenate(pairs + singles + alpha, axis=1),
                                        dtype=np.float32)
        self.i_on_t = np.ascontiguousarray(i_on.T, dtype=np.float32)

    @property
    def w_t(self) -> np.ndarray:
        """The stacked projection matrix (L, R) (a view of ``w_r``)."""
        return self.w_r.T

    def _planes(self, planes) -> np.ndarray:
        x = np.ascontiguousarray(planes, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.w_r.shape[0]:
            raise InputError("planes", f"shape {x.shape}",
                             f"(vectors, {self.w_r.shape[0]}) binary word-line vectors")
        return x

    #: the default path of :meth:`delta` and :meth:`add_t` (an instance may set its own,
    #: e.g. 'dense' to time the reference path in a network run)
    path = "auto"

    def _apply(self, x, icol_t, out, add: bool, path) -> None:
        """The change of planes ``x`` with nominal currents ``icol_t`` into ``out`` (see
        :func:`_combine_kernel`) by ``path`` (None: ``self.path``): 'sparse'
        (:func:`_sparse_kernel`), 'dense' (one BLAS product, then the combine pass: the
        reference), 'auto' (sparse when at most :data:`SPARSE_MAX_DENSITY` of the planes'
        entries are non-zero)."""
        path = self.path if path is None else path
        if path not in ("auto", "sparse", "dense"):
            raise InputError("path", path, "'auto', 'sparse' or 'dense'")
        if path == "auto":
            path = "sparse" if np.count_nonzero(x) <= SPARSE_MAX_DENSITY * x.size else "dense"
        if path == "sparse":
            _sparse_kernel(x, self.w_r, self.coef_pair, self.coef_single, self.cidx, icol_t,
                           out, add)
        else:
            y = self.w_t @ x.T
            _combine_kernel(y, self.coef_pair, self.coef_single, self.cidx, icol_t, out, add)

    def delta(self, planes, icol=None, *, path: str | None = None) -> np.ndarray:
        """Column-current change (N, C) of binary word-line vectors ``planes`` (N, R);
        ``icol`` (N, C): their nominal column currents (default: planes @ i_on). ``path``:
        as :meth:`add_t`."""
        x = self._planes(planes)
        icol_t = self.i_on_t @ x.T if icol is None else \
            np.ascontiguousarray(np.asarray(icol).T)
        out = np.zeros(icol_t.shape)
        self._apply(x, icol_t, out, False, path)
        return out.T

    def add_t(self, planes, cur_t, *, path: str | None = None) -> None:
        """Add the change of ``planes`` (N, R) in place to column-major currents ``cur_t``
        (>= C, N), whose first C rows are the vectors' nominal column currents. ``path``
        (default ``self.path``, 'auto'): 'auto' (sparse planes by the fused sparse kernel,
        dense ones by the dense product), 'sparse' or 'dense' (the reference: one BLAS
        product, then the combine pass)."""
        self._apply(self._planes(planes), cur_t, cur_t, True, path)

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
