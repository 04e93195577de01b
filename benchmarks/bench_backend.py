"""Protocol overhead of the ``remote`` back-end (issue 24): images per second of the demo LeNet
(``zoo:lenet-mnist-4b``, the nor40 preset, embedded MNIST test images) through the in-process
``sim`` back-end and through ``remote:127.0.0.1:PORT`` against the reference chip server
(``python -m norsim.backend.chip_server``, a child process on the loopback interface), timed
in this one process, alternating the two (best of ``--reps``).

Only inference (``engine.run``) is timed; mapping (programming) and ADC calibration of each
chip are not (reported as ``*_setup_s``). Each tile's batch of input vectors travels in one
request, so the protocol costs one loopback round trip, framing and a CRC per tile and batch.
The server runs with the same thread counts as this process (``NUMBA_NUM_THREADS`` and the
BLAS variables set to ``NORSIM_BENCH_THREADS``); while it computes, this process waits.

Also reported: the outputs of the first timed run of each compared (``bit_identical``: the
two chips received the same calls up to there; later runs differ by the read noise of the
repetitions), the request count of the remote run, the protocol's round trip
(``round_trip_ms``: a ``_state`` request that the server answers without work, median of
200), and with ``--small-batch N`` (default 10; 0: skip) the same ratio at a batch of N
images (more requests per image).
The last line is one JSON object with ``ratio_remote_vs_inprocess`` (remote seconds per
image / in-process seconds per image; target < 1.5) and the thread settings.

Usage: python benchmarks/bench_backend.py [--images N] [--reps R] [--small-batch N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "..", ".numba_cache"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _threads import pin, record  # noqa: E402

from norsim import zoo  # noqa: E402
from norsim.backend import wire  # noqa: E402
from norsim.backend.remote import RemoteBackend  # noqa: E402
from norsim.config.presets import load_preset  # noqa: E402
from norsim.data import load_dataset  # noqa: E402
from norsim.mapping import engine, mapper  # noqa: E402


def start_server(threads: int):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    p = subprocess.Popen([sys.executable, "-m", "norsim.backend.chip_server", "--port", "0",
                          "--quiet"], stdout=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()
    if not line.strip().isdigit():
        p.kill()
        raise SystemExit(f"chip server did not start: {line!r}")
    return p, int(line)


def prepared(model, cfg, xc, backend=None):
    t0 = time.perf_counter()
    chip = mapper.map_model(model, cfg, backend=backend)
    engine.calibrate(chip, xc)
    return chip, time.perf_counter() - t0


def timed_run(chip, x, batch):
    t0 = time.perf_counter()
    c0 = time.process_time()
    run = engine.run(chip, x, batch_size=batch, collect_stats=False)
    return time.perf_counter() - t0, time.process_time() - c0, run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--small-batch", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="100 images, 2 repetitions")
    a = ap.parse_args()
    if a.quick:
        a.images, a.reps = 100, 2
    threads = pin()
    model = zoo.load("lenet-mnist-4b")
    cfg = load_preset("nor40")
    test, calib = load_dataset("mnist", "test"), load_dataset("mnist", "calib")
    x = test.x[:a.images]
    xc = calib.x[:cfg.mapping.calibration_images]
    batch = cfg.mapping.batch_size
    proc, port = start_server(threads["bench_threads"])
    out: dict = {"benchmark": "bench_backend", "images": int(x.shape[0]), "batch_size": batch,
                 "machine_load_1min": os.getloadavg()[0]}
    try:
        rb = RemoteBackend(f"127.0.0.1:{port}")
        local, out["inprocess_setup_s"] = prepared(model, cfg, xc)
        remote, out["remote_setup_s"] = prepared(model, cfg, xc, rb)
        timed_run(local, x[:batch], batch)              # warm both (numba, caches)
        timed_run(remote, x[:batch], batch)
        best = {"in": (np.inf, np.inf, None), "re": (np.inf, np.inf, None)}
        rid0 = rb._rid
        first = {}
        for _ in range(a.reps):
            for key, chip in (("in", local), ("re", remote)):
                r = timed_run(chip, x, batch)
                first.setdefault(key, r[2].outputs)  # the same call sequence on both chips
                if r[0] < best[key][0]:
                    best[key] = r
        n = x.shape[0]
        out["remote_requests_per_run"] = (rb._rid - rid0) // a.reps
        out["inprocess_images_per_s"] = n / best["in"][0]
        out["remote_images_per_s"] = n / best["re"][0]
        out["ratio_remote_vs_inprocess"] = best["re"][0] / best["in"][0]
        out["bit_identical"] = bool(np.array_equal(first["in"], first["re"]))
        print(json.dumps({"case": f"batch {batch}", **{k: out[k] for k in (
            "inprocess_images_per_s", "remote_images_per_s", "ratio_remote_vs_inprocess")}}),
            flush=True)
        if a.small_batch:
            sb = a.small_batch
            ti = min(timed_run(local, x, sb)[0] for _ in range(a.reps))
            tr = min(timed_run(remote, x, sb)[0] for _ in range(a.reps))
            out[f"ratio_remote_vs_inprocess_batch{sb}"] = tr / ti
            print(json.dumps({"case": f"batch {sb}", "inprocess_images_per_s": n / ti,
                              "remote_images_per_s": n / tr, "ratio": tr / ti}), flush=True)
        rt = []
        for _ in range(200):  # the protocol alone: a request the server answers at once
            t0 = time.perf_counter()
            rb._exchange(wire.STATE_QUERY, {})
            rt.append(time.perf_counter() - t0)
        out["round_trip_ms"] = 1e3 * float(np.median(rt))
        rb.close()
    finally:
        proc.terminate()
        proc.wait(10)
    out["server_threads_env"] = threads["bench_threads"]
    out.update(record())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
