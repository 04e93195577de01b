"""Exact RTN of the fast array path: the event-driven trap walk (numba) and its NumPy twin.

* ``rtn_corrections`` / ``rtn_apply`` / ``rtn_apply_numpy``: exact two-state Markov sampling
  of every trap at the start of each multiply (geometric waiting times between switches),
  adding the current change of each trapped cell to the column readings of the multiplies
  while its joint trap state differs from the batch's base state.
* ``rtn_plan`` / ``rtn_prepare``: the walk order (cells grouped by column) and the per-cell
  tables gathered into that order once per tile, so that the walk reads them with unit
  stride (in cell-index order a column's cells lie one row of the array apart: a cache and
  TLB miss per visit, which cost more than the corrections themselves; issue 17).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from norsim.array.kernels import _uniform, bitplanes_t, hash_uniform_numpy

@numba.njit(cache=True, inline="always")
def _geometric(key, counter, p, log_q):
    """Number of further steps until the next switch (>= 1), P(switch per step) = p,
    ``log_q`` = log(1 - p) (precomputed per trap)."""
    if p >= 1.0:
        return 1
    if p <= 0.0:
        return 1 << 62
    u = _uniform(key, counter)
    g = np.floor(np.log(u) / log_q) + 1.0
    if g > 4.0e18:
        return 1 << 62
    return np.int64(g)


@numba.njit(cache=True, parallel=True)
def _rtn_kernel(xt, bp, nbits, bitserial, cell_row, cell_id, d_tab, state, base, p01, p10,
                lq01, lq10, key, corr, col_ptr, block):
    """Walk every cell's traps (two-state Markov chains) over the multiplies of the batch.

    ``state`` (n, T) in/out: each trap's state at the start of the batch -> its state at the
    start of the next batch. ``base`` (n,): the joint trap state already folded into the
    current matrix; a correction is due only while a cell's joint state differs from it
    (the caller picks the state each cell is expected to spend most of the batch in, so the
    walk visits few multiplies). ``d_tab[i, J, idx]``: current change of cell i under joint
    trap state J (relative to all traps empty) for drive index idx (bit-serial: the cycle's
    input bit; one-cycle encodings: the input code). Trap t of cell i draws its k-th waiting
    time with counter (i << 32) + (t << 26) + k, so the result depends on neither the thread
    count, nor ``base``, nor ``block``. Every per-cell array is in walk order (cells grouped
    by column: slot ``g`` of ``corr`` holds cells col_ptr[g] .. col_ptr[g+1]-1; ``cell_id``
    their indices i in the tile, which address the draws). Columns run in parallel; corrections
    go to ``corr`` (column slots x B*nbits). Within a column, time runs in blocks of
    ``block`` multiplies and every cell of the column is walked through one block before the
    next (its chain carried over), so the corrections of a block stay in cache.

    Bit-serial: while a cell's joint state J differs from the base J0 over multiplies
    [b, e), every cycle of those multiplies gets dv0 + (dv1 - dv0) * bit, dv_k = d(J, k) -
    d(J0, k), bit = the cycle's input bit on the cell's row, read from the transposed
    bit-planes ``bp`` (rows, B*nbits) uint8 so that the loop runs with unit stride over the
    cycles of the interval (vectorised; bit-serial only, ``xt`` unused then).
    """
    nvec = bp.shape[1] // nbits if bitserial else xt.shape[1]
    ntrap = state.shape[1]
    for g in numba.prange(col_ptr.size - 1):
        c0 = col_ptr[g]
        ncell = col_ptr[g + 1] - c0
        nxt = np.empty((ncell, ntrap), dtype=np.int64)
        cnt = np.ones((ncell, ntrap), dtype=np.int64)
        jnow = np.zeros(ncell, dtype=np.int64)
        cc = corr[g]
        dvt = np.empty_like(cc[:2])  # the interval's two deltas in the corrections' dtype
        for c in range(ncell):
            i = c0 + c
            cid = np.int64(cell_id[i])
            for t in range(ntrap):
                ctr = np.uint64((cid << 32) + (np.int64(t) << 26))
                if state[i, t] == 0:
                    nxt[c, t] = _geometric(key, ctr, p01[i, t], lq01[i, t])
                else:
                    nxt[c, t] = _geometric(key, ctr, p10[i, t], lq10[i, t])
                jnow[c] |= state[i, t] << t
        for b0 in range(0, nvec, block):
            b1 = min(b0 + block, nvec)
            for c in range(ncell):
                i = c0 + c
                cid = np.int64(cell_id[i])
                j = jnow[c]
                j0 = base[i]
                xr = xt[cell_row[i]] if not bitserial else xt[0]
                br = bp[cell_row[i]]
                b = b0
                while True:
                    e = nxt[c, 0]
                    for t in range(1, ntrap):
                        if nxt[c, t] < e:
                            e = nxt[c, t]
                    end = e if e < b1 else b1
                    if j != j0 and end > b:
                        if bitserial:
                            dv0 = d_tab[i, j, 0] - d_tab[i, j0, 0]
                            dvt[0] = dv0
                            dvt[1] = (d_tab[i, j, 1] - d_tab[i, j0, 1]) - dv0
                            d0 = dvt[0]  # float32 corrections: float32 arithmetic (twice
                            dd = dvt[1]  # the SIMD width; the deltas rounded once)
                            # unit-stride views indexed from 0: no negative-index
                            # wraparound test, so the loop vectorises (3x faster)
                            cv = cc[b * nbits:end * nbits]
                            bv = br[b * nbits:end * nbits]
                            for q in range(cv.size):
                                cv[q] += d0 + dd * bv[q]
                        else:
                            for bb in range(b, end):
                                xv = xr[bb]
                                cc[bb] += d_tab[i, j, xv] - d_tab[i, j0, xv]
                    if e >= b1:
                        break  # the next switch lies beyond this block
                    for t in range(ntrap):  # switches at e < b1 <= nvec: flip and redraw
                        if nxt[c, t] == e:
                            j ^= 1 << t
                            ctr = np.uint64((cid << 32) + (np.int64(t) << 26) + cnt[c, t])
                            if (j >> t) & 1 == 0:
                                nxt[c, t] = e + _geometric(key, ctr, p01[i, t], lq01[i, t])
                            else:
                                nxt[c, t] = e + _geometric(key, ctr, p10[i, t], lq10[i, t])
                            cnt[c, t] += 1
                    b = e
                jnow[c] = j
        for c in range(ncell):  # state at the start of the next batch
            i = c0 + c
            for t in range(ntrap):
                s_t = (jnow[c] >> t) & 1
                if nxt[c, t] == nvec:
                    s_t = 1 - s_t
                state[i, t] = s_t


def rtn_plan(cell_col, live=None):
    """Column grouping of the trapped cells for :func:`rtn_apply` (compute once per tile):
    (columns that hold trapped cells, order of the cells by column, slot pointers).
    ``live`` (n,) bool: walk only these cells (default all); the others keep their states
    (a cell whose traps all have zero amplitude changes no current in any state)."""
    cell_col = np.ascontiguousarray(cell_col, dtype=np.int64)
    order = np.argsort(cell_col, kind="stable").astype(np.int64)
    if live is not None:
        order = order[np.asarray(live, dtype=bool)[order]]
    cols, start = np.unique(cell_col[order], return_index=True)
    col_ptr = np.append(start, order.size).astype(np.int64)
    return cols.astype(np.int64), order, col_ptr


def joint_states(state) -> np.ndarray:
    """(n,) joint trap state (bit t = trap t) of each cell's (n, T) trap states."""
    state = np.asarray(state, dtype=np.int64)
    return (state << np.arange(state.shape[1])[None, :]).sum(axis=1)


