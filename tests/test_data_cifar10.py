"""CIFAR-10 loaders on fixtures written like the distributed files, and the restricted
unpickler against a malicious pickle."""

from __future__ import annotations

import pickle
import pickletools

import numpy as np
import pytest

from _py2pickle import cifar_batch_pickle, malicious_pickle, malicious_pickle_posix
from norsim.data import load_dataset, normalize
from norsim.data.cifar10 import read_python_batch, restricted_loads
from norsim.errors import FileFormatError

N_PER_BATCH = 250


def _make_batches(rng, n_batches=6):
    out = []
    for _ in range(n_batches):
        x = rng.integers(0, 256, (N_PER_BATCH, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, N_PER_BATCH, dtype=np.uint8)
        out.append((x, y))
    return out


def _rows(x):
    """The distributed row layout: 1024 red, then 1024 green, then 1024 blue bytes."""
    return x.transpose(0, 3, 1, 2).reshape(x.shape[0], 3072)


def _write_py(root, batches, module="numpy.core.multiarray"):
    d = root / "cifar-10-batches-py"
    d.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for nm, (x, y) in zip(names, batches):
        (d / nm).write_bytes(cifar_batch_pickle(_rows(x), y.tolist(), nm.encode(), module))
    return d


def _write_bin(root, batches):
    d = root / "cifar-10-batches-bin"
    d.mkdir()
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for nm, (x, y) in zip(names, batches):
        rec = np.concatenate([y[:, None], _rows(x)], axis=1).astype(np.uint8)
        (d / nm).write_bytes(rec.tobytes())
    return d


def test_fixture_looks_like_the_real_pickles():
    x = np.zeros((2, 32, 32, 3), np.uint8)
    raw = cifar_batch_pickle(_rows(x), [0, 1])
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    assert ops[0] == ("PROTO", 2)
    assert ("GLOBAL", "numpy.core.multiarray _reconstruct") in ops
    assert ("SHORT_BINSTRING", "data") in ops          # a Python 2 str key
    assert any(n == "BINSTRING" for n, _ in ops)        # the 3072-byte rows as a py2 str
    assert not any(n == "GLOBAL" and "codecs" in str(a) for n, a in ops)
    # the standard unpickler (the way the CIFAR page says to load it) reads it with bytes keys
    d = pickle.loads(raw, encoding="bytes")
    assert set(d) == {b"batch_label", b"labels", b"data", b"filenames"}


@pytest.mark.parametrize("module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_python_batches_all_splits(tmp_path, module):
    rng = np.random.default_rng(0)
    batches = _make_batches(rng)
    _write_py(tmp_path, batches, module)
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):
        x, y = load_dataset(root, "test")
        np.testing.assert_array_equal(x, batches[5][0])
        np.testing.assert_array_equal(y, batches[5][1])
    x, y = load_dataset(tmp_path, "train")
    np.testing.assert_array_equal(x, np.concatenate([b[0] for b in batches[:5]]))
    np.testing.assert_array_equal(y, np.concatenate([b[1] for b in batches[:5]]))
    xc, yc = load_dataset(tmp_path, "calib")
    np.testing.assert_array_equal(xc, x[-1000:])
    assert x.shape == (5 * N_PER_BATCH, 32, 32, 3) and x.dtype == np.uint8


def test_channel_order_of_one_pixel(tmp_path):
    """Row byte 0 is red of pixel (0, 0), byte 1024 green, byte 2048 blue; byte 33 is red of
    pixel (1, 1)."""
    row = np.zeros((1, 3072), np.uint8)
    row[0, 0], row[0, 1024], row[0, 2048], row[0, 33] = 10, 20, 30, 40
    p = tmp_path / "b"
    p.write_bytes(cifar_batch_pickle(row, [3]))
    x, y = read_python_batch(p)
    assert x[0, 0, 0].tolist() == [10, 20, 30] and x[0, 1, 1, 0] == 40 and y.tolist() == [3]


def test_binary_version(tmp_path):
    rng = np.random.default_rng(1)
    batches = _make_batches(rng)
    _write_bin(tmp_path, batches)
    x, y = load_dataset(tmp_path, "test")
    np.testing.assert_array_equal(x, batches[5][0])
    np.testing.assert_array_equal(y, batches[5][1])
    x, _ = load_dataset(tmp_path, "train")
    assert x.shape[0] == 5 * N_PER_BATCH
    (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(b"\x01" * 3000)
    with pytest.raises(FileFormatError, match="3073"):
        load_dataset(tmp_path, "test")


def test_npz_layout_and_named(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    d = tmp_path / "cifar10"
    d.mkdir()
    batches = _make_batches(rng)
    for k in range(5):
        np.savez_compressed(d / f"train_{k}.npz", x=batches[k][0], y=batches[k][1])
    np.savez_compressed(d / "test.npz", x=batches[5][0], y=batches[5][1])
    monkeypatch.setenv("NORSIM_DATA", str(tmp_path))
    x, y = load_dataset("cifar10", "calib")
    np.testing.assert_array_equal(x, np.concatenate([b[0] for b in batches[:5]])[-1000:])
    xt = load_dataset("cifar10", "test").x
    f = normalize(xt[:3], mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert f.shape == (3, 3, 32, 32) and f.dtype == np.float32
    np.testing.assert_allclose(f[1, 2, 4, 5], (xt[1, 4, 5, 2] / 255 - 0.5) / 0.25, rtol=1e-6)


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    for make in (malicious_pickle, malicious_pickle_posix):
        raw = make(f"touch {marker}")
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
        assert ops[1][0] == "GLOBAL" and ops[1][1].endswith(" system")   # really malicious
        with pytest.raises(pickle.UnpicklingError, match="forbidden"):
            restricted_loads(raw)
        d = tmp_path / "cifar-10-batches-py"
        d.mkdir(exist_ok=True)
        (d / "test_batch").write_bytes(raw)
        with pytest.raises(FileFormatError, match="refused.*system"):
            load_dataset(tmp_path, "test")
    assert not marker.exists()


def test_other_forbidden_globals_and_codecs(tmp_path):
    evil = b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1q\x00\x85R."
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        restricted_loads(evil)
    # Python 3's protocol-2 pickles use _codecs.encode(text, 'latin1'): admitted ...
    a = np.arange(3072, dtype=np.uint8).reshape(1, 3072) % 251
    raw = pickle.dumps({b"data": a.astype(np.uint8), b"labels": [4]}, protocol=2)
    (tmp_path / "b").write_bytes(raw)
    x, y = read_python_batch(tmp_path / "b")
    assert y.tolist() == [4] and x[0, 0, 0, 0] == 0
    # ... but only for latin1
    bad = raw.replace(b"latin1", b"rot_13")
    (tmp_path / "c").write_bytes(bad)
    with pytest.raises(FileFormatError):
        read_python_batch(tmp_path / "c")


def test_corrupt_and_wrong_content_batches(tmp_path):
    raw = cifar_batch_pickle(np.zeros((2, 3072), np.uint8), [1, 2])
    (tmp_path / "t").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match="corrupt"):
        read_python_batch(tmp_path / "t")
    (tmp_path / "w").write_bytes(cifar_batch_pickle(np.zeros((2, 100), np.uint8), [1, 2]))
    with pytest.raises(FileFormatError, match="3072"):
        read_python_batch(tmp_path / "w")
    (tmp_path / "l").write_bytes(cifar_batch_pickle(np.zeros((2, 3072), np.uint8), [1, 12]))
    with pytest.raises(FileFormatError, match="labels"):
        read_python_batch(tmp_path / "l")
