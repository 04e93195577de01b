"""The MNIST copy (and a CIFAR-10 test slice) shipped inside the package (no download).

``embedded/mnist.npz`` holds all 10,000 MNIST test images (t10k, IDX order) and a disjoint
calibration slice of 1,000 *training* images (train indices 59000-59999, IDX order), with
their labels and source indices (``test_index`` into t10k, ``calib_index`` into train) and a
JSON ``source`` note. ``embedded/cifar10_test500.npz`` holds the first 500 CIFAR-10 test
images (lossless, ``test_batch`` order; HWC RGB uint8) with labels and indices, enough to
check the CIFAR-10 zoo entry without the full data set. Arrays are read with
``allow_pickle=False``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from norsim.errors import FileFormatError, InputError

EMBEDDED_DIR = Path(__file__).with_name("embedded")
MNIST_FILE = EMBEDDED_DIR / "mnist.npz"
CIFAR10_FILE = EMBEDDED_DIR / "cifar10_test500.npz"
SPLITS = ("test", "calib")


def _read(path: Path) -> dict[str, np.ndarray]:
    from norsim.safeio import load_npz

    try:
        return load_npz(path, "embedded data")
    except FileFormatError as exc:
        raise FileFormatError(f"{exc} (the installed package is damaged: reinstall norsim)") \
            from None


def _member(d: dict, path: Path, key: str) -> np.ndarray:
    if key not in d:
        raise FileFormatError(f"embedded data {path}: no array {key!r} (found {sorted(d)}; "
                              "the installed package is damaged: reinstall norsim)")
    return d[key]


def load_embedded_mnist(split: str = "test", with_index: bool = False):
    """``(x uint8 (N, 28, 28), y uint8 (N,))`` of the embedded ``split`` ("test" or "calib").

    With ``with_index=True`` also returns the source indices (into t10k for "test", into the
    60,000 training images for "calib").
    """
    if split not in SPLITS:
        raise InputError("split", split, f"one of {SPLITS} for the embedded MNIST "
                         "(the training set is 'mnist-full' under NORSIM_DATA)")
    d = _read(MNIST_FILE)
    x, y, idx = (_member(d, MNIST_FILE, f"{split}_{k}") for k in ("x", "y", "index"))
    if with_index:
        return x, y, idx.astype(np.int64)
    return x, y


def embedded_source() -> dict:
    """The provenance note stored with the embedded data."""
    raw = _member(_read(MNIST_FILE), MNIST_FILE, "source").tobytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"embedded data {MNIST_FILE}: source note is corrupt ({exc})") \
            from None


def load_embedded_cifar10_test():
    """``(x uint8 (500, 32, 32, 3), y uint8 (500,))``: the first 500 CIFAR-10 test images."""
    d = _read(CIFAR10_FILE)
    return _member(d, CIFAR10_FILE, "test_x"), _member(d, CIFAR10_FILE, "test_y")
