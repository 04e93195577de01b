"""The split-gate cell's vectorised node solve (:func:`_split_gate_kernel`): SIMD passes of a
cubic Taylor step over chunks of elements, the safeguarded scalar solver for the rest; part
of :mod:`norsim.device.iv`. Its reference is :func:`norsim.device.iv_split._split_solve`
(through :func:`~norsim.device.iv_split._split_gate_scalar_kernel`).
"""

from __future__ import annotations

import numba
import numpy as np

from norsim.device.iv_split import _split_solve
from norsim.device.vecmath import exp_nonpos, softplus_sigmoid

# ---------------------------------------------- split gate: vectorised node solve ----
# An element's node solve is accepted from a vectorised pass once the model's root is within
# this many U_T of the evaluation point (see :func:`_split_step`).
NODE_TAYLOR_STEP_UT = 1e-4
_SG_CHUNK = 512     # elements whose pass state (~120 kB) stays in the L2 cache
_SG_BLOCK = 16384   # elements per parallel task (the chunk buffers are allocated per task)
_SG_PASSES = 6      # vectorised passes before the remaining elements go to _split_solve
_SG_SCALAR_BELOW = 16  # smaller calls run _split_solve directly (no buffers to set up)
_SIXTH = 1.0 / 6.0
_SEL_ON_H = 12.0  # select term by _f_derivs_on if (V_P,sel - max(V_D, V_S)) / (2 U_T) >= this


@numba.njit(cache=True, inline="always", error_model="numpy")
def _f_derivs(x):
    """F(x) = ln^2(1 + e^(x/2)) and F', F'', F''' (branch-free): with L = ln(1 + e^(x/2)),
    s = sigma(x/2), t = 1 - s (each from :func:`softplus_sigmoid`, no cancellation):
    F' = L s, F'' = (s^2 + L s t) / 2, F''' = (3 s^2 t + L s t (t - s)) / 4."""
    L, s, t = softplus_sigmoid(0.5 * x)
    ss = s * s
    lst = L * s * t
    return L * L, L * s, 0.5 * (ss + lst), 0.25 * (3.0 * ss * t + lst * (t - s))


@numba.njit(cache=True, inline="always", error_model="numpy")
def _f_derivs_on(x):
    """:func:`_f_derivs` for x >= 2 _SEL_ON_H (a select transistor far in strong inversion):
    with e = e^(-x/2) <= e^-_SEL_ON_H < 7e-6, ln(1 + e) = e (1 - e (1/2 - e/3)) and
    1 / (1 + e) = 1 - e (1 - e (1 - e)) to within e^4 < 3e-21 (relative), far below the
    rounding of the general formula, without its logarithm and divisions."""
    h = 0.5 * x
    e = exp_nonpos(-h)
    L = h + e * (1.0 - e * (0.5 - e * (1.0 / 3.0)))
    s = 1.0 - e * (1.0 - e * (1.0 - e))
    t = e * s
    ss = s * s
    lst = L * s * t
    return L * L, L * s, 0.5 * (ss + lst), 0.25 * (3.0 * ss * t + lst * (t - s))


