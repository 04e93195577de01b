"""MNIST loaders on fixtures written byte by byte like the original IDX files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from norsim.data import load_dataset
from norsim.data.mnist import read_idx
from norsim.errors import FileFormatError, InputError


def _idx_images(x: np.ndarray) -> bytes:
    # magic 2051 = 0x00000803: two zero bytes, type 0x08 (unsigned byte), 3 dimensions
    return struct.pack(">IIII", 2051, *x.shape) + x.tobytes()


def _idx_labels(y: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, y.shape[0]) + y.tobytes()


def _make_dir(tmp_path, n_train=1200, n_test=50, hw=(4, 3), gz=False, seed=0):
    rng = np.random.default_rng(seed)
    data = {"train": (rng.integers(0, 256, (n_train,) + hw, dtype=np.uint8),
                      rng.integers(0, 10, n_train, dtype=np.uint8)),
            "test": (rng.integers(0, 256, (n_test,) + hw, dtype=np.uint8),
                     rng.integers(0, 10, n_test, dtype=np.uint8))}
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    for split, (x, y) in data.items():
        for name, payload in zip(names[split], (_idx_images(x), _idx_labels(y))):
            if gz:
                (tmp_path / (name + ".gz")).write_bytes(gzip.compress(payload))
            else:
                (tmp_path / name).write_bytes(payload)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_idx_directory_all_splits(tmp_path, gz):
    data = _make_dir(tmp_path, gz=gz)
    for split in ("train", "test"):
        ds = load_dataset(tmp_path, split)
        np.testing.assert_array_equal(ds.x, data[split][0])
        np.testing.assert_array_equal(ds.y, data[split][1])
        assert ds.x.dtype == np.uint8 and ds.y.dtype == np.uint8
    x, y = load_dataset(str(tmp_path), "calib")      # the last 1000 training images
    np.testing.assert_array_equal(x, data["train"][0][200:])
    np.testing.assert_array_equal(y, data["train"][1][200:])


def test_npz_layout(tmp_path):
    rng = np.random.default_rng(1)
    xt, yt = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), rng.integers(0, 10, 30,
                                                                              dtype=np.uint8)
    xr, yr = rng.integers(0, 256, (1500, 28, 28), dtype=np.uint8), rng.integers(
        0, 10, 1500, dtype=np.uint8)
    np.savez_compressed(tmp_path / "test.npz", x=xt, y=yt)
    np.savez_compressed(tmp_path / "train.npz", x=xr, y=yr)
    np.testing.assert_array_equal(load_dataset(tmp_path, "test").x, xt)
    np.testing.assert_array_equal(load_dataset(tmp_path, "train").y, yr)
    np.testing.assert_array_equal(load_dataset(tmp_path, "calib").x, xr[500:])


def test_named_full_set_under_norsim_data(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    data = _make_dir(tmp_path / "mnist")
    monkeypatch.setenv("NORSIM_DATA", str(tmp_path))
    np.testing.assert_array_equal(load_dataset("mnist-full", "test").x, data["test"][0])
    monkeypatch.delenv("NORSIM_DATA")
    with pytest.raises(InputError, match="NORSIM_DATA"):
        load_dataset("mnist-full", "test")
    # an explicit data_dir (a CLI's --data-dir) works without the variable
    np.testing.assert_array_equal(load_dataset("mnist-full", "test", data_dir=tmp_path).y,
                                  data["test"][1])


def test_bad_idx_files(tmp_path):
    x = np.zeros((3, 2, 2), np.uint8)
    p = tmp_path / "f"
    p.write_bytes(struct.pack(">IIII", 2049, 3, 2, 2) + x.tobytes())   # labels magic
    with pytest.raises(FileFormatError, match="magic"):
        read_idx(p, 2051)
    p.write_bytes(struct.pack(">IIII", 0x0D03, 3, 2, 2) + x.tobytes())  # float type code
    with pytest.raises(FileFormatError, match="magic"):
        read_idx(p)
    p.write_bytes(_idx_images(x)[:-1])                                    # truncated
    with pytest.raises(FileFormatError, match="header says"):
        read_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(FileFormatError, match="short"):
        read_idx(p)
    p.write_bytes(gzip.compress(_idx_images(x))[:-8])                    # truncated gzip
    with pytest.raises(FileFormatError):
        read_idx(p)


def test_mismatched_labels_and_too_few_for_calib(tmp_path):
    _make_dir(tmp_path, n_train=500)
    with pytest.raises(FileFormatError, match="1000"):
        load_dataset(tmp_path, "calib")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_labels(np.zeros(7, np.uint8)))
    with pytest.raises(FileFormatError, match="disagree"):
        load_dataset(tmp_path, "test")


def test_unknown_directory_and_split(tmp_path):
    with pytest.raises(FileFormatError, match="no recognised"):
        load_dataset(tmp_path, "test")
    with pytest.raises(InputError, match="split"):
        load_dataset(tmp_path, "validation")
    with pytest.raises(InputError, match="name_or_dir"):
        load_dataset(tmp_path / "missing", "test")
