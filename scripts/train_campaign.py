#!/usr/bin/env python3
"""The seed-table campaign on a CPU (issue 21): AlexNet-BN, VGG16, ResNet-18 on CIFAR-10,
float (bf16 autocast, channels_last) then 4-bit QAT, each model exported to a zoo entry.

Resumable at any moment: every phase writes its whole state to
``$NORSIM_TRAIN_DIR/<entry>/<phase>_phase.pt`` every ``--checkpoint-every-s`` seconds
(default 300) and a rerun of the same command continues from there. At the end of a model's
float phase its fp16 weights are also copied to ``results/campaign/<entry>/float_fp16.npz``
(committed, so a fresh clone elsewhere resumes from the finished float phase); the QAT result
is the zoo entry written to ``$NORSIM_TRAIN_DIR/zoo/<entry>`` (copied into norsim/zoo/ by hand
once checked). The process lowers its own priority (``nice`` 19, ``--nice N``) unless
``--no-nice``.

A sitting on a machine that will not be there next time ends with

    NORSIM_TRAIN_DIR=/var/tmp/norsim-train .venv/bin/python scripts/train_campaign.py \
        --publish-partial

which writes each running phase's latest checkpoint, compacted (int8 weights with a scale per
output channel, no momentum; ``norsim.qat.phase_checkpoint.compact_phase_checkpoint``), to
``results/campaign/<entry>/<phase>_partial.npz`` to be committed; a fresh clone resumes from
it. The file is deleted when its phase ends.

    NORSIM_TRAIN_DIR=/var/tmp/norsim-train nohup .venv/bin/python scripts/train_campaign.py \\
        > /var/tmp/norsim-train/campaign.out 2>&1 &

The plan (epochs per phase, CAMPAIGN_PLAN) and its budget are in docs/qat.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: epochs per model (float, QAT); measured idle step times on the 2-core EPYC (bf16,
#: channels_last, batch 512 ~ 4 x the batch-128 step): AlexNet-BN 2.3, VGG16 4.3,
#: ResNet-18 7.8 min per float epoch
CAMPAIGN_PLAN = {"alexnet-bn": (40.0, 6.0), "vgg16": (30.0, 5.0), "resnet18": (30.0, 5.0)}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default="alexnet-bn,vgg16,resnet18",
                   help="comma-separated, trained in this order")
    p.add_argument("--data-dir", action="append", default=None, metavar="DIR",
                   help="folder(s) holding train_<k>.npz and test.npz "
                        "(default: $NORSIM_DATA/cifar10, else ../shared/data/cifar10)")
    p.add_argument("--train-dir", default=os.environ.get("NORSIM_TRAIN_DIR"),
                   help="run folder outside the work tree (default $NORSIM_TRAIN_DIR)")
    p.add_argument("--milestone-dir", default=str(ROOT / "results" / "campaign"),
                   help="where phase-end float weights are copied (committed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--checkpoint-every-s", type=float, default=300.0)
    p.add_argument("--no-nice", action="store_true")
    p.add_argument("--nice", type=int, default=19, metavar="N",
                   help="niceness increment of the training process (default 19)")
    p.add_argument("--publish-partial", action="store_true",
                   help="compact the running phases' checkpoints into the milestone folder "
                        "(to commit) and exit")
    p.add_argument("--epochs-scale", type=float, default=1.0,
                   help="multiply every phase's epochs by this (smoke runs)")
    p.add_argument("--limit-train", type=int, default=0)
    p.add_argument("--limit-test", type=int, default=0)
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (tests)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--noise-aware", default=None, metavar="JSON",
                   help="noise-aware QAT: a JSON file of per-layer relative output noise "
                   "({'out_noise_rel': {layer: std / accumulator rms}}, written by "
                   "scripts/layer_noise.py); the run starts from the plain entry's float "
                   "milestone and is the zoo entry <arch>-cifar10-4b-<--noise-tag>")
    p.add_argument("--qat-epochs", type=float, default=None,
                   help="QAT epochs instead of the plan's (CAMPAIGN_PLAN; still x --epochs-scale)")
    p.add_argument("--noise-tag", default="noiseaware",
                   help="entry-name suffix of a --noise-aware run (default noiseaware)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse(argv)
    from norsim.errors import InputError, NorsimError
    try:
        if not a.train_dir:
            raise InputError("NORSIM_TRAIN_DIR", "(unset)", "a run folder outside the work tree")
        train_dir = Path(a.train_dir).resolve()
        if train_dir == ROOT or ROOT in train_dir.parents:
            raise InputError("NORSIM_TRAIN_DIR", str(train_dir),
                             f"a folder outside the work tree {ROOT}")
        import torch
        from norsim.qat.gpu_recipe import ARCHS, Recipe, load_cifar, run_all
        dirs = a.data_dir or [str(Path(os.environ["NORSIM_DATA"]) / "cifar10")
                              if os.environ.get("NORSIM_DATA")
                              else str(ROOT.parent / "shared" / "data" / "cifar10")]
        noise = {}
        if a.noise_aware:
            try:
                noise = json.loads(Path(a.noise_aware).read_text())["out_noise_rel"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise InputError("--noise-aware", a.noise_aware,
                                 f"a readable JSON file with an 'out_noise_rel' object ({exc})")
        recipes = []
        for arch in [s.strip() for s in a.archs.split(",") if s.strip()]:
            if arch not in ARCHS:
                raise InputError("--archs", arch, "names from " + ", ".join(ARCHS))
            fe, qe = CAMPAIGN_PLAN[arch]
            if a.qat_epochs is not None:
                if not a.qat_epochs > 0:
                    raise InputError("--qat-epochs", a.qat_epochs, "a number of epochs > 0")
                qe = a.qat_epochs
            recipes.append(Recipe(
                arch=arch, width=a.width, seed=a.seed, batch_size=a.batch_size,
                float_epochs=fe * a.epochs_scale, qat_epochs=qe * a.epochs_scale,
                limit_train=a.limit_train, limit_test=a.limit_test,
                checkpoint_every_s=a.checkpoint_every_s,
                # export agreement on the whole test set, as the zoo's other entries
                export_check_images=10_000, out_noise_rel=dict(noise),
                noise_tag=a.noise_tag if noise else "").validate())
        if a.publish_partial:
            from norsim.qat.gpu_recipe import compact_phase_checkpoint
            for r in recipes:
                for phase in ("float", "qat"):
                    ck = train_dir / r.entry_name / f"{phase}_phase.pt"
                    if ck.is_file():
                        out = compact_phase_checkpoint(
                            ck, Path(a.milestone_dir) / r.entry_name / f"{phase}_partial.npz")
                        print(f"{out} ({out.stat().st_size / 1e6:.1f} MB)")
            return 0
        data = load_cifar(dirs)
    except NorsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not a.no_nice:
        os.nice(a.nice)
    torch.set_num_threads(max(1, a.threads))
    for split, lim in (("train", a.limit_train), ("test", a.limit_test)):
        if lim:
            data[f"x_{split}"] = data[f"x_{split}"][:lim]
            data[f"y_{split}"] = data[f"y_{split}"][:lim]
    train_dir.mkdir(parents=True, exist_ok=True)
    cmd = "python3 scripts/train_campaign.py " + " ".join(
        shlex.quote(s) for s in (argv if argv is not None else sys.argv[1:]))
    summary = run_all(recipes, data, train_dir, train_dir / "zoo", cmd, device="cpu",
                      echo=lambda s: print(s, flush=True), milestone_dir=a.milestone_dir)
    print(json.dumps(summary))
    return 0 if all(m["status"] != "error" for m in summary["models"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