@numba.njit(cache=True, parallel=True)
def _majority_base_kernel(state, p01, p10, nvec, out):
    n, ntrap = state.shape
    for i in numba.prange(n):
        j = 0
        for t in range(ntrap):
            s = state[i, t]
            m = p01[i, t] + p10[i, t]
            occ = float(s)
            if m > 0.0:
                p = p01[i, t] / m
                mc = min(m, 1.0)
                decay = -np.expm1(nvec * np.log1p(-mc)) / (nvec * mc)  # mc = 1: 1 / N
                occ = p + (s - p) * decay
            if occ > 0.5:
                j |= 1 << t
        out[i] = j


def rtn_majority_base(state, p01, p10, nvec) -> np.ndarray:
    """(n,) joint state each cell is expected to occupy most over the next ``nvec``
    multiplies: trap by trap, 1 where the mean occupancy over the window,
    p + (s - p) (1 - (1 - m)^N) / (N m) with m = p01 + p10 and p = p01 / m, exceeds 1/2.
    Folding it into the current matrix leaves the RTN walk the fewest multiplies to
    correct (slow traps keep their present state; fast ones their likelier state)."""
    state = np.ascontiguousarray(state, dtype=np.int64)
    out = np.zeros(state.shape[0], dtype=np.int64)
    if nvec > 0:
        _majority_base_kernel(state, np.ascontiguousarray(p01, dtype=np.float64),
                              np.ascontiguousarray(p10, dtype=np.float64), int(nvec), out)
    else:
        out[:] = joint_states(state)
    return out


