"""Every figure norsim draws, rendered small and read back: labels with units, human names
(not config paths), integer ticks for integer quantities, accuracy in %, titles that fit,
flat lines kept flat, intervals drawn. The rendered figures are committed under
docs/figures/gallery/ (NORSIM_WRITE_FIGURES=1 rewrites them)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from norsim import figstyle

DOCS_FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures" / "gallery"


@pytest.fixture
def captured(monkeypatch):
    """Figures passed to figstyle.save, audited and read back before they are closed."""
    figs: dict[str, dict] = {}
    real_save = figstyle.save

    def save(fig, path, **kw):
        fig.canvas.draw()
        info = {"problems": figstyle.audit(fig), "axes": []}
        for ax in fig.axes:
            info["axes"].append({
                "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(), "title": ax.get_title(),
                "xticks": list(ax.get_xticks()), "yticks": list(ax.get_yticks()),
                "ylim": ax.get_ylim(), "xlim": ax.get_xlim(),
                "n_collections": len(ax.collections), "legend": [
                    t.get_text() for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]})
        figs[Path(path).name] = info
        out = real_save(fig, path, **kw)
        if os.environ.get("NORSIM_WRITE_FIGURES"):
            DOCS_FIGURES.mkdir(parents=True, exist_ok=True)
            (DOCS_FIGURES / Path(path).name).write_bytes(Path(path).read_bytes())
        return out

    monkeypatch.setattr(figstyle, "save", save)
    return figs


def _clean(info):
    assert info["problems"] == [], info["problems"]


# ------------------------------------------------------------------ style helpers ----
def test_quantities_map_config_paths_to_labels_and_units():
    q = figstyle.quantity("device.read.temperature_k")
    assert q.axis_label() == "read temperature (K)"
    assert figstyle.quantity("accuracy").unit == "%" and figstyle.quantity("accuracy").scale == 100
    assert figstyle.quantity("array.adc.bits").integer
    # a field not in the table: unit from its config metadata or name, words not a path
    q = figstyle.quantity("device.noise.rtn_tau_min_s")
    assert q.unit == "s" and "." not in q.label


def test_audit_catches_what_a_reader_cannot_decode(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([2, 3, 4], [0.1, 0.2, 0.3])
    ax.set_xlabel("array.adc.bits")
    ax.set_title("a title far too long to fit on a figure only three inches wide at all, "
                 "no way")
    figstyle.label_axis(ax, "x", figstyle.Quantity("bits", "", integer=True))
    ax.set_xlim(2, 3)
    ax.set_xticks([2, 2.5, 3])
    problems = " ".join(figstyle.audit(fig))
    assert "no y label" in problems and "ticks [2.5]" in problems
    assert "wider than the figure" in problems
    plt.close(fig)


def test_a_flat_line_is_not_magnified():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ys = [66.0, 66.2, 66.5]
    ax.plot([1, 2, 3], ys)
    figstyle.keep_flat_flat(ax, "y", ys)
    lo, hi = ax.get_ylim()
    assert (max(ys) - min(ys)) / (hi - lo) < 0.1  # a 0.8 % change spans under a tenth
    fig2, ax2 = plt.subplots()
    ax2.plot([1, 2], [99.0, 99.5])
    figstyle.keep_flat_flat(ax2, "y", [99.0, 99.5], bounds=(0, 100))
    assert ax2.get_ylim()[1] <= 100
    plt.close(fig)
    plt.close(fig2)


# ------------------------------------------------------------------ sweep plot ----
def _agg(x="array.adc.bits", y="accuracy", hue="device.read.temperature_k", xs=(3, 4, 5, 6),
         means=None):
    from norsim.experiments.plotting import Aggregate, Series

    series = []
    for j, t in enumerate((250.0, 300.0)):
        m = list(means) if means is not None else [0.5 + 0.1 * k - 0.02 * j for k in range(len(xs))]
        lo = [v - 0.01 for v in m]
        hi = [v + 0.01 for v in m]
        series.append(Series(t, list(xs), m, [0.02] * len(xs), [3] * len(xs), lo, hi,
                             [1000] * len(xs)))
    return Aggregate(x, y, hue, series, 0, False)


def test_sweep_plot_is_readable(captured, tmp_path):
    from norsim.experiments.plotting import plot

    plot(_agg(), tmp_path / "sweep_accuracy_vs_adc_bits.png")
    info = captured["sweep_accuracy_vs_adc_bits.png"]
    _clean(info)
    ax = info["axes"][0]
    assert ax["xlabel"] == "ADC resolution (bits)" and ax["ylabel"] == "top-1 accuracy (%)"
    assert all(float(t).is_integer() for t in ax["xticks"])
    assert ax["ylim"][1] > 50  # accuracy drawn in %, not as a 0-1 fraction
    assert any("read temperature = 250 K" in t for t in ax["legend"])
    assert any("chip-to-chip" in t for t in ax["legend"])
    assert any("Wilson" in t for t in ax["legend"])
    assert ax["n_collections"] >= 4  # two bands and two sets of error bars


def test_sweep_plot_keeps_a_flat_metric_flat(captured, tmp_path):
    from norsim.experiments.plotting import plot

    plot(_agg(y="mapping_s", means=[66.0, 66.1, 66.3, 66.5]), tmp_path / "sweep_flat_metric.png")
    lo, hi = captured["sweep_flat_metric.png"]["axes"][0]["ylim"]
    assert (66.5 - 66.0) / (hi - lo) < 0.2


def test_logy_with_non_positive_means_is_an_error_not_missing_curves(tmp_path):
    from norsim.errors import InputError
    from norsim.experiments.plotting import plot

    with pytest.raises(InputError, match=r"--logy.*<= 0"):
        plot(_agg(y="current_bias_units", means=[-0.1, 0.2, 0.3, 0.4]), tmp_path / "l.png",
             logy=True)


# ------------------------------------------------------------------ array-sweep ----
def _sweep_rows():
    rows = []
    for k, n in enumerate((64, 128, 256, 512)):
        rows.append({"size": n, "accuracy": 0.97 - 0.01 * k, "images": 200, "tiles": 40 // (k + 1),
                     "utilisation": 0.5, "energy_per_image_j": 2e-8 * (1 + 0.1 * k),
                     "latency_s": 66.0e-6 * (1 + 0.002 * k), "fps_pipelined": 1e5,
                     "tops_per_w": 30.0, "area_mm2": 0.1 * (k + 1),
                     "ir_drop_rel_surrogate": 0.001 * (k + 1), "ir_drop_rel_circuit": None,
                     "surrogate_error_rel_circuit": None})
    return rows


def test_array_sweep_figure_and_table(captured, tmp_path):
    from norsim.cli.array_sweep import format_table, plot

    rows = _sweep_rows()
    plot(rows, tmp_path / "array_sweep.png", title="zoo:lenet-mnist-4b on N x N arrays")
    info = captured["array_sweep.png"]
    _clean(info)
    by_label = {a["ylabel"]: a for a in info["axes"]}
    assert "top-1 accuracy (%)" in by_label and "single-image latency (us)" in by_label
    lat = by_label["single-image latency (us)"]
    lo, hi = lat["ylim"]
    spread = 66.0 * 0.006
    assert spread / (hi - lo) < 0.1  # a 0.6 % change does not fill the panel
    for a in info["axes"]:
        assert sorted(a["xticks"]) == [64, 128, 256, 512]
        assert "array size N" in a["xlabel"]
    acc = by_label["top-1 accuracy (%)"]
    assert acc["n_collections"] >= 1  # the Wilson interval is drawn
    head = format_table(rows).splitlines()[0]
    assert "E/img (nJ)" in head and "latency (us)" in head and "acc (%)" in head


# ------------------------------------------------------------------ array-study ----
def test_array_study_figures(captured, tmp_path):
    from norsim.cli.main import main

    assert main(["array-study", "--out", str(tmp_path / "s"), "--rows", "16", "--cols", "4",
                 "--batch", "8", "--set", "array.noise.rtn_enabled=false"]) == 0
    for name in ("encodings.png", "adc_transfer.png", "ir_drop_map.png"):
        _clean(captured[name])
    adc = captured["adc_transfer.png"]["axes"]
    assert adc[0]["ylabel"] == "output code (LSB)" and adc[1]["xlabel"] == "input (LSB)"
    assert all(float(t).is_integer() for t in adc[0]["yticks"])
    enc = captured["encodings.png"]["axes"]
    assert all("weight x input codes" in a["xlabel"] for a in enc)


# ------------------------------------------------------------------ device-study ----
def test_device_study_figures(captured, tmp_path):
    from norsim.cli.main import main

    assert main(["device-study", "--out", str(tmp_path / "d"), "--cells-per-level", "40"]) == 0
    for name in ("iv_family.png", "levels_vth.png", "levels_current.png"):
        _clean(captured[name])
    assert captured["levels_vth.png"]["axes"][0]["xlabel"].endswith("(V)")
    assert all(float(t).is_integer() for t in captured["levels_vth.png"]["axes"][0]["yticks"])


# ------------------------------------------------------------ budget and energy ----
def test_error_budget_ranking_figure(captured, tmp_path):
    from norsim.experiments.budget import plot_ranking

    eff = {"all": {"modelled": True, "drop": 0.031, "drop_bootstrap_95": [0.02, 0.04]},
           "adc_quantisation": {"modelled": True, "drop": 0.012, "marginal_drop": 0.012,
                                "drop_bootstrap_95": [0.006, 0.018]},
           "read_noise": {"modelled": True, "drop": 0.004, "marginal_drop": 0.004,
                          "drop_bootstrap_95": [0.0, 0.009]},
           "ir_drop": {"modelled": False}}
    plot_ranking({"images": 500, "seeds": [1, 2, 3], "effects": eff},
                 tmp_path / "error_budget.png")
    info = captured["error_budget.png"]
    _clean(info)
    ax = info["axes"][0]
    assert ax["xlabel"].endswith("(% points)")
    assert ax["n_collections"] >= 1  # the bootstrap intervals


def test_energy_figure(captured, tmp_path):
    from norsim.cli.main import main
    from norsim.mapping.random_models import random_lenet

    model = tmp_path / "lenet.npz"
    random_lenet(np.random.default_rng(1)).save(model)
    assert main(["report", "--model", str(model), "--limit", "2", "--figure",
                 str(tmp_path / "energy.png"), "--set", "mapping.programming='ideal'",
                 "--set", "array.rows=64", "--set", "array.cols=64",
                 "--set", "mapping.calibration_images=4"]) == 0
    info = captured["energy.png"]
    _clean(info)
    assert info["axes"][0]["ylabel"] == "energy per image (nJ)"
