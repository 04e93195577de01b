"""The error budget's ADC row measured against what a coarse converter must do (issue 26):
labels are the integer reference's own predictions (reference accuracy 100 %), so the drop
is the accuracy the converter alone costs. Direction: fewer bits never cost less, and a
2-bit converter costs a lot; size: a uniform quantiser's error power falls 4x per added bit,
so each layer's MVM SNR rises by 20 log10(2) = 6.02 dB per bit (12 dB from 4 to 6 bits)."""

from __future__ import annotations

import numpy as np
import pytest

from norsim.config import load_preset
from norsim.experiments import budget as bud
from norsim.mapping import engine
from norsim.mapping import reference as ref
from norsim.mapping.random_models import blob_images, random_lenet


@pytest.fixture(scope="module")
def adc_rows():
    rng = np.random.default_rng(21)
    model = random_lenet(rng, calib_n=8)
    images = blob_images(rng, 40, 28, 28, 1)
    labels = engine.predict_from_output(model, ref.run_reference(model, ref.input_codes(model, images)))
    rows = {}
    for bits in (2, 4, 6):
        full = load_preset().with_overrides({"array.rows": 128, "array.cols": 128,
                                             "array.adc.bits": bits})
        rep = bud.budget(model, full, images, labels, images[:8], seeds=(0,),
                         effects=["adc_quantisation"], layer_sensitivity=False)
        assert rep["reference_accuracy"] == 1.0
        rows[bits] = rep["effects"]["adc_quantisation"]
    return rows


def test_coarse_adc_drop_has_the_right_direction_and_size(adc_rows):
    d = {b: r["drop"] for b, r in adc_rows.items()}
    assert d[2] >= 0.25                 # measured 0.48 (48 images): a 2-bit ADC ruins the net
    assert d[2] >= d[4] >= d[6] >= 0.0  # more bits never cost more
    assert d[6] <= 0.05                 # measured 0


def test_adc_snr_rises_six_db_per_bit(adc_rows):
    s4, s6 = adc_rows[4]["snr_db"], adc_rows[6]["snr_db"]
    assert set(s4) == set(s6) and s4
    for layer in s4:
        assert s6[layer] - s4[layer] == pytest.approx(2 * 6.02, abs=3.0), layer
        assert adc_rows[2]["snr_db"][layer] < s4[layer]
