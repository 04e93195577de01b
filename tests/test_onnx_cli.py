"""``norsim import`` (both directions), ``norsim run --model X.onnx``, and the one-line
message without the onnx extra."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from norsim.mapping.quant_model import QuantModel

SMALL = {"mapping.calibration_images": 16, "compensation.recalibration_images": 16,
         "array.rows": 128, "array.cols": 128}


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "norsim.cli.main", *args],
                          capture_output=True, text=True, timeout=600, **kw)


def test_import_without_the_extra_says_which_extra_in_one_line(tmp_path):
    code = ("import sys; sys.modules['onnx'] = None; from norsim.cli.main import main; "
            f"sys.exit(main(['import', 'x.onnx', '--out', {str(tmp_path / 'm.npz')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "norsim[onnx]" in lines[0] and "norsim import: error" in lines[0]
    (tmp_path / "m.onnx").write_bytes(b"not read")
    code = ("import sys; sys.modules['onnx'] = None; from norsim.cli.main import main; "
            f"sys.exit(main(['run', '--model', {str(tmp_path / 'm.onnx')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "norsim[onnx]" in lines[0], r.stderr


def test_cli_export_import_and_run_an_onnx_model(tmp_path):
    pytest.importorskip("onnx")
    onnx_path, npz = tmp_path / "lenet.onnx", tmp_path / "lenet.npz"
    r = _cli("import", "zoo:lenet-mnist-4b", "--to-onnx", "integer", "--out", str(onnx_path))
    assert r.returncode == 0, r.stderr
    r = _cli("import", str(onnx_path), "--out", str(npz))
    assert r.returncode == 0 and "wrote" in r.stdout, r.stderr
    from norsim import zoo

    a, b = zoo.load("lenet-mnist-4b"), QuantModel.load(npz)
    assert a.graph_dict() == b.graph_dict()
    assert all(np.array_equal(x.weight, y.weight) for x, y in zip(a.order(), b.order())
               if x.OP in ("conv2d", "linear"))
    r = _cli("run", "--model", str(onnx_path), "--limit", "10", "--seeds", "1", "--no-progress",
             *sum((["--set", f"{k}={v}"] for k, v in SMALL.items()), []))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "integer reference" in r.stdout
    r = _cli("import", str(tmp_path / "nothere.onnx"), "--out", str(npz))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "no such ONNX file" in lines[0]


def test_from_onnx_classmethod(tmp_path):
    pytest.importorskip("onnx")
    from norsim import zoo
    from norsim.onnx import export_qdq

    export_qdq(zoo.load("lenet-mnist-4b"), tmp_path / "q.onnx")
    m = QuantModel.from_onnx(tmp_path / "q.onnx")
    assert [n.OP for n in m.order()][:2] == ["input", "conv2d"]
