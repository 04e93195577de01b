"""``replay:DIR``: a recorded sim run replays exactly; bad directories and unrecorded inputs
get one-line errors naming file / tile / input (issue 24)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from norsim.backend import open_backend
from norsim.backend.recorder import RecordingBackend
from norsim.backend.replay import ReplayBackend
from norsim.backend.sim import SimBackend
from norsim.compensation.core import prepare_chip
from norsim.config import load_preset
from norsim.errors import FileFormatError, InputError
from norsim.mapping import engine
from norsim.mapping.random_models import random_lenet


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    rng = np.random.default_rng(21)
    model = random_lenet(rng, calib_n=6)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    calib = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    cfg = load_preset().with_overrides({
        "array.rows": 128, "array.cols": 128, "seed": 2, "mapping.calibration_images": 6,
        "mapping.programming": "ideal", "array.adc.noise_lsb": 0.5,
        "compensation.enabled": True, "compensation.gain_correction": "per_column",
        "compensation.probe_patterns": 12, "compensation.activation_recalibration": True,
        "compensation.recalibration_images": 6})
    d = tmp_path_factory.mktemp("replay") / "chip"
    rec = RecordingBackend(SimBackend(cfg), d)
    chip = prepare_chip(model, cfg, calib, backend=rec)
    run = engine.run(chip, images, batch_size=4, collect_stats=False)
    rec.save()
    return model, cfg, images, calib, d, run, chip


def _replay(model, cfg, calib, d):
    return prepare_chip(model, cfg, calib, backend=open_backend(f"replay:{d}", cfg))


def test_replay_of_a_recorded_sim_run_reproduces_it(recorded):
    model, cfg, images, calib, d, run, chip = recorded
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["format"] == "norsim-replay" and manifest["chip"]["kind"] == "sim"
    assert any(t.endswith("/ref") for t in manifest["tiles"])        # reference columns too
    replay = _replay(model, cfg, calib, d)
    assert isinstance(replay.backend, ReplayBackend)
    assert replay.backend.info().kind == "replay"
    again = engine.run(replay, images, batch_size=4, collect_stats=False)
    np.testing.assert_array_equal(again.outputs, run.outputs)
    np.testing.assert_array_equal(again.predictions, run.predictions)
    # the re-calibrated requantisation (host side, from replayed reads) is the recorded one
    for name, layer in chip.layers.items():
        if getattr(layer, "acc_correction", None) is not None:
            np.testing.assert_array_equal(replay.layers[name].acc_correction.a,
                                          layer.acc_correction.a)
    # a batch that was never sent as such: answered row by row (each vector's latest read)
    t = ReplayBackend(d).tiles[replay.backend.tile_ids()[0]]
    _, first, counts = np.unique(t.x, axis=0, return_index=True, return_counts=True)
    once = np.sort(first[counts == 1])[::-1][:5]
    assert once.size >= 2
    got = ReplayBackend(d).mvm(t.tid, t.x[once], (0,)).values
    np.testing.assert_array_equal(got, t.y[once])


def test_an_input_that_was_not_recorded_is_a_one_line_error(recorded):
    model, cfg, images, calib, d, run, chip = recorded
    replay = _replay(model, cfg, calib, d)
    other = np.full_like(images[:1], 255)
    with pytest.raises(InputError) as err:
        engine.run(replay, other, batch_size=1, collect_stats=False)
    msg = str(err.value)
    assert "\n" not in msg and "tile '" in msg and "vector 0" in msg and "recorded" in msg


def _copy(d, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(d, out)
    manifest = json.loads((out / "manifest.json").read_text())
    tid = next(iter(manifest["tiles"]))
    return out, manifest, tid, out / manifest["tiles"][tid]["dir"]


def test_wrong_shape_names_file_and_tile(recorded, tmp_path):
    d = recorded[4]
    out, manifest, tid, td = _copy(d, tmp_path)
    np.save(td / "vth.npy", np.zeros((3, 3)))
    with pytest.raises(FileFormatError) as err:
        ReplayBackend(out)
    msg = str(err.value)
    assert "vth.npy" in msg and repr(tid) in msg and "shape (3, 3)" in msg and "\n" not in msg


def test_nan_values_name_file_and_tile(recorded, tmp_path):
    d = recorded[4]
    out, manifest, tid, td = _copy(d, tmp_path)
    y = np.load(td / "mvm_y.npy")
    y[0, 0] = np.nan
    np.save(td / "mvm_y.npy", y)
    with pytest.raises(FileFormatError) as err:
        ReplayBackend(out)
    msg = str(err.value)
    assert "mvm_y.npy" in msg and repr(tid) in msg and "NaN" in msg and "\n" not in msg


def test_missing_tile_names_manifest_and_tile(recorded, tmp_path):
    model, cfg, images, calib, d, run, chip = recorded
    out, manifest, tid, td = _copy(d, tmp_path)
    del manifest["tiles"][tid]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FileFormatError) as err:
        _replay(model, cfg, calib, out)
    msg = str(err.value)
    assert "manifest.json" in msg and repr(tid) in msg and "missing" in msg
    # a tile folder gone: named with its tile when the directory is opened
    out2, manifest2, tid2, td2 = _copy(d, tmp_path / "b")
    shutil.rmtree(td2)
    with pytest.raises(FileFormatError, match="missing folder of tile"):
        ReplayBackend(out2)


def test_other_weights_and_bad_manifests_are_refused(recorded, tmp_path):
    model, cfg, images, calib, d, run, chip = recorded
    be = ReplayBackend(d)
    tid = be.tile_ids()[0]
    w = be.tiles[tid].weights
    with pytest.raises(InputError, match="weights recorded"):
        be.program(tid, w + 1, cfg, (1,))
    out, manifest, _, _ = _copy(d, tmp_path)
    manifest["version"] = 99
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FileFormatError, match="version 99"):
        ReplayBackend(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="not JSON"):
        ReplayBackend(out)
    with pytest.raises(InputError, match="replay directory"):
        ReplayBackend(tmp_path / "nowhere")
