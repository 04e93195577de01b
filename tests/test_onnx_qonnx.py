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


# --------------------------------------------------------------------------- hand-built QONNX

QONNX_DOMAIN = "qonnx.custom_op.general"


def _quant_numpy(x, scale, zeropt, bits, signed, narrow):
    """The QONNX Quant operator, from its spec: q = clip(round(x / s + z)) (half to even),
    y = (q - z) * s, in the input's float type."""
    x = np.asarray(x, np.float32)
    lo = -(2 ** (bits - 1)) + narrow if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1 - narrow
    q = np.clip(np.rint(x / np.float32(scale) + np.float32(zeropt)), lo, hi)
    return ((q - np.float32(zeropt)) * np.float32(scale)).astype(np.float32)


def _qonnx_model(bits, act_signed=False, seed=0):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (6, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (4, 6)).astype(np.float32)
    ws1 = (np.abs(w1).max(axis=(1, 2, 3)) / (2 ** (bits - 1) - 1)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 6).astype(np.float32)
    s_b1 = (ws1 / 255).astype(np.float32)
    inits = {"s_in": np.float32(1 / 255), "z0": np.float32(0), "b8": np.float32(8),
             "bw": np.float32(bits), "b32": np.float32(32), "w1": w1,
             "ws1": ws1.reshape(6, 1, 1, 1), "b1": b1, "s_b1": s_b1,
             "s_a": np.float32(0.1), "w2": w2,
             "ws2": np.float32(np.abs(w2).max() / (2 ** (bits - 1) - 1))}
    n = [helper.make_node("Quant", ["x", "s_in", "z0", "b8"], ["xq"], name="q_in",
                          domain=QONNX_DOMAIN, signed=0, narrow=0, rounding_mode="ROUND"),
         helper.make_node("Quant", ["w1", "ws1", "z0", "bw"], ["w1q"], name="q_w1",
                          domain=QONNX_DOMAIN, signed=1, narrow=1, rounding_mode="ROUND"),
         helper.make_node("Quant", ["b1", "s_b1", "z0", "b32"], ["b1q"], name="q_b1",
                          domain=QONNX_DOMAIN, signed=1, narrow=0, rounding_mode="ROUND"),
         helper.make_node("Conv", ["xq", "w1q", "b1q"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"], name="relu1")
         if not act_signed else helper.make_node("Identity", ["c1"], ["r1"], name="id1"),
         helper.make_node("Quant", ["r1", "s_a", "z0", "bw"], ["a1"], name="q_a1",
                          domain=QONNX_DOMAIN, signed=int(act_signed), narrow=0,
                          rounding_mode="ROUND"),
         helper.make_node("GlobalAveragePool", ["a1"], ["g"], name="gap"),
         helper.make_node("Quant", ["g", "s_a", "z0", "bw"], ["gq"], name="q_g",
                          domain=QONNX_DOMAIN, signed=int(act_signed), narrow=0,
                          rounding_mode="ROUND"),
         helper.make_node("Flatten", ["gq"], ["f"], name="flat"),
         helper.make_node("Quant", ["w2", "ws2", "z0", "bw"], ["w2q"], name="q_w2",
                          domain=QONNX_DOMAIN, signed=1, narrow=1, rounding_mode="ROUND"),
         helper.make_node("Gemm", ["f", "w2q"], ["y"], name="fc", transB=1)]
    g = helper.make_graph(
        n, "qonnx-handmade",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 4])],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid(QONNX_DOMAIN, 1)])
    m.ir_version = 8
    return m, inits


def _numpy_forward(inits, x, bits, act_signed):
    """The hand-built graph in NumPy float32 with the spec's Quant (independent of qonnx)."""
    import torch   # only for a plain float conv; the Quant arithmetic is _quant_numpy

    xq = _quant_numpy(x, inits["s_in"], 0, 8, False, 0)
    w1 = _quant_numpy(inits["w1"], inits["ws1"], 0, bits, True, 1)
    b1 = _quant_numpy(inits["b1"], inits["s_b1"], 0, 32, True, 0)
    c = torch.nn.functional.conv2d(torch.from_numpy(xq), torch.from_numpy(w1),
                                   torch.from_numpy(b1), padding=1).numpy()
    if not act_signed:
        c = np.maximum(c, 0)
    a = _quant_numpy(c, inits["s_a"], 0, bits, act_signed, 0)
    g = _quant_numpy(a.mean(axis=(2, 3)), inits["s_a"], 0, bits, act_signed, 0)
    return g @ _quant_numpy(inits["w2"], inits["ws2"], 0, bits, True, 1).T


@pytest.mark.parametrize("bits, act_signed", [(2, False), (3, True), (5, False), (8, True)])
def test_handmade_qonnx_graph_of_2_to_8_bits(bits, act_signed):
    pytest.importorskip("torch")
    proto, inits = _qonnx_model(bits, act_signed)
    model = import_onnx(proto)
    conv = model.node("conv1")
    assert conv.weight_bits == bits and (conv.out_bits, conv.out_signed) == (bits, act_signed)
    assert np.abs(conv.weight).max() <= 2 ** (bits - 1) - 1          # narrow range kept
    assert not model.metadata["float_bias_rounding_output_steps"].get("conv1")  # int32 bias
    x = np.random.default_rng(1).integers(0, 256, (64, 3, 8, 8), dtype=np.uint8)
    y_np = _numpy_forward(inits, (x / 255.0).astype(np.float32), bits, act_signed)
    y_ns = model.dequantize_output(ref.run_reference(model, ref.input_codes(model, x)))
    # global pooling means hit exact .5 ties often (half up in norsim, half to even in
    # ONNX): every pooled code may move by one step, so the logits by one step per input
    step = 0.1 * np.abs(model.node("fc").float_weight()).sum(axis=1).max()
    assert float(np.abs(y_np - y_ns).max() / step) <= 1.0 + 1e-5
    assert np.mean(y_np.argmax(1) == y_ns.argmax(1)) >= 0.9
    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
    except ImportError:
        return
    from qonnx.util.cleanup import cleanup_model

    w = cleanup_model(ModelWrapper(proto))
    y_q = execute_onnx(w, {w.graph.input[0].name: (x / 255.0).astype(np.float32)})[
        w.graph.output[0].name]
    assert float(np.abs(y_q - y_ns).max() / step) <= 1.0 + 1e-5   # the executor too


def test_qonnx_errors_are_one_line():
    proto, _ = _qonnx_model(4)
    for nd in proto.graph.node:
        if nd.name == "q_a1":
            for a in nd.attribute:
                if a.name == "rounding_mode":
                    a.s = b"FLOOR"
    with pytest.raises(FileFormatError, match=r"'q_a1' \(Quant\): rounding_mode 'FLOOR'") as e:
        import_onnx(proto)
    assert "\n" not in str(e.value)
