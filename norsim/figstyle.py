"""One figure style for every norsim plot: human labels with units, integer ticks for integer
quantities, accuracy in %, titles that fit, axis ranges that do not magnify flat lines.

* :func:`quantity` maps a configuration path (``device.read.temperature_k``) or a metric name
  (``accuracy``) to a :class:`Quantity`: a human label, a unit, the factor from stored value
  to plotted value (fractions -> %, V -> mV) and whether it is an integer quantity. Known
  names come from :data:`QUANTITIES`; other configuration fields from their ``unit``
  metadata and their name.
* :func:`label_axis` labels an axis ``"label (unit)"`` and gives integer quantities integer
  ticks; :func:`keep_flat_flat` widens an axis whose data barely moves, so a 1 % change does
  not fill the plot; :func:`fit_title` wraps a title to the axes' width; :func:`save` lays
  out, writes and closes a figure.
* :func:`audit` lists what a reader could not decode (unlabelled axes, labels without units,
  fractional ticks on integer axes, titles wider than the figure): the figure tests assert it
  is empty for every figure norsim draws.
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Quantity:
    label: str
    unit: str
    scale: float = 1.0       # plotted value = stored value x scale
    integer: bool = False

    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


# stored value -> plotted: fractions in %, small voltages in mV where that reads better
QUANTITIES: dict[str, Quantity] = {
    # metrics of the evaluators
    "accuracy": Quantity("top-1 accuracy", "%", 100.0),
    "reference_accuracy": Quantity("integer-reference accuracy", "%", 100.0),
    "accuracy_drop": Quantity("accuracy drop vs integer reference", "% points", 100.0),
    "accuracy_n": Quantity("test images", "images", 1.0, True),
    "mvm_snr_db_min": Quantity("lowest per-layer MVM SNR", "dB"),
    "mapping_s": Quantity("map-and-program time", "s"),
    "level_error_rate": Quantity("cells read as a wrong level", "%", 100.0),
    "level_error_rate_n": Quantity("cells read", "cells", 1.0, True),
    "current_error_rms_units": Quantity("RMS read-current error", "unit currents"),
    "current_bias_units": Quantity("mean read-current error", "unit currents"),
    "vth_placement_sigma_v": Quantity("V_th placement spread (s.d.)", "mV", 1000.0),
    "program_failed_fraction": Quantity("cells failing verify", "%", 100.0),
    "program_pulses_mean": Quantity("program pulses per cell", "pulses"),
    "value": Quantity("test metric", "a.u."),
    # configuration fields often swept
    "seed": Quantity("seed", "", 1.0, True),
    "array.rows": Quantity("array rows", "rows", 1.0, True),
    "array.cols": Quantity("array columns", "columns", 1.0, True),
    "array.adc.bits": Quantity("ADC resolution", "bits", 1.0, True),
    "array.adc.columns_per_adc": Quantity("columns per ADC", "columns", 1.0, True),
    "array.encoding.input_bits": Quantity("input resolution", "bits", 1.0, True),
    "array.encoding.weight_bits": Quantity("weight resolution", "bits", 1.0, True),
    "array.encoding.bits_per_cell": Quantity("bits per cell", "bits", 1.0, True),
    "device.levels.levels_per_cell": Quantity("levels per cell", "levels", 1.0, True),
    "device.read.temperature_k": Quantity("read temperature", "K"),
    "device.read.t_read_s": Quantity("read time", "ns", 1e9),
    "device.read.v_bl_read_v": Quantity("bit-line read voltage", "V"),
    "device.variation.vth_sigma_v": Quantity("pre-verify V_th spread (D2D s.d.)", "mV", 1000.0),
    "device.programming.ispp_step_v": Quantity("ISPP step (placement spread)", "mV", 1000.0),
    "device.programming.two_way_tuning": Quantity("two-way tuning", "on/off"),
    "device.noise.rtn_mean_v": Quantity("mean RTN amplitude", "mV", 1000.0),
    "device.noise.rtn_traps_per_cell": Quantity("RTN traps per cell", "traps", 1.0, True),
    "device.cell.slope_factor_n": Quantity("subthreshold slope factor n", "1"),
    "mapping.retention_time_s": Quantity("retention bake time", "s"),
    "mapping.retention_temperature_k": Quantity("retention bake temperature", "K"),
    "mapping.calibration_images": Quantity("calibration images", "images", 1.0, True),
}

_ACRONYMS = {"adc": "ADC", "dac": "DAC", "rtn": "RTN", "ir": "IR", "snr": "SNR", "ispp": "ISPP",
             "d2d": "D2D", "vth": "V_th", "bl": "BL", "sl": "SL", "wl": "WL", "cg": "CG",
             "mvm": "MVM", "inl": "INL", "lsb": "LSB", "rms": "RMS", "ktc": "kT/C"}
_SUFFIX_UNITS = {"_v": "V", "_k": "K", "_s": "s", "_a": "A", "_j": "J", "_f": "F", "_db": "dB",
                 "_hz": "Hz", "_mm2": "mm^2", "_ohm": "ohm", "_w": "W", "_lsb": "LSB",
                 "_frac": "", "_fraction": ""}


def words(name: str) -> str:
    return " ".join(_ACRONYMS.get(w, w) for w in name.split("_") if w)


def quantity(key: str) -> Quantity:
    """The plotted quantity of a metric name or a dotted configuration path."""
    if key in QUANTITIES:
        return QUANTITIES[key]
    leaf = key.rsplit(".", 1)[-1]
    unit, stem, integer = "", leaf, False
    meta = _config_meta(key)
    if meta is not None:
        unit = meta.get("unit") or ""
        integer = meta.get("type") is int
    for suffix, u in sorted(_SUFFIX_UNITS.items(), key=lambda kv: -len(kv[0])):
        if leaf.endswith(suffix) and len(leaf) > len(suffix):
            stem = leaf[: -len(suffix)]
            unit = unit or u
            if u == "" and suffix in ("_frac", "_fraction"):
                return Quantity(words(stem), "%", 100.0)
            break
    section = key.rsplit(".", 2)[-2] if key.count(".") >= 1 else ""
    label = words(stem)
    if section and section not in ("array", "device", "mapping"):
        label = f"{words(section)}: {label}"
    if not unit:
        unit = "count" if integer else "1"
    return Quantity(label, unit, 1.0, integer)


def _config_meta(key: str) -> dict | None:
    if "." not in key:
        return None
    try:
        from norsim.config.sim import SimConfig
        from norsim.experiments.spec import leaf_fields

        fields = leaf_fields(SimConfig)
    except Exception:  # noqa: BLE001 - labels must never break a plot
        return None
    if key not in fields:
        return None
    meta = {"type": fields[key] if fields[key] in (int, float, bool, str) else None}
    for name, m in SimConfig.field_docs():
        if name == key:
            meta["unit"] = m.get("unit") or ""
            break
    return meta


def label_axis(ax, which: str, q: Quantity | str, values=None) -> None:
    """Label ``ax``'s ``which`` axis ("x" or "y") with the quantity and its unit; integer
    quantities (or integral values of an integer quantity) get integer ticks."""
    from matplotlib.ticker import MaxNLocator

    q = quantity(q) if isinstance(q, str) else q
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(q.axis_label())
    integer = q.integer
    if values is not None and not integer:
        vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        integer = bool(vals) and all(isinstance(v, int) and not isinstance(v, bool)
                                     for v in values)
    if integer:
        from matplotlib.ticker import FixedLocator

        axis = ax.xaxis if which == "x" else ax.yaxis
        if not isinstance(axis.get_major_locator(), FixedLocator):  # keep chosen ticks
            axis.set_major_locator(MaxNLocator(integer=True))
        setattr(ax, f"_norsim_integer_{which}", True)


def keep_flat_flat(ax, which: str, values, *, min_rel_span: float = 0.2,
                   min_abs_span: float = 0.0, bounds: tuple[float, float] | None = None) -> None:
    """Widen a linear axis whose data spans less than ``min_rel_span`` of its magnitude (or
    less than ``min_abs_span``), centred on the data, so a flat line looks flat; ``bounds``
    clip the widened range (e.g. (0, 100) for %)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return
    lo, hi = min(vals), max(vals)
    need = max(min_rel_span * max(abs(lo), abs(hi)), min_abs_span)
    if hi - lo >= need or need == 0:
        return
    mid = 0.5 * (lo + hi)
    a, b = mid - need / 2, mid + need / 2
    if bounds is not None:
        if a < bounds[0]:
            a, b = bounds[0], min(bounds[1], bounds[0] + need)
        if b > bounds[1]:
            a, b = max(bounds[0], bounds[1] - need), bounds[1]
    (ax.set_xlim if which == "x" else ax.set_ylim)(a, b)


