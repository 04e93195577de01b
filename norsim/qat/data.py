"""Training data for ``norsim train``: numpy uint8 images -> float batches in [0, 1].

``--data mnist|cifar10`` resolves to ``<root>/<name>`` with the root from ``--data-dir``,
else ``$NORSIM_DATA``, else ``../shared/data`` relative to the working directory (the full
60k MNIST training set is needed here, not the embedded test copy); any other value is a
directory. The files are read by :func:`norsim.data.load_dataset` (npz, IDX or CIFAR
batches), with a small npz reader as a fallback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from norsim.errors import FileFormatError, InputError

KNOWN = ("mnist", "cifar10")


def resolve_data_dir(data: str, data_dir: str | None = None) -> Path:
    if data in KNOWN:
        root = Path(data_dir or os.environ.get("NORSIM_DATA") or "../shared/data")
        return root / data
    return Path(data)


def _read_npz_split(d: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    files = [d / f"{split}.npz"] if (d / f"{split}.npz").exists() else \
        sorted(d.glob(f"{split}_[0-9]*.npz"), key=lambda p: int(p.stem.split("_")[1]))
    if not files:
        raise FileFormatError(f"{d}: no {split}.npz or {split}_<k>.npz files")
    xs, ys = [], []
    for f in files:
        try:
            with np.load(f, allow_pickle=False) as z:
                xs.append(z["x"])
                ys.append(z["y"])
        except (OSError, ValueError, KeyError) as exc:
            raise FileFormatError(f"{f}: unreadable data file ({exc})") from None
    return np.concatenate(xs), np.concatenate(ys)


def load_split(data: str, split: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: x uint8 N x C x H x W, y int64 N."""
    d = resolve_data_dir(data, data_dir)
    if not d.is_dir():
        raise InputError("--data", str(data), "mnist, cifar10 or an existing directory "
                         f"(looked in {d}; set --data-dir or NORSIM_DATA)")
    x = y = None
    try:
        from norsim.data import load_dataset  # written by the data layer
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        out = load_dataset(d, split)
        if isinstance(out, tuple):
            x, y = out[0], out[1]
        else:  # an object with x and y
            x, y = out.x, out.y
    else:
        x, y = _read_npz_split(d, split)
    x = np.asarray(x)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if x.dtype != np.uint8:
        raise FileFormatError(f"{d}/{split}: images must be uint8, got {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or len(x) != len(y):
        raise FileFormatError(f"{d}/{split}: images {x.shape} and labels {y.shape} disagree")
    return np.ascontiguousarray(x), y


def to_float(xb: np.ndarray) -> torch.Tensor:
    """uint8 batch -> float32 tensor of pixel / 255 (exactly the input codes x step)."""
    return torch.from_numpy(xb.astype(np.float32)) / 255.0


def augment(xb: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """Random crop (zero padding ``pad``) and horizontal flip, for CIFAR-style images."""
    n, c, h, w = xb.shape
    p = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=xb.dtype)
    p[:, :, pad:pad + h, pad:pad + w] = xb
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    flip = rng.random(n) < 0.5
    out = np.empty_like(xb)
    for i in range(n):
        img = p[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = img[:, :, ::-1] if flip[i] else img
    return out
