"""Noise-aware QAT against a chip's measured per-layer error (issue 21): the output noise's
size, the layer names it is keyed by, the measured noise's closed form, and a noise-aware
run that starts from the plain entry's float milestone."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from norsim.errors import InputError  # noqa: E402
from norsim.mapping.engine import LayerStats  # noqa: E402
from norsim.qat import gpu_recipe as gr  # noqa: E402
from norsim.qat.export import export, qlayer_names  # noqa: E402
from norsim.qat.noise import output_noise_from_stats  # noqa: E402


def _qat_model(arch, seed=0):
    torch.manual_seed(seed)
    m = gr.build(arch, 0.0625, seed=seed)
    m.fold_bn()
    m.to_qat(torch.rand(8, 3, 32, 32), seed=seed)
    return m


@pytest.mark.parametrize("arch", ["alexnet-bn", "resnet18"])
def test_layer_names_are_the_exported_nodes(arch):
    m = _qat_model(arch)
    names = qlayer_names(m)
    qm = export(m)
    matmuls = [n.name for n in qm.nodes if getattr(n, "weight", None) is not None]
    assert list(names) == matmuls
    for name, q in names.items():   # the same layer: its weight codes are the node's
        node = next(n for n in qm.nodes if n.name == name)
        codes = q.wq.codes(q.op.weight).detach().numpy().reshape(node.weight.shape)
        np.testing.assert_array_equal(codes, node.weight)


def test_output_noise_has_the_requested_relative_std():
    m = _qat_model("alexnet-bn")
    x = torch.rand(64, 3, 32, 32)
    q = qlayer_names(m)["conv2"]
    feats = {}

    def grab(mod, inp, out):        # a hook that returns None keeps the layer's output
        feats.setdefault("x", inp[0])

    h = q.register_forward_hook(grab)
    m.eval()
    m(x)
    h.remove()
    xin = feats["x"]
    q.train()
    clean = q(xin).detach()
    b = q.op.bias
    acc = clean - (0 if b is None else b.detach().reshape(-1, 1, 1))
    m.set_output_noise({"conv2": 0.25}, seed=1)
    q.train()
    noisy = q(xin).detach()
    rel = float((noisy - clean).pow(2).mean().sqrt() / acc.pow(2).mean().sqrt())
    assert rel == pytest.approx(0.25, rel=0.02)     # ~100k draws: sd of the estimate 0.2 %
    q.eval()
    assert torch.equal(q(xin), q(xin))              # evaluation: no noise
    assert qlayer_names(m)["conv1"].out_noise_rel == 0.0   # layers not named: none
    with pytest.raises(InputError, match="conv9"):
        m.set_output_noise({"conv9": 0.1})
    with pytest.raises(InputError, match="conv1"):
        m.set_output_noise({"conv1": -0.1})


def test_measured_noise_pools_error_and_signal_power_over_chips():
    a, b = LayerStats(), LayerStats()
    exact = np.arange(1.0, 9.0)
    a.add(exact, exact + 1.0)            # error power 8, signal power 204
    b.add(exact, exact - 3.0)            # error power 72
    rel = output_noise_from_stats([{"fc1": a}, {"fc1": b}])
    assert rel == {"fc1": pytest.approx(math.sqrt((8 + 72) / (2 * 204)))}
    assert output_noise_from_stats([{"fc1": a}])["fc1"] == pytest.approx(10 ** (-a.snr_db / 20))
    with pytest.raises(InputError):
        output_noise_from_stats([])


def test_recipe_names_and_checks_a_noise_aware_run():
    r = gr.Recipe(arch="vgg16", out_noise_rel={"conv1": 0.1}, noise_tag="noiseaware").validate()
    assert r.entry_name == "vgg16-cifar10-4b-noiseaware"
    assert r.float_entry_name == "vgg16-cifar10-4b"
    with pytest.raises(InputError, match="noise_tag"):
        gr.Recipe(out_noise_rel={"conv1": 0.1}).validate()
    with pytest.raises(InputError, match="noise_tag"):
        gr.Recipe(noise_tag="x").validate()
    with pytest.raises(InputError, match="out_noise_rel"):
        gr.Recipe(out_noise_rel={"conv1": float("nan")}, noise_tag="x").validate()
    # a layer the architecture lacks is refused at once, naming it and the real ones
    with pytest.raises(InputError, match="conv9.*conv1, conv2"):
        gr.Recipe(arch="alexnet-bn", width=0.0625, out_noise_rel={"conv9": 0.1},
                  noise_tag="x").validate()


def test_noise_aware_run_starts_from_the_plain_float_milestone(tmp_path):
    from tests.test_gpu_recipe import _fake_cifar

    _fake_cifar(tmp_path / "cache" / "part1")
    data_np = gr.load_cifar([tmp_path / "cache"], train_files=2)
    kw = dict(arch="alexnet-bn", width=0.0625, batch_size=16, float_epochs=1, qat_epochs=1,
              max_steps=2, export_check_images=8, calib_size=8)
    plain = gr.Recipe(**kw).validate()
    aware = gr.Recipe(**kw, out_noise_rel={"conv2": 0.2, "fc3": 0.3},
                      noise_tag="noiseaware").validate()
    torch.set_num_threads(1)
    quiet = dict(device="cpu", echo=lambda s: None)
    ms = tmp_path / "milestones"
    # without the plain float phase the noise-aware run refuses to train one of its own
    s0 = gr.run_all([aware], data_np, tmp_path / "r0", tmp_path / "z0", "cmd",
                    milestone_dir=ms, **quiet)
    assert s0["models"][aware.entry_name]["status"] == "error"
    assert "after the plain alexnet-bn-w0.0625-cifar10-4b float phase" in \
        s0["models"][aware.entry_name]["error"]
    gr.run_all([plain], data_np, tmp_path / "r", tmp_path / "zoo", "cmd", milestone_dir=ms,
               **quiet)
    s = gr.run_all([aware], data_np, tmp_path / "r2", tmp_path / "zoo", "cmd",
                   milestone_dir=ms, **quiet)
    assert s["models"][aware.entry_name]["status"] == "ok", s
    d = tmp_path / "zoo" / aware.entry_name
    log = [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines()]
    events = [e["event"] for e in log]
    assert "float_resumed" in events and "float_start" not in events
    assert next(e for e in log if e["event"] == "output_noise")["out_noise_rel"] == \
        {"conv2": 0.2, "fc3": 0.3}
    e = json.loads((d / "entry.json").read_text())
    assert e["recipe"]["out_noise_rel"] == {"conv2": 0.2, "fc3": 0.3}
    # same float start, same calibration, QAT steps with noise: other weights
    assert (d / "model.npz").read_bytes() != \
        (tmp_path / "zoo" / plain.entry_name / "model.npz").read_bytes()


def test_layer_noise_script_measures_each_analog_layer(tmp_path, capsys):
    """scripts/layer_noise.py on a small LeNet and the embedded MNIST calibration slice: one
    entry per analog layer, equal to the pooled LayerStats of the same chips run by hand."""
    import importlib.util
    from pathlib import Path

    from norsim.config import load_preset
    from norsim.data import load_dataset
    from norsim.mapping import engine, mapper
    from norsim.mapping.random_models import random_lenet

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("layer_noise", root / "scripts" / "layer_noise.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = random_lenet(np.random.default_rng(4), calib_n=8)
    path = model.save(tmp_path / "m.npz")
    sets = ["array.rows=128", "array.cols=128", "mapping.calibration_images=6"]
    out = tmp_path / "noise.json"
    argv = ["--model", str(path), "--data", "mnist", "--images", "5", "--chips", "2",
            "--out", str(out)] + [x for s in sets for x in ("--set", s)]
    assert mod.main(argv) == 0
    rep = json.loads(out.read_text())
    cfg = load_preset().with_overrides(sets)
    pool = load_dataset("mnist", "calib").x
    stats = []
    for seed in (0, 1):
        chip = mapper.map_model(model, cfg.with_overrides({"seed": seed}))
        engine.calibrate(chip, pool[:6])
        stats.append(engine.run(chip, pool[6:11]).layer_stats)
    expect = output_noise_from_stats(stats)
    assert set(rep["out_noise_rel"]) == set(expect) and expect
    for k, v in expect.items():
        assert rep["out_noise_rel"][k] == pytest.approx(v, rel=1e-12) and v > 0
        assert rep["snr_db"][k] == pytest.approx(-20 * math.log10(v))
    assert rep["chips"] == [0, 1] and rep["images"] == 5
    assert "array.rows=128" in rep["produced_by"]
    err = capsys.readouterr().err
    assert "layer noise: 6/6 stages" in err          # progress without a terminal
    assert mod.main(argv[:5] + ["2000"] + argv[6:]) == 2   # more images than the slice holds
    assert "--images" in capsys.readouterr().err
