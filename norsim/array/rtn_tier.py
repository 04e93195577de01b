"""Approximate RTN tier of the bit-serial fast path (issue 17, ``array.noise.rtn_tier``).

The exact walk (``rtn_kernels``) costs per trap switch and per multiply a cell spends away
from its batch's base state; with the nor40 trap population (time constants log-uniform over
1 us - 100 s) almost all of it comes from the traps that switch within a few hundred
multiplies. The approximate tier splits every cell's traps by their correlation time:

* **slow** traps (correlation time >= K = N / ``MIN_SWITCHES`` multiplies in a batch of N,
  :func:`fast_multiplies`, so at most ~``MIN_SWITCHES`` switches in the batch) stay exact: the
  same walk, the same draws (counters), their state carried from batch to batch by the chain;
* **fast** traps are frozen and replaced by a Gaussian of the same mean and variance:
  their stationary occupancy is folded into the cell's current (``d_eff``: the current
  change averaged over the fast traps' joint states, per joint state of the slow ones) and
  their variance ``w = E[d^2] - d_eff^2`` reaches each conversion as

  - a per-(column, cycle) variance ratio ``r[p, k]`` times the conversion's column current
    (the batch's own row activity makes ``sum_b r[p, k] I[b, k, p]`` equal the exact
    ``sum_b sum_i w_i x[b, i, k]``: no second product),
  - split into a part shared by the ``nbits`` cycles of one multiply (one normal per
    multiply and column, added to the column current before the integrator clips, as an
    RTN current change is) and a white part added to the per-conversion read-noise
    variance. The shared fraction ``rho[p]`` is chosen so that the variance of the
    recombined output ``sum_k 2^k code_k`` matches the exact one over the batch:
    ``sum_{k != j} 2^(k+j) sum_i w_i n_i(k, j) = rho sum_{k != j} 2^(k+j) sqrt(V_k V_j)``
    (``n_i(k, j)``: multiplies in which bits k and j of cell i's row are both set; ``V_k``
    the batch-mean variance of cycle k). An exact trap holds its state over the cycles of
    a multiply, so white per-cycle noise of the same variance would understate the
    recombined variance by up to (sum 2^k)^2 / sum 4^k = 2.6 for 4 bits.

What the tier does not keep: the correlation of a fast trap's state across multiplies (at
most K multiplies long) and the two-valued shape of one trap's current
(the column sums many). docs/benchmarks.md ("Tiers") and docs/physics.md ("Noise per read")
give the measured bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from norsim.array.kernels import code_rows

#: a trap is fast (approximated) in a batch of N multiplies when its correlation time
#: 1 / (p01 + p10) is below K = N / MIN_SWITCHES multiplies (K rounded down to a power of 2,
#: so that a few table sets serve every batch size): it switches ~ 2 p (1 - p) N / K times
#: per batch, and the Gaussian, independent per multiply, loses the batch-mean drift such a
#: trap causes, ~ sqrt(2 K / N) = 0.35 of its own sd. Slower traps (those that would switch
#: fewer than ~MIN_SWITCHES times in the batch) stay in the exact walk. N = 4096: K = 256
#: (100 us at the nor40 read); N < 16: every trap exact.
MIN_SWITCHES = 16


def fast_multiplies(nvec) -> int:
    """K of :data:`MIN_SWITCHES` for a batch of ``nvec`` multiplies (0: no fast trap)."""
    k = int(nvec) // MIN_SWITCHES
    return 0 if k < 1 else 1 << (k.bit_length() - 1)


#: key of the shared normals: the readout key xor this (no extra Generator draw, so both
#: tiers take the same RTN key and readout normals from the same generator state)
SHARED_KEY_XOR = np.uint64(0x5DEECE66DA3B9F21)


def fast_traps(p01, p10, k_mult) -> np.ndarray:
    """(n, T) bool: traps that switch (p01 + p10 > 0) with a correlation time below
    ``k_mult`` multiplies."""
    m = np.asarray(p01, dtype=np.float64) + np.asarray(p10, dtype=np.float64)
    return m * k_mult > 1.0


@dataclass
class RtnTier:
    """The approximate tier's per-tile tables (:func:`approximate_tables`)."""
    fast: np.ndarray     # (n, T) bool
    p01: np.ndarray      # (n, T) walk probabilities, fast traps frozen (0)
    p10: np.ndarray
    d_on: np.ndarray     # (n, J) current change per joint state, fast traps averaged
    d_off: np.ndarray
    d_tab: np.ndarray    # (n, J, 2) [d_off, d_on] for the walk
    w_on: np.ndarray     # (n,) variance of the fast traps' current change, word line on (A^2)
    w_off: np.ndarray    # (n,) the same, word line off
    live: np.ndarray     # (n,) bool: cells with a slow switching trap (walked)


