"""Model definitions (architectures written down in docs/qat.md).

Every model is a :class:`QNet`: a flat list of layers (``InputQuant`` first, then
``QLayer``/``QAct``/pooling/``Flatten``/``BasicBlock``), run in float mode for pre-training
and switched to quantised mode by :meth:`QNet.to_qat` (BN folded, thresholds and clips
calibrated). The first convolution and the last fully connected layer keep
``first_last_bits`` (8 by default) weight bits; every other weight and every hidden
activation has ``bits`` bits; the input image is 8-bit (pixel codes, step 1/255).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from norsim.errors import InputError
from norsim.qat.layers import (AvgPool, BasicBlock, Flatten, InputQuant, MaxPool, QAct,
                               QLayer, QSigned)


class QNet(nn.Module):
    """A sequential QAT network with scale links between layers."""

    def __init__(self, arch: str, layers: list[nn.Module], input_shape: tuple[int, int, int],
                 bits: int, first_last_bits: int):
        super().__init__()
        self.arch = arch
        self.input_shape = tuple(input_shape)
        self.bits = bits
        self.first_last_bits = first_last_bits
        self.layers = nn.ModuleList(layers)
        self.quantized = False
        prev = None
        for layer in self.layers:
            if prev is not None and hasattr(layer, "link"):
                layer.link(prev)
            if hasattr(layer, "scale"):
                prev = layer
        for a, b in zip(self.layers[:-1], self.layers[1:]):
            if isinstance(a, QLayer) and isinstance(b, QAct):
                a.link_out(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    # -- structure ------------------------------------------------------------------------
    def qlayers(self) -> list[QLayer]:
        return [m for m in self.modules() if isinstance(m, QLayer)]

    def qacts(self) -> list[QAct]:
        return [m for m in self.modules() if isinstance(m, QAct)]

    def act_quantizers(self) -> list[nn.Module]:
        """Every activation quantiser (PACT and signed), in forward order."""
        return [m for m in self.modules() if isinstance(m, (QAct, QSigned))]

    def pact_alphas(self) -> list[nn.Parameter]:
        return [a.pact.alpha for a in self.qacts()]

    # -- float -> quantised -----------------------------------------------------------------
    @torch.no_grad()
    def fold_bn(self) -> None:
        for q in self.qlayers():
            q.fold()

    @torch.no_grad()
    def to_qat(self, calib_x: torch.Tensor, seed: int = 0) -> None:
        """Fold BN, calibrate PACT clips on ``calib_x`` and initialise weight thresholds."""
        if self.quantized:
            return
        self.eval()
        self.fold_bn()
        acts = self.act_quantizers()
        captured: dict[int, torch.Tensor] = {}
        hooks = [a.register_forward_pre_hook(
            lambda mod, inp, i=i: captured.__setitem__(i, inp[0].detach()))
            for i, a in enumerate(acts)]
        # calibrate layer by layer so each clip sees the already-quantised upstream
        for m in self.modules():
            if isinstance(m, (InputQuant, AvgPool)):
                m.quant = True
        for q in self.qlayers():
            q.quant = True
            q.wq.update(q.op.weight)
        for i, a in enumerate(acts):
            self(calib_x)
            (a.pact if isinstance(a, QAct) else a).calibrate(captured[i], seed=seed + i)
            a.quant = True
        for h in hooks:
            h.remove()
        self.quantized = True

    def set_quant_flags(self, on: bool) -> None:
        """Mark quantisers on (used when rebuilding a model from a quantised checkpoint)."""
        for m in self.modules():
            if isinstance(m, (InputQuant, QLayer, QAct, QSigned, AvgPool)):
                m.quant = on
        self.quantized = on

    def set_exact(self, on: bool) -> None:
        """Evaluate with integer-exact arithmetic (the QuantModel rules) instead of float
        fake-quantisation; only affects eval mode of a quantised model."""
        for m in self.modules():
            if hasattr(m, "exact"):
                m.exact = bool(on)

    def set_fixed_point_rounding(self, on: bool) -> None:
        """Eval-mode fake-quant requantises through the format's fixed-point multiplier and
        shift (default, straight-through) or, off, rounds the float32 pre-activation."""
        for m in self.modules():
            if hasattr(m, "fixed_point_rounding"):
                m.fixed_point_rounding = bool(on)

    def set_output_noise(self, rel: dict[str, float], seed: int = 0) -> None:
        """Additive Gaussian noise on each quantised layer's output during training, of
        standard deviation ``rel[name]`` times the rms of the layer's bias-free accumulator
        (``name`` as in the exported QuantModel: conv1, fc3, block2_conv1, ...; the inverse
        amplitude SNR a simulated chip measures for that layer, :mod:`norsim.qat.noise`).
        Layers not named get none; an unknown name is an error."""
        from norsim.qat.export import qlayer_names

        names = qlayer_names(self)
        unknown = sorted(set(rel) - set(names))
        if unknown:
            raise InputError("output noise layer", unknown[0],
                             "a quantised layer of this model: " + ", ".join(names))
        for k, v in rel.items():
            if not (math.isfinite(v) and 0 <= v <= 10):
                raise InputError(f"output noise of {k}", v, "a relative std in [0, 10]")
        dev = next(self.parameters()).device
        g = torch.Generator(device=dev).manual_seed(int(seed))
        for name, q in names.items():
            q.out_noise_rel = float(rel.get(name, 0.0))
            q.noise_gen = g

    def noise_generator(self) -> "torch.Generator | None":
        """The generator of the training noise (weight or output noise), if any is set."""
        for q in self.qlayers():
            if q.noise_gen is not None and (q.noise_sigma > 0 or q.out_noise_rel > 0):
                return q.noise_gen
        return None

    def set_noise(self, sigma_lnw: float, seed: int = 0) -> None:
        """Multiplicative log-normal weight noise during quantised training (noise-aware QAT)."""
        g = torch.Generator().manual_seed(int(seed))
        for q in self.qlayers():
            q.noise_sigma = float(sigma_lnw)
            q.noise_gen = g


def count_parameters(model: nn.Module) -> int:
    """Trainable float parameters of the model as built (weights, biases, BN affine),
    excluding the quantisers' thresholds and clips."""
    n = 0
    for name, p in model.named_parameters():
        if ".wq." in name or name.endswith("alpha"):
            continue
        n += p.numel()
    return n


