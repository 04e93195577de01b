#!/usr/bin/env python3
"""Mutation testing of norsim's core (issue 26): small realistic bugs injected into a COPY.

Each mutant is one small change of one core module, made with Python's ``ast``:

  binop      an arithmetic operator flipped (+ <-> -, * <-> /, ** -> *, // -> /, & <-> |)
  drop       one term of a sum or difference dropped (``a + b`` -> ``a``)
  unary      a unary minus or ``not`` removed
  compare    a comparison flipped at its boundary (< <-> <=, > <-> >=, == <-> !=, in <-> not in)
  boolop     ``and`` <-> ``or``
  int        an integer constant (or a slice bound) off by one (n -> n + 1)
  float      a float constant scaled by 1.1
  augassign  ``+=`` <-> ``-=``, ``*=`` <-> ``/=``
  return     a returned value replaced by ``None``

Annotations, decorators, f-strings and the arguments of ``raise`` (error messages) are not
mutated. The mutated module is written into a private copy of the repository (one per job,
under a temporary folder; the working tree is never touched), and only the tests mapped to
that module run there (``pytest -x -q``) under a per-mutant time limit. A mutant is *killed*
when a test fails, errors or runs out of time, *survives* when every mapped test passes.

numba: each job has its own ``NUMBA_CACHE_DIR``. A cached kernel embeds the machine code of
the jitted functions it calls, so before and after each mutant the cache entries of the
mutated module and of every norsim module that imports it (directly or not) are deleted:
they recompile against the mutant, the others load from the job's cache. ``--no-jit`` runs
with ``NUMBA_DISABLE_JIT=1`` instead (no compilation; slower kernels in pure Python).

The last line on stdout is one JSON object: per module the mutants run, killed (of which by
time-out), survivors (with their source line and change), the known-equivalent mutants among
them, and ``score`` = killed / (mutants - equivalent). Progress goes to stderr.

Resumable: every finished mutant and every module's baseline is appended (one fsynced JSON
line) to a journal, ``results/mutation/journal.jsonl`` unless ``--journal PATH`` or
``--no-journal``. A run takes over each chosen mutant whose module, key and fingerprint (the
sha256 of the module's source, of its test files and of ``scripts/mutants.py``) match a
journaled outcome, so a killed run resumes where it stopped and a changed module or test
reruns; resumed mutants count in the score, and ``seconds`` sums the journaled times.

    python scripts/mutate.py                                  # every core module, 30 each
    python scripts/mutate.py --no-journal                     # the same, nothing resumed
    python scripts/mutate.py --module retention --max-mutants 0   # all mutants of one module
    python scripts/mutate.py --list                           # modules, sites, mapped tests
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures as cf
import hashlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import Site, mutate, sites  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

_PROGRAMMING_TESTS = ("tests/test_pin_program_cost.py", "tests/test_pin_programming.py",
                      "tests/test_device_programming.py")
_IV_TESTS = ("tests/test_pin_iv.py", "tests/test_device_iv.py")

#: the tests that pin circuit mode's modules
_CIRCUIT_TESTS = ("tests/test_pin_circuit.py", "tests/test_circuit_solver.py",
                  "tests/test_circuit_straps.py", "tests/test_circuit_newton.py",
                  "tests/test_ir_network.py", "tests/test_circuit_surrogate.py")
#: circuit mode's kernels (cell evaluation, linear solves, batch and Newton kernels): their
#: kernel-vs-twin tests first, then the solver's
_CIRCUIT_KERNEL_TESTS = ("tests/test_pin_circuit_batch.py", "tests/test_circuit_kernels.py",
                         *_CIRCUIT_TESTS)
#: the array's bit-serial fast path (column-major readout, per-read noise, exact RTN)
_ARRAY_READ_TESTS = ("tests/test_pin_readout.py", "tests/test_pin_kernels.py",
                     "tests/test_array_fast_path.py",
                     "tests/test_array_kernels.py", "tests/test_array_noise.py")

#: core module -> (its source file, the test files that pin it)
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    # fast modules first; in each list the fast, pinning tests first (pytest -x stops early)
    "stats": ("norsim/stats.py", ("tests/test_pin_stats.py", "tests/test_stats.py")),
    "retention": ("norsim/device/retention.py", ("tests/test_pin_retention.py",
                                                 "tests/test_device_retention.py")),
    "requant": ("norsim/mapping/requant.py", ("tests/test_pin_requant.py",
                                              "tests/test_reference.py",
                                              "tests/test_quant_model.py")),
    "device_noise": ("norsim/device/noise.py", ("tests/test_pin_noise.py",
                                                "tests/test_device_noise.py")),
    "periphery": ("norsim/array/periphery.py", ("tests/test_pin_adc.py",
                                                "tests/test_array_periphery.py")),
    # tests/test_device_verify.py (1.5 min idle, 6.5 min under load per run) is left to
    # --extra-tests: a first pass with the fast tests, its survivors rerun with it
    # programming: the public API and reports, the counter-based random streams, the ISPP
    # kernel and its NumPy twin (norsim/device/programming.py re-exports the others)
    "programming": ("norsim/device/programming.py", _PROGRAMMING_TESTS),
    "programming_rng": ("norsim/device/counter_rng.py",
                        ("tests/test_pin_counter_rng.py",) + _PROGRAMMING_TESTS),
    "ispp_kernel": ("norsim/device/ispp_kernel.py", _PROGRAMMING_TESTS),
    "ispp_numpy": ("norsim/device/ispp_numpy.py", _PROGRAMMING_TESTS),
    "device_vecmath": ("norsim/device/vecmath.py", ("tests/test_device_vecmath.py",
                                                    "tests/test_device_iv.py")),
    # device I-V: the cell model (norsim/device/iv.py, which re-exports the others), one
    # transistor (EKV), the split-gate node solve (scalar + NumPy twin), its vectorised
    # kernel, and V_th for a target current
    "device_iv": ("norsim/device/iv.py", _IV_TESTS),
    "device_iv_ekv": ("norsim/device/iv_ekv.py", _IV_TESTS),
    "device_iv_split": ("norsim/device/iv_split.py", _IV_TESTS),
    "device_iv_split_vec": ("norsim/device/iv_split_vec.py", _IV_TESTS),
    "device_iv_vth": ("norsim/device/iv_vth.py", _IV_TESTS),
    "array_kernels": ("norsim/array/kernels.py", ("tests/test_pin_kernels.py",
                                                  "tests/test_pin_adc.py",
                                                  "tests/test_array_kernels.py",
                                                  "tests/test_array_ideal.py")),
    # circuit mode, split along its seams (issue 19): the solver and its dispatch, the
    # reference path with the sparse-LU Newton, Newton-Krylov, the wire network
    "circuit_solver": ("norsim/array/circuit.py", _CIRCUIT_TESTS),
    "circuit_reference": ("norsim/array/circuit_reference.py", _CIRCUIT_TESTS),
    "circuit_krylov": ("norsim/array/circuit_krylov.py", _CIRCUIT_TESTS),
    "circuit_network": ("norsim/array/circuit_network.py", _CIRCUIT_TESTS),
    # circuit mode's numba kernels, each with its NumPy twin (norsim/array/circuit_kernels.py
    # only re-exports them): cell evaluation, the exact row evaluation, linear solves, the
    # default batch kernel with its certified stop, the per-vector Newton kernel and its
    # line solves
    "circuit_iv": ("norsim/array/circuit_iv.py", _CIRCUIT_KERNEL_TESTS),
    "circuit_exact": ("norsim/array/circuit_exact.py", _CIRCUIT_KERNEL_TESTS),
    "circuit_linear": ("norsim/array/circuit_linear.py", _CIRCUIT_KERNEL_TESTS),
    "circuit_batch": ("norsim/array/circuit_batch.py", _CIRCUIT_KERNEL_TESTS),
    "circuit_newton": ("norsim/array/circuit_newton.py", _CIRCUIT_KERNEL_TESTS),
    "circuit_newton_lines": ("norsim/array/circuit_newton_lines.py", _CIRCUIT_KERNEL_TESTS),
    # the array's read path: column-major readout (issue 17), per-read noise, exact RTN
    "readout_t": ("norsim/array/readout_t.py", _ARRAY_READ_TESTS),
    "noise_read": ("norsim/array/noise_read.py", _ARRAY_READ_TESTS),
    "rtn_kernels": ("norsim/array/rtn_kernels.py", _ARRAY_READ_TESTS),
    # weight and input encodings (integer weights -> cell levels -> conversion channels)
    "encodings": ("norsim/array/encodings.py", ("tests/test_array_ideal.py",
                                                "tests/test_array_periphery.py",
                                                "tests/test_pin_adc.py")),
}

#: mutants known to be equivalent (no test can tell them apart): key -> reason. The key is
#: "<module>::<function>::<change>@<column>::<source line or node>", stable when lines move.
EQUIVALENT: dict[str, str] = {
    "stats::mcnemar_exact::0->1@12::if n == 0:":
        "with one discordant pair the formula gives min(1, 2 x binom.cdf(0, 1, 1/2)) = 1, the "
        "value of the n == 0 shortcut",
    "requant::quantize_multiplier_pair::0:GtE->Gt@7::max(ma, mb) >= 2 ** MULT_BITS":
        "unreachable branch: the larger multiplier rounds to quantize_multiplier's normalised "
        "m < 2**31 at the same shift, and the smaller one to at most that",
    "requant::quantize_multiplier_pair::2->3@22::if max(ma, mb) >= 2 ** MULT_BITS:   # "
    "rounding pushed it over: one bit less":
        "the same unreachable branch (a larger bound is never reached either)",
    "retention::draw_retention::Mult->Div@9::ret.a_v_per_decade_per_v / np.log(10.0) * "
    "np.exp(ret.a_sigma_ln * rng.standard_normal(vth.shape))":
        "dividing by exp(sigma z) is multiplying by exp(sigma (-z)): -z is standard normal "
        "too, so the log-normal law of A is unchanged (only the seeded draws differ)",
    "programming_rng::poisson_table_fast_len::drop right term@19::np.searchsorted(cdf, 1.0 - "
    "1e-09, side='left') + 1":
        "nfast only splits _poisson_table's count into a branch-free part and a search that "
        "goes on past it: the drawn k is the same for any nfast (speed only)",
    "ispp_kernel::_ispp_kernel::Sub->Add@12::ncell + _BLOCK - 1":
        "(ncell + BLOCK + 1) // BLOCK adds a block only when ncell % BLOCK is 0 or 255; that "
        "block starts at or past the last cell, so its loops do nothing (255, 256 and 257 "
        "cells in tests/test_pin_programming.py give the reference's result with it)",
    "ispp_kernel::_ispp_kernel::0->1@54::for q in range(na if (last or nflag) else 0):":
        "with no flagged cell and not the last pulse, q = 0 enters a body guarded by "
        "'last or c_flag[0]', which is false",
    "ispp_numpy::_ispp_numpy::1->2@38::for i in range(law.tune_max + 1):  # the last "
    "iteration is a final verify, no pulse":
        "the loop breaks at i == tune_max, so the range's extra iteration is never reached "
        "(tests/test_pin_programming.py pins the limit itself)",
    "programming_rng::_poisson::0:Lt->LtE@25::_uniform(seed, c) < r":
        "uniforms are multiples of 2**-53: u <= r and u < r differ with probability 2**-53 "
        "per draw",
    "programming_rng::_poisson::0:Lt->LtE@15::_uniform(seed, c + (np.uint64(j) << "
    "np.uint64(32))) < r":
        "the thinning loop's candidates past the unrolled three, as the key above: uniforms "
        "are odd multiples of 2**-54 and r = lam - floor(lam) is a multiple of 2**-52 for "
        "lam >= 1, so u == r never happens there (below 1: probability <= 2**-53 per draw)",
    "programming_rng::_poisson_tables::1.0->x1.1@18::row[-1] = 1.0  # the tail beyond "
    "length - 1 (< 1e-20 for m < 128) goes to the last entry":
        "the last CDF entry only has to be >= every uniform (< 1) so the inversion stops "
        "there: 1.0 and 1.1 both are; the guide table's searchsorted of j / 256 < 1 picks "
        "the same first entry >= j / 256 either way",
    "programming_rng::_poisson::drop right term@29::v_r = 0.9277 - 3.6224 / (b - 2.0)":
        "PTRS's squeeze bound v_r = 0.9277 - 3.6224 / b (mutant) instead of / (b - 2) still "
        "lies below the exact acceptance boundary exp(-lam + k ln lam - ln k!) (a / us^2 + "
        "b) / inv_alpha for every proposal with us >= 0.07, so the quick accept takes only "
        "proposals the ratio test accepts: same draws (speed only). Checked on a grid of 2e6 "
        "values of uu in [-0.43, 0.43] at lam = 128 ... 1e6: boundary minimum 0.8193 vs "
        "mutant v_r 0.8051 at 128, 0.9117 vs 0.9076 at 5000, 0.9278 vs 0.9263 at 1e6",
    "programming_rng::_poisson::0:LtE->Lt@12::np.log(v) + np.log(inv_alpha) - np.log(a / "
    "(us * us) + b) <= -lam + k * np.log(lam) - lfk":
        "the ratio test's two sides are continuous in the uniform v: <= and < differ only "
        "at exact float equality, probability ~2**-53 per attempt",
    "programming_rng::_poisson_np::0->1@34::cand = todo & ~((kk < 0) | ((us < 0.013) & "
    "(v > us)))":
        "excludes k = 0 proposals, which the ratio test never accepts for lam >= 128: it "
        "needs v <= exp(-lam) (a / us^2 + b) / inv_alpha <= e^-128 x 0.68 x 2^108 = 6e-24, "
        "below the smallest uniform 2**-54 = 5.6e-17",
    "device_iv::<module>::16384->16385@18::_SG_PREDICT_MIN = 16384    # common reads at least "
    "this large start pass 0 from a node table":
        "the call size from which the split-gate solve starts from the node table instead of "
        "V_D (speed): it switches only for a call of exactly 16384 elements, and both starts "
        "converge to the same current (tests/test_device_iv.py checks the two agree)",
    "device_iv::CellModel::200->201@20::max_iter: int = 200":
        "the iteration cap of the safeguarded split-gate node solve (Newton, quadratic near "
        "the root, inside a bracket; bisection when a step leaves it): pure bisection of a "
        "bracket of |V_D - V_S| < 10 V reaches the 1e-15 V stop within ~54 steps, so a cap of "
        "200 is not the binding stop and one more allowed iteration changes nothing",
    "device_iv_vth::_vth_direct_kernel::Div->Mult@20::tol * alpha_g / (nk * u_t)":
        "the stop of the Newton iteration on the pinch-off voltage converted with (n U_T)^2 "
        "~ 1e-3 too small: a tighter stop of a quadratically convergent iteration, at most "
        "one more step; the V_th it returns is the same (0 difference at tol_v = 1e-11, 1e-6 "
        "and 1e-3 V over 1 pA - 20 uA, split- and stacked-gate, checked with "
        "NUMBA_DISABLE_JIT=1)",
    "device_iv_vth::_vth_kernel::0:Gt->GtE@15::if cur > 0.0:":
        "cur == 0 (an underflowed current) then takes the first branch: h = ln 0 - ln I_t = "
        "-inf <= 0 sets hi = V_th, as the other branch does, and the Newton step "
        "-h cur / dI = -inf x 0 is NaN, the other branch's value: the same bracket update "
        "and the same bisection step",
    "readout_t::_readout_t_kernel::drop right term@46::start + n0 + m":
        "the negative column's RTN-correction slice corr[sq, start+n0 : start+n0] is empty, "
        "but numba does not check bounds (NUMBA_BOUNDSCHECK unset, as in every run): the "
        "empty view keeps the same data pointer, so crq[i] loads corr[sq, start+n0+i], the "
        "values the full slice holds -- undefined behaviour that reads the same memory (the "
        "positive column's slice, same code, is pinned through its sp >= 0 branch)",
    "rtn_kernels::rtn_corrections::1->2@26::xt = np.zeros((1, 1), dtype=np.uint8)":
        "the placeholder of the non-bit-serial input codes on the bit-serial path: there the "
        "kernel takes xr = xt[0] and never reads it (only the bit-planes bp), so a (2, 1) "
        "placeholder instead of (1, 1) changes nothing",
    "circuit_batch::certified_error::0:LtE->Lt@11::rho <= RHO_MAX":
        "rho = f max(...) is a product of an exp() and sums of the tile's conductance "
        "bounds; it equals 2/3 exactly (where <= and < differ) with probability ~0, and a "
        "vector refused there sweeps once more (rho shrinks) or takes the reference path",
    "circuit_batch::_solve_batch_kernel::0:LtE->Lt@28::step * step / u_t <= tol":
        "the Newton-step test at exact equality step^2 / U_T == tol (probability ~0); "
        "otherwise the same branch",
    "circuit_batch::_solve_batch_kernel::0:Eq->NotEq@34::tol_in = tol_first if outer == 1 "
    "else 0.1 * tol":
        "speed only: tol_in decides when the sweeps hand over to the next exact evaluation "
        "(Newton step), never the stop, which stays res + err <= tol with the Newton test; a "
        "vector that then stalls takes the reference path (same tolerance). Swapping the "
        "first and later inner tolerances changes the sweep count, not the certified result",
    "circuit_iv::_split_point::0:Lt->LtE@26::x_new = x + dx if dg < 0.0 else 0.5 * (lo + hi)":
        "at dg == 0 (both derivatives underflowed) the Newton block did not run, so dx is "
        "still the 0.0 of the previous pass and x_new = x; but x has just become lo or hi (g "
        "!= 0 moved that end of the bracket to x), so x_new is not strictly inside and the "
        "next line bisects: the original's branch",
    "circuit_exact::_exp_mode::0.004->x1.1@16::if t_max <= 4e-3:":
        "the degree-5 Taylor series of e^t - 1 used up to |t| = 4.4e-3 instead of 4e-3: its "
        "remainder e^t t^6 / 6! grows from 5.7e-18 to 1.0e-17 relative, still ten times "
        "below a double's rounding (1.1e-16), so the currents round to the same values as "
        "with exp (no test tolerance, however tight, can see it)",
    "circuit_newton::_newton_batch_kernel::0->1@24::if nj > 0:":
        "the strap nodes' update y += dy skipped for one tap (nj == 1). y enters the model "
        "only linearly (the source lines' residual -g_tap y at the taps and the strap rows "
        "A_yv v + A_yy y) and each pass solves (dv, dy) exactly (block Thomas), so with "
        "w = y + dy the pass solves G' dv - E_t w = rhs(u, v), A_yv dv + A_yy w = -A_yv v: dv "
        "and du do not depend on y at all. The stop is unchanged too: with y kept at "
        "-A_yy^-1 A_yv v, dy = g_tap A_yy^-1 dv[taps], a non-negative map with row sums <= 1 "
        "(A_yy is an M-matrix whose row sums are g_tap plus the pads), so |dy| <= max |dv| "
        "and max(|du|, |dv|, |dy|) = max(|du|, |dv|). Checked with NUMBA_DISABLE_JIT=1 on "
        "6, 7 and 16 x 1 tiles, wires x100-x2000, strap pitch and pads x1 and x100: the same "
        "inner and outer iteration counts and currents equal to 5e-13 (rounding)",
    "circuit_newton::_newton_batch_kernel::0:Gt->GtE@19::if nj > 0:":
        "with no strap (nj == 0) dy is a (1, 1) zero array that nothing writes: y += 0 and "
        "max(upd, 0) = upd",
    "circuit_newton_lines::_inv_small::0->1@16::n = a.shape[0]":
        "the matrix inverted is square (the straps' block of the block-Thomas solve): its "
        "shape[1] is its shape[0]",
    "circuit_network::_chain_matrix::0->1@29::off = np.full(max(n - 1, 0), -g_seg)":
        "differs only for n <= 1 node (one line of one node): the off-diagonal then has one "
        "entry instead of none, but length 1 sets it to 0 (off[:] = 0.0) and scipy's diags "
        "drops a diagonal outside a 1 x 1 matrix: the same matrix (checked)",
    "circuit_reference::ReferencePath._inner::0->1@55::depth = w.anderson_depth if "
    "w.anderson_depth > 0 else ANDERSON_FALLBACK_DEPTH":
        "speed only: a configured Anderson depth of exactly 1 would get the fallback depth "
        "(5) instead; the mixing history changes the sweep count, not the stop (same "
        "tolerance); no preset or test sets depth 1",
    "circuit_reference::ReferencePath._solve_reference::drop right term@22::_take(xint, act, "
    "full) - _take(dxd, act, full) * du + _take(dxs, act, full) * dv":
        "the predicted start of the split-gate internal node (x + dx/dV_D dV_D + dx/dV_S "
        "dV_S) without its source-line term: only the start of the safeguarded node solve, "
        "which converges inside its bracket to the same node (1e-15 V stop) from any start",
    "circuit_krylov::KrylovPath._solve_newton_krylov.gmres::1e-08->x1.1@54::return dx, "
    "np.linalg.norm(res, axis=0) <= 1e-8 * np.maximum(b_norm, 1e-300)":
        "the inner GMRES's 'converged' flag at 1.1e-8 instead of 1e-8 relative: the flag "
        "only steers the inexact Newton step; the outer iteration stops on its own residual "
        "and step tests at the solver tolerance",
    "circuit_krylov::KrylovPath._solve_newton_krylov::40->41@27::for _ in range(40):  # "
    "Armijo halving, per vector":
        "the cap of the Armijo step halving: 40 halvings shrink the step to 2^-40 ~ 1e-12 of "
        "the Newton step; a 41st is never reached (a vector still failing then goes to the "
        "fallback path either way)",
    "ispp_numpy::_ispp_numpy.trap_step::0:Lt->LtE@18::_uniform_np(seeds, base + _TRAP_SLOT + "
    "j) < prob":
        "the NumPy twin's uniforms are (k + 1/2) 2**-53: u <= p and u < p differ only when p "
        "lies exactly on that grid, probability ~2**-53 per draw (as programming_rng's "
        "_poisson)",
    "programming_rng::_poisson::0:Lt->LtE@25::_uniform(seed, c + _TWO32) < r":
        "the same 2**-53 grid argument as the other _poisson comparison: u <= r and u < r "
        "differ with probability ~2**-53 per draw",
    "programming_rng::_poisson::0:Lt->LtE@23::if k < 0.0 or (us < 0.013 and v > us):":
        "rejects k == 0 in the PTRS branch, which runs only for lam >= PTRS_ABOVE = 128: "
        "P(k = 0) = exp(-lam) <= 3e-56 there, so no draw can tell the two apart",
    "programming_rng::<module>::1000->1001@12::_CHOP_MAX = 1000  # the chop-down table ends "
    "at k = 1000 (P(k > 1000) < 1e-300 for lam <= 128)":
        "poisson_cdf_table (the tuning pulses' electron counts, mean <= PTRS_ABOVE = 128) one "
        "entry longer: its running sum stops changing long before k = 600 (checked for 2,000 "
        "means in (0, 128]: entries 600, 999 and 1000 equal), so the added entry repeats the "
        "last one and the search stops at the same k (the table is normalised to end at 1, "
        "so no uniform lies above it)",
    "programming_rng::_poisson::drop right term@50::_GUIDE_BINS - 1":
        "the clamp of the guide index int(u * 256) at 255 never binds: the largest uniform "
        "is 1 - 2**-54, and 256 (1 - 2**-54) = 256 - 2**-46 exactly (a power-of-two product), "
        "whose int is 255",
    "programming_rng::_poisson_np::0:GtE->Gt@28::quick = todo & (us >= 0.07) & (v <= v_r)":
        "the NumPy twin's PTRS quick acceptance at us == 0.07 exactly: us = 0.5 - |u - 0.5| "
        "with u on the grid (k + 1/2) 2**-53, equal to the double 0.07 with probability "
        "~2**-53 per draw (as the kernel's comparisons above)",
    "circuit_reference::ReferencePath._solve_robust::2->3@40::n_tot = self.rows * self.cols * 2":
        "memory chunking of the Newton-Krylov batch: it changes the chunk only where one "
        "would exceed 256 MB of Krylov basis (tiles and batches far beyond any test), and each "
        "chunk is solved to the same tolerance",
    "programming::program::1->2@40::getattr(res, name).reshape(-1)[idx] = getattr(sub, name)":
        "numpy treats any negative size in reshape as the one unknown dimension "
        "(_fix_unknown_dimension): reshape(-2) is reshape(-1), the same flat view of the "
        "result's contiguous array (checked on numpy 2.4.6 with -W error: shape (n,), "
        "shares_memory, writes reach the original)",
    "programming::_program_once::700.0->x1.1@44::z0 = np.exp(np.clip(-a_s * flat(vth0), "
    "-700.0, 700.0))":
        "the lower clip of z0 = exp(-alpha_G V_th / s) at exp(-700) (mutant exp(-770) = 0, "
        "an underflow) binds only for alpha_G V_th0 / inj_slope_v > 700: at the preset "
        "(6 /V) V_th0 > 117 V, far above vth_max_v <= 10 V. Only inj_slope_v of a few mV "
        "reaches it, and there the law is outside its numeric domain anyway: a cell above "
        "V_th0 needs K_i z ~ 1, i.e. (alpha_G V_pgm - V_0) / s > 700, where K_i is clipped at "
        "exp(700), so programming stalls near V_th0 with either clip: every cell aiming above "
        "V_th0 fails after max_pulses in both (checked at s = 1 mV, V_th0 = 1.3 V, 400 cells: "
        "the same failed flags and pulse counts; only the failed cells' V_th differs, by <= 22 "
        "mV of electrons the clipped z0 injects)",
}

# ---- journal (resumable runs) ----------------------------------------------------------------

#: the default journal of finished mutants and baselines (one JSON object per line)
JOURNAL = ROOT / "results" / "mutation" / "journal.jsonl"
#: journaled outcomes taken over by a later run (an "error", i.e. no test collected, reruns)
RESUMABLE = ("killed", "timeout", "survived")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fingerprint(root: Path, rel: str, tests, mutants_py: Path) -> dict:
    """What a mutant's outcome is keyed on besides the mutant itself: the sha256 of the
    module's source, of each test file run against it and of the mutation operators
    (``scripts/mutants.py``), and one short ``id`` over the three."""
    hashes = {"source": file_sha256(root / rel),
              "tests": {t: file_sha256(root / t) for t in tests},
              "mutants": file_sha256(mutants_py)}
    hashes["id"] = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]
    return hashes


def site_id(site: Site) -> str:
    """The site within one version of the source (the EQUIVALENT key may repeat when two
    identical lines of a function take the same change at the same column)."""
    return f"{site.index}:{site.change}"


class Journal:
    """Append-only journal of finished mutants and baselines: every entry is one JSON line
    written with a single ``write`` on an ``O_APPEND`` descriptor and fsynced, so a killed
    run leaves whole lines (a torn last line is skipped when read). A later run takes over
    every mutant whose module, key, site and fingerprint match (the last matching entry
    wins), so it resumes where a killed run stopped, and a changed source, test file or
    mutants.py reruns that module's mutants. ``path=None``: no journal (nothing read or
    written)."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self.mutants: dict[tuple, dict] = {}
        self.baselines: dict[tuple, list[dict]] = {}
        self.bad_lines = 0
        if self.path and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    e = json.loads(line)
                    self._index(e)
                except (ValueError, KeyError, TypeError, AttributeError):
                    self.bad_lines += 1

    def _index(self, e: dict) -> None:
        if e["kind"] == "mutant":
            self.mutants[(e["module"], e["key"], e["site"], e["fp"])] = e
        elif e["kind"] == "baseline":
            self.baselines.setdefault((e["module"], e["fp"]), []).append(e)

    def lookup(self, module: str, site: Site, fp: str) -> dict | None:
        e = self.mutants.get((module, site.key(module), site_id(site), fp))
        return e if e and e["status"] in RESUMABLE else None

    def module_baselines(self, module: str, fp: str) -> list[dict]:
        return self.baselines.get((module, fp), [])

    def append(self, entry: dict) -> None:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry}
        self._index(entry)
        if self.path is None:
            return
        data = (json.dumps(entry, sort_keys=True) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

    def record_mutant(self, module: str, site: Site, hashes: dict, status: str,
                      seconds: float) -> None:
        self.append({"kind": "mutant", "module": module, "key": site.key(module),
                     "site": site_id(site), "fp": hashes["id"], "hashes": hashes,
                     "status": status, "seconds": round(seconds, 2), "line": site.line,
                     "col": site.col, "function": site.function, "change": site.change,
                     "source": site.source})

    def record_baseline(self, module: str, hashes: dict, seconds: float) -> None:
        self.append({"kind": "baseline", "module": module, "fp": hashes["id"],
                     "hashes": hashes, "status": "passed", "seconds": round(seconds, 2)})


def summarize(name: str, rel: str, tests, n_sites: int, results, carried=(), before=None,
              baseline_secs=(), seconds_run: float = 0.0) -> dict:
    """A module's result from its mutants' outcomes ``results``: (site, status, seconds,
    resumed) each. ``seconds`` sums the mutants' and the journaled baselines' times over
    every run that contributed (``seconds_run``: this process's share)."""
    killed = [r for r in results if r[1] in ("killed", "timeout")]
    survivors = [r[0] for r in results if r[1] == "survived"] + list(carried)
    errors = [r[0] for r in results if r[1] == "error"]
    n_mutants, n_killed = len(results), len(killed)
    n_timeouts = sum(r[1] == "timeout" for r in results)
    if before:  # a rerun of the survivors: the mutants killed then stay killed
        n_mutants, n_killed = before["mutants"], before["killed"] + len(killed)
        n_timeouts += before["timeouts"]
    equivalent = [s for s in survivors if s.key(name) in EQUIVALENT]
    denom = n_mutants - len(equivalent) - len(errors)
    baseline_secs = list(baseline_secs)
    return {
        "module": rel, "tests": list(tests), "sites": n_sites, "mutants": n_mutants,
        "killed": n_killed, "timeouts": n_timeouts, "errors": len(errors),
        "survivors": len(survivors), "equivalent": len(equivalent),
        "resumed": sum(bool(r[3]) for r in results),
        "survived": [{"line": s.line, "col": s.col, "function": s.function, "change": s.change,
                      "source": s.source, "key": s.key(name),
                      "equivalent": EQUIVALENT.get(s.key(name))} for s in survivors],
        "score": round(n_killed / denom, 3) if denom else None,
        "baseline_s": round(max(baseline_secs), 1) if baseline_secs else None,
        "seconds": round(sum(r[2] for r in results) + sum(baseline_secs), 1),
        "seconds_run": round(seconds_run, 1),
    }


# ---- running ---------------------------------------------------------------------------------

def _import_graph() -> dict[str, set[str]]:
    """norsim source file (relative path) -> the norsim source files that import it."""
    files = {p.relative_to(ROOT).as_posix(): p for p in (ROOT / "norsim").rglob("*.py")}
    by_mod = {}
    for rel in files:
        mod = rel[:-3].replace("/", ".")
        by_mod[mod[:-9] if mod.endswith(".__init__") else mod] = rel
    users: dict[str, set[str]] = {rel: set() for rel in files}
    for rel, path in files.items():
        pkg = rel[:-3].replace("/", ".").rsplit(".", 1)[0]
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for name in names:
                if name in by_mod:
                    users[by_mod[name]].add(rel)
    return users


def dependents(rel: str, users: dict[str, set[str]]) -> set[str]:
    """``rel`` and every norsim file importing it, directly or through others."""
    seen, todo = {rel}, [rel]
    while todo:
        for u in users.get(todo.pop(), ()):
            if u not in seen:
                seen.add(u)
                todo.append(u)
    return seen


def _drop_cache(cache: Path, rels: set[str]) -> None:
    """Delete the numba cache entries of these source files (named <stem>.<function>...,
    in a folder named after the source's parent folder)."""
    if not cache.is_dir():
        return
    for rel in rels:
        parent, stem = Path(rel).parent.name, Path(rel).stem
        for d in cache.glob(f"{parent}_*"):
            for f in d.glob(f"{stem}.*"):
                f.unlink(missing_ok=True)


def _make_copy(dest: Path) -> None:
    """The working tree (sources keep their mtimes: numba's cache checks them)."""
    ignore = shutil.ignore_patterns(".venv", ".git", ".numba_cache", "out", ".hypothesis",
                                    "__pycache__", "*.egg-info", "notebooks", "results")
    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True, dirs_exist_ok=True)


