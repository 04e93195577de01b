"""Quantisation-aware training (optional extra: ``pip install norsim[train]``).

The method (docs/qat.md): weights quantised with a *dynamic threshold* (re-estimated from
sampled weight statistics, smoothed, refined by back-propagation), activations with a
PACT-style learnable clip, BatchNorm folded into the preceding conv/linear so that the
exported :class:`~norsim.mapping.quant_model.QuantModel` runs integer-only.

Only this package imports torch; the rest of norsim never does.
"""

from __future__ import annotations

from norsim.errors import NorsimError


class MissingExtraError(NorsimError, ImportError):
    """The optional training extra (torch) is not installed."""


try:
    import torch  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised by a subprocess test
    raise MissingExtraError(
        "norsim.qat needs PyTorch, which is not installed: pip install norsim[train]") from _exc

from norsim.qat.quant import (  # noqa: E402
    PactQuantizer, WeightQuantizer, fake_quant_bias, pact_quant, round_ste)
from norsim.qat.fold import fold_bn_into  # noqa: E402
from norsim.qat.models import ARCHS, build_model, count_parameters  # noqa: E402

__all__ = ["MissingExtraError", "WeightQuantizer", "PactQuantizer", "pact_quant", "round_ste",
           "fake_quant_bias", "fold_bn_into", "ARCHS", "build_model", "count_parameters"]
