"""`norsim train`: float + QAT phases, checkpoint/resume, log, export, errors, noise."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from norsim.cli.main import main  # noqa: E402
from norsim.config.presets import load_preset  # noqa: E402
from norsim.errors import InputError  # noqa: E402
from norsim.mapping.quant_model import QuantModel  # noqa: E402
from norsim.qat.models import build_model  # noqa: E402
from norsim.qat.noise import sigma_lnw_from_vth  # noqa: E402
from norsim.qat.train import TrainSpec, load_trained, train  # noqa: E402

torch.set_num_threads(1)


def _toy_digits(n, seed):
    """28x28 uint8 images: class k has a bright 6x6 square at a class-specific place."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        r, c = 2 + 8 * (k // 4), 2 + 8 * (k % 4)
        x[i, r:r + 6, c:c + 6] = 230
    return x, y


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    for split, n, seed in (("train", 512, 0), ("test", 100, 1)):
        x, y = _toy_digits(n, seed)
        np.savez_compressed(d / f"{split}.npz", x=x, y=y)
    return d


def test_cli_trains_float_then_qat_and_exports(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--arch", "lenet", "--data", str(data_dir), "--epochs", "3",
               "--float-epochs", "2", "--batch-size", "32", "--no-progress", "--out", str(out)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    log = [json.loads(s) for s in (out / "log.jsonl").read_text().splitlines()]
    phases = [r["phase"] for r in log if r["event"] == "epoch"]
    assert phases == ["float", "float", "qat"]
    assert any(r["event"] == "fold_and_calibrate" for r in log)
    assert summary["float_test_acc"] > 0.5 and summary["qat_test_acc"] > 0.5  # learnable toy
    qm = QuantModel.load(out / "model.npz")
    assert qm.metadata["arch"] == "lenet" and qm.output_spec.bits == 32
    # the run becomes a zoo entry whose table is the integer model's accuracy
    from norsim.qat.zoo_entry import build_entry
    from norsim.mapping.reference import predict

    e = build_entry(out, "toy", zoo_dir=tmp_path / "zoo")
    x, y = np.load(data_dir / "test.npz")["x"], np.load(data_dir / "test.npz")["y"]
    qz = QuantModel.load(tmp_path / "zoo" / "toy" / "model.npz")
    assert e["accuracy"]["qat_test_acc"] == float((predict(qz, x) == y).mean())
    assert e["export_check"]["exact_max_logit_diff_steps"] == 0.0
    assert e["accuracy"]["float_test_acc"] == summary["float_test_acc"]


def test_resume_after_interruption_is_bit_identical(data_dir, tmp_path):
    spec = TrainSpec(arch="lenet", data=str(data_dir), epochs=3, float_epochs=1,
                     batch_size=64, seed=5, noise_sigma_lnw=0.1, limit_train=192,
                     limit_test=40, calib_size=64)
    full = train(spec, tmp_path / "a", progress=False, log_fn=lambda s: None)
    part = train(spec, tmp_path / "b", progress=False, log_fn=lambda s: None,
                 stop_after_epochs=2)
    assert part == {"interrupted": True, "epochs_done": 2}
    resumed = train(spec, tmp_path / "b", progress=False, log_fn=lambda s: None)
    assert resumed == full
    ma, _ = load_trained(tmp_path / "a" / "model.pt")
    mb, _ = load_trained(tmp_path / "b" / "model.pt")
    sa, sb = ma.state_dict(), mb.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_rerun_with_other_settings_in_same_out_is_refused(data_dir, tmp_path, capsys):
    args = ["train", "--data", str(data_dir), "--epochs", "1", "--float-epochs", "1",
            "--no-progress", "--no-export", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args[:-2] + ["--seed", "3", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0]


@pytest.mark.parametrize("bad", [["--arch", "lenet9"], ["--epochs", "0"],
                                 ["--float-epochs", "7"], ["--data", "/nonexistent/dir"],
                                 ["--test-every", "0"]])
def test_bad_arguments_fail_in_one_line(bad, tmp_path, capsys, data_dir):
    args = ["train", "--data", str(data_dir), "--epochs", "2", "--no-progress",
            "--out", str(tmp_path / "x")] + bad
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("norsim train: error:")


def test_sigma_lnw_closed_form():
    cfg = load_preset("nor40")
    n, a, t = (cfg.device.cell.slope_factor_n, cfg.device.cell.alpha_g,
               cfg.device.read.temperature_k)
    u_t = 1.380649e-23 * t / 1.602176634e-19
    assert sigma_lnw_from_vth(0.010, cfg) == pytest.approx(0.010 * a / (n * u_t), rel=1e-12)
    # preset values n = 1.3, alpha_G = 0.6, 300 K: 10 mV -> ~0.18
    assert sigma_lnw_from_vth(0.010, cfg) == pytest.approx(0.1785, abs=2e-3)
    with pytest.raises(InputError):
        sigma_lnw_from_vth(-0.001, cfg)


def test_noise_injection_is_multiplicative_lognormal_and_train_only():
    m = build_model("lenet", seed=0)
    m.to_qat(torch.rand(64, 1, 28, 28))
    m.set_noise(0.2, seed=1)
    layer = m.qlayers()[1]
    x = torch.rand(1, 16, 14, 14)
    captured = []
    orig = layer._apply_op
    layer._apply_op = lambda x_, w, b: captured.append(w.detach().clone()) or orig(x_, w, b)
    m.train()
    m(torch.rand(2, 1, 28, 28))
    m(torch.rand(2, 1, 28, 28))
    m.eval()
    m(torch.rand(2, 1, 28, 28))
    wq = layer.quantized_weight().detach()
    nz = wq != 0
    r1 = torch.log(captured[0][nz] / wq[nz])
    r2 = torch.log(captured[1][nz] / wq[nz])
    assert abs(float(r1.std()) - 0.2) < 0.02 and abs(float(r1.mean())) < 0.02
    assert not torch.equal(r1, r2)                 # fresh draws each step
    assert torch.equal(captured[2], wq)            # no noise at evaluation
    assert torch.all(captured[0][~nz] == 0)        # zero weights stay zero
    del x


def test_bf16_float_phase_float32_qat_and_resume(data_dir, tmp_path):
    """bf16 autocast (channels_last) in the float phase only; the QAT phase, evaluation and
    export stay float32; an interrupted bf16 run resumes bit-identically; the precision is part
    of the run's identity (a float32 rerun in the same folder is refused)."""
    spec = TrainSpec(arch="lenet", data=str(data_dir), epochs=3, float_epochs=2,
                     batch_size=64, seed=2, limit_train=192, limit_test=40, calib_size=64,
                     precision="bf16")
    full = train(spec, tmp_path / "a", progress=False, log_fn=lambda s: None)
    log = [json.loads(s) for s in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    prec = [(r["phase"], r["precision"]) for r in log if r["event"] == "epoch"]
    assert prec == [("float", "bf16"), ("float", "bf16"), ("qat", "float32")]
    part = train(spec, tmp_path / "b", progress=False, log_fn=lambda s: None,
                 stop_after_epochs=1)
    assert part["interrupted"]
    assert train(spec, tmp_path / "b", progress=False, log_fn=lambda s: None) == full
    ma, sa_spec = load_trained(tmp_path / "a" / "model.pt")
    mb, _ = load_trained(tmp_path / "b" / "model.pt")
    assert sa_spec.precision == "bf16"
    assert all(torch.equal(ma.state_dict()[k], mb.state_dict()[k]) for k in ma.state_dict())
    # the float phase really ran in bf16: its weights differ from a float32 run's
    f32 = train(TrainSpec(**{**spec.__dict__, "precision": "float32"}), tmp_path / "c",
                progress=False, log_fn=lambda s: None)
    mc, _ = load_trained(tmp_path / "c" / "model.pt")
    assert not all(torch.equal(ma.state_dict()[k], mc.state_dict()[k]) for k in ma.state_dict())
    assert abs(f32["qat_test_acc"] - full["qat_test_acc"]) < 0.2      # same toy task learnt
    with pytest.raises(InputError, match="--out"):
        train(TrainSpec(**{**spec.__dict__, "precision": "float32"}), tmp_path / "b",
              progress=False, log_fn=lambda s: None)
    with pytest.raises(InputError, match="--precision"):
        TrainSpec(precision="fp8").validate()


def test_checkpoint_from_before_the_precision_field_resumes(data_dir, tmp_path):
    spec = TrainSpec(arch="lenet", data=str(data_dir), epochs=2, float_epochs=1,
                     batch_size=64, seed=1, limit_train=128, limit_test=20, calib_size=32)
    train(spec, tmp_path / "o", progress=False, log_fn=lambda s: None, stop_after_epochs=1)
    ck_path = tmp_path / "o" / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=True)
    del ck["spec"]["precision"]                 # as written by earlier versions
    del ck["spec"]["test_every"]
    torch.save(ck, ck_path)
    out = train(spec, tmp_path / "o", progress=False, log_fn=lambda s: None)
    assert out["qat_test_acc"] is not None


def test_test_every_skips_epochs_but_not_phase_ends_and_changes_nothing_else(data_dir,
                                                                            tmp_path):
    """test_every=3 over 4 epochs (1 float): tested after epochs 1 (the float phase's last),
    3 and 4 (the last), not 2; the training and the summary are those of testing every
    epoch."""
    kw = dict(arch="lenet", data=str(data_dir), epochs=4, float_epochs=1, batch_size=64,
              seed=3, limit_train=128, limit_test=40, calib_size=32)
    every = train(TrainSpec(**kw), tmp_path / "a", progress=False, log_fn=lambda s: None)
    sparse = train(TrainSpec(**kw, test_every=3), tmp_path / "b", progress=False,
                   log_fn=lambda s: None)
    logs = {}
    for run in ("a", "b"):
        lines = (tmp_path / run / "log.jsonl").read_text().splitlines()
        recs = [json.loads(line) for line in lines if line]
        logs[run] = [r for r in recs if r["event"] == "epoch"]
    assert [r["test_acc"] is not None for r in logs["b"]] == [True, False, True, True]
    assert all(r["test_acc"] is not None for r in logs["a"])
    assert [r["train_loss"] for r in logs["a"]] == [r["train_loss"] for r in logs["b"]]
    assert {k: v for k, v in sparse.items() if k != "spec"} == \
        {k: v for k, v in every.items() if k != "spec"}
