"""``norsim train``: float pre-training then 4-bit QAT fine-tuning, exported to a QuantModel."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from norsim.cli.common import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a 4-bit CNN with QAT (needs norsim[train])",
                       description="Float pre-training, BN folding, then quantisation-aware "
                       "fine-tuning (dynamic-threshold weights, PACT activations). Writes a "
                       "checkpoint every epoch into --out and resumes from it when rerun; "
                       "exports OUT/model.npz (QuantModel) at the end.")
    p.add_argument("--arch", default="lenet",
                   help="lenet, vgg-small, alexnet-bn, vgg16 or resnet18")
    p.add_argument("--data", default="mnist",
                   help="mnist or cifar10 (the full sets under --data-dir, else $NORSIM_DATA, "
                        "else ../shared/data) or a data directory (npz, IDX or CIFAR batches)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="directory holding mnist/ and cifar10/ (default: $NORSIM_DATA, else "
                        "../shared/data)")
    p.add_argument("--bits", type=int, default=4, help="weight and activation bits (default 4)")
    p.add_argument("--first-last-bits", type=int, default=8,
                   help="weight bits of the first conv and the last linear layer (default 8)")
    p.add_argument("--epochs", type=int, default=6, help="total epochs (float + QAT)")
    p.add_argument("--float-epochs", type=int, default=-1,
                   help="float pre-training epochs (default 60%% of --epochs; 0 = QAT from scratch)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr-float", type=float, default=2e-3, help="AdamW learning rate, float phase")
    p.add_argument("--lr-qat", type=float, default=2e-4, help="AdamW learning rate, QAT phase")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--alpha-l2", type=float, default=1e-4, help="L2 on the PACT clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment", action="store_true", help="random crop + flip (CIFAR)")
    p.add_argument("--per-layer", action="store_true",
                   help="one weight threshold per layer (default: one per output channel)")
    p.add_argument("--asymmetric", action="store_true",
                   help="asymmetric weight codes with a zero point")
    p.add_argument("--reestimate-every", type=int, default=50,
                   help="re-estimate weight thresholds every N steps (0 = only learn them)")
    p.add_argument("--noise-sigma-vth-v", type=float, default=0.0,
                   help="noise-aware QAT: V_th spread (V) injected as log-normal weight noise "
                        "with sigma_lnw = sigma_Vth alpha_G / (n U_T) from the preset")
    p.add_argument("--limit-train", type=int, default=0, help="use only the first N training images")
    p.add_argument("--limit-test", type=int, default=0, help="use only the first N test images")
    p.add_argument("--test-every", type=int, default=1, metavar="K",
                   help="test accuracy after every K-th epoch (and always after each phase's "
                        "last epoch; default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "float32"),
                   help="float-phase arithmetic: bf16 autocast + channels_last, or float32 "
                        "(auto: bf16 where the CPU runs it natively). QAT, calibration, "
                        "evaluation and export are always float32")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-export", action="store_true", help="do not write OUT/model.npz")
    p.add_argument("--restart", action="store_true",
                   help="discard an existing checkpoint in --out instead of resuming")
    p.add_argument("--out", required=True, help="run directory (checkpoint, log, model)")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import norsim.qat  # noqa: F401  (one clear message when torch is missing)
    import torch

    from norsim.cli.common import config_from_args
    from norsim.qat.noise import sigma_lnw_from_vth
    from norsim.qat.train import CHECKPOINT, TrainSpec, resolve_precision, train

    from norsim.outputs import check_output_dir

    check_output_dir("--out", args.out)
    torch.set_num_threads(max(1, args.threads))
    cfg = config_from_args(args)
    spec = TrainSpec(
        arch=args.arch, data=args.data, bits=args.bits, first_last_bits=args.first_last_bits,
        epochs=args.epochs, float_epochs=args.float_epochs, batch_size=args.batch_size,
        lr_float=args.lr_float, lr_qat=args.lr_qat, weight_decay=args.weight_decay,
        alpha_l2=args.alpha_l2, seed=args.seed, augment=args.augment,
        per_channel=not args.per_layer, symmetric=not args.asymmetric,
        reestimate_every=args.reestimate_every,
        noise_sigma_lnw=sigma_lnw_from_vth(args.noise_sigma_vth_v, cfg),
        limit_train=args.limit_train, limit_test=args.limit_test, test_every=args.test_every,
        precision=resolve_precision(args.precision)).validate()
    out = Path(args.out)
    if args.restart and (out / CHECKPOINT).exists():
        (out / CHECKPOINT).unlink()
    out.mkdir(parents=True, exist_ok=True)
    cmd = "norsim " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if Path(sys.argv[0]).name in ("norsim", "main.py", "__main__.py") else None
    if cmd and (args.restart or not (out / "command.txt").exists()):
        # a restarted run is a new run: its command replaces the old one (--restart dropped)
        cmd = " ".join(a for a in cmd.split(" ") if a != "--restart")
        (out / "command.txt").write_text(cmd + "\n")
    summary = train(spec, out, progress=not args.no_progress,
                    log_fn=lambda s: print(s, file=sys.stderr), data_dir=args.data_dir)
    if not args.no_export:
        from norsim.qat.export import export_run
        export_run(out)
    print(json.dumps(summary))
    return 0
