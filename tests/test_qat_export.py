"""Export to QuantModel: the integer reference reproduces the torch model."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from norsim.mapping.quant_model import QuantModel  # noqa: E402
from norsim.mapping.reference import input_codes, run_reference  # noqa: E402
from norsim.errors import InputError  # noqa: E402
from norsim.qat.export import compare, export  # noqa: E402
from norsim.qat.layers import (AvgPool, BasicBlock, Flatten, InputQuant, MaxPool,  # noqa: E402
                               QAct, QLayer)
from norsim.qat.models import QNet, build_model, count_parameters  # noqa: E402

torch.set_num_threads(1)


def _tiny_resnet(**q):
    """Every layer kind the exporter handles: conv, pools, residual blocks (identity and
    1x1-conv shortcut), flatten, linear layers."""
    layers = [InputQuant(),
              QLayer("conv", 3, 8, k=3, padding=1, w_bits=8, **q), QAct(4), MaxPool(2),
              BasicBlock(8, 8, 1, 4, **q), BasicBlock(8, 12, 2, 4, **q),
              AvgPool(2), Flatten(),
              QLayer("linear", 12 * 2 * 2, 16, w_bits=4, **q), QAct(4),
              QLayer("linear", 16, 5, bn=False, w_bits=8, **q)]
    return QNet("tiny", layers, (3, 16, 16), 4, 8)


def _images(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8)


def _quick_train(m, x, steps=8, seed=0, classes=10):
    """A few float then QAT steps on random labels, so BN stats and clips are non-trivial."""
    torch.manual_seed(seed)
    xt = torch.from_numpy(x.astype(np.float32)) / 255
    y = torch.from_numpy(np.random.default_rng(seed).integers(0, classes, len(x)))
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    m.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(xt), y).backward()
        opt.step()
    m.to_qat(xt)
    m.train()
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], 1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(xt), y).backward()
        opt.step()
    m.eval()
    return m


@pytest.mark.parametrize("symmetric", [True, False])
def test_export_reproduces_torch_on_all_layer_kinds(tmp_path, symmetric):
    x = _images(64, (3, 16, 16))
    m = _quick_train(_tiny_resnet(symmetric=symmetric), x, classes=5)
    qm = export(m, name="tiny")
    assert {nd.OP for nd in qm.order()} >= {"conv2d", "maxpool2d", "add", "avgpool2d",
                                            "flatten", "linear", "input"}
    # the file round trip keeps everything
    qm2 = QuantModel.load(qm.save(tmp_path / "tiny.npz"))
    xt = _images(200, (3, 16, 16), seed=1)
    r = compare(m, qm2, xt)
    # integer-exact torch evaluation == reference, bit for bit
    assert r["exact_max_logit_diff_steps"] < 1e-6
    # float fake-quant: same decisions on (almost) every image
    assert r["fq_top1_agreement"] >= 0.98
    # weight codes of a 4-bit layer stay within the format's 4-bit range
    for nd in qm2.order():
        if nd.OP in ("conv2d", "linear") and nd.weight_bits == 4:
            lo = -8 if nd.weight_zero_point is not None else -7
            assert nd.weight.min() >= lo and nd.weight.max() <= 7


def test_exported_values_match_torch_parameters():
    x = _images(32, (1, 28, 28))
    m = _quick_train(build_model("lenet", seed=0), x, steps=3)
    qm = export(m)
    fp = qm.float_params()
    layers = m.qlayers()
    names = [nd.name for nd in qm.order() if nd.OP in ("conv2d", "linear")]
    assert names == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    for nm, q in zip(names, layers):
        w_fq = q.quantized_weight().detach().double().numpy()
        assert np.allclose(fp[nm]["weight"], w_fq, rtol=1e-6, atol=1e-9)
        step = q.acc_step().double().numpy()
        assert np.all(np.abs(fp[nm]["bias"] - q.op.bias.detach().double().numpy()) <= step / 2 + 1e-9)
    assert qm.node("conv1").weight_bits == 8 and qm.node("fc3").weight_bits == 8
    assert qm.node("conv2").weight_bits == 4 and qm.node("conv2").out_bits == 4
    assert qm.node("fc3").requantize is False


def test_reference_accuracy_equals_exact_torch_accuracy():
    x = _images(48, (1, 28, 28), seed=3)
    m = _quick_train(build_model("lenet", seed=1), x, steps=3)
    qm = export(m)
    codes = run_reference(qm, input_codes(qm, x))
    m.set_exact(True)
    with torch.no_grad():
        lt = m(torch.from_numpy(x.astype(np.float32)) / 255).numpy()
    m.set_exact(False)
    assert np.array_equal(qm.dequantize_output(codes).argmax(1), lt.argmax(1))


def test_export_refuses_a_float_model():
    with pytest.raises(InputError, match="quantised"):
        export(build_model("lenet"))


def test_parameter_counts_of_the_large_models():
    # closed forms: conv k*k*cin*cout (+BN 2*cout), linear cin*cout + cout
    def conv(ci, co, k=3):
        return k * k * ci * co + 2 * co

    cfg = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    vgg = sum(conv(a, b) for a, b in zip([3] + cfg[:-1], cfg)) + 512 * 10 + 10
    assert count_parameters(build_model("vgg16")) == vgg == 14_724_042
    alex = (conv(3, 64) + conv(64, 192) + conv(192, 384) + conv(384, 256) + conv(256, 256)
            + 4096 * 1024 + 2 * 1024 + 1024 * 1024 + 2 * 1024 + 1024 * 10 + 10)
    assert count_parameters(build_model("alexnet-bn")) == alex
    # ResNet-18 for CIFAR-10: 11,173,962 (the usual figure)
    assert count_parameters(build_model("resnet18")) == 11_173_962


def test_eval_fake_quant_rounds_through_the_fixed_point_requantisation():
    """Evaluated, the fake-quant forward requantises as the format does (multiplier and
    shift on the exact accumulator), so its logits are within one output step of the
    integer reference on every image, residual blocks included; it stays differentiable
    (straight-through), and switching it off restores the float32 rounding."""
    x = _images(64, (3, 16, 16))
    m = _quick_train(_tiny_resnet(), x, classes=5)
    qm = export(m, name="tiny")
    xt = _images(300, (3, 16, 16), seed=2)
    r = compare(m, qm, xt, exact=False)
    assert r["fq_images_within_one_step"] == 1.0 and r["fq_top1_agreement"] == 1.0
    assert r["fq_max_logit_diff_steps"] < 1e-2          # only the last layer's float32 GEMM
    # gradients still reach the weights and the clips through the evaluated graph
    xin = torch.from_numpy(xt[:16].astype(np.float32)) / 255
    m.zero_grad()
    m(xin).sum().backward()
    assert all(q.op.weight.grad is not None and q.op.weight.grad.abs().sum() > 0
               for q in m.qlayers())


def test_fixed_point_rounding_settles_exact_ties_as_the_integer_model():
    """A layer whose requantisation ratio s_in s_w / s_out is exactly 1/2: odd accumulators
    are ties, which the fixed-point path rounds half up like the integer model; the float32
    graph lands on either side of some of them."""
    layers = [InputQuant(), QLayer("conv", 1, 255, k=1, bn=False, w_bits=8, per_channel=False),
              QAct(4), Flatten(), QLayer("linear", 255, 3, bn=False, w_bits=8)]
    m = QNet("ties", layers, (1, 1, 1), 4, 8)
    x = torch.arange(256, dtype=torch.float32).reshape(256, 1, 1, 1) / 255
    m.to_qat(x)
    q, act = m.qlayers()[0], m.qacts()[0]
    with torch.no_grad():
        q.wq.threshold.fill_(127 * 2.0 ** -7)                   # s_w = 2^-7 exactly
        s_w, s_in = float(q.wq.scale()[0]), float(m.layers[0].scale()[0])
        q.op.weight.copy_((torch.arange(255) - 127).float().reshape(255, 1, 1, 1) * s_w)
        q.op.bias.zero_()
        act.pact.alpha.fill_(15 * 2 * s_in * s_w)
    assert float(act.scale()[0]) == 2 * s_in * s_w
    m.eval()
    seen = {}
    act.register_forward_hook(lambda mod, i, o: seen.__setitem__("a", o.double() / s_out))
    s_out = float(act.scale()[0])
    mismatches = {}
    for on in (True, False):
        m.set_fixed_point_rounding(on)
        with torch.no_grad():
            m(x)
            fq = torch.round(seen["a"])
            m.set_exact(True)
            m(x)
            m.set_exact(False)
        mismatches[on] = int((fq != torch.round(seen["a"])).sum())
    assert mismatches[True] == 0
    assert mismatches[False] >= 1