@numba.njit(cache=True, inline="always", error_model="numpy")
def _f_derivs_sel(x, far_on):
    """The select term (F and its first three derivatives): :func:`_f_derivs_on` when
    ``far_on`` (one flag per call, so the branch is hoisted out of the vector loop), else
    :func:`_f_derivs`."""
    if far_on:
        return _f_derivs_on(x)
    return _f_derivs(x)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _split_step(a_fg, ek, inv_n, vs, isf, x, lo, hi, fu, f1u, f2u, f3u, fw, f1w, inv_ut,
                iss, tol):
    """One vectorisable step of the split-gate node solve at x (lo <= x <= hi).

    g(x) = I_sel(V_D -> x) - I_fg(x -> V_S) and its first three derivatives come from the
    EKV terms' F, F', F'', F''' (select forward term F(u) given as fu.., reverse term F(w) as
    fw, f1w: it does not depend on x as the select transistor has no DIBL); the root of the
    cubic Taylor model, d (quadratic-model root plus one Newton step on the cubic), is the
    step. Accepted (``ok``) when |d| and the Newton step are <= tol = 1e-4 U_T. Every EKV
    term then moves by |dz| <= 1e-4 in its argument z, and ln(1 + e^(z/2)) is analytic within
    2 pi of the real axis, so (Cauchy's estimate on a unit circle) the Taylor remainders are
    at most e |dz|^4 ~ 3e-16 of the term for F after its cubic polynomial and ~4 e |dz|^3
    ~ 1e-11 of it for F' after its quadratic one (typically F''''/F dz^4/24 ~ 4e-18 and
    dz^3/6 ~ 2e-13). So the model's root is the node to within the terms' rounding, the current at
    it is the FG current's cubic Taylor polynomial at d, and the partials a, b, c, e are moved
    to it to second order (the safeguarded solver evaluates them up to ~step/U_T ~ 4e-9 away);
    the derivatives follow by the implicit-function theorem as in :func:`_split_solve`.
    Otherwise the next point is x + d inside the bracket updated by the sign of g, or its
    midpoint.

    Returns (I, dI/dV_D, dI/dV_S, node, ok, next x, lo, hi).
    """
    gss = iss * inv_ut
    i_sel = iss * (fu - fw)
    a = gss * f1w                      # dI_sel/dV_D (constant in x)
    b = -gss * f1u                     # dI_sel/dx and its x-derivatives
    b1 = gss * inv_ut * f2u
    b2 = -gss * inv_ut * inv_ut * f3u
    kf = ek * inv_n
    km = kf - 1.0
    gsf = isf * inv_ut
    vpf = (a_fg + ek * (x - vs)) * inv_n
    fp, f1p, f2p, f3p = _f_derivs((vpf - vs) * inv_ut)
    fq, f1q, f2q, f3q = _f_derivs((vpf - x) * inv_ut)
    i_fg = isf * (fp - fq)
    c = gsf * (f1p * kf - f1q * km)    # dI_fg/dx and its x-derivatives
    c2 = gsf * inv_ut * (f2p * kf * kf - f2q * km * km)
    c3 = gsf * inv_ut * inv_ut * (f3p * kf * kf * kf - f3q * km * km * km)
    e = gsf * (f1q * kf - f1p * (kf + 1.0))   # dI_fg/dV_S and its x-derivatives
    e1 = gsf * inv_ut * kf * (f2q * km - f2p * (kf + 1.0))
    e2 = gsf * inv_ut * inv_ut * kf * (f3q * km * km - f3p * (kf + 1.0) * kf)
    g = i_sel - i_fg
    g1 = b - c
    g2 = b1 - c2
    g3 = b2 - c3
    disc = max(g1 * g1 - 2.0 * g * g2, 0.0)
    dq = 2.0 * g / (np.sqrt(disc) - g1)
    mp = g1 + dq * (g2 + 0.5 * g3 * dq)
    d = dq - (g3 * dq * dq * dq * _SIXTH) / mp
    xn = x + d
    i = i_fg + d * (c + d * (0.5 * c2 + d * c3 * _SIXTH))
    bs = b + d * (b1 + 0.5 * d * b2)
    cs = c + d * (c2 + 0.5 * d * c3)
    es = e + d * (e1 + 0.5 * d * e2)
    den = cs - bs
    r = 1.0 / den
    gd = a * cs * r
    gs = -bs * es * r
    ok = ((g1 < 0.0) & (mp < 0.0) & (abs(d) <= tol) & (abs(g) <= -tol * g1) & (xn >= lo)
          & (xn <= hi) & (den > 0.0) & (abs(i) < np.inf) & (abs(gd) < np.inf)
          & (abs(gs) < np.inf))
    lo2 = x if g > 0.0 else lo
    hi2 = x if g < 0.0 else hi
    x_next = xn if ((xn > lo2) & (xn < hi2)) else 0.5 * (lo2 + hi2)
    return i, gd, gs, min(max(xn, lo), hi), ok, x_next, lo2, hi2


