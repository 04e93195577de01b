#!/usr/bin/env python3
"""The two control studies of the seed-table campaign (issue 21), resumable and niced:

* ``jpeg``: the JPEG penalty. VGG-small (cnn-cifar10-4b's architecture, float phase only)
  trained on the 4,000 training images that exist losslessly
  (``train_lossless_first4000.npz``) and on their JPEG copies (the first 4,000 of
  ``train_0.npz``), seeds 0-2; test accuracy on the exact 10,000 test images; the paired
  difference (JPEG - lossless) with its t-interval over seeds. In float32, so that every
  machine computes the same runs (bf16 autocast is emulated on a CPU without AVX-512 BF16,
  where it is 9x slower than float32: 1.9 against 0.21 s for a VGG-small step of 128 images on
  session 10's AVX2 EPYC).
* ``bf16``: cnn-cifar10-4b's recipe (VGG-small, 36 epochs, 22 float, augmentation) with a
  float32 and a bf16 float phase, seeds 0-2; the paired difference of the final 4-bit
  accuracy (bf16 - float32) with its t-interval. Its bf16 runs are skipped, with a line
  saying so, on a CPU that would emulate bf16 (``--emulated-bf16`` runs them anyway); the
  float32 runs go ahead.

Each run is ``norsim train`` (checkpoint every epoch, resumes when rerun) in
``$NORSIM_TRAIN_DIR/studies/<study>/<variant>-s<seed>``; finished runs are skipped.
Each finished run's summary is also copied to ``results/campaign/studies/<study>/<run>.json``
(committed: a fresh machine skips the runs another machine finished). ``summary`` (also run
after each study) writes ``results/campaign/studies.json``.

    NORSIM_TRAIN_DIR=/var/tmp/norsim-train nohup .venv/bin/python scripts/train_studies.py \\
        jpeg bf16 > /var/tmp/norsim-train/studies.out 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = (0, 1, 2)
#: JPEG study: float epochs over the 4,000 images (4,000 x 60 = 240k images seen). Both
#: studies test only after each phase's last epoch (testing 10,000 images after each of 60
#: epochs of 4,000 would double a run's time)
JPEG_EPOCHS = 60
OUT_JSON = ROOT / "results" / "campaign" / "studies.json"
#: finished runs' summaries, committed so that another machine resumes the study
DONE_DIR = ROOT / "results" / "campaign" / "studies"


def _data_root() -> Path:
    env = os.environ.get("NORSIM_DATA")
    return (Path(env) if env else ROOT.parent / "shared" / "data") / "cifar10"


def _jpeg_dirs(base: Path) -> dict[str, Path]:
    """Two data folders (train.npz + test.npz): lossless and JPEG copies of images 0-3,999."""
    src = _data_root()
    out = {}
    with np.load(src / "test.npz", allow_pickle=False) as z:
        test = {"x": z["x"], "y": z["y"]}
    with np.load(src / "train_lossless_first4000.npz", allow_pickle=False) as z:
        lossless = {"x": z["x"], "y": z["y"]}
    with np.load(src / "train_0.npz", allow_pickle=False) as z:
        jpeg = {"x": z["x"][:4000], "y": z["y"][:4000]}
    if not np.array_equal(lossless["y"], jpeg["y"]):
        raise SystemExit("labels of the lossless and JPEG copies differ")
    for name, tr in (("lossless", lossless), ("jpeg", jpeg)):
        d = base / "data" / name
        d.mkdir(parents=True, exist_ok=True)
        for split, arr in (("train", tr), ("test", test)):
            f = d / f"{split}.npz"
            if not f.is_file():
                np.savez(f.with_suffix(".tmp.npz"), **arr)
                f.with_suffix(".tmp.npz").replace(f)
        out[name] = d
    return out


def _done_file(out: Path) -> Path:
    return DONE_DIR / out.parent.name / f"{out.name}.json"


def _run(spec, out: Path) -> dict:
    from norsim.qat.train import train
    done = _done_file(out)
    if done.is_file():
        return json.loads(done.read_text())
    if not (out / "summary.json").is_file():
        print(f"== {out.name}", flush=True)
        train(spec, out, progress=False,
              log_fn=lambda s: print(f"  {out.name}: {s}", flush=True))
    result = json.loads((out / "summary.json").read_text())
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(result, indent=1) + "\n")
    return result


def study_jpeg(base: Path) -> None:
    from norsim.qat.train import TrainSpec
    dirs = _jpeg_dirs(base / "jpeg")
    for seed in SEEDS:
        for name, d in dirs.items():
            spec = TrainSpec(arch="vgg-small", data=str(d), epochs=JPEG_EPOCHS,
                             float_epochs=JPEG_EPOCHS, augment=True, seed=seed,
                             precision="float32", test_every=JPEG_EPOCHS).validate()
            _run(spec, base / "jpeg" / f"{name}-s{seed}")


def study_bf16(base: Path, emulated_bf16: bool = False) -> None:
    from norsim.qat.gpu_recipe import cpu_bf16_supported
    from norsim.qat.train import TrainSpec
    precisions = ("float32", "bf16")
    if not (cpu_bf16_supported() or emulated_bf16):
        precisions = ("float32",)
        print("bf16 study: this CPU has no native bf16 (AVX-512 BF16 / AMX); its bf16 runs "
              "are left to a machine that has (--emulated-bf16 runs them here, about 9x "
              "slower)", flush=True)
    for seed in SEEDS:
        for prec in precisions:
            spec = TrainSpec(arch="vgg-small", data="cifar10", epochs=36, float_epochs=22,
                             augment=True, seed=seed, precision=prec,
                             test_every=36).validate()
            _run(spec, base / "bf16" / f"{prec}-s{seed}")


def _paired(a: list[float], b: list[float]) -> dict | None:
    from scipy import stats
    if not a or len(a) != len(b):
        return None
    d = np.array(b) - np.array(a)
    out = {"n_seeds": int(d.size), "mean_points": float(100 * d.mean()),
           "per_seed_points": [float(100 * v) for v in d]}
    if d.size > 1:
        half = float(stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
        out["t95_points"] = [float(100 * (d.mean() - half)), float(100 * (d.mean() + half))]
    return out


def summary(base: Path) -> dict:
    def load(p: Path):
        for f in (_done_file(p), p / "summary.json"):
            if f.is_file():
                return json.loads(f.read_text())
        return None

    def paired(study: str, a: str, b: str, key: str) -> dict:
        runs = [(load(base / study / f"{a}-s{s}"), load(base / study / f"{b}-s{s}"))
                for s in SEEDS]
        done = [(ra, rb) for ra, rb in runs if ra and rb]
        acc_a, acc_b = [ra[key] for ra, _ in done], [rb[key] for _, rb in done]
        return {f"{a}_{key}": acc_a, f"{b}_{key}": acc_b, "difference": _paired(acc_a, acc_b)}

    res = {"jpeg": {"what": "VGG-small float, 4,000 training images, lossless vs JPEG copies; "
                            "test acc on the exact 10,000 test images; difference = JPEG - "
                            "lossless", "epochs": JPEG_EPOCHS}
           | paired("jpeg", "lossless", "jpeg", "float_test_acc"),
           "bf16": {"what": "cnn-cifar10-4b recipe, float32 vs bf16 float phase; final 4-bit "
                            "(QAT) test accuracy; difference = bf16 - float32"}
           | paired("bf16", "float32", "bf16", "qat_test_acc")}
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(res, indent=1) + "\n")
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("studies", nargs="+", choices=("jpeg", "bf16", "summary"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-nice", action="store_true")
    p.add_argument("--emulated-bf16", action="store_true",
                   help="run the bf16 study's bf16 runs on a CPU without native bf16")
    a = p.parse_args(argv)
    train_dir = os.environ.get("NORSIM_TRAIN_DIR")
    if not train_dir:
        print("error: NORSIM_TRAIN_DIR: (unset); expected a run folder outside the work tree",
              file=sys.stderr)
        return 2
    base = Path(train_dir).resolve() / "studies"
    if not a.no_nice:
        os.nice(19)
    import torch
    torch.set_num_threads(max(1, a.threads))
    for s in a.studies:
        if s == "jpeg":
            study_jpeg(base)
        elif s == "bf16":
            study_bf16(base, a.emulated_bf16)
        print(json.dumps(summary(base)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
