"""The CIFAR-10 seed-table recipe (issue 10): float then 4-bit QAT training of AlexNet-BN,
VGG16 and ResNet-18 in one short GPU session, with zoo entries written after each model.

Built for one H100/H200 and a few minutes (``scripts/train_cifar_gpu.py`` is the command;
``docs/results.md`` the recipe in words), and tested end to end on a CPU with a tiny subset at
reduced width (``tests/test_gpu_recipe.py``):

* the whole data set lives on the device as uint8 NCHW tensors; augmentation (random crop
  with zero padding + horizontal flip) runs on the device from a seeded ``torch.Generator``;
* float phase: SGD (Nesterov) with a one-cycle learning rate, label smoothing, bf16 autocast
  (``amp``), channels_last, optional ``torch.compile``;
* BN folded into the convolutions, PACT clips and weight thresholds calibrated
  (:meth:`QNet.to_qat`; the clip search runs on the CPU copy of the captured activations), then
  QAT fine-tuning in float32 (TF32 allowed) with AdamW and a one-cycle rate;
* each phase lasts a number of epochs or a wall-clock budget (``*_seconds``): in the latter
  case the one-cycle position is the elapsed fraction of the budget, so the schedule fits
  whatever the card's speed;
* after each model: the float twin's fp16 state (resumable: a rerun skips the float phase),
  the 4-bit model exported to a QuantModel (integer codes), its integer-exact test accuracy
  (:meth:`QNet.set_exact`, on the CPU), the export check against the QuantModel reference
  executor on the first ``export_check_images`` test images, a zoo entry folder
  (``model.npz``, ``entry.json``, ``log.jsonl``, the schema of :mod:`norsim.qat.zoo_entry`)
  and a ``<entry>.tar`` of it for the 8-file limit on what comes back from the GPU machine.

The data files and augmentation are :mod:`norsim.qat.cifar_npz`, the phase checkpoints and
milestones :mod:`norsim.qat.phase_checkpoint` (both re-exported here).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import shutil
import tarfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from norsim.errors import InputError
from norsim.qat.layers import BasicBlock, QAct, QLayer, QSigned
from norsim.qat.layers import AvgPool, Flatten, InputQuant
from norsim.qat.models import QNet, _vgg_features, build_model, count_parameters
# the data and checkpoint halves of the recipe, re-exported: callers use gpu_recipe.<name>
from norsim.qat.cifar_npz import (CIFAR_SHA256, find_npz, gpu_augment,  # noqa: F401
                                  load_cifar, sha256)
from norsim.qat.phase_checkpoint import (POST_TRAINING_FIELDS, _partial_checkpoint,  # noqa: F401
                                         _phase_checkpoint, _training_fields,
                                         compact_phase_checkpoint, load_state_fp16,
                                         save_state_fp16)

ARCHS = ("alexnet-bn", "vgg16", "resnet18")
#: the published full-precision figures the table is held to (percent)
SEED_FLOAT_ACC = {"alexnet-bn": 90.07, "vgg16": 91.65, "resnet18": 93.23}

#: test images (the first ones: norsim/data/embedded's CIFAR-10 slice) whose torch-twin
#: logits a zoo entry keeps in export_witness.npz
WITNESS_IMAGES = 500

DATA_CAVEAT = ("CIFAR-10 training images are JPEG-decoded (mean abs. pixel error 5.8, "
               "reported to cost 2-3 points); test set exact. The 4-bit loss is measured "
               "against the float twin trained on the same images.")


# ---------------------------------------------------------------------------------------
# models at a width multiplier (1.0 = exactly norsim.qat.models)
# ---------------------------------------------------------------------------------------

def build(arch: str, width: float = 1.0, bits: int = 4, first_last_bits: int = 8,
          seed: int = 0) -> QNet:
    """``arch`` with every hidden channel/feature count scaled by ``width`` (at least 4).

    ``width == 1`` returns :func:`norsim.qat.models.build_model` itself; smaller widths keep
    the layer sequence (kernels, strides, pooling, bit widths) and are used by the CPU test.
    """
    if arch not in ARCHS:
        raise InputError("arch", arch, "one of " + ", ".join(ARCHS))
    if not (math.isfinite(width) and 0.0 < width <= 1.0):
        raise InputError("width", width, "a multiplier in (0, 1]")
    if width == 1.0:
        return build_model(arch, bits=bits, first_last_bits=first_last_bits, seed=seed)
    build_model(arch, bits=bits, first_last_bits=first_last_bits, seed=seed)  # validation only
    torch.manual_seed(seed)

    def c(n: int) -> int:
        return max(4, int(round(n * width)))

    q: dict = {}
    fl = first_last_bits
    if arch == "alexnet-bn":
        feats, ch = _vgg_features([c(64), "M", c(192), "M", c(384), c(256), c(256), "M"], 3,
                                  bits, fl, q)
        L = [InputQuant()] + feats + [
            Flatten(), QLayer("linear", ch * 4 * 4, c(1024), w_bits=bits), QAct(bits),
            QLayer("linear", c(1024), c(1024), w_bits=bits), QAct(bits),
            QLayer("linear", c(1024), 10, bn=False, w_bits=fl)]
    elif arch == "vgg16":
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
               512, 512, 512, "M"]
        feats, ch = _vgg_features([v if v == "M" else c(v) for v in cfg], 3, bits, fl, q)
        L = [InputQuant()] + feats + [Flatten(), QLayer("linear", ch, 10, bn=False, w_bits=fl)]
    else:
        L = [InputQuant(), QLayer("conv", 3, c(64), k=3, padding=1, w_bits=fl), QAct(bits)]
        cin = c(64)
        for cout, stride in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1),
                             (512, 2), (512, 1)]:
            L.append(BasicBlock(cin, c(cout), stride, bits))
            cin = c(cout)
        L += [AvgPool(4), Flatten(), QLayer("linear", cin, 10, bn=False, w_bits=fl)]
    return QNet(arch, L, (3, 32, 32), bits, first_last_bits)


# ---------------------------------------------------------------------------------------
# the recipe
# ---------------------------------------------------------------------------------------

@dataclass
class Recipe:
    """Everything that determines one model's run (written to its log and zoo entry)."""

    arch: str = "resnet18"
    width: float = 1.0
    bits: int = 4
    first_last_bits: int = 8
    seed: int = 0
    batch_size: int = 512
    float_epochs: float = 30.0      # used when float_seconds == 0
    float_seconds: float = 0.0      # > 0: the float phase lasts this wall-clock budget
    qat_epochs: float = 5.0
    qat_seconds: float = 0.0
    lr_float: float = 0.2           # one-cycle peak (SGD, Nesterov, momentum 0.9)
    lr_qat: float = 2e-4            # one-cycle peak (AdamW)
    momentum: float = 0.9
    weight_decay_float: float = 5e-4
    weight_decay_qat: float = 1e-4
    alpha_l2: float = 1e-4          # L2 on the PACT clips during QAT
    label_smoothing: float = 0.1
    warmup_frac: float = 0.15       # one-cycle: rising part
    pad: int = 4                    # random-crop zero padding
    calib_size: int = 512
    amp: bool = True                # bf16 autocast in the float phase (CUDA, or a CPU with bf16)
    channels_last: bool = True      # NHWC tensors (CUDA, and a CPU with bf16 autocast)
    compile: bool = False           # torch.compile the float phase
    limit_train: int = 0            # 0: all (tests use small subsets)
    limit_test: int = 0
    max_steps: int = 0              # > 0: cap every phase at this many steps (tests)
    exact_eval_images: int = 0      # integer-exact accuracy on the first N test images (0 all)
    export_check_images: int = 500  # export check vs the QuantModel reference executor
    checkpoint_every_s: float = 300.0  # mid-phase checkpoint interval (0: only at phase ends)
    #: noise-aware QAT: per quantised layer (QuantModel node name), the std of an additive
    #: Gaussian output noise relative to the rms of its accumulator during the QAT phase, as
    #: measured on simulated chips (norsim.qat.noise.output_noise_from_stats); {} plain QAT
    out_noise_rel: dict = field(default_factory=dict)
    #: suffix of the entry name of a noise-aware run ("noiseaware": <arch>-cifar10-4b-noiseaware);
    #: such a run starts from the plain entry's float milestone
    noise_tag: str = ""

    def validate(self) -> "Recipe":
        if self.arch not in ARCHS:
            raise InputError("arch", self.arch, "one of " + ", ".join(ARCHS))
        for k in ("float_epochs", "float_seconds", "qat_epochs", "qat_seconds", "lr_float",
                  "lr_qat", "weight_decay_float", "weight_decay_qat", "alpha_l2",
                  "label_smoothing", "warmup_frac"):
            v = getattr(self, k)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(k, v, "a finite number >= 0")
        if self.batch_size < 1:
            raise InputError("batch_size", self.batch_size, ">= 1")
        if not 0 < self.warmup_frac < 1:
            raise InputError("warmup_frac", self.warmup_frac, "in (0, 1)")
        for k, v in self.out_noise_rel.items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 10):
                raise InputError(f"out_noise_rel[{k!r}]", v, "a relative std in [0, 10]")
        if bool(self.out_noise_rel) != bool(self.noise_tag):
            raise InputError("noise_tag", self.noise_tag,
                             "a name suffix exactly when out_noise_rel is given")
        if self.noise_tag and not self.noise_tag.replace("-", "").isalnum():
            raise InputError("noise_tag", self.noise_tag, "letters, digits and '-'")
        if self.out_noise_rel:  # layer names checked now, not after the float phase loads
            from norsim.qat.export import qlayer_names

            names = qlayer_names(build(self.arch, self.width, self.bits, self.first_last_bits,
                                       self.seed))
            unknown = sorted(set(self.out_noise_rel) - set(names))
            if unknown:
                raise InputError("out_noise_rel layer", unknown[0],
                                 f"a quantised layer of {self.arch}: " + ", ".join(names))
        return self

    @property
    def float_entry_name(self) -> str:
        """The entry whose float phase this run uses (its own, or the plain twin's)."""
        w = "" if self.width == 1.0 else f"-w{self.width:g}"
        return f"{self.arch}{w}-cifar10-{self.bits}b"

    @property
    def entry_name(self) -> str:
        return self.float_entry_name + (f"-{self.noise_tag}" if self.noise_tag else "")


