"""Compile (first use) or load (cached) the numba kernels a simulation needs, with progress.

numba compiles each kernel on its first call and caches the machine code (``NUMBA_CACHE_DIR``,
else ``__pycache__`` beside the sources): a cold cache costs minutes on two cores, a warm one
about a second. :func:`warm_kernels` runs every code path of the main job (ideal analog path;
programming, retention, read noise and RTN, compensation) on two images, so that this cost is
paid up front, announced, and not inside the first timed run. ``make env`` calls it through
``norsim warmup``.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import norsim

#: packages whose numba kernels the main job runs
_KERNEL_PACKAGES = ("array", "device", "mapping", "compensation")


def cache_dir() -> str:
    """Where numba keeps compiled kernels for this process."""
    return os.environ.get("NUMBA_CACHE_DIR") or "__pycache__ folders beside norsim's sources"


def _stamp_path() -> Path:
    """A file whose name hashes the kernels' sources (path, size, mtime) and numba's version:
    it exists once :func:`warm_kernels` has run against exactly these sources, which is when
    numba's own cache (keyed on the same source stamps) is warm."""
    import numba

    root = Path(norsim.__file__).resolve().parent
    h = hashlib.sha256(numba.__version__.encode())
    for pkg in _KERNEL_PACKAGES:
        for f in sorted((root / pkg).glob("*.py")):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    base = Path(os.environ["NUMBA_CACHE_DIR"]) if os.environ.get("NUMBA_CACHE_DIR") \
        else root / "__pycache__"
    return base / f"norsim-warm-{h.hexdigest()[:20]}"


def is_warm() -> bool:
    """True when the kernels were compiled and cached for the present sources."""
    try:
        return _stamp_path().is_file()
    except OSError:
        return False


def warm_kernels(cfg=None, model=None, *, say=print, force: bool = False) -> float:
    """Run the main job's code paths on 2 images (4 calibration images); returns seconds.

    Skipped (0 s) when the cache is already warm for these sources, unless ``force``.
    ``cfg``: the configuration whose paths to compile (default: the ``nor40`` preset);
    ``model``: a QuantModel (default: the demo's zoo model). ``say`` gets progress lines.
    """
    if not force and is_warm():
        return 0.0
    import numpy as np

    from norsim.experiments.evaluate import evaluate_chip
    from norsim.scenarios import scenarios

    t0 = time.perf_counter()
    if cfg is None:
        from norsim.config.presets import load_preset
        cfg = load_preset("nor40")
    if model is None:
        from norsim import zoo
        model = zoo.load("lenet-mnist-4b")
    rng = np.random.default_rng(0)
    c, h, w = model.input.shape
    x = rng.integers(0, 256, size=(2, c, h, w), dtype=np.uint8)
    xc = rng.integers(0, 256, size=(4, c, h, w), dtype=np.uint8)
    small = {"mapping.calibration_images": 4, "compensation.recalibration_images": 4}
    rows = scenarios(cfg)
    say(f"preparing numba kernels: {len(rows)} code paths (compiled on first use, then "
        f"cached in {cache_dir()}; a first run after install takes several minutes)")
    for k, sc in enumerate(rows):
        t = time.perf_counter()
        evaluate_chip(model, sc.cfg.with_overrides(small), x, np.zeros(2, dtype=np.int64), xc)
        say(f"  kernels {k + 1}/{len(rows)} ({sc.label}) ready in {time.perf_counter() - t:.1f} s")
    try:
        stamp = _stamp_path()
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"warmed in {time.perf_counter() - t0:.1f} s\n")
    except OSError:
        pass            # a read-only cache: the next run warms again, nothing else changes
    return time.perf_counter() - t0
