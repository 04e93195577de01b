"""The training loop: float pre-training, BN folding + calibration, QAT fine-tuning.

Seeded and resumable: the data order and augmentation of epoch ``e`` come from
``SeedSequence(seed, spawn_key=(e,))``, the weight-threshold sampling from the quantiser's
step counter, and the noise generator's state is checkpointed, so an interrupted run
resumed from its last per-epoch checkpoint ends bit-identical to an uninterrupted one
(same thread count).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from norsim.errors import InputError
from norsim.qat.data import augment, load_split, to_float
from norsim.qat.models import QNet, build_model

CHECKPOINT = "checkpoint.pt"
#: float-phase arithmetic; the QAT phase, calibration, evaluation and export are float32
PRECISIONS = ("float32", "bf16")


def resolve_precision(name: str) -> str:
    """``auto`` -> ``bf16`` where the CPU runs bfloat16 natively (AVX-512 BF16 / AMX: 3x
    faster than float32 for a CIFAR ResNet-18 here), else ``float32``."""
    if name != "auto":
        return name
    from norsim.qat.gpu_recipe import cpu_bf16_supported
    return "bf16" if cpu_bf16_supported() else "float32"


@dataclass
class TrainSpec:
    """Everything that determines a training run (stored in the checkpoint and the log)."""

    arch: str = "lenet"
    data: str = "mnist"
    bits: int = 4
    first_last_bits: int = 8
    epochs: int = 6                 # total
    float_epochs: int = -1          # -1: round(0.6 * epochs); 0: QAT from scratch
    batch_size: int = 128
    lr_float: float = 2e-3
    lr_qat: float = 2e-4
    weight_decay: float = 1e-4      # decoupled (AdamW) on weights
    alpha_l2: float = 1e-4          # L2 on the PACT clips (added to the loss)
    seed: int = 0
    augment: bool = False
    per_channel: bool = True
    symmetric: bool = True
    reestimate_every: int = 50
    calib_size: int = 1024
    noise_sigma_lnw: float = 0.0    # noise-aware QAT: log-normal weight noise sigma
    limit_train: int = 0            # 0: all (tests use small subsets)
    limit_test: int = 0
    precision: str = "float32"      # float phase: "float32" or "bf16" (autocast, channels_last)
    test_every: int = 1             # test accuracy after every k-th epoch and each phase's last

    @property
    def n_float(self) -> int:
        return round(0.6 * self.epochs) if self.float_epochs < 0 else self.float_epochs

    def validate(self) -> "TrainSpec":
        if self.epochs < 1:
            raise InputError("--epochs", self.epochs, ">= 1")
        if not 0 <= self.n_float <= self.epochs:
            raise InputError("--float-epochs", self.float_epochs, f"in [0, --epochs={self.epochs}]")
        if self.batch_size < 1:
            raise InputError("--batch-size", self.batch_size, ">= 1")
        for k in ("lr_float", "lr_qat"):
            v = getattr(self, k)
            if not (math.isfinite(v) and v > 0):
                raise InputError("--" + k.replace("_", "-"), v, "a finite learning rate > 0")
        if self.test_every < 1:
            raise InputError("--test-every", self.test_every, "an epoch count >= 1")
        if self.precision not in PRECISIONS:
            raise InputError("--precision", self.precision, "one of " + ", ".join(PRECISIONS))
        if not (math.isfinite(self.noise_sigma_lnw) and 0 <= self.noise_sigma_lnw <= 2):
            raise InputError("noise sigma_lnw", self.noise_sigma_lnw, "in [0, 2]")
        return self


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_data(spec: TrainSpec, data_dir: str | None = None) -> Dataset:
    xtr, ytr = load_split(spec.data, "train", data_dir)
    xte, yte = load_split(spec.data, "test", data_dir)
    if spec.limit_train:
        xtr, ytr = xtr[:spec.limit_train], ytr[:spec.limit_train]
    if spec.limit_test:
        xte, yte = xte[:spec.limit_test], yte[:spec.limit_test]
    return Dataset(xtr, ytr, xte, yte)


def new_model(spec: TrainSpec, quantized: bool) -> QNet:
    m = build_model(spec.arch, bits=spec.bits, first_last_bits=spec.first_last_bits,
                    seed=spec.seed, per_channel=spec.per_channel, symmetric=spec.symmetric,
                    reestimate_every=spec.reestimate_every)
    if quantized:
        m.fold_bn()
        m.set_quant_flags(True)
    return m


@torch.no_grad()
def evaluate(model: QNet, x: np.ndarray, y: np.ndarray, batch: int = 1000,
             exact: bool = False) -> tuple[float, np.ndarray]:
    """Top-1 accuracy and the logits (float64) in eval mode (``exact``: integer-exact)."""
    model.eval()
    model.set_exact(exact)
    outs = []
    for i in range(0, len(x), batch):
        outs.append(model(to_float(x[i:i + batch])).double().numpy())
    model.set_exact(False)
    logits = np.concatenate(outs) if outs else np.zeros((0, 10))
    return float((logits.argmax(1) == y).mean()), logits


def _make_optimizer(model: QNet, lr: float, wd: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if name.endswith("op.weight") else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def _lr_at(base: float, step: int, total: int) -> float:
    """Cosine decay from ``base`` to 2% of it over ``total`` steps."""
    t = min(step / max(total, 1), 1.0)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def _calib_batch(spec: TrainSpec, data: Dataset) -> torch.Tensor:
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(10_000,)))
    idx = rng.permutation(len(data.x_train))[: spec.calib_size]
    return to_float(data.x_train[np.sort(idx)])


def _save(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(spec: TrainSpec, out: str | Path, *, data: Dataset | None = None,
          progress: bool = True, stop_after_epochs: int | None = None,
          log_fn=print, data_dir: str | None = None) -> dict:
    """Run (or resume) a training run in ``out``; returns the summary dict.

    ``stop_after_epochs`` ends the process-level run early after that many epochs *in this
    call* (used by tests to simulate an interruption).
    """
    from tqdm import tqdm

    spec.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ck_path = out / CHECKPOINT
    data = data if data is not None else load_data(spec, data_dir)
    n_float, n_total = spec.n_float, spec.epochs

    if ck_path.exists():
        ck = torch.load(ck_path, weights_only=True)
        if {"precision": "float32", "test_every": 1} | ck["spec"] != dataclasses.asdict(spec):
            raise InputError("--out", str(out), "a fresh directory: its checkpoint was written "
                             "by a different training command (or pass --restart)")
        model = new_model(spec, ck["quantized"])
        model.load_state_dict(ck["model"])
        log = json.loads(ck["log"])
        done = int(ck["epochs_done"])
        opt_state = ck["opt"]
        noise_state = ck.get("noise_state")
        log_fn(f"resuming {out} after epoch {done}/{n_total}")
    else:
        model = new_model(spec, False)
        log, done, opt_state, noise_state = [], 0, None, None

    def phase_of(e: int) -> str:
        return "float" if e < n_float else "qat"

    opt = None
    if done < n_total:
        if phase_of(done) == "qat" and not model.quantized:
            # transition: evaluate the float twin (BN folded), fold + calibrate, PTQ accuracy
            _fold_and_calibrate(model, spec, data, log, log_fn)
            opt_state = None
        if model.quantized:
            model.set_noise(spec.noise_sigma_lnw, seed=spec.seed + 7)
            if noise_state is not None:
                model.qlayers()[0].noise_gen.set_state(noise_state)
        lr = spec.lr_float if phase_of(done) == "float" else spec.lr_qat
        opt = _make_optimizer(model, lr, spec.weight_decay)
        if opt_state is not None:
            opt.load_state_dict(opt_state)

    n_train = len(data.x_train)
    steps_per_epoch = math.ceil(n_train / spec.batch_size)
    ran = 0
    for epoch in range(done, n_total):
        phase = phase_of(epoch)
        if phase == "qat" and not model.quantized:   # crossing the boundary in this call
            _fold_and_calibrate(model, spec, data, log, log_fn)
            model.set_noise(spec.noise_sigma_lnw, seed=spec.seed + 7)
            opt = _make_optimizer(model, spec.lr_qat, spec.weight_decay)
        p0 = 0 if phase == "float" else n_float
        p_epochs = n_float if phase == "float" else n_total - n_float
        base_lr = spec.lr_float if phase == "float" else spec.lr_qat
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(epoch,)))
        order = rng.permutation(n_train)
        amp = spec.precision == "bf16" and phase == "float"
        fmt = torch.channels_last if amp else torch.contiguous_format
        model.to(memory_format=fmt)
        model.train()
        t0 = time.perf_counter()
        tot_loss, tot_ok = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"{phase} {epoch + 1}/{n_total}",
                   disable=not progress, leave=False, mininterval=1.0)
        for k in bar:
            idx = order[k * spec.batch_size:(k + 1) * spec.batch_size]
            xb = data.x_train[idx]
            if spec.augment:
                xb = augment(xb, rng)
            xt, yt = to_float(xb).contiguous(memory_format=fmt), torch.from_numpy(data.y_train[idx])
            for g in opt.param_groups:
                g["lr"] = _lr_at(base_lr, (epoch - p0) * steps_per_epoch + k,
                                 p_epochs * steps_per_epoch)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                logits = model(xt)
            logits = logits.float()
            loss = F.cross_entropy(logits, yt)
            if model.quantized and spec.alpha_l2 > 0:
                loss = loss + spec.alpha_l2 * sum((a ** 2).sum() for a in model.pact_alphas())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += float(loss.detach()) * len(idx)
            tot_ok += int((logits.argmax(1) == yt).sum())
            if progress and k % 20 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        bar.close()
        model.to(memory_format=torch.contiguous_format)
        dt = time.perf_counter() - t0
        tested = ((epoch + 1) % spec.test_every == 0 or epoch + 1 in (n_float, n_total))
        acc = evaluate(model, data.x_test, data.y_test)[0] if tested else None
        rec = {"event": "epoch", "epoch": epoch + 1, "phase": phase,
               "bits": "float" if phase == "float" else spec.bits,
               "train_loss": tot_loss / n_train, "train_acc": tot_ok / n_train,
               "test_acc": acc, "seconds": round(dt, 2), "precision": "bf16" if amp else "float32",
               "images_per_s": round(n_train / dt, 1)}
        log.append(rec)
        log_fn(f"epoch {epoch + 1}/{n_total} [{phase}] loss {rec['train_loss']:.4f} "
               + (f"test acc {acc:.4f}" if tested else "(not tested)") + f" ({dt:.0f} s)")
        ck = {"spec": dataclasses.asdict(spec), "epochs_done": epoch + 1,
              "quantized": model.quantized, "model": model.state_dict(),
              "opt": opt.state_dict(), "log": json.dumps(log)}
        if model.quantized:
            ck["noise_state"] = model.qlayers()[0].noise_gen.get_state()
        _save(ck_path, ck)
        (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
        ran += 1
        if stop_after_epochs is not None and ran >= stop_after_epochs and epoch + 1 < n_total:
            return {"interrupted": True, "epochs_done": epoch + 1}

    # float-only run: the float twin is the final model
    if not model.quantized:
        model.fold_bn()
    summary = summarize(spec, log, model, data)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    torch.save({"spec": dataclasses.asdict(spec), "quantized": model.quantized,
                "model": model.state_dict()}, out / "model.pt")
    return summary


def summarize(spec: TrainSpec, log: list, model: QNet, data: Dataset) -> dict:
    ev = [r for r in log if r.get("event") == "fold_and_calibrate"]
    ep = [r for r in log if r.get("event") == "epoch"]
    float_acc = ev[-1]["float_test_acc"] if ev else (ep[-1]["test_acc"] if ep else None)
    q_acc = ep[-1]["test_acc"] if ep and ep[-1]["phase"] == "qat" else None
    return {"arch": spec.arch, "data": spec.data, "seed": spec.seed, "bits": spec.bits,
            "first_last_bits": spec.first_last_bits, "epochs": spec.epochs,
            "float_epochs": spec.n_float, "n_train": int(len(data.x_train)),
            "n_test": int(len(data.x_test)), "float_test_acc": float_acc,
            "ptq_test_acc": ev[-1]["ptq_test_acc"] if ev else None,
            "qat_test_acc": q_acc,
            "gap_points": None if q_acc is None or float_acc is None
            else round(100 * (float_acc - q_acc), 3),
            "noise_sigma_lnw": spec.noise_sigma_lnw}


def load_trained(path: str | Path) -> tuple[QNet, TrainSpec]:
    """Rebuild a model from ``model.pt`` (or a ``checkpoint.pt``) written by :func:`train`."""
    ck = torch.load(Path(path), weights_only=True)
    spec = TrainSpec(**ck["spec"])
    model = new_model(spec, ck["quantized"])
    model.load_state_dict(ck["model"])
    model.eval()
    return model, spec


def _fold_and_calibrate(model, spec, data, log: list, log_fn) -> None:
    """The float -> QAT transition: fold BN, calibrate the quantizers, log both accuracies."""
    model.fold_bn()
    acc_f, _ = evaluate(model, data.x_test, data.y_test)
    model.to_qat(_calib_batch(spec, data), seed=spec.seed)
    acc_ptq, _ = evaluate(model, data.x_test, data.y_test)
    log.append({"event": "fold_and_calibrate", "float_test_acc": acc_f, "ptq_test_acc": acc_ptq})
    log_fn(f"float twin {acc_f:.4f}, 4-bit before QAT (PTQ) {acc_ptq:.4f}")