@numba.njit(cache=True, inline="always", error_model="numpy")
def _load(dst, src, step, k0, m):
    """dst[:m] = an input's elements k0 .. k0 + m (step 1) or its one value (step 0)."""
    if step == 0:
        v = src[0]
        for j in range(m):
            dst[j] = v
    else:
        s = src[k0:k0 + m]  # a view: unit-stride loads (src[k0 + j] may wrap, so gathers)
        for j in range(m):
            dst[j] = s[j]


@numba.njit(cache=True, inline="always")
def _sinks(want_d, want_vx, ch):
    """Per-task buffers that take a chunk's dI/dV_D, dI/dV_S and node when the caller did
    not ask for them (size 0 when it did)."""
    nd = 0 if want_d else ch
    return np.empty(nd), np.empty(nd), np.empty(0 if want_vx else ch)


@numba.njit(cache=True, inline="always")
def _out_chunk(out_i, out_gd, out_gs, out_vx, sinks, want_d, want_vx, k0, m):
    """A chunk's output slices (I, dI/dV_D, dI/dV_S, node), the :func:`_sinks` standing in
    for the outputs the caller did not ask for."""
    return (out_i[k0:k0 + m], out_gd[k0:k0 + m] if want_d else sinks[0][:m],
            out_gs[k0:k0 + m] if want_d else sinks[1][:m],
            out_vx[k0:k0 + m] if want_vx else sinks[2][:m])


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _split_gate_kernel(v_wl, v_cg, v_d, v_s, v_th, n, beta, eta, steps, size, alpha_g, u_t,
                       dvth, sel_vth, sel_n, sel_beta, sel_eta, max_iter, out_i, out_gd,
                       out_gs, out_vx, out_pass, node_th0, node_inv_h, node_table):
    """Series select + FG transistor for every element: vectorised passes of
    :func:`_split_step` over chunks of elements, the safeguarded :func:`_split_solve` for
    the few left after ``_SG_PASSES`` (and for every element if the select transistor has
    DIBL, or if the call is small). Inputs have steps 0 or 1 (:func:`_flat_inputs`); ``dvth``
    is added to every V_th (the temperature shift).

    Pass 0 evaluates at x = V_D, where the select transistor's two EKV terms coincide (one
    softplus for both, shared by all elements when V_WL and V_D are scalars); each later pass
    runs over the elements not yet accepted, packed to the front of the chunk's buffers.
    ``out_pass`` (if it has ``size`` entries) receives the pass that accepted each element,
    -1 for the scalar solver; ``out_gd`` and ``out_gs`` (together) and ``out_vx`` may be
    empty when the caller does not want them.

    The common read (one bias and one n, beta, eta for every element, a V_th per element)
    runs the same passes with the shared values as scalars: pass 0 writes straight to the
    outputs, the packed per-lane state is only the node bracket, the FG term
    alpha_G (V_CG - V_th) and the element index, and if the select transistor is far in
    strong inversion over the whole bracket its term comes from :func:`_f_derivs_on`.
    Loads and stores go through slices of the inputs and outputs (unit-stride, so vector
    loads and stores rather than gathers and scatters). With a ``node_table`` (the node at
    V_th = node_th0 + k / node_inv_h, from :func:`_node_predictor`) pass 0 of the common read
    starts each element at the table's linear interpolation instead of V_D: close enough
    that pass 0 accepts nearly every element, where from V_D only the subthreshold ones are.
    """
    record = out_pass.size == size
    want_d = out_gd.size == size
    want_vx = out_vx.size == size
    if sel_eta != 0.0 or size < _SG_SCALAR_BELOW:
        for k in numba.prange(size):
            out_i[k], gd, gs, vx, gv = _split_solve(
                v_wl[k * steps[0]], v_cg[k * steps[1]], v_d[k * steps[2]],
                v_s[k * steps[3]], v_th[k * steps[4]] + dvth, n[k * steps[5]],
                beta[k * steps[6]], eta[k * steps[7]], alpha_g, u_t, sel_vth, sel_n, sel_beta,
                sel_eta, max_iter)
            if want_d:
                out_gd[k] = gd
                out_gs[k] = gs
            if want_vx:
                out_vx[k] = vx
            if record:
                out_pass[k] = -1
        return
    inv_ut = 1.0 / u_t
    iss = 2.0 * sel_n * sel_beta * u_t * u_t
    tol = NODE_TAYLOR_STEP_UT * u_t
    s0, s1, s2, s3, s4, s5, s6, s7 = (steps[0], steps[1], steps[2], steps[3], steps[4],
                                      steps[5], steps[6], steps[7])
    sel_shared = s0 == 0 and s2 == 0
    vps_0 = (v_wl[0] - sel_vth) / sel_n
    w0, w1, w2, w3 = _f_derivs((vps_0 - v_d[0]) * inv_ut)
    nblock = (size + _SG_BLOCK - 1) // _SG_BLOCK
    if sel_shared and s1 == 0 and s3 == 0 and s4 == 1 and s5 == 0 and s6 == 0 and s7 == 0:
        # the common read: one bias and one n, beta, eta for all elements, a V_th per element.
        # The same passes with the shared values as scalars: per-lane state is the node
        # bracket, the FG term alpha_G (V_CG - V_th) and the element index
        vd0 = v_d[0]
        vs0 = v_s[0]
        ek0 = eta[0]
        nn0 = n[0]
        inv_n0 = 1.0 / nn0
        isf0 = 2.0 * nn0 * beta[0] * u_t * u_t
        cg0 = v_cg[0]
        lo0 = min(vd0, vs0)
        hi0 = max(vd0, vs0)
        # every iterate x lies in [lo0, hi0]: is the select term's argument large throughout?
        sel_on = 0.5 * (vps_0 - hi0) * inv_ut >= _SEL_ON_H
        # the reverse term by the same formula as the forward one, so that at x = V_D the
        # two are equal to the bit (and I = 0 exactly when V_D = V_S)
        w0, w1, w2, w3 = _f_derivs_sel((vps_0 - vd0) * inv_ut, sel_on)
        predict = node_table.size >= 2
        k_max = np.uint32(max(node_table.size - 2, 0))
        t_max = k_max + 1.0
        for blk in numba.prange(nblock):
            ch = _SG_CHUNK
            idx = np.empty(ch, np.uint32)
            afg = np.empty(ch)
            xx = np.empty(ch)
            lo = np.empty(ch)
            hi = np.empty(ch)
            ri = np.empty(ch)
            rgd = np.empty(ch)
            rgs = np.empty(ch)
            rvx = np.empty(ch)
            rok = np.empty(ch, np.bool_)
            sinks = _sinks(want_d, want_vx, ch)
            b_end = min(size, (blk + 1) * _SG_BLOCK)
            for k0 in range(blk * _SG_BLOCK, b_end, ch):
                m = min(ch, b_end - k0)
                th_c = v_th[k0:k0 + m]
                oi, ogd, ogs, ovx = _out_chunk(out_i, out_gd, out_gs, out_vx, sinks, want_d,
                                               want_vx, k0, m)
                # pass 0 from the interpolated node (or V_D), results straight to the outputs
                if predict:
                    # (a loop of its own: table loads by index in the solve's loop, which
                    # also stores to the outputs, keep it from vectorising)
                    for j in range(m):
                        t = min(max((th_c[j] - node_th0) * node_inv_h, 0.0), t_max)
                        kt = min(np.uint32(t), k_max)
                        xx[j] = node_table[kt] + (t - kt) * (node_table[kt + 1] - node_table[kt])
                else:
                    for j in range(m):
                        xx[j] = vd0
                for j in range(m):
                    a = alpha_g * (cg0 - (th_c[j] + dvth))
                    afg[j] = a
                    x0 = xx[j]
                    u0, u1, u2, u3 = _f_derivs_sel((vps_0 - x0) * inv_ut, sel_on)
                    oi[j], ogd[j], ogs[j], ovx[j], rok[j], xx[j], lo[j], hi[j] = _split_step(
                        a, ek0, inv_n0, vs0, isf0, x0, lo0, hi0, u0, u1, u2, u3, w0, w1,
                        inv_ut, iss, tol)
                if record:
                    op = out_pass[k0:k0 + m]
                    for j in range(m):
                        op[j] = 0
                m2 = 0
                for j in range(m):
                    idx[m2] = j
                    afg[m2] = afg[j]
                    xx[m2] = xx[j]
                    lo[m2] = lo[j]
                    hi[m2] = hi[j]
                    m2 += 0 if rok[j] else 1
                m = m2
                for p in range(1, _SG_PASSES):
                    if m == 0:
                        break
                    for j in range(m):
                        x = xx[j]
                        u0, u1, u2, u3 = _f_derivs_sel((vps_0 - x) * inv_ut, sel_on)
                        ri[j], rgd[j], rgs[j], rvx[j], rok[j], xx[j], lo[j], hi[j] = _split_step(
                            afg[j], ek0, inv_n0, vs0, isf0, x, lo[j], hi[j], u0, u1, u2, u3, w0,
                            w1, inv_ut, iss, tol)
                    left = 0
                    for j in range(m):
                        jj = idx[j]
                        oi[jj] = ri[j]
                        ogd[jj] = rgd[j]
                        ogs[jj] = rgs[j]
                        ovx[jj] = rvx[j]
                        left += 0 if rok[j] else 1
                    if record:
                        for j in range(m):
                            out_pass[k0 + idx[j]] = p
                    if left > 0:  # (usually none: the pass after the first accepts the rest)
                        m2 = 0
                        for j in range(m):
                            idx[m2] = idx[j]
                            afg[m2] = afg[j]
                            xx[m2] = xx[j]
                            lo[m2] = lo[j]
                            hi[m2] = hi[j]
                            m2 += 0 if rok[j] else 1
                    m = left
                for t in range(m):
                    jj = idx[t]
                    oi[jj], ogd[jj], ogs[jj], ovx[jj], gv = _split_solve(
                        v_wl[0], cg0, vd0, vs0, th_c[jj] + dvth, nn0, beta[0], ek0, alpha_g,
                        u_t, sel_vth, sel_n, sel_beta, sel_eta, max_iter)
                    if record:
                        out_pass[k0 + jj] = -1
        return
    for blk in numba.prange(nblock):
        ch = _SG_CHUNK
        # the chunk's inputs, by element (kept for the scalar fallback)
        wl_ = np.empty(ch)
        cg_ = np.empty(ch)
        vd_ = np.empty(ch)
        vs_ = np.empty(ch)
        th_ = np.empty(ch)
        n_ = np.empty(ch)
        b_ = np.empty(ch)
        e_ = np.empty(ch)
        # per-lane state, packed to the front after each pass
        idx = np.empty(ch, np.uint32)
        vps = np.empty(ch)
        afg = np.empty(ch)
        ek = np.empty(ch)
        inv_n = np.empty(ch)
        vs = np.empty(ch)
        isf = np.empty(ch)
        fw = np.empty(ch)
        f1w = np.empty(ch)
        f2w = np.empty(ch)
        f3w = np.empty(ch)
        xx = np.empty(ch)
        lo = np.empty(ch)
        hi = np.empty(ch)
        ri = np.empty(ch)
        rgd = np.empty(ch)
        rgs = np.empty(ch)
        rvx = np.empty(ch)
        rok = np.empty(ch, np.bool_)
        sinks = _sinks(want_d, want_vx, ch)
        b_end = min(size, (blk + 1) * _SG_BLOCK)
        for k0 in range(blk * _SG_BLOCK, b_end, ch):
            m = min(ch, b_end - k0)
            oi, ogd, ogs, ovx = _out_chunk(out_i, out_gd, out_gs, out_vx, sinks, want_d,
                                           want_vx, k0, m)
            _load(wl_, v_wl, s0, k0, m)
            _load(cg_, v_cg, s1, k0, m)
            _load(vd_, v_d, s2, k0, m)
            _load(vs_, v_s, s3, k0, m)
            _load(th_, v_th, s4, k0, m)
            _load(n_, n, s5, k0, m)
            _load(b_, beta, s6, k0, m)
            _load(e_, eta, s7, k0, m)
            for j in range(m):
                th_[j] = th_[j] + dvth
                nn = n_[j]
                inv_n[j] = 1.0 / nn
                afg[j] = alpha_g * (cg_[j] - th_[j])
                isf[j] = 2.0 * nn * b_[j] * u_t * u_t
            if sel_shared:
                for j in range(m):
                    vps[j] = vps_0
                    fw[j] = w0
                    f1w[j] = w1
                    f2w[j] = w2
                    f3w[j] = w3
            else:
                for j in range(m):
                    vps[j] = (wl_[j] - sel_vth) / sel_n
                    fw[j], f1w[j], f2w[j], f3w[j] = _f_derivs((vps[j] - vd_[j]) * inv_ut)
            # pass 0 at x = V_D (the select transistor at V_DS = 0: F(u) = F(w))
            for j in range(m):
                x = vd_[j]
                ri[j], rgd[j], rgs[j], rvx[j], rok[j], xx[j], lo[j], hi[j] = _split_step(
                    afg[j], e_[j], inv_n[j], vs_[j], isf[j], x, min(x, vs_[j]),
                    max(x, vs_[j]), fw[j], f1w[j], f2w[j], f3w[j], fw[j], f1w[j], inv_ut,
                    iss, tol)
            for j in range(m):
                oi[j] = ri[j]
            for j in range(m):
                ogd[j] = rgd[j]
            for j in range(m):
                ogs[j] = rgs[j]
            for j in range(m):
                ovx[j] = rvx[j]
            if record:
                op = out_pass[k0:k0 + m]
                for j in range(m):
                    op[j] = 0
            # pack the lanes still iterating (branch-free: every lane is copied, the write
            # position only advances past the ones not accepted)
            m2 = 0
            for j in range(m):
                idx[m2] = j
                vps[m2] = vps[j]
                afg[m2] = afg[j]
                ek[m2] = e_[j]
                inv_n[m2] = inv_n[j]
                vs[m2] = vs_[j]
                isf[m2] = isf[j]
                fw[m2] = fw[j]
                f1w[m2] = f1w[j]
                xx[m2] = xx[j]
                lo[m2] = lo[j]
                hi[m2] = hi[j]
                m2 += 0 if rok[j] else 1
            m = m2
            for p in range(1, _SG_PASSES):
                if m == 0:
                    break
                for j in range(m):
                    x = xx[j]
                    u0, u1, u2, u3 = _f_derivs((vps[j] - x) * inv_ut)
                    ri[j], rgd[j], rgs[j], rvx[j], rok[j], xx[j], lo[j], hi[j] = _split_step(
                        afg[j], ek[j], inv_n[j], vs[j], isf[j], x, lo[j], hi[j], u0, u1, u2,
                        u3, fw[j], f1w[j], inv_ut, iss, tol)
                m2 = 0
                for j in range(m):
                    jj = idx[j]
                    oi[jj] = ri[j]
                    ogd[jj] = rgd[j]
                    ogs[jj] = rgs[j]
                    ovx[jj] = rvx[j]
                    if record:
                        out_pass[k0 + jj] = p
                    idx[m2] = idx[j]
                    vps[m2] = vps[j]
                    afg[m2] = afg[j]
                    ek[m2] = ek[j]
                    inv_n[m2] = inv_n[j]
                    vs[m2] = vs[j]
                    isf[m2] = isf[j]
                    fw[m2] = fw[j]
                    f1w[m2] = f1w[j]
                    xx[m2] = xx[j]
                    lo[m2] = lo[j]
                    hi[m2] = hi[j]
                    m2 += 0 if rok[j] else 1
                m = m2
            # the rest: the safeguarded scalar solver from scratch
            for t in range(m):
                j = idx[t]
                oi[j], ogd[j], ogs[j], ovx[j], gv = _split_solve(
                    wl_[j], cg_[j], vd_[j], vs_[j], th_[j], n_[j], b_[j], e_[j], alpha_g,
                    u_t, sel_vth, sel_n, sel_beta, sel_eta, max_iter)
                if record:
                    out_pass[k0 + j] = -1
