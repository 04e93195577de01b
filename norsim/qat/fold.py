"""BatchNorm folding into the preceding convolution or linear layer.

``w' = w * gamma / sqrt(var + eps)`` (per output channel) and
``b' = beta + (b - mean) * gamma / sqrt(var + eps)``, using the BN running statistics
(inference form). After folding, the layer alone computes ``BN(layer(x))`` exactly (in
exact arithmetic; within float rounding in practice).
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def folded_parameters(weight: torch.Tensor, bias: torch.Tensor | None,
                      bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Folded (weight, bias) of ``bn(layer(x))`` for a conv/linear with ``weight``, ``bias``."""
    w = weight.double()
    b = torch.zeros(w.shape[0], dtype=torch.float64) if bias is None else bias.double()
    gamma = bn.weight.double() if bn.affine else torch.ones_like(b)
    beta = bn.bias.double() if bn.affine else torch.zeros_like(b)
    inv = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
    w_f = w * inv.reshape((-1,) + (1,) * (w.dim() - 1))
    b_f = beta + (b - bn.running_mean.double()) * inv
    return w_f.to(weight.dtype), b_f.to(weight.dtype)


@torch.no_grad()
def fold_bn_into(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold ``bn`` into ``layer`` (an ``nn.Conv2d`` or ``nn.Linear``) in place.

    The layer gets a bias parameter if it had none. The caller removes ``bn`` afterwards.
    """
    w_f, b_f = folded_parameters(layer.weight, layer.bias, bn)
    layer.weight.copy_(w_f)
    if layer.bias is None:
        layer.bias = nn.Parameter(b_f.clone())
    else:
        layer.bias.copy_(b_f)
