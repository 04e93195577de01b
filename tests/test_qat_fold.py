"""BatchNorm folding: the folded layer equals layer + BN (inference form) within 1e-5."""

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402

from norsim.qat.fold import fold_bn_into  # noqa: E402
from norsim.qat.models import build_model  # noqa: E402

torch.set_num_threads(1)


def _randomize_bn(bn, g):
    with torch.no_grad():
        n = bn.num_features
        bn.weight.copy_(torch.rand(n, generator=g) * 2 + 0.1)
        bn.bias.copy_(torch.randn(n, generator=g))
        bn.running_mean.copy_(torch.randn(n, generator=g) * 3)
        bn.running_var.copy_(torch.rand(n, generator=g) * 4 + 0.01)
    bn.eval()


@pytest.mark.parametrize("bias", [False, True])
def test_conv_bn_folding_equivalence(bias):
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1, stride=2, bias=bias)
    bn = nn.BatchNorm2d(8)
    _randomize_bn(bn, g)
    x = torch.randn(4, 3, 11, 11, generator=g)
    with torch.no_grad():
        ref = bn(conv(x))
        fold_bn_into(conv, bn)
        out = conv(x)
    assert conv.bias is not None
    assert torch.allclose(out, ref, atol=1e-5, rtol=0)


def test_linear_bn_folding_equivalence():
    g = torch.Generator().manual_seed(1)
    lin = nn.Linear(20, 7, bias=False)
    bn = nn.BatchNorm1d(7)
    _randomize_bn(bn, g)
    x = torch.randn(16, 20, generator=g)
    with torch.no_grad():
        ref = bn(lin(x))
        fold_bn_into(lin, bn)
        out = lin(x)
    assert torch.allclose(out, ref, atol=1e-5, rtol=0)


def test_folding_closed_form_single_channel():
    # y = gamma (w x - mu) / sqrt(var + eps) + beta with w = 2, x = 3, mu = 1, var = 3, eps = 1
    lin = nn.Linear(1, 1, bias=False)
    bn = nn.BatchNorm1d(1, eps=1.0)
    with torch.no_grad():
        lin.weight.fill_(2.0)
        bn.weight.fill_(0.5)
        bn.bias.fill_(0.25)
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(3.0)
    fold_bn_into(lin, bn)
    assert float(lin.weight.detach()) == pytest.approx(2.0 * 0.5 / 2.0)
    assert float(lin.bias.detach()) == pytest.approx(0.25 - 0.5 * 1.0 / 2.0)


@pytest.mark.parametrize("arch", ["lenet", "resnet18"])
def test_whole_model_folding_keeps_float_outputs(arch):
    m = build_model(arch, seed=3)
    shape = m.input_shape
    g = torch.Generator().manual_seed(2)
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            _randomize_bn(mod, g)
    m.eval()
    x = torch.rand(2, *shape, generator=g)
    with torch.no_grad():
        ref = m(x)
        m.fold_bn()
        out = m(x)
    assert not any(isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in m.modules())
    scale = ref.abs().max().item()
    assert torch.allclose(out, ref, atol=1e-5 * max(1.0, scale), rtol=0)