def percent_bounds(q: Quantity) -> tuple[float, float] | None:
    return (0.0, 100.0) if q.unit == "%" else None


def fit_title(ax, text: str, *, fontsize: float = 10.0) -> None:
    """Set a title wrapped to the axes' width (about 0.6 x fontsize points per character)."""
    fig = ax.figure
    width_pt = ax.get_position().width * fig.get_figwidth() * 72
    per_line = max(20, int(width_pt / (0.6 * fontsize)))
    ax.set_title("\n".join(textwrap.wrap(text, per_line)), fontsize=fontsize)


def fit_suptitle(fig, text: str, *, fontsize: float = 11.0) -> None:
    per_line = max(20, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))
    fig.suptitle("\n".join(textwrap.wrap(text, per_line)), fontsize=fontsize)


def save(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Lay out, write (the folder is created) and close ``fig``."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


_UNIT_RE = re.compile(r"\(([^()]+)\)\s*$")


def audit(fig) -> list[str]:
    """What a reader could not decode in ``fig`` (empty: nothing)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    fig_box = fig.bbox
    problems = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or _is_colorbar(ax):
            continue
        has_data = bool(ax.lines or ax.collections or ax.patches or ax.images)
        if not has_data:
            continue
        for which in ("x", "y"):
            axis = ax.xaxis if which == "x" else ax.yaxis
            if not axis.get_visible() or not any(t.get_visible() for t in axis.get_ticklabels()):
                continue  # shared axis without tick labels
            label = axis.get_label_text()
            categorical = _categorical(axis)
            if not label and not _shared_labelled(ax, which):
                problems.append(f"axes {i}: no {which} label")
            elif label and not categorical and not _UNIT_RE.search(label):
                problems.append(f"axes {i}: {which} label {label!r} has no (unit)")
            if label and "." in label.split("(")[0] and re.search(r"\w\.\w+\.\w", label):
                problems.append(f"axes {i}: {which} label {label!r} is a config path")
            if getattr(ax, f"_norsim_integer_{which}", False):
                lo, hi = (ax.get_xlim() if which == "x" else ax.get_ylim())
                ticks = [t for t in axis.get_ticklocs() if min(lo, hi) <= t <= max(lo, hi)]
                frac = [t for t in ticks if abs(t - round(t)) > 1e-9]
                if frac:
                    problems.append(f"axes {i}: integer {which} axis has ticks "
                                    f"{[float(t) for t in frac]}")
        title = ax.title
        if title.get_text():
            box = title.get_window_extent(renderer)
            if box.x0 < fig_box.x0 - 1 or box.x1 > fig_box.x1 + 1:
                problems.append(f"axes {i}: title {title.get_text()!r} is wider than the figure")
    return problems


def _is_colorbar(ax) -> bool:
    return ax.get_label() == "<colorbar>" or hasattr(ax, "_colorbar")


def _categorical(axis) -> bool:
    from matplotlib.ticker import FixedFormatter, FixedLocator

    return isinstance(axis.get_major_formatter(), FixedFormatter) or (
        isinstance(axis.get_major_locator(), FixedLocator) and any(
            not _numeric(t.get_text()) for t in axis.get_ticklabels() if t.get_text()))


def _numeric(text: str) -> bool:
    try:
        float(text.replace("\u2212", "-").replace("$", "").replace("{", "").replace("}", "")
              .replace("^", "e").replace("\\mathdefault", "").replace("10e", "1e"))
        return True
    except ValueError:
        return False


def _shared_labelled(ax, which: str) -> bool:
    group = ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes()
    for other in group.get_siblings(ax):
        axis = other.xaxis if which == "x" else other.yaxis
        if axis.get_label_text():
            return True
    return False