#: multiplies per time block of the RTN walk (corrections of one block stay in cache;
#: 4096 walked 5-10 % faster than 1024 on the nor40 tile, issue 17)
RTN_BLOCK = 4096


@dataclass
class RtnWalk:
    """:func:`rtn_plan` with the walk's constant per-cell tables gathered into walk order
    (:func:`rtn_prepare`; once per tile)."""
    cols: np.ndarray      # (G,) columns that hold walked cells (slots of ``corr``)
    order: np.ndarray     # (m,) cell indices in walk order
    col_ptr: np.ndarray   # (G+1,) slot pointers into ``order``
    row: np.ndarray       # (m,) rows of the cells, walk order
    d_tab: np.ndarray     # (m, J, drive)
    p01: np.ndarray       # (m, T)
    p10: np.ndarray
    lq01: np.ndarray      # log(1 - p01)
    lq10: np.ndarray


def rtn_prepare(plan, cell_row, d_tab, p01, p10) -> RtnWalk:
    """Gather the walk's constant per-cell tables into the order of ``plan``
    (:func:`rtn_plan`)."""
    cols, order, col_ptr = plan
    p01 = np.ascontiguousarray(np.asarray(p01, dtype=np.float64)[order])
    p10 = np.ascontiguousarray(np.asarray(p10, dtype=np.float64)[order])
    with np.errstate(divide="ignore"):  # p = 1: log(0) = -inf, never used (_geometric -> 1)
        lq01, lq10 = np.log1p(-np.minimum(p01, 1.0)), np.log1p(-np.minimum(p10, 1.0))
    return RtnWalk(cols, order, col_ptr,
                   np.ascontiguousarray(np.asarray(cell_row, dtype=np.int64)[order]),
                   np.ascontiguousarray(np.asarray(d_tab, dtype=np.float64)[order]),
                   p01, p10, lq01, lq10)


def rtn_corrections(x, nbits, bitserial, cell_row, cell_col, d_tab, state, p01, p10, key,
                    n_rows, dtype=np.float64, *, plan=None, base=None, block=RTN_BLOCK):
    """Exact per-multiply RTN (numba): (columns, corrections (columns, B*nbits)) relative
    to the joint trap states ``base`` (default: the present ones); ``state`` is advanced in
    place. ``plan``: :func:`rtn_plan` of ``cell_col`` (built if None) or its
    :func:`rtn_prepare` (then ``cell_row``, ``d_tab``, ``p01``, ``p10`` are not read)."""
    x = np.asarray(x)
    if not isinstance(plan, RtnWalk):
        plan = rtn_prepare(rtn_plan(cell_col) if plan is None else plan, cell_row, d_tab,
                           p01, p10)
    w = plan
    corr = np.zeros((w.cols.size, int(n_rows)), dtype=dtype)
    if state.shape[0] == 0:
        return w.cols, corr
    base = joint_states(state) if base is None else np.asarray(base, dtype=np.int64)
    st = np.ascontiguousarray(state[w.order])
    if bitserial:  # transposed bit-planes: row r, column b*nbits + k = bit k of x[b, r]
        bp = np.ascontiguousarray(bitplanes_t(x, nbits))
        xt = np.zeros((1, 1), dtype=np.uint8)
    else:
        small = x.size == 0 or (x.min() >= 0 and x.max() < 256)
        xt = np.ascontiguousarray(x.T, dtype=np.uint8 if small else np.int64)
        bp = np.zeros((1, 1), dtype=np.uint8)
    _rtn_kernel(xt, bp, int(nbits), bool(bitserial), w.row, w.order, w.d_tab, st,
                np.ascontiguousarray(base[w.order]), w.p01, w.p10, w.lq01, w.lq10,
                np.uint64(key), corr, w.col_ptr, int(block))
    state[w.order] = st
    return w.cols, corr