def one_cycle(p: float, peak: float, warmup: float) -> float:
    """Learning rate at progress ``p`` in [0, 1]: linear 4 % -> 100 % of ``peak`` over
    ``warmup``, then cosine down to 0.2 % of it."""
    p = min(max(p, 0.0), 1.0)
    if p < warmup:
        return peak * (0.04 + 0.96 * p / warmup)
    t = (p - warmup) / (1.0 - warmup)
    return peak * (0.002 + 0.998 * 0.5 * (1.0 + math.cos(math.pi * t)))


# ---------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------

class Log:
    """Appends JSON lines to ``path`` (and echoes a short line) as events happen."""

    def __init__(self, path: Path, echo=print):
        self.path, self.echo, self.records = path, echo, []
        if path.is_file():
            self.records = [json.loads(s) for s in path.read_text().splitlines() if s.strip()]

    def __call__(self, event: str, **kw) -> dict:
        rec = {"event": event, "time": round(time.time(), 1)} | kw
        self.records.append(rec)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        self.echo(f"[{event}] " + " ".join(f"{k}={v}" for k, v in kw.items()
                                           if not isinstance(v, (dict, list))))
        return rec


def cpu_bf16_supported() -> bool:
    """True where oneDNN runs bfloat16 natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_amp(r: "Recipe", dev: torch.device) -> bool:
    """bf16 autocast for the float phase: asked for, and the device runs bf16 natively."""
    return r.amp and (dev.type == "cuda" or (dev.type == "cpu" and cpu_bf16_supported()))


def use_channels_last(r: "Recipe", dev: torch.device) -> bool:
    """NHWC on CUDA, and on a CPU where the float phase runs in bf16 (3x faster than NCHW
    float32 for a CIFAR ResNet-18 on AVX-512 BF16; NCHW is faster in float32 there)."""
    return r.channels_last and (dev.type == "cuda" or use_amp(r, dev))


def _to_input(xb: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = xb.float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def evaluate_torch(model: QNet, x: torch.Tensor, y: torch.Tensor, r: Recipe,
                   batch: int = 1000, exact: bool = False) -> float:
    """Top-1 accuracy in float32 eval mode (TF32 off, so fake-quant grids stay exact)."""
    model.eval()
    model.set_exact(exact)
    old = _set_tf32(False)
    ok = 0
    try:
        for i in range(0, len(x), batch):
            xb = _to_input(x[i:i + batch], use_channels_last(r, x.device))
            ok += int((model(xb).argmax(1) == y[i:i + batch]).sum())
    finally:
        _set_tf32(old)
        model.set_exact(False)
    return ok / max(len(x), 1)


def _set_tf32(on: bool) -> bool:
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    return old


def _sgd(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    decay, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if name.endswith("op.weight") else rest).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": r.weight_decay_float},
                            {"params": rest, "weight_decay": 0.0}], lr=r.lr_float,
                           momentum=r.momentum, nesterov=True)


def _adamw(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    decay, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if name.endswith("op.weight") else rest).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": r.weight_decay_qat},
                              {"params": rest, "weight_decay": 0.0}], lr=r.lr_qat)


def run_phase(model: QNet, data: dict, r: Recipe, phase: str, log: Log,
              ckpt: Path | None = None, on_step=None, partial: Path | None = None) -> dict:
    """One phase (``float`` or ``qat``) of one-cycle training; returns its statistics.

    With ``ckpt``, the phase's whole state (weights, optimiser, data order, generator, step,
    elapsed time) is written there every ``r.checkpoint_every_s`` seconds (atomically), and a
    phase that finds the file resumes from it: an interrupted phase continues where its last
    checkpoint left it, with the same schedule. The file is removed when the phase ends.
    ``on_step(step)`` is called after every step (tests interrupt the phase from it).
    Without a full checkpoint, a compact one at ``partial`` (committed by another machine,
    :func:`compact_phase_checkpoint`) is resumed instead, with fresh optimiser momentum.
    """
    dev = data["x_train"].device
    n = len(data["x_train"])
    bs = min(r.batch_size, n)
    steps_per_epoch = max(n // bs, 1)                     # drop the ragged last batch
    is_float = phase == "float"
    seconds = r.float_seconds if is_float else r.qat_seconds
    epochs = r.float_epochs if is_float else r.qat_epochs
    total = max(int(round(epochs * steps_per_epoch)), 1)
    if r.max_steps:
        total = min(total, r.max_steps)
    peak = r.lr_float if is_float else r.lr_qat
    opt = _sgd(model, r) if is_float else _adamw(model, r)
    amp = use_amp(r, dev) and is_float
    nhwc = use_channels_last(r, dev)
    fwd = model
    if is_float and r.compile and dev.type == "cuda":
        fwd = torch.compile(model)
    old_tf32 = _set_tf32(True)
    gen = torch.Generator(device=dev)
    gen.manual_seed(r.seed * 7919 + (1 if is_float else 2))
    step, loss_sum, seen, perm, k = 0, 0.0, 0, None, steps_per_epoch
    elapsed0 = 0.0
    state, source = _phase_checkpoint(ckpt), ckpt
    if state is None:
        state, source = _partial_checkpoint(partial), partial
    if state is not None:
        if state["phase"] != phase or _training_fields(state["recipe"]) != _training_fields(
                dataclasses.asdict(r)):
            raise InputError("phase checkpoint", str(source),
                             f"one written by this recipe's {phase} phase (delete it to restart)")
        model.load_state_dict(state["model"])
        if state["opt"] is not None:
            opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        if state.get("noise_gen") is not None and model.noise_generator() is not None:
            model.noise_generator().set_state(state["noise_gen"])
        step, loss_sum, seen, k = state["step"], state["loss_sum"], state["seen"], state["k"]
        perm = None if state["perm"] is None else state["perm"].to(dev)
        elapsed0 = state["elapsed_s"]
        log(f"{phase}_resumed", step=step, seconds=round(elapsed0, 1),
            compact=state["opt"] is None)
    model.train()
    t0 = time.perf_counter() - elapsed0
    t_saved = t_logged = time.perf_counter()
    log(f"{phase}_start", steps=total if not seconds else None, seconds_budget=seconds or None,
        steps_per_epoch=steps_per_epoch, amp=amp, channels_last=nhwc, from_step=step)

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"phase": phase, "recipe": dataclasses.asdict(r), "model": model.state_dict(),
                    "opt": opt.state_dict(), "gen": gen.get_state(), "step": step,
                    "noise_gen": (None if model.noise_generator() is None
                                  else model.noise_generator().get_state()),
                    "loss_sum": loss_sum, "seen": seen, "k": k,
                    "perm": None if perm is None else perm.cpu(),
                    "elapsed_s": time.perf_counter() - t0}, tmp)
        tmp.replace(ckpt)

    while True:
        elapsed = time.perf_counter() - t0
        p = elapsed / seconds if seconds else step / total
        if p >= 1.0 or (r.max_steps and step >= r.max_steps):
            break
        now = time.perf_counter()
        if ckpt is not None and r.checkpoint_every_s and now - t_saved >= r.checkpoint_every_s:
            save()
            t_saved = now
        if k >= steps_per_epoch:
            perm, k = torch.randperm(n, generator=gen, device=dev), 0
        idx = perm[k * bs:(k + 1) * bs]
        k += 1
        xb = _to_input(gpu_augment(data["x_train"][idx], gen, r.pad) if r.pad else
                       data["x_train"][idx], nhwc)
        yb = data["y_train"][idx]
        lr = one_cycle(p, peak, r.warmup_frac)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = fwd(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=r.label_smoothing)
        if not is_float and r.alpha_l2 > 0:
            loss = loss + r.alpha_l2 * sum((a ** 2).sum() for a in model.pact_alphas())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if on_step is not None:
            on_step(step)
        if step % 50 == 0 or step == 1:
            lv = float(loss.detach())               # also keeps the host near the device
            if not math.isfinite(lv):
                raise FloatingPointError(f"{phase} loss is {lv} at step {step}")
            loss_sum += lv
            seen += 1
        if step % 200 == 0 or (dev.type == "cpu" and time.perf_counter() - t_logged >= 60):
            t_logged = time.perf_counter()
            log(f"{phase}_progress", step=step, of=None if seconds else total,
                loss=round(float(loss.detach()), 4), lr=round(lr, 6),
                seconds=round(t_logged - t0, 1))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    _set_tf32(old_tf32)
    if ckpt is not None and ckpt.is_file():
        ckpt.unlink()
    return {"steps": step, "epochs": round(step / steps_per_epoch, 3), "seconds": round(dt, 2),
            "images_per_s": round(step * bs / max(dt, 1e-9), 1),
            "mean_logged_loss": round(loss_sum / max(seen, 1), 4)}


def _cpu_calibrated(model: QNet):
    """Make every activation quantiser's clip search run on a CPU copy of its input
    (:func:`norsim.qat.quant.mse_clip` builds CPU candidate tensors). Returns an undo."""
    patched = []
    for m in model.modules():
        t = m.pact if isinstance(m, QAct) else (m if isinstance(m, QSigned) else None)
        if t is None:
            continue
        orig = t.calibrate

        def cal(x, *a, _orig=orig, **kw):
            return _orig(x.detach().float().cpu(), *a, **kw)
        object.__setattr__(t, "calibrate", cal)
        patched.append(t)

    def undo():
        for t in patched:
            object.__delattr__(t, "calibrate")
    return undo


def _milestone(run_dir: Path, milestone_dir: Path | None, entry: str, name: str) -> Path:
    """Where a phase-end checkpoint is: the run folder's copy, else the committed milestone
    (``milestone_dir/entry/name``, copied into the run folder), else the run folder's path
    (not yet written)."""
    here = run_dir / name
    if not here.is_file() and milestone_dir is not None:
        there = Path(milestone_dir) / entry / name
        if there.is_file():
            shutil.copyfile(there, here)
    return here


def _publish(path: Path, milestone_dir: Path | None, entry: str) -> None:
    """Copy a phase-end checkpoint into the milestone folder (the one that gets committed)."""
    if milestone_dir is None:
        return
    d = Path(milestone_dir) / entry
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (path.name + ".tmp")
    shutil.copyfile(path, tmp)
    tmp.replace(d / path.name)
    # the phase is over: its compact mid-phase checkpoint (if one was committed) is obsolete
    (d / path.name.replace("_fp16.npz", "_partial.npz")).unlink(missing_ok=True)


def _phase_or_milestone(model, data, r: Recipe, phase: str, log: Log, run_dir: Path,
                        milestone_dir: Path | None) -> tuple[dict, Path]:
    """Load the phase's end state where it exists (run folder or milestone), else run the
    phase (resuming its mid-phase checkpoint); returns (statistics, end-state path)."""
    if phase == "float" and r.noise_tag:  # the plain twin's float phase, never run again
        ck = run_dir.parent / r.float_entry_name / "float_fp16.npz"
        if not ck.is_file():
            ck = _milestone(run_dir, milestone_dir, r.float_entry_name, "float_fp16.npz")
        if not ck.is_file():
            raise InputError("noise_tag", r.noise_tag,
                             f"a noise-aware run after the plain {r.float_entry_name} float phase "
                             f"(no float_fp16.npz in {run_dir.parent / r.float_entry_name} or "
                             f"the milestones)")
    else:
        ck = _milestone(run_dir, milestone_dir, r.entry_name, f"{phase}_fp16.npz")
    if ck.is_file():
        load_state_fp16(model, ck)
        log(f"{phase}_resumed", path=ck.name)
        return {"resumed_from": ck.name}, ck
    partial = (None if milestone_dir is None else
               Path(milestone_dir) / r.entry_name / f"{phase}_partial.npz")
    return run_phase(model, data, r, phase, log, ckpt=run_dir / f"{phase}_phase.pt",
                     partial=partial), ck


def train_one(r: Recipe, data: dict, out: Path, zoo_dir: Path, command: str,
              echo=print, tar_dir: Path | None = None,
              milestone_dir: Path | None = None) -> dict:
    """Float phase (or resume from its checkpoints), fold + calibrate, QAT (or resume), export,
    zoo entry. Phase-end states (fp16 npz) are also copied into ``milestone_dir/<entry>/``
    and read from there when the run folder lacks them (a fresh machine resumes from the
    committed milestones)."""
    r.validate()
    from norsim.qat.export import compare, export

    dev = data["x_train"].device
    run_dir = out / r.entry_name
    run_dir.mkdir(parents=True, exist_ok=True)
    log = Log(run_dir / "log.jsonl", echo)
    log("recipe", recipe=dataclasses.asdict(r), device=str(dev),
        gpu=torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        torch=torch.__version__)
    model = build(r.arch, r.width, r.bits, r.first_last_bits, r.seed)
    n_params = count_parameters(model)
    model = model.to(dev)
    if use_channels_last(r, dev):
        model = model.to(memory_format=torch.channels_last)
    st_float, ck_float = _phase_or_milestone(model, data, r, "float", log, run_dir,
                                             milestone_dir)
    if "resumed_from" not in st_float:
        save_state_fp16(model, ck_float)
        # continue from the stored (fp16) weights, as a resumed run does
        load_state_fp16(model, ck_float)
        _publish(ck_float, milestone_dir, r.entry_name)
    acc_float_bn = evaluate_torch(model, data["x_test"], data["y_test"], r)
    log("float_done", test_acc=acc_float_bn, **st_float)

    model.fold_bn()
    acc_float = evaluate_torch(model, data["x_test"], data["y_test"], r)
    g = torch.Generator(device="cpu").manual_seed(r.seed + 10_000)
    ci = torch.randperm(len(data["x_train"]), generator=g)[: r.calib_size].sort().values
    calib = _to_input(data["x_train"][ci.to(dev)], use_channels_last(r, dev))
    undo = _cpu_calibrated(model)
    try:
        model.to_qat(calib, seed=r.seed)
    finally:
        undo()
    del calib
    acc_ptq = evaluate_torch(model, data["x_test"], data["y_test"], r)
    log("fold_and_calibrate", float_test_acc=acc_float, ptq_test_acc=acc_ptq)
    if r.out_noise_rel:
        model.set_output_noise(r.out_noise_rel, seed=r.seed * 7919 + 3)
        log("output_noise", out_noise_rel=r.out_noise_rel)
    st_qat, ck_qat = _phase_or_milestone(model, data, r, "qat", log, run_dir, milestone_dir)
    acc_fq = evaluate_torch(model, data["x_test"], data["y_test"], r)
    log("qat_done", fake_quant_test_acc=acc_fq, **st_qat)

    # everything below on the CPU: exact integer evaluation and export
    model = model.cpu().to(memory_format=torch.contiguous_format)
    for prm in model.parameters():
        prm.data = prm.data.contiguous()
    if not ck_qat.is_file():
        # the QAT milestone that gets committed is the zoo entry itself (kept small)
        save_state_fp16(model, ck_qat)
    x_test = data["x_test"].cpu()
    y_test = data["y_test"].cpu()
    ne = r.exact_eval_images or len(x_test)
    t0 = time.perf_counter()
    acc_exact = evaluate_torch(model, x_test[:ne], y_test[:ne], r, batch=500, exact=True)
    t_exact = time.perf_counter() - t0
    qm = export(model, name=r.entry_name,
                metadata={"zoo": r.entry_name, "seed": r.seed, "data": "cifar10"})
    nc = min(r.export_check_images, len(x_test))
    chk = compare(model, qm, x_test[:nc].numpy(), batch=250)
    # the torch twin's logits on the test images shipped in norsim/data/embedded (the first
    # WITNESS_IMAGES): a clone without the data set or the (large) torch state re-checks the
    # committed export against them (tests/test_zoo.py)
    nw = min(WITNESS_IMAGES, nc)
    witness = {"fake_quant_logits": chk["fake_quant_logits"][:nw].astype(np.float32),
               "exact_logits": chk["exact_logits"][:nw]}
    chk = {k: v for k, v in chk.items() if not k.endswith("_logits")}
    log("exported", int_exact_test_acc=acc_exact, exact_eval_images=ne,
        exact_eval_seconds=round(t_exact, 1), export_check=chk)

    entry = {
        "arch": r.arch if r.width == 1.0 else f"{r.arch} (width x{r.width:g})",
        "data": "cifar10", "bits": r.bits, "first_last_bits": r.first_last_bits,
        "seed": r.seed, "parameters": n_params, "command": command,
        "accuracy": {
            "n_test": int(ne),
            "float_test_acc": acc_float,
            "float_test_acc_bn_unfolded": acc_float_bn,
            "ptq_test_acc": acc_ptq,
            "qat_fake_quant_test_acc": acc_fq,
            "qat_test_acc": acc_exact,
            "gap_points": round(100 * (acc_float - acc_exact), 3),
            "seed_float_acc_pct": SEED_FLOAT_ACC.get(r.arch) if r.width == 1.0 else None,
        },
        "export_check": chk | {"top1_agreement": chk["fq_top1_agreement"]},
        "recipe": dataclasses.asdict(r),
        "training_data": {"files": data.get("files"), "n_train": int(len(data["x_train"])),
                          "sha256_checked": data.get("sha256_checked", {}),
                          "caveat": DATA_CAVEAT},
        "phases": {"float": st_float, "qat": st_qat},
    }
    d = zoo_dir / r.entry_name
    d.mkdir(parents=True, exist_ok=True)
    qm.save(d / "model.npz")
    with open(d / "export_witness.npz", "wb") as fh:
        np.savez_compressed(fh, **witness)
    (d / "entry.json").write_text(json.dumps(entry, indent=1) + "\n")
    (d / "log.jsonl").write_bytes((run_dir / "log.jsonl").read_bytes())
    tar_path = Path(tar_dir or out) / f"{r.entry_name}.tar"
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path.with_suffix(".tmp"), "w") as tf:
        for f in ("model.npz", "entry.json", "log.jsonl", "export_witness.npz"):
            tf.add(d / f, arcname=f"{r.entry_name}/{f}")
    tar_path.with_suffix(".tmp").replace(tar_path)
    return entry


def run_all(recipes: list[Recipe], data_np: dict, out: str | Path, zoo_dir: str | Path,
            command: str, device: str = "auto", budget_s: float = 0.0, echo=print,
            tar_dir: str | Path | None = None, milestone_dir: str | Path | None = None) -> dict:
    """Train ``recipes`` in order; a failing model is logged and the next one starts. A model
    is skipped when less than its own phase budgets (``*_seconds``) + 60 s of ``budget_s`` is
    left. ``summary.json`` in ``out`` (and ``tar_dir``, where the entries' tars go: the flat
    folder that comes back from the GPU machine) is rewritten after each model."""
    out, zoo_dir = Path(out), Path(zoo_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    t_start = time.perf_counter()
    data = {k: torch.from_numpy(data_np[k]).to(dev)
            for k in ("x_train", "y_train", "x_test", "y_test")}
    data["files"] = data_np.get("files")
    data["sha256_checked"] = data_np.get("sha256_checked", {})
    summary = {"device": str(dev), "models": {}}
    for r in recipes:
        left = budget_s - (time.perf_counter() - t_start) if budget_s else math.inf
        need = r.float_seconds + r.qat_seconds + 60.0
        if left < need:
            summary["models"][r.entry_name] = {"status": "skipped",
                                               "reason": f"{left:.0f} s left < {need:.0f} s"}
            echo(f"skip {r.entry_name}: {left:.0f} s left")
        else:
            try:
                e = train_one(r, data, out, zoo_dir, command, echo, tar_dir=tar_dir,
                              milestone_dir=None if milestone_dir is None else Path(milestone_dir))
                summary["models"][r.entry_name] = {"status": "ok"} | e["accuracy"]
            except Exception as exc:     # noqa: BLE001 - keep the other models going
                tb = traceback.format_exc()
                (out / f"{r.entry_name}.error.txt").write_text(tb)
                echo(tb)
                summary["models"][r.entry_name] = {"status": "error", "error": repr(exc)}
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        summary["seconds"] = round(time.perf_counter() - t_start, 1)
        buf = io.StringIO()
        json.dump(summary, buf, indent=1)
        for d in {out, Path(tar_dir or out)}:
            d.mkdir(parents=True, exist_ok=True)
            (d / "summary.json").write_text(buf.getvalue() + "\n")
    return summary