def approximate_tables(d_on, d_off, p01, p10, k_mult) -> RtnTier:
    """Average each cell's current change over its fast traps' stationary joint states
    (occupancy p = p01 / (p01 + p10)), per joint state J of the slow ones (the fast bits
    of J are ignored), and their variance, averaged over the slow traps' stationary
    states."""
    d_on = np.asarray(d_on, dtype=np.float64)
    d_off = np.asarray(d_off, dtype=np.float64)
    p01 = np.asarray(p01, dtype=np.float64)
    p10 = np.asarray(p10, dtype=np.float64)
    n, ntrap = p01.shape
    nj = 1 << ntrap
    fast = fast_traps(p01, p10, k_mult)
    m = p01 + p10
    p = np.divide(p01, m, out=np.zeros_like(m), where=m > 0)
    fmask = (fast.astype(np.int64) << np.arange(ntrap)).sum(axis=1) if ntrap else np.zeros(n, np.int64)
    bits = (np.arange(nj)[:, None] >> np.arange(ntrap)[None, :]) & 1  # (J, T)
    # probability of the fast configuration f (a subset of the cell's fast traps), (n, J)
    pf = np.ones((n, nj))
    for f in range(nj):
        for t in range(ntrap):
            pf[:, f] *= np.where(fast[:, t], np.where(bits[f, t] == 1, p[:, t], 1 - p[:, t]),
                                 1.0 if bits[f, t] == 0 else 0.0)
    ii = np.arange(n)
    on_eff, off_eff = np.zeros((n, nj)), np.zeros((n, nj))
    on_sq, off_sq = np.zeros((n, nj)), np.zeros((n, nj))
    for j in range(nj):
        for f in range(nj):
            tgt = (j & ~fmask) | f
            wgt = pf[:, f]
            on_eff[:, j] += wgt * d_on[ii, tgt]
            off_eff[:, j] += wgt * d_off[ii, tgt]
            on_sq[:, j] += wgt * d_on[ii, tgt] ** 2
            off_sq[:, j] += wgt * d_off[ii, tgt] ** 2
    var_on = np.maximum(on_sq - on_eff ** 2, 0.0)
    var_off = np.maximum(off_sq - off_eff ** 2, 0.0)
    # the slow traps' stationary mix weights the variance (it depends on their state only
    # through the exponential I-V: second order)
    slow = ~fast & (m > 0)
    ps = np.ones((n, nj))
    for j in range(nj):
        for t in range(ntrap):
            ps[:, j] *= np.where(slow[:, t], np.where(bits[j, t] == 1, p[:, t], 1 - p[:, t]),
                                 1.0)
    ps *= (np.arange(nj)[None, :] & fmask[:, None]) == 0  # one entry per slow configuration
    ps /= np.maximum(ps.sum(axis=1, keepdims=True), 1e-300)
    p01w = np.where(fast, 0.0, p01)
    p10w = np.where(fast, 0.0, p10)
    return RtnTier(fast, p01w, p10w, on_eff, off_eff, np.stack([off_eff, on_eff], -1),
                   (ps * var_on).sum(axis=1), (ps * var_off).sum(axis=1),
                   ((p01w + p10w) > 0).any(axis=1))


@numba.njit(cache=True)
def _code_hist_kernel(x, nchunk, out):
    nb, nr = x.shape
    for c in range(nchunk):  # serial: ~2 ms per 4096 x 256 batch, not worth the threads
        b0 = c * nb // nchunk
        b1 = (c + 1) * nb // nchunk
        acc = out[c]
        for b in range(b0, b1):
            xb = x[b]
            for r in range(nr):
                acc[r, xb[r]] += 1


def pair_counts(x, nbits) -> np.ndarray:
    """(rows, nbits, nbits): multiplies of the batch ``x`` (B, rows) in which bits k and j
    of the row's code are both set (numba: per-row code histograms, then a small product
    with the codes' bit pairs)."""
    x = code_rows(x)
    ncode = 1 << int(nbits)
    if ncode > 4096:  # wide codes: the bit-plane twin
        return pair_counts_numpy(x, nbits)
    nchunk = 1
    hist = np.zeros((nchunk, x.shape[1], ncode), dtype=np.int64)
    if x.size:
        _code_hist_kernel(x, nchunk, hist)
    bits = ((np.arange(ncode)[:, None] >> np.arange(nbits)[None, :]) & 1).astype(np.float64)
    pairs = (bits[:, :, None] * bits[:, None, :]).reshape(ncode, -1)
    return (hist.sum(axis=0).astype(np.float64) @ pairs).reshape(x.shape[1], nbits, nbits)


def pair_counts_numpy(x, nbits) -> np.ndarray:
    """Reference twin of :func:`pair_counts`."""
    bits = (np.asarray(x, dtype=np.int64)[..., None] >> np.arange(nbits)) & 1  # (B, R, k)
    return np.einsum("brk,brj->rkj", bits, bits).astype(np.float64)


def shared_split(counts, nvec, g, w_d):
    """Per physical column: (variance ratio r (P, nbits) so that r[p, k] times the cycle-k
    column current has the exact batch-mean fast-RTN variance, shared fraction rho (P,)
    matching the recombined output's variance; see the module docstring).

    ``counts`` (rows, nbits, nbits) of :func:`pair_counts`, ``g`` (rows, P) the current
    matrix of the product, ``w_d`` (rows, P) the fast-trap variance with the word line on
    minus off (A^2)."""
    nbits = counts.shape[1]
    g = np.asarray(g, dtype=np.float64)
    w_d = np.asarray(w_d, dtype=np.float64)
    nk = np.ascontiguousarray(np.diagonal(counts, axis1=1, axis2=2))  # (R, k)
    inv = 1.0 / max(int(nvec), 1)
    ibar = (g.T @ nk) * inv           # (P, k) batch-mean current of cycle k
    vbar = (w_d.T @ nk) * inv         # (P, k) exact batch-mean fast-RTN variance
    ratio = np.divide(vbar, ibar, out=np.zeros_like(vbar), where=ibar > 0)
    wt = 2.0 ** np.arange(nbits)
    pair_w = np.outer(wt, wt)
    np.fill_diagonal(pair_w, 0.0)
    target = (w_d.T @ (counts.reshape(counts.shape[0], -1) @ pair_w.ravel())) * inv  # (P,)
    sv = np.sqrt(np.maximum(vbar, 0.0))
    model = np.einsum("pk,pj,kj->p", sv, sv, pair_w)
    rho = np.clip(np.divide(target, model, out=np.zeros_like(target), where=model > 0), 0, 1)
    return np.ascontiguousarray(ratio), np.ascontiguousarray(rho)