# ---------------------------------------------------------------------------------------
# architectures
# ---------------------------------------------------------------------------------------

def _qkw(kw: dict) -> dict:
    return {k: kw[k] for k in ("per_channel", "symmetric", "reestimate_every") if k in kw}


def lenet(bits: int = 4, first_last_bits: int = 8, **kw) -> QNet:
    """LeNet-5-class CNN for 1 x 28 x 28 (MNIST)."""
    q = _qkw(kw)
    L = [InputQuant(),
         QLayer("conv", 1, 16, k=5, padding=2, w_bits=first_last_bits, **q), QAct(bits), MaxPool(2),
         QLayer("conv", 16, 32, k=5, w_bits=bits, **q), QAct(bits), MaxPool(2),
         Flatten(),
         QLayer("linear", 32 * 5 * 5, 120, w_bits=bits, **q), QAct(bits),
         QLayer("linear", 120, 84, w_bits=bits, **q), QAct(bits),
         QLayer("linear", 84, 10, bn=False, w_bits=first_last_bits, **q)]
    return QNet("lenet", L, (1, 28, 28), bits, first_last_bits)


def _vgg_features(cfg, cin, bits, first_last_bits, q):
    L, first = [], True
    for v in cfg:
        if v == "M":
            L.append(MaxPool(2))
        else:
            L += [QLayer("conv", cin, v, k=3, padding=1,
                         w_bits=first_last_bits if first else bits, **q), QAct(bits)]
            cin, first = v, False
    return L, cin


