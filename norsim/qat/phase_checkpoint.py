"""Checkpoints of the seed-table recipe's phases (``norsim.qat.gpu_recipe``): the full
mid-phase state written every few minutes, its compact form committed at the end of a
sitting (int8 weights, no momentum) that another machine resumes from, and the fp16 state
of a finished float phase (the committed milestone)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from norsim.errors import FileFormatError


def _phase_checkpoint(ckpt: Path | None) -> dict | None:
    if ckpt is None or not ckpt.is_file():
        return None
    try:
        return torch.load(ckpt, weights_only=True, map_location="cpu")
    except (OSError, RuntimeError, EOFError) as exc:
        raise FileFormatError(f"{ckpt}: unreadable phase checkpoint ({exc}); delete it to "
                              "restart the phase") from None


def compact_phase_checkpoint(ckpt: Path, out: Path) -> Path:
    """The mid-phase checkpoint ``ckpt`` as a small npz that another machine resumes from:
    convolution and linear weights in int8 with one float32 scale per output channel
    (symmetric, round to nearest: a relative error of at most 1/254 of the channel's largest
    weight, below what one SGD step at the schedule's rates moves a weight), the other
    floating tensors (BN, biases, clips) in fp16, the data order, generator, step and elapsed
    time kept exactly, the optimiser's momentum dropped (it rebuilds within a few dozen steps;
    the learning-rate schedule is a function of the step and continues unchanged). About an
    eighth of the full checkpoint (fp32 weights and momentum), a half of fp16 weights: the
    campaign's 150 MB allowance holds three partials this way, one with fp16 weights
    (docs/results.md).
    Committed at the end of a sitting (``train_campaign.py --publish-partial``) so that the
    campaign does not lose a session's progress."""
    state = _phase_checkpoint(ckpt)
    if state is None:
        raise FileFormatError(f"{ckpt}: no phase checkpoint to compact")
    arrays = {}
    for k, v in state["model"].items():
        if v.is_floating_point() and v.dim() >= 2:
            w = v.float().reshape(v.shape[0], -1)
            scale = w.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127.0
            arrays[f"model/{k}"] = torch.round(w / scale[:, None]).to(torch.int8).reshape(
                v.shape).numpy()
            arrays[f"scale/{k}"] = scale.numpy()
        else:
            arrays[f"model/{k}"] = (v.half() if v.is_floating_point() else v).numpy()
    arrays["gen"] = state["gen"].numpy()
    if state["perm"] is not None:
        arrays["perm"] = state["perm"].numpy()
    meta = {k: state[k] for k in ("phase", "recipe", "step", "loss_sum", "seen", "k",
                                  "elapsed_s")}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    tmp.replace(out)
    return out


def _partial_checkpoint(path: Path | None) -> dict | None:
    """A compact checkpoint (:func:`compact_phase_checkpoint`) in the shape of a full one,
    with ``opt`` None."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            model = {}
            for k in z.files:
                if not k.startswith("model/"):
                    continue
                v = torch.from_numpy(z[k])
                if f"scale/{k[6:]}" in z.files:     # int8 weights, one scale per channel
                    scale = torch.from_numpy(z[f"scale/{k[6:]}"])
                    v = v.float() * scale.reshape((-1,) + (1,) * (v.dim() - 1))
                model[k[6:]] = v
            state = dict(meta, opt=None, model=model,
                         gen=torch.from_numpy(z["gen"].copy()),
                         perm=torch.from_numpy(z["perm"]) if "perm" in z.files else None)
    except (OSError, ValueError, KeyError) as exc:
        raise FileFormatError(f"{path}: unreadable compact phase checkpoint ({exc}); delete "
                              "it to restart the phase") from None
    return state


#: recipe fields read only after training (evaluation and export): a checkpoint written
#: under other values of these resumes
POST_TRAINING_FIELDS = ("exact_eval_images", "export_check_images")


def _training_fields(recipe: dict) -> dict:
    """A recipe (as a dict) without :data:`POST_TRAINING_FIELDS`, JSON-normalised."""
    return {k: v for k, v in json.loads(json.dumps(recipe)).items()
            if k not in POST_TRAINING_FIELDS}


def save_state_fp16(model: nn.Module, path: Path) -> Path:
    """State dict as compressed npz: floating tensors fp16, integer buffers as they are."""
    arrays = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        arrays[k] = (v.half() if v.is_floating_point() else v).numpy()
    tmp = path.with_suffix(".tmp.npz")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    tmp.replace(path)
    return path


def load_state_fp16(model: nn.Module, path: Path) -> None:
    try:
        with np.load(path, allow_pickle=False) as z:
            state = {k: torch.from_numpy(z[k]) for k in z.files}
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{path}: unreadable checkpoint ({exc})") from None
    ref = model.state_dict()
    model.load_state_dict({k: v.to(ref[k].dtype) for k, v in state.items()})
