"""CIFAR-10 as the seed-table recipe reads it (``norsim.qat.gpu_recipe``): the npz files
(``train_<k>.npz``, ``test.npz``) found in a list of folders, optionally checked against their
published sha256, as NCHW uint8 arrays; and the random crop + flip augmentation on the
tensors' own device."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from norsim.errors import FileFormatError, InputError

#: sha256 of the CIFAR-10 npz files (from shared/data/cifar10/README.md)
CIFAR_SHA256 = {
    "test.npz": "b206f77a57d4a7927e619536d95a3f9f5c64f6ffe8d1a094dddba81bf45296c2",
    "train_0.npz": "4f943e763dc50f1646e4337d66aa77f4c195d7636cda92a019ffff46f889cb20",
    "train_1.npz": "eb259b8a1b82ca02a9e7274133339c1ab6b5b3f904dbafa6c20c377d0ea3c6a6",
    "train_2.npz": "550d4b3ba13650721eaf2f1c6b9c1ad9c472ce0bd77958aaf4d2b7c87e3ec899",
    "train_3.npz": "7ef860cf99585de576c9b20e5055b534c141bf6c76e93efbbdcae644eb13e52b",
    "train_4.npz": "d6aad298df11d505dcee3b48392fdeab3e8b3e19576ba3ec4eed8f4e652f0c4a",
    "train_lossless_first4000.npz":
        "5a3a42d44290a419b420982b8bebee85690907a7a4ec2535b9ce037d0c54d8cb",
}


def find_npz(dirs: list[str | Path], name: str) -> Path:
    """The first ``name`` found in ``dirs`` or any folder below them."""
    for d in dirs:
        d = Path(d)
        if (d / name).is_file():
            return d / name
        hits = sorted(d.rglob(name)) if d.is_dir() else []
        if hits:
            return hits[0]
    raise InputError("--data-dir", ", ".join(map(str, dirs)), f"folders holding {name}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    except (OSError, ValueError, KeyError) as exc:
        raise FileFormatError(f"{path}: unreadable CIFAR-10 npz ({exc})") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] not in ((32, 32, 3), (3, 32, 32)) \
            or len(x) != len(y):
        raise FileFormatError(f"{path}: expected x uint8 N x 32 x 32 x 3 and y of length N, "
                              f"got x {x.dtype} {x.shape}, y {y.shape}")
    if x.shape[-1] == 3:
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.asarray(y).astype(np.int64).reshape(-1)


def load_cifar(dirs: list[str | Path], train_files: int = 5, train_file: str | None = None,
               check_sha: bool = False) -> dict:
    """Train (``train_0..train_{k-1}.npz``, or one ``train_file``) and test arrays, NCHW uint8."""
    names = [train_file] if train_file else [f"train_{k}.npz" for k in range(train_files)]
    out, sums = {}, {}
    parts = []
    for n in names + ["test.npz"]:
        p = find_npz(dirs, n)
        if check_sha and n in CIFAR_SHA256:
            sums[n] = sha256(p)
            if sums[n] != CIFAR_SHA256[n]:
                raise FileFormatError(f"{p}: sha256 {sums[n]} differs from {CIFAR_SHA256[n]}")
        parts.append(_read(p))
    out["x_train"] = np.concatenate([x for x, _ in parts[:-1]])
    out["y_train"] = np.concatenate([y for _, y in parts[:-1]])
    out["x_test"], out["y_test"] = parts[-1]
    out["files"] = names + ["test.npz"]
    out["sha256_checked"] = sums
    return out


def gpu_augment(xb: torch.Tensor, gen: torch.Generator, pad: int) -> torch.Tensor:
    """Random crop from a zero-padded copy and random horizontal flip, on ``xb``'s device
    (uint8 N x C x H x W in, same out); offsets and flips drawn from ``gen``."""
    n, _, h, w = xb.shape
    dev = xb.device
    p = F.pad(xb, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=dev)
    flip = torch.rand(n, generator=gen, device=dev) < 0.5
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    cols = torch.where(flip[:, None], (w - 1) - ar_w[None, :], ar_w[None, :]) + dx[:, None]
    rows = ar_h[None, :] + dy[:, None]                                     # n x h
    idx_n = torch.arange(n, device=dev)[:, None, None]
    out = p.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]   # n x h x w x c
    return out.permute(0, 3, 1, 2).contiguous()
