#!/usr/bin/env python3
"""Train the CIFAR-10 seed-table models (issue 10) on one GPU: float then 4-bit QAT for
AlexNet-BN, VGG16 and ResNet-18, writing each model's checkpoint, log, zoo entry and a tar of
the entry as soon as that model finishes (the recipe: norsim/qat/gpu_recipe.py and
docs/results.md; staging the data onto the GPU machine: scripts/stage_cifar.py).

Typical GPU-machine call (about 9 minutes; data staged into data_cache/ first):

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 scripts/train_cifar_gpu.py \
        --data-dir data_cache --out /tmp/run --tar-dir $OUT --budget-s 540

CPU smoke test (what tests/test_gpu_recipe.py does): --width 0.125 --limit-train 256
--limit-test 128 --max-steps 3 --device cpu.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: default wall-clock budgets (float s, QAT s) for one H100/H200, summing to 5.5 min of
#: training inside a 9-minute call (the rest, estimated 30-60 s per model: loading, the
#: integer-exact evaluation of 10,000 test images on the CPU, export and its check)
TIME_PLAN = {"alexnet-bn": (40.0, 20.0), "vgg16": (80.0, 35.0), "resnet18": (110.0, 45.0)}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", action="append", required=True, metavar="DIR",
                   help="folder(s) searched (recursively) for train_<k>.npz and test.npz")
    p.add_argument("--out", required=True, help="run folder (logs, checkpoints, tars)")
    p.add_argument("--zoo-dir", default=None, help="where zoo entries go (default OUT/zoo)")
    p.add_argument("--tar-dir", default=None,
                   help="flat folder for one <entry>.tar per finished model + summary.json "
                        "(on the GPU machine: $OUT, which allows 8 files; default OUT)")
    p.add_argument("--archs", default="alexnet-bn,vgg16,resnet18",
                   help="comma-separated, trained in this order")
    p.add_argument("--budget-s", type=float, default=0.0,
                   help="skip a model that cannot finish inside this many seconds (0: off)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply the built-in per-model time plan by this")
    p.add_argument("--float-epochs", type=float, default=None,
                   help="epoch-based float phase instead of the time plan")
    p.add_argument("--qat-epochs", type=float, default=None,
                   help="epoch-based QAT phase instead of the time plan")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr-float", type=float, default=None)
    p.add_argument("--lr-qat", type=float, default=None)
    p.add_argument("--limit-train", type=int, default=0)
    p.add_argument("--limit-test", type=int, default=0)
    p.add_argument("--train-files", type=int, default=5, help="train_0..train_{k-1}.npz")
    p.add_argument("--train-file", default=None,
                   help="train on this one file instead (e.g. train_lossless_first4000.npz)")
    p.add_argument("--max-steps", type=int, default=0, help="cap each phase (tests)")
    p.add_argument("--exact-eval-images", type=int, default=0)
    p.add_argument("--export-check-images", type=int, default=500)
    p.add_argument("--calib-size", type=int, default=512)
    p.add_argument("--compile", action="store_true", help="torch.compile the float phase")
    p.add_argument("--no-amp", action="store_true", help="float32 float phase")
    p.add_argument("--device", default="auto", help="auto, cuda or cpu")
    p.add_argument("--check-sha", action="store_true",
                   help="verify the npz files against the published sha256 sums")
    return p.parse_args(argv)


def recipes_from_args(a: argparse.Namespace) -> list:
    from norsim.qat.gpu_recipe import ARCHS, Recipe
    from norsim.errors import InputError

    out = []
    for arch in [s.strip() for s in a.archs.split(",") if s.strip()]:
        if arch not in ARCHS:
            raise InputError("--archs", arch, "names from " + ", ".join(ARCHS))
        tf, tq = TIME_PLAN[arch]
        kw = dict(arch=arch, width=a.width, seed=a.seed, batch_size=a.batch_size,
                  limit_train=a.limit_train, limit_test=a.limit_test, max_steps=a.max_steps,
                  exact_eval_images=a.exact_eval_images,
                  export_check_images=a.export_check_images, calib_size=a.calib_size,
                  compile=a.compile, amp=not a.no_amp)
        if a.float_epochs is not None:
            kw.update(float_epochs=a.float_epochs, float_seconds=0.0)
        else:
            kw.update(float_seconds=tf * a.time_scale)
        if a.qat_epochs is not None:
            kw.update(qat_epochs=a.qat_epochs, qat_seconds=0.0)
        else:
            kw.update(qat_seconds=tq * a.time_scale)
        if a.lr_float is not None:
            kw["lr_float"] = a.lr_float
        if a.lr_qat is not None:
            kw["lr_qat"] = a.lr_qat
        out.append(Recipe(**kw).validate())
    return out


def main(argv=None) -> int:
    a = parse(argv)
    from norsim.errors import NorsimError
    from norsim.qat.gpu_recipe import load_cifar, run_all

    try:
        recipes = recipes_from_args(a)
        data = load_cifar(a.data_dir, a.train_files, a.train_file, check_sha=a.check_sha)
    except NorsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, lim in (("train", a.limit_train), ("test", a.limit_test)):
        if lim:
            data[f"x_{split}"] = data[f"x_{split}"][:lim]
            data[f"y_{split}"] = data[f"y_{split}"][:lim]
    out = Path(a.out)
    zoo = Path(a.zoo_dir) if a.zoo_dir else out / "zoo"
    cmd = "python3 scripts/train_cifar_gpu.py " + " ".join(
        shlex.quote(s) for s in (argv if argv is not None else sys.argv[1:]))
    summary = run_all(recipes, data, out, zoo, cmd, device=a.device, budget_s=a.budget_s,
                      echo=lambda s: print(s, flush=True), tar_dir=a.tar_dir)
    print(json.dumps(summary))
    return 0 if all(m["status"] != "error" for m in summary["models"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