def _cache_dir_name(src_dir: Path) -> str:
    """numba's cache folder of the sources in ``src_dir`` under NUMBA_CACHE_DIR (its
    _UserProvidedCacheLocator: the folder's name, '_', sha1 of its absolute path)."""
    path = os.path.abspath(src_dir)
    return f"{os.path.basename(path)}_{hashlib.sha1(path.encode()).hexdigest()}"


def _seed_cache(cache: Path, copy_root: Path) -> int:
    """Start a copy's numba cache from the working tree's (the same sources, the same
    mtimes: the entries load instead of compiling for minutes per copy). Returns files."""
    src_cache = Path(os.environ.get("NUMBA_CACHE_DIR") or ROOT / ".numba_cache")
    n = 0
    for d in (ROOT / "norsim").rglob("*"):
        if not d.is_dir() or d.name == "__pycache__":
            continue
        old = src_cache / _cache_dir_name(d)
        if not old.is_dir():
            continue
        new = cache / _cache_dir_name(copy_root / d.relative_to(ROOT))
        new.mkdir(parents=True, exist_ok=True)
        for f in old.iterdir():
            if not (new / f.name).exists():
                shutil.copy2(f, new / f.name)
                n += 1
    return n


class Worker:
    """One private copy of the repository with its own numba cache."""

    def __init__(self, base: Path, k: int, no_jit: bool, seed_cache: bool, users=None):
        self.dir = base / f"w{k}"
        _make_copy(self.dir)  # (also puts back a source a killed run left mutated)
        self.cache = base / f"cache{k}"
        self.inflight = base / f"inflight{k}.txt"
        if self.inflight.is_file():
            # a run was killed while a mutant was in this copy: its module's cache entries,
            # and those of every module importing it, were compiled against the mutant
            rel = self.inflight.read_text().strip()
            _drop_cache(self.cache, dependents(rel, users if users is not None else
                                               _import_graph()))
            self.inflight.unlink()
        if seed_cache and not no_jit:
            _seed_cache(self.cache, self.dir)
        self.env = dict(os.environ, NUMBA_CACHE_DIR=str(self.cache), PYTHONPATH=str(self.dir),
                        PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
        if no_jit:
            self.env["NUMBA_DISABLE_JIT"] = "1"

    proc = None
    interrupted = False

    def kill(self) -> None:
        """Kill the tests running in this copy, if any (the harness is being interrupted:
        their outcome is not a result)."""
        self.interrupted = True
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def mark_inflight(self, rel: str | None) -> None:
        """Note (or clear) the module mutated in this copy, for a run that gets killed."""
        if rel is None:
            self.inflight.unlink(missing_ok=True)
        else:
            self.inflight.write_text(rel)

    def pytest(self, tests, timeout: float) -> tuple[str, float, str]:
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-o", "addopts=", *tests]
        if self.interrupted:
            raise KeyboardInterrupt
        t0 = time.perf_counter()
        proc = self.proc = subprocess.Popen(cmd, cwd=self.dir, env=self.env,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return "timeout", time.perf_counter() - t0, ""
        except BaseException:  # the harness interrupted (Ctrl-C, SIGTERM): no orphan
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        if self.interrupted:  # killed by kill(): not a test failure, nothing to journal
            raise KeyboardInterrupt
        # 0: every test passed; 5: no test collected (a mapping error); anything else,
        # a collection error from a mutant that breaks the import included: killed
        status = {0: "survived", 5: "error"}.get(proc.returncode, "killed")
        return status, time.perf_counter() - t0, out[-1500:]


def _earlier_results(path: Path) -> dict:
    """Module results of an earlier run: its stdout (one JSON line with "modules") or its
    stderr (one JSON line per finished module)."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        obj = json.loads(line)
        out.update(obj.get("modules", obj) if "modules" in obj else obj)
    return out


def run_module(name: str, args, workers: "queue.Queue[Worker]", users,
               journal: Journal | None = None) -> dict:
    journal = journal or Journal(None)
    rel, tests = MODULES[name]
    tests = [t for t in (*tests, *args.extra_tests) if (args.snapshot / t).exists()]
    source = (args.snapshot / rel).read_text()  # the copies' snapshot, not the live tree
    hashes = fingerprint(args.snapshot, rel, tests, Path(__file__).resolve().parent / "mutants.py")
    all_sites = sites(source)
    chosen = list(all_sites)
    if args.max_mutants and len(chosen) > args.max_mutants:
        chosen = random.Random(f"{args.seed}:{name}").sample(chosen, args.max_mutants)
        chosen.sort(key=lambda s: (s.line, s.index, s.change))
    before = None
    if args.survivors_of:
        before = _earlier_results(Path(args.survivors_of)).get(name)
        # a survivor: line, change, source and (in newer outputs) column
        keys = {(s["line"], s["change"], s["source"], s.get("col")) for s in
                (before["survived"] if before else ())}
        chosen = [s for s in chosen if (s.line, s.change, s.source, s.col) in keys
                  or (s.line, s.change, s.source, None) in keys]
    carried = []  # known-equivalent survivors not rerun (--skip-equivalent)
    if before and args.skip_equivalent:
        carried = [s for s in chosen if s.key(name) in EQUIVALENT]
        chosen = [s for s in chosen if s.key(name) not in EQUIVALENT]
    done = {s: journal.lookup(name, s, hashes["id"]) for s in chosen}
    todo = [s for s in chosen if done[s] is None]
    deps = dependents(rel, users)
    t_start = time.perf_counter()

    # baseline: the unmutated copy must pass (and gives the time limit; it also fills each
    # worker's numba cache); not run when the journal has every chosen mutant
    base_times = []
    ws = []
    while not workers.empty():
        ws.append(workers.get())
    for w in ws if todo else ():
        _drop_cache(w.cache, deps)
        status, secs, out = w.pytest(tests, timeout=args.baseline_timeout)
        base_times.append(secs)
        if status != "survived":
            for w2 in ws:
                workers.put(w2)
            print(f"[{name}] the unmutated tests fail in the copy ({status}):\n{out}",
                  file=sys.stderr, flush=True)
            return {"module": rel, "tests": tests, "baseline_failed": status, "score": None}
        journal.record_baseline(name, hashes, secs)
    for w in ws:
        workers.put(w)
    limit = max(args.min_timeout, args.timeout_factor * max(base_times or [0.0]))
    resumed = len(chosen) - len(todo)
    print(f"[{name}] {len(all_sites)} sites, {len(chosen)} mutants ({resumed} resumed from the "
          f"journal), baseline " + (f"{max(base_times):.1f} s, limit {limit:.0f} s" if base_times
                                    else "not run") + f", tests: {' '.join(tests)}",
          file=sys.stderr, flush=True)

    def one(site: Site):
        w = workers.get()
        target = w.dir / rel
        st = target.stat()
        try:
            w.mark_inflight(rel)
            target.write_text(mutate(source, site))
            # a unique stamp per mutant: numba's cache index checks the source's mtime + size
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000 * (site.index + 1)))
            _drop_cache(w.cache, deps)
            status, secs, out = w.pytest(tests, timeout=limit)
        finally:
            target.write_text(source)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
            _drop_cache(w.cache, deps)
            w.mark_inflight(None)
            workers.put(w)
        journal.record_mutant(name, site, hashes, status, secs)
        return site, status, secs, out

    results = []
    i = 0
    for site in chosen:
        if done[site] is not None:
            i += 1
            e = done[site]
            results.append((site, e["status"], e["seconds"], True))
            print(f"[{name}] {i}/{len(chosen)} {e['status']:8s} {e['seconds']:6.1f} s  line "
                  f"{site.line}:{site.col} {site.function}: {site.change}  `{site.source}`  "
                  f"(resumed: journal {e.get('time', '?')})", file=sys.stderr, flush=True)
    def finished():
        if len(ws) <= 1:  # in this thread: Ctrl-C / SIGTERM reach the running tests at once
            yield from map(one, todo)
            return
        with cf.ThreadPoolExecutor(max_workers=len(ws)) as ex:
            try:
                yield from ex.map(one, todo)
            except BaseException:  # interrupted: no new mutant starts, the running ones stop
                ex.shutdown(wait=False, cancel_futures=True)
                for w in ws:
                    w.kill()
                raise

    for site, status, secs, out in finished():
        i += 1
        results.append((site, status, secs, False))
        print(f"[{name}] {i}/{len(chosen)} {status:8s} {secs:6.1f} s  line {site.line}:{site.col} "
              f"{site.function}: {site.change}  `{site.source}`", file=sys.stderr, flush=True)
        if status == "error":
            print(out, file=sys.stderr)
    results.sort(key=lambda r: (r[0].line, r[0].index, r[0].change))
    if journal.path is not None:  # every baseline journaled for this fingerprint, this run's too
        base_times = [e["seconds"] for e in journal.module_baselines(name, hashes["id"])]
    return summarize(name, rel, tests, len(all_sites), results, carried, before, base_times,
                     time.perf_counter() - t_start)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", action="append", choices=sorted(MODULES),
                    help="a core module (repeatable); default: all")
    ap.add_argument("--max-mutants", type=int, default=30,
                    help="mutants sampled per module (0: all of them); default 30")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample (reproducible)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel copies of the repository")
    ap.add_argument("--timeout-factor", type=float, default=3.0,
                    help="time limit per mutant: this x the unmutated run (default 3)")
    ap.add_argument("--min-timeout", type=float, default=60.0,
                    help="time limit per mutant at least this many seconds (default 60)")
    ap.add_argument("--baseline-timeout", type=float, default=900.0)
    ap.add_argument("--no-jit", action="store_true", help="run with NUMBA_DISABLE_JIT=1")
    ap.add_argument("--skip-equivalent", action="store_true",
                    help="with --survivors-of: carry the known-equivalent survivors over "
                         "without running them again")
    ap.add_argument("--extra-tests", nargs="+", default=[], metavar="TEST",
                    help="test files run after each selected module's own (e.g. slow ones, "
                         "with --survivors-of)")
    ap.add_argument("--survivors-of", metavar="JSON",
                    help="rerun only the survivors listed in an earlier run's output (same "
                         "--seed and --max-mutants); its killed mutants count as killed")
    ap.add_argument("--list", action="store_true", help="print modules, sites and tests; run nothing")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copies")
    ap.add_argument("--workdir", help="folder of the copies and their numba caches, kept and "
                                      "reused by later runs (default: a temporary folder)")
    ap.add_argument("--no-seed-cache", action="store_true",
                    help="start each copy's numba cache empty (default: from NUMBA_CACHE_DIR)")
    ap.add_argument("--journal", metavar="PATH", default=str(JOURNAL),
                    help="journal of finished mutants and baselines, read to resume and "
                         "appended to (default: results/mutation/journal.jsonl)")
    ap.add_argument("--no-journal", action="store_true",
                    help="neither read nor write a journal (every mutant runs)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs {args.jobs}: expected at least 1")
    if args.max_mutants < 0:
        ap.error(f"--max-mutants {args.max_mutants}: expected 0 (all) or a positive number")
    names = args.module or list(MODULES)
    if args.list:
        for n in names:
            rel, tests = MODULES[n]
            print(f"{n:15s} {rel:32s} {len(sites((ROOT / rel).read_text())):5d} sites  {' '.join(tests)}")
        return 0
    users = _import_graph()
    if args.workdir:
        base = Path(args.workdir).resolve()
        base.mkdir(parents=True, exist_ok=True)
        args.keep = True
    else:
        base = Path(tempfile.mkdtemp(prefix="norsim-mutate-"))
    journal = Journal(None if args.no_journal else Path(args.journal).resolve())
    if journal.path:
        print(f"journal {journal.path}: {len(journal.mutants)} mutants, "
              f"{sum(map(len, journal.baselines.values()))} baselines"
              + (f", {journal.bad_lines} unreadable lines skipped" if journal.bad_lines else ""),
              file=sys.stderr, flush=True)
    # SIGTERM as Ctrl-C: the running tests are killed and the copy's source put back
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.perf_counter()
    try:
        workers: "queue.Queue[Worker]" = queue.Queue()
        for k in range(args.jobs):
            workers.put(Worker(base, k, args.no_jit, not args.no_seed_cache, users))
        args.snapshot = base / "w0"
        report = {}
        for n in names:
            report[n] = run_module(n, args, workers, users, journal)
            # each module's result as soon as it is known (a long run can be followed)
            print(json.dumps({n: report[n]}), file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    scores = [r["score"] for r in report.values()]
    scores = None if None in scores else scores
    print(json.dumps({"seed": args.seed, "max_mutants": args.max_mutants, "jobs": args.jobs,
                      "no_jit": args.no_jit, "journal": str(journal.path) if journal.path else None,
                      "seconds": round(time.perf_counter() - t0, 1),
                      "total_seconds": round(sum(r.get("seconds") or 0.0 for r in report.values()), 1),
                      "resumed": sum(r.get("resumed", 0) for r in report.values()),
                      "min_score": min(scores) if scores else None, "modules": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
