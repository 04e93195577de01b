"""Checks of a whole job before any long work: the model fits the array, the data fits the
model. Every failure is the one-line error the run itself would raise much later.

    from norsim.mapping import preflight
    preflight.check_job(model, cfg, x, x_cal)     # before mapper.map_model

(used by ``norsim sweep`` and ``--dry-run`` through the accuracy evaluator, and meant for
every command that maps a model).
"""

from __future__ import annotations

import numpy as np

from norsim.errors import InputError


def check_images(model, x, field: str = "data") -> None:
    """``x`` (N, H, W) or (N, H, W, C) uint8 images of the model's input shape (C, H, W)."""
    c, h, w = model.input.shape
    x = np.asarray(x)
    want = f"uint8 images of shape (N, {h}, {w})" + ("" if c == 1 else f" x {c} channels")
    if x.dtype != np.uint8:
        raise InputError(field, f"dtype {x.dtype}", want)
    ok = x.ndim >= 3 and x.shape[1:3] == (h, w) and (
        (x.ndim == 3 and c == 1) or (x.ndim == 4 and x.shape[3] == c))
    if not ok:
        raise InputError(field, f"images of shape {x.shape}",
                         f"{want} for model {model.name or '(unnamed)'}")
    if x.shape[0] < 1:
        raise InputError(field, "0 images", "at least one image")


def check_job(model, cfg, x=None, x_cal=None) -> None:
    """Model placement (:func:`norsim.mapping.mapper.check_fits`), test images and
    calibration images (when given) against the model's input."""
    from norsim.mapping.mapper import check_fits

    check_fits(model, cfg)
    if x is not None:
        check_images(model, x, "data (test images)")
    if x_cal is not None:
        check_images(model, x_cal, "data (calibration images)")
