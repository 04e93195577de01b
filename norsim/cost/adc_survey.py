"""ADC energy per conversion from the ISSCC/VLSI ADC performance survey (Murmann, 1997-2025).

The survey's low-resolution designs are mostly fast time-interleaved SAR and flash converters,
not column ADCs, so a fit of energy to their median would price a CIM column ADC like a
10 GS/s link receiver. The model instead uses the survey's **Walden figure-of-merit
envelope** as a function of the conversion rate, and the Walden scaling 2^bits for the
resolution (the figure of merit is energy per conversion step):

    E(bits, f) = F (1 + f / f_c) 2^bits,   FoM_W = P / (f_nyq 2^ENOB)

``F`` is the figure of merit at rates well below the corner ``f_c``; above it the figure of
merit grows with the rate (the envelope's knee in the survey's FoM-vs-rate plot). Two curves
are fitted by quantile regression of log10 FoM_W on the model, over the designs with
3 <= ENOB <= 10 (the resolutions of CIM column ADCs) in nodes of 65 nm and below (the cost
model's 28-55 nm nodes):

* ``envelope``: the 10 % quantile (one design in ten lies below the curve at its rate); the
  cost model's ``survey`` ADC model;
* ``median``: the 50 % quantile; the upper end of the ADC energy range in ``norsim report``.

The fit is deterministic: a grid over log10 f_c (0.01 decade steps) with, for each corner,
the exact quantile of the residuals as log10 F (which minimises the quantile loss for that
corner). :data:`FIT` holds the committed result; ``tests/test_cost_adc_survey.py`` refits it
when the survey is present (``../shared/data/adc-survey`` or ``$NORSIM_ADC_SURVEY``) and
otherwise checks the committed constants.

ENOB is taken equal to the ADC's nominal bits (the accuracy simulation treats the ADC as an
ideal quantiser plus ``array.adc.noise_lsb``) -- an estimate that prices a converter with no
lost resolution; the survey's designs lose 0.5-1.5 bits between nominal and effective.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

#: survey files (B. Murmann, "ADC Performance Survey 1997-2025", github.com/bmurmann/ADC-survey,
#: commit ddf3c1bb, converted to CSV: /work/shared/data/adc-survey/README.md)
SURVEY_FILES = ("isscc.csv", "vlsi.csv")
ENOB_RANGE = (3.0, 10.0)
MAX_NODE_UM = 0.065
QUANTILES = {"envelope": 0.10, "median": 0.50}
_GRID_LOG10_FC = (6.0, 12.0, 0.01)

#: The committed fit (scripts: ``python -m norsim.cost.adc_survey [DIR]`` prints it).
#: fom_j: F in J per conversion step; corner_hz: f_c; designs: designs in the fit.
FIT = {
    "envelope": {"fom_j": 1.1186e-14, "corner_hz": 1.9953e10},
    "median": {"fom_j": 4.9280e-14, "corner_hz": 3.8905e10},
    "designs": 184,
}


def default_dir() -> Path | None:
    """``$NORSIM_ADC_SURVEY`` or ``../shared/data/adc-survey`` next to the checkout, if present."""
    env = os.environ.get("NORSIM_ADC_SURVEY")
    cands = [Path(env)] if env else []
    root = Path(__file__).resolve().parents[2]
    cands += [root.parent / "shared" / "data" / "adc-survey", Path("/work/shared/data/adc-survey")]
    for c in cands:
        if all((c / f).is_file() for f in SURVEY_FILES):
            return c
    return None


def _num(s: str) -> float:
    try:
        return float(s)
    except (TypeError, ValueError):
        return float("nan")


def load(directory: str | Path) -> dict:
    """ENOB, Nyquist rate (Hz), energy per Nyquist sample (J), node (um), area (mm^2) and
    architecture of every design in the survey files."""
    rows = []
    for name in SURVEY_FILES:
        with open(Path(directory) / name, newline="", encoding="utf-8") as fh:
            rows += list(csv.DictReader(fh))
    sndr = np.array([_num(r["SNDR_plot [dB]"]) for r in rows])
    p = np.array([_num(r["P [W]"]) for r in rows])
    f = np.array([_num(r["fsnyq [Hz]"]) for r in rows])
    return {"enob": (sndr - 1.76) / 6.02, "f_nyq_hz": f, "energy_j": p / f,
            "node_um": np.array([_num(r["TECHNOLOGY"]) for r in rows]),
            "area_mm2": np.array([_num(r["AREA [mm^2]"]) for r in rows]),
            "architecture": [r["ARCHITECTURE"] for r in rows]}


def selection(data: dict) -> np.ndarray:
    """Designs the fit uses: 3 <= ENOB <= 10, node <= 65 nm, finite power and rate."""
    e = data["enob"]
    with np.errstate(invalid="ignore"):
        return (np.isfinite(data["energy_j"]) & (data["energy_j"] > 0)
                & np.isfinite(data["f_nyq_hz"]) & (e >= ENOB_RANGE[0]) & (e <= ENOB_RANGE[1])
                & (data["node_um"] <= MAX_NODE_UM))


def fit_quantile(f_hz: np.ndarray, fom_j: np.ndarray, q: float) -> tuple[float, float]:
    """(F, f_c) minimising the quantile loss of log10 FoM against log10 F + log10(1 + f/f_c)."""
    lf, ly = np.log10(f_hz), np.log10(fom_j)
    lo, hi, step = _GRID_LOG10_FC
    best = None
    for lc in np.arange(lo, hi + step / 2, step):
        r = ly - np.log10(1.0 + 10.0 ** (lf - lc))
        lF = float(np.quantile(r, q))
        u = r - lF
        loss = float(np.sum(np.where(u >= 0, q * u, (q - 1.0) * u)))
        if best is None or loss < best[0] - 1e-12:
            best = (loss, lF, float(lc))
    return 10.0 ** best[1], 10.0 ** best[2]


def fit(directory: str | Path) -> dict:
    """Refit :data:`FIT` from the survey files in ``directory``."""
    d = load(directory)
    m = selection(d)
    fom = d["energy_j"][m] / 2.0 ** d["enob"][m]
    out = {"designs": int(m.sum())}
    for name, q in QUANTILES.items():
        F, fc = fit_quantile(d["f_nyq_hz"][m], fom, q)
        out[name] = {"fom_j": F, "corner_hz": fc}
    return out


def fom_j(rate_hz: float, curve: str = "envelope", fit_: dict | None = None) -> float:
    """Walden figure of merit (J per step) of ``curve`` at conversion rate ``rate_hz``."""
    c = (fit_ or FIT)[curve]
    return c["fom_j"] * (1.0 + rate_hz / c["corner_hz"])


def energy_j(bits: int, rate_hz: float, curve: str = "envelope", fit_: dict | None = None) -> float:
    """Energy of one ``bits`` conversion at ``rate_hz`` conversions per second."""
    return fom_j(rate_hz, curve, fit_) * 2.0 ** bits


def main(argv=None) -> int:
    import json
    import sys

    argv = sys.argv[1:] if argv is None else argv
    d = Path(argv[0]) if argv else default_dir()
    if d is None:
        print("no ADC survey found: give its directory", file=sys.stderr)
        return 2
    print(json.dumps(fit(d), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
