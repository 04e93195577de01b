"""A small torch CNN, trained briefly with int8 fake quantisation (symmetric activations:
zero point 0), exported by torch to an int8 QDQ ONNX graph, imported by norsim and compared
with ONNX Runtime on 1,000 MNIST test images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from _onnx_models import ort_int8_weight_max, run_ort  # noqa: E402

from norsim.data import load_dataset  # noqa: E402
from norsim.mapping import reference as ref  # noqa: E402
from norsim.onnx import import_onnx  # noqa: E402

nn = torch.nn


class FQ(nn.Module):
    """Per-tensor fake quantisation, zero point 0 (uint8 after ReLU: symmetric activations)."""

    def __init__(self, scale, lo, hi):
        super().__init__()
        self.scale, self.lo, self.hi = scale, lo, hi

    def forward(self, x):
        return torch.fake_quantize_per_tensor_affine(x, self.scale, 0, self.lo, self.hi)


#: int8 weights in the range ONNX Runtime multiplies exactly on this CPU (7 bits on x86
#: without VNNI: _onnx_models.ort_int8_weight_max)
WMAX = ort_int8_weight_max()


class _WQ:
    frozen = None

    def qweight(self):
        w = self.weight
        if self.frozen is None:
            s = w.detach().abs().amax(dim=tuple(range(1, w.ndim))).clamp_min(1e-8) / WMAX
        else:
            s = self.frozen
        z = torch.zeros_like(s, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, s, z, 0, -128, 127)

    def freeze(self):
        w = self.weight.detach()
        self.frozen = w.abs().amax(dim=tuple(range(1, w.ndim))).clamp_min(1e-8) / WMAX


class QConv(_WQ, nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(x, self.qweight(), self.bias)


class QLinear(_WQ, nn.Linear):
    def forward(self, x):
        return nn.functional.linear(x, self.qweight(), self.bias)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(FQ(1 / 255, 0, 255), QConv(1, 8, 3, padding=1), nn.ReLU(),
                         FQ(0.04, 0, 255), nn.MaxPool2d(2), QConv(8, 16, 3, padding=1),
                         nn.ReLU(), FQ(0.04, 0, 255), nn.MaxPool2d(2), nn.Flatten(),
                         QLinear(16 * 7 * 7, 10))


def test_torch_int8_qdq_cnn_imports_and_agrees_with_onnxruntime(tmp_path):
    train = load_dataset("mnist", "calib")           # 1,000 training images
    test = load_dataset("mnist", "test")
    xt = torch.tensor(train.x[:, None] / 255.0, dtype=torch.float32)
    yt = torch.tensor(train.y, dtype=torch.long)
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(3):                                # trained briefly (seconds)
        for i in range(0, len(xt), 100):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[i:i + 100]), yt[i:i + 100]).backward()
            opt.step()
    for m in net:
        if isinstance(m, _WQ):
            m.freeze()
    path = tmp_path / "cnn_int8_qdq.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (xt[:2],), str(path), dynamo=False, opset_version=13,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}})
    model = import_onnx(path)
    assert [nd.OP for nd in model.order()] == ["input", "conv2d", "maxpool2d", "conv2d",
                                               "maxpool2d", "flatten", "linear"]
    x = test.x[:1000]
    import onnx

    y_ort = run_ort(onnx.load(str(path)), {"x": (x[:, None] / 255.0).astype(np.float32)})
    y_ns = model.dequantize_output(ref.run_reference(model, ref.input_codes(model, x)))
    top1 = float(np.mean(y_ort.argmax(1) == y_ns.argmax(1)))
    # the raw logits' step: one code of the last layer's input times the largest |weight|
    fc = model.node(model.output)
    step = model.specs()[fc.inputs[0]].scale * np.abs(fc.float_weight()).max()
    worst = float(np.abs(y_ort - y_ns).max() / step)
    acc = float(np.mean(y_ns.argmax(1) == test.y[:1000]))
    print(f"\ntorch int8 QDQ CNN, 1000 MNIST test images: top-1 agreement norsim vs ONNX "
          f"Runtime {100 * top1:.2f} %, max logit difference {worst:.3f} output steps, "
          f"accuracy {100 * acc:.1f} %")
    assert top1 >= 0.999
    assert worst <= 1.0
    assert acc > 0.5                                  # it did learn something
