"""Counter-based random numbers of ISPP programming: SplitMix64 uniforms and normals, and
Poisson draws (table inversion below PTRS_ABOVE, transformed rejection above), each a numba
function with a NumPy twin that reads the same stream positions; part of
:mod:`norsim.device.programming` (which re-exports these names).

Each cell has its own stream (SplitMix64 of the cell seed plus a counter), so the numba
kernel (per cell, in parallel) and the NumPy reference (per pulse, vectorised over cells)
draw identical numbers and results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import gammaln

from norsim.device.vecmath import box_muller, box_muller_np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO53 = 1.0 / 9007199254740992.0
PTRS_ABOVE = 128.0  # Poisson means from here on use transformed rejection (PTRS); the
#                    tables below cover Poisson(m < 128) to k = 255 (tail < 1e-20)
_INV_K = 1.0 / np.arange(1, 1002, dtype=np.float64)  # 1/k table of the chop-down search
_CHOP_MAX = 1000  # the chop-down table ends at k = 1000 (P(k > 1000) < 1e-300 for lam <= 128)
# ln k! for k < 4096 (PTRS's acceptance test): a table lookup instead of lgamma per draw, and
# the numba kernel and its NumPy twin read the same numbers
_LOGFACT = gammaln(np.arange(1, 4097, dtype=np.float64))
_NLOGFACT = _LOGFACT.size


def _poisson_tables(m_max: int, length: int, bins: int):
    """CDF rows of Poisson(m) for integer m < m_max (k = 0..length-1, last entry 1) and a
    guide table per row: GUIDE[m, j] = first k with CDF[m, k] >= j / bins."""
    k = np.arange(length, dtype=np.float64)
    cdf = np.ones((m_max, length))
    guide = np.zeros((m_max, bins), np.int64)
    for m in range(1, m_max):
        pmf = np.exp(-m + k * np.log(m) - gammaln(k + 1.0))
        row = np.minimum(np.cumsum(pmf), 1.0)
        row[-1] = 1.0  # the tail beyond length - 1 (< 1e-20 for m < 128) goes to the last entry
        cdf[m] = row
        guide[m] = np.searchsorted(row, np.arange(bins) / bins, side="left")
    return cdf, guide


# Poisson(lam) for lam < PTRS_ABOVE: Poisson(floor lam) by table inversion plus a Poisson(1)
# count thinned with probability frac(lam) (= Poisson(frac lam)); the sum is Poisson(lam)
# exactly, with no transcendental call
_GUIDE_BINS = 256
_PCDF, _PGUIDE = _poisson_tables(int(PTRS_ABOVE), 256, _GUIDE_BINS)
_THIN_UNROLLED = 3
_ONE32 = np.uint64(1) << np.uint64(32)
_TWO32 = np.uint64(2) << np.uint64(32)


# ----------------------------------------------------------------- counter-based RNG ----
@numba.njit(cache=True, inline="always")
def _mix(seed, counter):
    z = seed + (counter + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(cache=True, inline="always")
def _uniform(seed, counter):
    """Uniform in (0, 1)."""
    return (float(_mix(seed, counter) >> _S11) + 0.5) * _TWO53


@numba.njit(cache=True, inline="always")
def _normal(seed, counter):
    """Box-Muller normal of the uniforms at ``counter`` and ``counter + 1``."""
    return box_muller(_uniform(seed, counter), _uniform(seed, counter + np.uint64(1)))


@numba.njit(cache=True, inline="always")
def _poisson(lam, seed, counter):
    """Poisson(lam) from the cell's stream at ``counter``.

    lam < PTRS_ABOVE: m = floor(lam) from the guide-table inversion of the uniform at
    ``counter``, plus N ~ Poisson(1) (uniform at counter + 1) thinned to Binomial(N, lam - m)
    by the uniforms at counter + 2 + j 2^32 (j < N): Poisson(m) + Poisson(lam - m).
    lam >= PTRS_ABOVE: transformed rejection with squeeze (PTRS, Hoermann 1993), attempt a
    using the uniforms at counter + 2a 2^32 and counter + (2a + 1) 2^32 (regular counters
    stay far below 2^32).
    """
    if lam <= 0.0:
        return 0.0
    if lam < PTRS_ABOVE:
        m = int(lam)
        r = lam - m
        k = 0
        if m > 0:
            u = _uniform(seed, counter)
            k = _PGUIDE[m, min(int(u * _GUIDE_BINS), _GUIDE_BINS - 1)]
            while u > _PCDF[m, k]:  # rarely taken: the guide entry is nearly always the answer
                k += 1
        u = _uniform(seed, counter + np.uint64(1))
        nn = _PGUIDE[1, min(int(u * _GUIDE_BINS), _GUIDE_BINS - 1)]
        while u > _PCDF[1, nn]:
            nn += 1
        # thinning: the first _THIN_UNROLLED candidates without branches (their uniforms are
        # cheap; a loop with a Poisson(1) trip count mispredicts its exit), the rest in a loop;
        # r = 0 (integer lam) thins every candidate away, as before
        c = counter + np.uint64(2)
        k += (nn > 0) & (_uniform(seed, c) < r)
        k += (nn > 1) & (_uniform(seed, c + _ONE32) < r)
        k += (nn > 2) & (_uniform(seed, c + _TWO32) < r)
        for j in range(_THIN_UNROLLED, nn):
            if _uniform(seed, c + (np.uint64(j) << np.uint64(32))) < r:
                k += 1
        return float(k)
    slam = np.sqrt(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    for att in range(1000):
        off = np.uint64(2 * att) << np.uint64(32)
        uu = _uniform(seed, counter + off) - 0.5
        v = _uniform(seed, counter + off + (np.uint64(1) << np.uint64(32)))
        us = 0.5 - abs(uu)
        k = np.floor((2.0 * a / us + b) * uu + lam + 0.43)
        if us >= 0.07 and v <= v_r:
            return k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
        lfk = _LOGFACT[int(k)] if k < _NLOGFACT else math.lgamma(k + 1.0)
        if (np.log(v) + np.log(inv_alpha) - np.log(a / (us * us) + b)
                <= -lam + k * np.log(lam) - lfk):
            return k
    return np.floor(lam + 0.5)  # not reached in practice (acceptance > 0.9 per attempt)


def poisson_cdf_table(lam: float) -> np.ndarray:
    """CDF of Poisson(lam) at k = 0..1000, summed in the chop-down search's order, so that
    inverting one uniform against it (:func:`_poisson_table`) gives exactly the chop-down
    result of :func:`_poisson` for a fixed mean without an exponential per draw."""
    cdf = np.empty(_CHOP_MAX + 1)
    p = float(np.exp(-lam)) if lam > 0 else 1.0
    f = p
    cdf[0] = f
    for k in range(_CHOP_MAX):
        p *= lam * _INV_K[k]
        f += p
        cdf[k + 1] = f
    # the running sum ends a few ulps from 1 (up to 4.2e-15 below it for means <= 128): a
    # uniform above it would draw the cap, 1000 electrons; normalised, the last entry is 1
    return cdf / cdf[-1]


def poisson_table_fast_len(cdf: np.ndarray) -> int:
    """How many leading entries of a :func:`poisson_cdf_table` :func:`_poisson_table` scans
    without branches: up to the first CDF value >= 1 - 1e-9 (a longer search is rare)."""
    return int(min(np.searchsorted(cdf, 1.0 - 1e-9, side="left") + 1, _CHOP_MAX))


@numba.njit(cache=True, inline="always")
def _poisson_table(cdf, nfast, seed, counter):
    """Poisson draw by inversion of one uniform against a :func:`poisson_cdf_table`: the
    first k with u <= cdf[k] (at most _CHOP_MAX). The CDF is nondecreasing, so that k is the
    count of the entries below u; the first ``nfast`` are counted without branches and the
    search goes on past them only when all of them are below u."""
    u = _uniform(seed, counter)
    k = 0
    for j in range(nfast):
        k += u > cdf[j]
    if k == nfast:
        while k < _CHOP_MAX and u > cdf[k]:
            k += 1
    return float(k)


def _poisson_table_np(cdf, seeds, counter):
    """NumPy twin of :func:`_poisson_table`."""
    u = _uniform_np(seeds, counter)
    return np.minimum(np.searchsorted(cdf, u, side="left"), _CHOP_MAX).astype(np.float64)


def _mix_np(seed, counter):
    with np.errstate(over="ignore"):
        z = seed + (np.uint64(counter) + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def _uniform_np(seed, counter):
    return ((_mix_np(seed, counter) >> _S11).astype(np.float64) + 0.5) * _TWO53


def _normal_np(seed, counter):
    return box_muller_np(_uniform_np(seed, counter), _uniform_np(seed, counter + 1))


def _table_np(m, u):
    """Inversion of uniforms ``u`` against the Poisson(m) rows of the guide tables."""
    k = _PGUIDE[m, np.minimum((u * _GUIDE_BINS).astype(np.int64), _GUIDE_BINS - 1)]
    while True:
        more = u > _PCDF[m, k]
        if not more.any():
            return k
        k = k + more


def _poisson_np(lam, seeds, counter):
    """NumPy twin of :func:`_poisson` (same algorithm, same stream positions)."""
    lam = np.asarray(lam, dtype=np.float64)
    out = np.zeros_like(lam)
    small = (lam > 0) & (lam < PTRS_ABOVE)
    ls, ss = lam[small], seeds[small]
    m = ls.astype(np.int64)
    r = ls - m
    k = np.where(m > 0, _table_np(m, _uniform_np(ss, counter)), 0)
    u1 = _uniform_np(ss, np.uint64(counter) + np.uint64(1))
    nn = np.where(r > 0, _table_np(np.ones_like(m), u1), 0)
    for j in range(int(nn.max(initial=0))):
        c = np.uint64(counter) + np.uint64(2) + (np.uint64(j) << np.uint64(32))
        k = k + ((j < nn) & (_uniform_np(ss, c) < r))
    out[small] = k
    big = np.flatnonzero(lam >= PTRS_ABOVE)
    if big.size:
        lb, sb = lam[big], seeds[big]
        slam = np.sqrt(lb)
        b = 0.931 + 2.53 * slam
        a = -0.059 + 0.02483 * b
        inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
        v_r = 0.9277 - 3.6224 / (b - 2.0)
        res = np.full(lb.shape, np.nan)
        todo = np.ones(lb.shape, bool)
        for att in range(1000):
            off = np.uint64(2 * att) << np.uint64(32)
            c = np.uint64(counter) + off
            uu = _uniform_np(sb, c) - 0.5
            v = _uniform_np(sb, c + (np.uint64(1) << np.uint64(32)))
            us = 0.5 - np.abs(uu)
            kk = np.floor((2.0 * a / us + b) * uu + lb + 0.43)
            quick = todo & (us >= 0.07) & (v <= v_r)
            res[quick] = kk[quick]
            todo &= ~quick
            cand = todo & ~((kk < 0) | ((us < 0.013) & (v > us)))
            if cand.any():
                with np.errstate(divide="ignore", invalid="ignore"):
                    lhs = np.log(v) + np.log(inv_alpha) - np.log(a / (us * us) + b)
                    lfk = np.where(kk < _NLOGFACT,
                                   _LOGFACT[np.clip(kk, 0, _NLOGFACT - 1).astype(np.int64)],
                                   gammaln(kk + 1.0))
                    rhs = -lb + kk * np.log(lb) - lfk
                acc = cand & (lhs <= rhs)
                res[acc] = kk[acc]
                todo &= ~acc
            if not todo.any():
                break
        res[todo] = np.floor(lb[todo] + 0.5)
        out[big] = res
    return out