@numba.njit(cache=True)
def _add_transposed(cur, cols, corr, start):
    """cur[b, cols[g]] += corr[g, start + b], blocked so both sides stay in cache."""
    nrow = cur.shape[0]
    ncol = cols.size
    blk = 64
    for b0 in range(0, nrow, blk):
        b1 = min(b0 + blk, nrow)
        for g in range(ncol):
            c = cols[g]
            src = corr[g]
            for b in range(b0, b1):
                cur[b, c] += src[start + b]


def add_corrections(cur, cols, corr, start=0):
    """cur[:, cols] += corr[:, start:start + len(cur)].T (numba, cache-blocked)."""
    if cols.size == 0:
        return
    if cur.dtype == corr.dtype and cur.flags.c_contiguous:
        _add_transposed(cur, cols, corr, int(start))
    else:
        cur[:, cols] += corr[:, start:start + cur.shape[0]].T


def rtn_apply(x, nbits, bitserial, cell_row, cell_col, d_tab, state, p01, p10, key, cur, *,
              plan=None, base=None, block=RTN_BLOCK):
    """Exact per-multiply RTN (numba); ``cur`` (B*nbits, P) and ``state`` updated in place."""
    if state.shape[0] == 0:
        return
    cols, corr = rtn_corrections(x, nbits, bitserial, cell_row, cell_col, d_tab, state, p01,
                                 p10, key, cur.shape[0], cur.dtype, plan=plan, base=base,
                                 block=block)
    add_corrections(cur, cols, corr)


def _geometric_numpy(key, counter, p):
    if p >= 1.0:
        return 1
    if p <= 0.0:
        return 1 << 62
    u = hash_uniform_numpy(key, [counter])[0]
    g = np.floor(np.log(u) / np.log1p(-p)) + 1.0
    return 1 << 62 if g > 4.0e18 else int(g)


def rtn_apply_numpy(x, nbits, bitserial, cell_row, cell_col, d_tab, state, p01, p10, key, cur,
                    base=None):
    """Reference twin of :func:`rtn_apply`: each trap's state per multiply built explicitly."""
    x = np.asarray(x, dtype=np.int64)
    nvec = x.shape[0]
    ncell, ntrap = state.shape
    ks = np.arange(nbits)
    for i in range(ncell):
        joint = np.zeros(nvec + 1, dtype=np.int64)
        j0 = int((state[i] << np.arange(ntrap)).sum()) if base is None else int(base[i])
        for t in range(ntrap):
            s = int(state[i, t])
            seq = np.empty(nvec + 1, dtype=np.int64)
            b, k = 0, 0
            while b <= nvec:
                p = p01[i, t] if s == 0 else p10[i, t]
                g = _geometric_numpy(key, (i << 32) + (t << 26) + k, p)
                k += 1
                seq[b:min(b + g, nvec + 1)] = s
                b += g
                s = 1 - s
            joint += seq << t
            state[i, t] = seq[nvec]
        xv = x[:, cell_row[i]][:, None]
        idx = ((xv >> ks[None, :]) & 1) if bitserial else np.repeat(xv, nbits, 1)
        jb = np.repeat(joint[:nvec, None], nbits, 1)
        add = d_tab[i][jb, idx] - d_tab[i][j0, idx]
        cur[:, cell_col[i]] += add.reshape(-1)


