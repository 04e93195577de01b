"""`norsim array-study`: figures with their CSV data; bad arguments fail in one line."""

import csv

import numpy as np

from norsim.cli.main import main
from norsim.config import load_preset


def test_array_study_writes_figures_and_data(tmp_path, capsys):
    out = tmp_path / "study"
    rc = main(["array-study", "--out", str(out), "--rows", "16", "--cols", "4", "--batch", "8",
               "--set", "array.noise.rtn_enabled=false"])
    assert rc == 0
    for name in ("encodings", "adc_transfer", "ir_drop_map"):
        assert (out / f"{name}.png").stat().st_size > 1000
        assert (out / f"{name}.csv").stat().st_size > 100
    rows = list(csv.DictReader((out / "encodings.csv").open()))
    assert {r["encoding"] for r in rows} == {"bit_serial", "pulse_width", "multi_level", "current_mirror"}
    bs = np.array([(float(r["ideal"]), float(r["analog"])) for r in rows if r["encoding"] == "bit_serial"])
    assert np.max(np.abs(bs[:, 0] - bs[:, 1])) < 1.0  # no RTN: leakage-level error only
    adc = np.loadtxt(out / "adc_transfer.csv", delimiter=",", skiprows=1)
    top = 2 ** load_preset().array.adc.bits - 1
    assert adc[:, 1].min() == 0 and adc[:, 1].max() == top  # the preset ADC spans its codes
    assert np.mean(np.abs(adc[:, 1] - adc[:, 2]) <= 1) == 1.0


def test_array_study_rejects_bad_arguments(tmp_path, capsys):
    rc = main(["array-study", "--out", str(tmp_path), "--rows", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--rows" in err[0]