def vgg_small(bits: int = 4, first_last_bits: int = 8, **kw) -> QNet:
    """Small VGG-style CNN for 3 x 32 x 32 (CIFAR-10), sized for a CPU."""
    q = _qkw(kw)
    feats, c = _vgg_features([32, "M", 64, "M", 128, 128, "M"], 3, bits, first_last_bits, q)
    L = [InputQuant()] + feats + [
        Flatten(),
        QLayer("linear", c * 4 * 4, 256, w_bits=bits, **q), QAct(bits),
        QLayer("linear", 256, 10, bn=False, w_bits=first_last_bits, **q)]
    return QNet("vgg-small", L, (3, 32, 32), bits, first_last_bits)


def vgg16(bits: int = 4, first_last_bits: int = 8, **kw) -> QNet:
    """VGG16 with BN for CIFAR-10 (13 conv + 1 linear classifier)."""
    q = _qkw(kw)
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
           512, 512, 512, "M"]
    feats, c = _vgg_features(cfg, 3, bits, first_last_bits, q)
    L = [InputQuant()] + feats + [
        Flatten(), QLayer("linear", c, 10, bn=False, w_bits=first_last_bits, **q)]
    return QNet("vgg16", L, (3, 32, 32), bits, first_last_bits)


def alexnet_bn(bits: int = 4, first_last_bits: int = 8, **kw) -> QNet:
    """AlexNet for 32 x 32 inputs, BN variant: BatchNorm after every conv and hidden FC
    layer, no dropout, no LRN (3x3 kernels, pooling after conv1, conv2, conv5)."""
    q = _qkw(kw)
    feats, c = _vgg_features([64, "M", 192, "M", 384, 256, 256, "M"], 3, bits, first_last_bits, q)
    L = [InputQuant()] + feats + [
        Flatten(),
        QLayer("linear", c * 4 * 4, 1024, w_bits=bits, **q), QAct(bits),
        QLayer("linear", 1024, 1024, w_bits=bits, **q), QAct(bits),
        QLayer("linear", 1024, 10, bn=False, w_bits=first_last_bits, **q)]
    return QNet("alexnet-bn", L, (3, 32, 32), bits, first_last_bits)


def resnet18(bits: int = 4, first_last_bits: int = 8, **kw) -> QNet:
    """ResNet-18 for CIFAR-10 (3x3 stem, no stem pooling; 4 stages x 2 basic blocks,
    widths 64-128-256-512; 4x4 global average pool; linear 512 -> 10)."""
    q = _qkw(kw)
    L: list[nn.Module] = [InputQuant(),
                          QLayer("conv", 3, 64, k=3, padding=1, w_bits=first_last_bits, **q),
                          QAct(bits)]
    cin = 64
    for cout, stride in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1),
                         (512, 2), (512, 1)]:
        L.append(BasicBlock(cin, cout, stride, bits, **q))
        cin = cout
    L += [AvgPool(4), Flatten(), QLayer("linear", 512, 10, bn=False, w_bits=first_last_bits, **q)]
    return QNet("resnet18", L, (3, 32, 32), bits, first_last_bits)


ARCHS: dict[str, Callable[..., QNet]] = {
    "lenet": lenet,
    "vgg-small": vgg_small,
    "alexnet-bn": alexnet_bn,
    "vgg16": vgg16,
    "resnet18": resnet18,
}


def build_model(arch: str, bits: int = 4, first_last_bits: int = 8, seed: int = 0, **kw) -> QNet:
    """Build ``arch`` with deterministic initial weights (``torch.manual_seed(seed)``)."""
    if arch not in ARCHS:
        raise InputError("arch", arch, "one of " + ", ".join(ARCHS))
    for name, b in (("bits", bits), ("first_last_bits", first_last_bits)):
        if not isinstance(b, int) or not 2 <= b <= 8:
            raise InputError(name, b, "an integer in [2, 8]")
    torch.manual_seed(seed)
    return ARCHS[arch](bits=bits, first_last_bits=first_last_bits, **kw)
