"""Training throughput of the small models: float vs QAT (fake-quant) images/s, one process.

Synthetic uint8 images (throughput does not depend on the pixels), one torch thread, batch
128, AdamW; QAT includes the weight-threshold re-estimation and PACT. Prints one JSON object
on its last line with the float/QAT ratio per model (the baseline is the float step of the
same model in the same process).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from _threads import pin, record
from norsim.qat.models import build_model


def _throughput(model, x, y, steps: int, warmup: int = 2) -> float:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-3)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return steps * len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="lenet,vgg-small")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pin(a.threads)
    rng = np.random.default_rng(0)
    res = {"bench": "train", "threads": a.threads, "batch": a.batch, "steps": a.steps}
    for arch in a.models.split(","):
        m = build_model(arch, seed=0)
        x = torch.from_numpy(rng.integers(0, 256, (a.batch, *m.input_shape)).astype(np.float32)) / 255
        y = torch.from_numpy(rng.integers(0, 10, a.batch))
        f = _throughput(m, x, y, a.steps)
        m.to_qat(x)
        q = _throughput(m, x, y, a.steps)
        res[arch] = {"float_img_per_s": round(f, 1), "qat_img_per_s": round(q, 1),
                     "qat_over_float": round(q / f, 3)}
        print(f"{arch}: float {f:.0f} img/s, QAT {q:.0f} img/s", flush=True)
    res.update(record())  # numba / BLAS threads (torch: "threads")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
