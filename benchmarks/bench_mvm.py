"""Fast-mode MVM throughput: a 1152 x 256 signed 4-bit matrix tiled on 256 x 256 arrays.

Batch 4096 of 4-bit inputs, bit-serial, differential pairs with digital subtraction, 6-bit
ADC (calibrated range), the nor40 preset's read noise on (cell white + 1/f noise summed per
column, kT/C, ADC noise and mismatch, exact RTN of the device.noise trap population).
Prints one JSON line: ``seconds`` (one batch through all tiles, median of repeats),
``ratio_vs_gemm`` (to a float32 NumPy GEMM of the same logical matrix, timed in this
process) and ``flop_floor_ratio`` (bit-planes x polarities x tile padding: the multiply-adds
the readout cannot avoid, relative to the GEMM; ``flop_floor_ratio_with_variance`` doubles
it for the per-cell noise variances summed in the same product, which the preset's 1/f and
thermal noise require). The same is timed without RTN
(``*_no_rtn``): exact RTN costs O(multiplies x cells whose traps switch within the batch),
which the preset's 1 us - 100 s trap time constants make the dominant term.
``ratio_vs_floor`` (and ``_no_rtn``): ``ratio_vs_gemm`` over ``flop_floor_ratio_with_variance``.
``ratio_vs_gemm_cpu`` (and ``_no_rtn``): the same ratios from process CPU time
(``time.process_time``, all threads), steadier than wall clock on a shared machine.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba_cache"))

from _threads import pin, record  # noqa: E402
from norsim.array.nor_array import NorArray  # noqa: E402
from norsim.config.presets import load_preset  # noqa: E402

IN, OUT, BATCH, REPEATS = 1152, 256, 4096, 3


def _tiles(cfg, w, x_cal):
    a = cfg.array
    rows, cols_logical = a.rows, a.cols // 2
    tiles = []
    for r0 in range(0, IN, rows):
        for c0 in range(0, OUT, cols_logical):
            t = NorArray.from_weights(w[r0:r0 + rows, c0:c0 + cols_logical], cfg, cfg.rng(1, r0, c0))
            t.calibrate(x_cal[:, r0:r0 + rows])
            tiles.append((r0, c0, t))
    return tiles


def _time(tiles, x, rng, gemm, cols_logical, rows):
    def analog():
        y = np.zeros((BATCH, OUT))
        for r0, c0, t in tiles:
            y[:, c0:c0 + cols_logical] += t.matmul(x[:, r0:r0 + rows], rng)
        return y

    analog(), gemm()  # warm-up (numba compile / cache load, BLAS threads)
    t_an, t_gm, c_an, c_gm = [], [], [], []

    def timed(fn, wall, cpu):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        return out

    for _ in range(REPEATS):
        timed(gemm, t_gm, c_gm)
        y = timed(analog, t_an, c_an)
        timed(gemm, t_gm, c_gm)
    _time.cpu_ratio = float(np.median(c_an) / np.median(c_gm))
    return float(np.median(t_an)), float(np.median(t_gm)), y


def main() -> int:
    pin()  # numba kernels and the BLAS GEMM on the same threads
    cfg = load_preset("nor40")
    a = cfg.array
    rng = np.random.default_rng(12345)
    w = rng.integers(-7, 8, size=(IN, OUT))
    x = rng.integers(0, 16, size=(BATCH, IN))
    x_cal = rng.integers(0, 16, size=(256, IN))
    xf, wf = x.astype(np.float32), w.astype(np.float32)

    def gemm():
        return xf @ wf

    rows, cols_logical = a.rows, a.cols // 2
    seconds, t_gemm, y = _time(_tiles(cfg, w, x_cal), x, rng, gemm, cols_logical, rows)
    cpu_ratio = _time.cpu_ratio
    cfg_nr = cfg.with_overrides(["array.noise.rtn_enabled=false"])
    s_nr, g_nr, _ = _time(_tiles(cfg_nr, w, x_cal), x, rng, gemm, cols_logical, rows)
    cpu_ratio_nr = _time.cpu_ratio
    n_row_tiles = -(-IN // rows)
    floor = a.encoding.input_bits * 2 * (n_row_tiles * rows) / IN
    exact = x @ w
    rel_err = float(np.sqrt(np.mean((y - exact) ** 2)) / np.sqrt(np.mean(exact.astype(float) ** 2)))
    print(json.dumps({"seconds": seconds, "ratio_vs_gemm": seconds / t_gemm,
                      "flop_floor_ratio": floor, "flop_floor_ratio_with_variance": 2 * floor,
                      # issue 17's figure: time over the FLOP floor of the products the
                      # configuration needs (current + 1/f variance) at this process's GEMM rate
                      "ratio_vs_floor": seconds / t_gemm / (2 * floor),
                      "ratio_vs_floor_no_rtn": s_nr / g_nr / (2 * floor),
                      "gemm_seconds": t_gemm,
                      "seconds_no_rtn": s_nr, "ratio_vs_gemm_no_rtn": s_nr / g_nr,
                      "ratio_vs_gemm_cpu": cpu_ratio, "ratio_vs_gemm_cpu_no_rtn": cpu_ratio_nr,
                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                      "tiles": n_row_tiles * (OUT // cols_logical), "batch": BATCH,
                      "rms_error_rel": rel_err, **record()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
