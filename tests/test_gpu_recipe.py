"""The CIFAR-10 GPU recipe (scripts/train_cifar_gpu.py, norsim/qat/gpu_recipe.py) end to end
on the CPU: a synthetic CIFAR-shaped npz folder, every model family at 1/16 width, a few steps
per phase, export, zoo entries and tars; plus the pieces with closed-form expectations."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from norsim.errors import FileFormatError, InputError  # noqa: E402
from norsim.qat import gpu_recipe as gr  # noqa: E402
from norsim.qat.layers import QLayer  # noqa: E402
from norsim.qat.models import build_model, count_parameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("train_cifar_gpu",
                                                  ROOT / "scripts" / "train_cifar_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_cifar(d: Path, seed: int = 0) -> Path:
    """CIFAR-shaped npz files (HWC uint8, uint8 labels) whose class is readable from the mean
    colour, so a few steps can learn something."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    for name, n in (("train_0", 160), ("train_1", 96), ("test", 64)):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 60, (n, 32, 32, 3)) + (y * 19)[:, None, None, None]
        np.savez_compressed(d / f"{name}.npz", x=x.astype(np.uint8), y=y.astype(np.uint8))
    return d


def test_end_to_end_all_families(tmp_path):
    from norsim.mapping.quant_model import QuantModel
    from norsim.mapping.reference import input_codes, run_reference

    data = _fake_cifar(tmp_path / "cache" / "part1")
    out, zoo = tmp_path / "run", tmp_path / "zoo"
    argv = ["--data-dir", str(tmp_path / "cache"), "--train-files", "2", "--out", str(out),
            "--zoo-dir", str(zoo), "--tar-dir", str(tmp_path / "back"),
            "--width", "0.0625", "--batch-size", "16",
            "--float-epochs", "1", "--qat-epochs", "1", "--max-steps", "2",
            "--export-check-images", "16", "--calib-size", "8", "--device", "cpu"]
    assert _script().main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    x_test = np.load(data / "test.npz")["x"].transpose(0, 3, 1, 2)
    y_test = np.load(data / "test.npz")["y"].astype(np.int64)
    assert len(summary["models"]) == 3
    # what comes back from the GPU machine: one flat folder of at most 8 files
    back = sorted((tmp_path / "back").iterdir())
    assert len(back) <= 8 and all(f.is_file() for f in back)
    for arch in gr.ARCHS:
        name = f"{arch}-w0.0625-cifar10-4b"
        assert summary["models"][name]["status"] == "ok"
        e = json.loads((zoo / name / "entry.json").read_text())
        # the committed integer model, run by the reference executor, gives the accuracy that
        # the entry states (computed there by the torch integer-exact forward)
        qm = QuantModel.load(zoo / name / "model.npz")
        logits = qm.dequantize_output(run_reference(qm, input_codes(qm, x_test)))
        ref_acc = float((logits.argmax(1) == y_test).mean())
        assert e["accuracy"]["qat_test_acc"] == pytest.approx(ref_acc)
        assert e["accuracy"]["n_test"] == 64
        assert e["export_check"]["exact_top1_agreement"] == 1.0
        assert e["export_check"]["exact_max_logit_diff_steps"] == 0.0
        assert e["bits"] == 4 and e["first_last_bits"] == 8 and e["data"] == "cifar10"
        assert e["recipe"]["arch"] == arch and e["command"].startswith("python3 scripts/")
        assert sorted(e["training_data"]["files"]) == ["test.npz", "train_0.npz", "train_1.npz"]
        # the layer widths at 1/16: first conv has round(64/16) = 4 output channels
        first = next(n for n in qm.nodes if getattr(n, "weight", None) is not None)
        assert first.weight.shape[0] == 4 and first.weight_bits == 8
        log = [json.loads(s) for s in (zoo / name / "log.jsonl").read_text().splitlines()]
        events = [r["event"] for r in log]
        for ev in ("recipe", "float_start", "float_done", "fold_and_calibrate", "qat_done",
                   "exported"):
            assert ev in events
        with tarfile.open(tmp_path / "back" / f"{name}.tar") as tf:
            assert sorted(tf.getnames()) == sorted(
                f"{name}/{f}" for f in ("model.npz", "entry.json", "log.jsonl",
                                        "export_witness.npz"))
        # the torch twin's logits on the first test images, kept with the entry: the
        # integer-exact ones are the committed model's, the fake-quant ones within a step
        with np.load(zoo / name / "export_witness.npz") as w:
            ex, fq = w["exact_logits"], w["fake_quant_logits"]
        assert ex.shape == (16, 10) and fq.shape == (16, 10) and fq.dtype == np.float32
        np.testing.assert_array_equal(ex, logits[:16])   # --export-check-images 16
        assert (fq.argmax(1) == logits[:16].argmax(1)).mean() >= 0.9
        assert (out / name / "float_fp16.npz").is_file()
    # a rerun resumes from the float checkpoint instead of training the float phase again
    argv2 = argv + ["--archs", "alexnet-bn"]
    assert _script().main(argv2) == 0
    log = [json.loads(s) for s in (out / "alexnet-bn-w0.0625-cifar10-4b" / "log.jsonl")
           .read_text().splitlines()]
    assert [r["event"] for r in log].count("float_resumed") == 1
    assert [r["event"] for r in log].count("float_start") == 1


def test_missing_data_is_one_line_error(tmp_path, capsys):
    rc = _script().main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "train_0.npz" in err and err.count("\n") == 1


def test_sha_check_refuses_other_bytes(tmp_path):
    _fake_cifar(tmp_path)
    with pytest.raises(FileFormatError, match="sha256"):
        gr.load_cifar([tmp_path], train_files=2, check_sha=True)
    d = gr.load_cifar([tmp_path], train_files=2)
    assert d["x_train"].shape == (256, 3, 32, 32) and d["y_train"].dtype == np.int64


def test_augment_is_a_padded_crop_or_its_mirror():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8, generator=g)
    pad = 2
    out = gr.gpu_augment(x, g, pad)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    p = np.pad(x.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    flips = 0
    for i in range(len(x)):
        cands = []
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                w = p[i, :, dy:dy + 8, dx:dx + 8]
                cands += [(w, False), (w[:, :, ::-1], True)]
        hit = [f for w, f in cands if np.array_equal(w, out[i].numpy())]
        assert hit, f"image {i} is not a crop of the padded input"
        flips += hit[0]
    # pad = 0: identity or mirror only; about half mirrored (binomial, n = 4000)
    big = torch.arange(4000 * 3 * 2 * 2, dtype=torch.int64).reshape(4000, 3, 2, 2) % 251
    o = gr.gpu_augment(big.to(torch.uint8), torch.Generator().manual_seed(1), 0)
    same = (o == big.to(torch.uint8)).flatten(1).all(1)
    mirror = (o == big.to(torch.uint8).flip(3)).flatten(1).all(1)
    assert bool((same | mirror).all())
    assert abs(float(mirror.float().mean()) - 0.5) < 4 * 0.5 / np.sqrt(4000)


def test_one_cycle_shape():
    peak, w = 0.2, 0.15
    assert gr.one_cycle(0.0, peak, w) == pytest.approx(0.04 * peak)
    assert gr.one_cycle(w, peak, w) == pytest.approx(peak)
    assert gr.one_cycle(1.0, peak, w) == pytest.approx(0.002 * peak)
    ps = np.linspace(0, 1, 201)
    lr = np.array([gr.one_cycle(p, peak, w) for p in ps])
    assert np.all(np.diff(lr[ps <= w]) > 0) and np.all(np.diff(lr[ps >= w]) <= 1e-15)


def test_alexnet_bn_parameter_count_closed_form():
    convs = [(3, 64), (64, 192), (192, 384), (384, 256), (256, 256)]
    n = sum(9 * a * b + 2 * b for a, b in convs)                 # 3x3 conv, no bias; BN affine
    n += 256 * 4 * 4 * 1024 + 2 * 1024 + 1024 * 1024 + 2 * 1024  # two hidden FC + BN
    n += 1024 * 10 + 10                                          # classifier with bias
    assert count_parameters(gr.build("alexnet-bn")) == n


@pytest.mark.parametrize("arch", gr.ARCHS)
def test_reduced_width_keeps_the_layer_sequence(arch):
    full = build_model(arch)
    small = gr.build(arch, width=0.25)
    assert gr.build(arch, width=1.0).state_dict().keys() == full.state_dict().keys()
    qf = [m for m in full.modules() if isinstance(m, QLayer)]
    qs = [m for m in small.modules() if isinstance(m, QLayer)]
    assert len(qf) == len(qs)
    for a, b in zip(qf, qs):
        assert (a.kind, a.w_bits, a.bn is None) == (b.kind, b.w_bits, b.bn is None)
        if a.kind == "conv":
            assert (a.op.kernel_size, a.op.stride, a.op.padding) == \
                   (b.op.kernel_size, b.op.stride, b.op.padding)
        co = a.op.weight.shape[0]
        assert b.op.weight.shape[0] == (10 if co == 10 else max(4, round(co / 4)))
    assert small(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_fp16_checkpoint_round_trip(tmp_path):
    m = gr.build("resnet18", width=0.125, seed=4)
    gr.save_state_fp16(m, tmp_path / "c.npz")
    m2 = gr.build("resnet18", width=0.125, seed=5)
    gr.load_state_fp16(m2, tmp_path / "c.npz")
    for k, v in m.state_dict().items():
        w = m2.state_dict()[k]
        assert w.dtype == v.dtype
        exp = v.half().to(v.dtype) if v.is_floating_point() else v
        assert torch.equal(w, exp), k


def test_bad_inputs():
    with pytest.raises(InputError, match="arch"):
        gr.build("lenet5")
    with pytest.raises(InputError, match="width"):
        gr.build("vgg16", width=1.5)
    with pytest.raises(InputError, match="lr_float"):
        gr.Recipe(lr_float=float("nan")).validate()


class _Killed(Exception):
    pass


@pytest.mark.parametrize("phase", ["float", "qat", "qat_output_noise"])
def test_phase_killed_and_resumed_is_bit_identical(tmp_path, phase):
    """A phase interrupted after step 7 (its last checkpoint written before that step) and
    rerun with the same checkpoint file ends with exactly the weights of an uninterrupted
    phase; the checkpoint is gone afterwards. With noise-aware QAT's output noise the noise
    generator's state travels in the checkpoint too."""
    noise = phase == "qat_output_noise"
    phase = "qat" if noise else phase
    rng = np.random.default_rng(3)
    data = {"x_train": torch.from_numpy(rng.integers(0, 256, (96, 3, 32, 32), dtype=np.uint8)),
            "y_train": torch.from_numpy(rng.integers(0, 10, 96))}
    r = gr.Recipe(arch="resnet18", width=0.0625, batch_size=16, float_epochs=2, qat_epochs=2,
                  checkpoint_every_s=1e-9).validate()
    calib = data["x_train"][:16].float() / 255

    def fresh():
        m = gr.build(r.arch, r.width, seed=0)
        if phase == "qat":
            m.fold_bn()
            m.to_qat(calib, seed=0)
        if noise:
            m.set_output_noise({"conv1": 0.3, "block1_conv2": 0.2, "fc1": 0.5}, seed=5)
        return m

    torch.set_num_threads(1)
    log = gr.Log(tmp_path / "log.jsonl", echo=lambda s: None)
    straight = fresh()
    st = gr.run_phase(straight, data, r, phase, log, ckpt=tmp_path / "a.pt")
    assert st["steps"] == 12 and not (tmp_path / "a.pt").exists()

    def kill(step):
        if step == 7:
            raise _Killed

    ck = tmp_path / "b.pt"
    with pytest.raises(_Killed):
        gr.run_phase(fresh(), data, r, phase, log, ckpt=ck, on_step=kill)
    assert torch.load(ck, weights_only=True)["step"] == 6
    resumed = fresh()
    # evaluation/export settings are not training: a checkpoint resumes under other ones
    r_eval = dataclasses.replace(r, export_check_images=r.export_check_images + 1,
                                 exact_eval_images=3)
    st2 = gr.run_phase(resumed, data, r_eval, phase, log, ckpt=ck)
    assert st2["steps"] == 12 and not ck.exists()
    assert any(rec["event"] == f"{phase}_resumed" and rec["step"] == 6 for rec in log.records)
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # a checkpoint of another recipe is refused with the field named
    with pytest.raises(_Killed):
        gr.run_phase(fresh(), data, r, phase, log, ckpt=ck, on_step=kill)
    other = dataclasses.replace(r, lr_float=0.1, lr_qat=1e-3)
    with pytest.raises(InputError, match="phase checkpoint"):
        gr.run_phase(fresh(), data, other, phase, log, ckpt=ck)


def test_a_fresh_machine_resumes_from_the_committed_float_milestone(tmp_path):
    """The campaign copies each finished float phase to the milestone folder (committed); a
    run in an empty run folder elsewhere loads it instead of training the float phase, and
    ends with the same 4-bit model as the run that trained it."""
    _fake_cifar(tmp_path / "cache" / "part1")
    data_np = gr.load_cifar([tmp_path / "cache"], train_files=2)
    r = gr.Recipe(arch="alexnet-bn", width=0.0625, batch_size=16, float_epochs=1,
                  qat_epochs=1, max_steps=2, export_check_images=8, calib_size=8).validate()
    ms = tmp_path / "milestones"
    torch.set_num_threads(1)
    a = gr.run_all([r], data_np, tmp_path / "a", tmp_path / "zoo_a", "cmd", device="cpu",
                   echo=lambda s: None, milestone_dir=ms)
    assert (ms / r.entry_name / "float_fp16.npz").is_file()
    assert not (ms / r.entry_name / "qat_fp16.npz").exists()      # the zoo entry is that one
    b = gr.run_all([r], data_np, tmp_path / "b", tmp_path / "zoo_b", "cmd", device="cpu",
                   echo=lambda s: None, milestone_dir=ms)
    log = [json.loads(s) for s in (tmp_path / "b" / r.entry_name / "log.jsonl").read_text()
           .splitlines()]
    events = [e["event"] for e in log]
    assert "float_resumed" in events and "float_start" not in events
    assert a["models"][r.entry_name] == b["models"][r.entry_name]
    qa = (tmp_path / "zoo_a" / r.entry_name / "model.npz").read_bytes()
    qb = (tmp_path / "zoo_b" / r.entry_name / "model.npz").read_bytes()
    assert qa == qb


def test_a_compact_checkpoint_resumes_the_phase_on_another_machine(tmp_path):
    """A phase killed after step 7 is compacted (int8 weights, within half a step of their
    channel's scale, fp16 BN, no momentum); in an empty run folder it resumes from the compact
    file at the killed step with the same data order and finishes the phase's steps; the
    weights stay close to an uninterrupted run (rounded weights and fresh momentum are the
    only differences). A compact file of another recipe is refused."""
    rng = np.random.default_rng(4)
    data = {"x_train": torch.from_numpy(rng.integers(0, 256, (96, 3, 32, 32), dtype=np.uint8)),
            "y_train": torch.from_numpy(rng.integers(0, 10, 96))}
    r = gr.Recipe(arch="alexnet-bn", width=0.0625, batch_size=16, float_epochs=2,
                  checkpoint_every_s=1e-9).validate()
    torch.set_num_threads(1)
    log = gr.Log(tmp_path / "log.jsonl", echo=lambda s: None)
    straight = gr.build(r.arch, r.width, seed=0)
    gr.run_phase(straight, data, r, "float", log)

    def kill(step):
        if step == 7:
            raise _Killed

    ck = tmp_path / "machine1" / "float_phase.pt"
    ck.parent.mkdir()
    with pytest.raises(_Killed):
        gr.run_phase(gr.build(r.arch, r.width, seed=0), data, r, "float", log, ckpt=ck,
                     on_step=kill)
    partial = gr.compact_phase_checkpoint(ck, tmp_path / "milestones" / "float_partial.npz")
    assert partial.stat().st_size < ck.stat().st_size / 5
    restored = gr._partial_checkpoint(partial)["model"]
    killed = gr._phase_checkpoint(ck)["model"]
    for k, v in killed.items():
        if v.is_floating_point() and v.dim() >= 2:      # int8: half a step of the channel max
            step = v.abs().reshape(v.shape[0], -1).amax(1) / 127
            err = (restored[k] - v).abs().reshape(v.shape[0], -1).amax(1)
            assert bool((err <= 0.5001 * step + 1e-12).all()), k
    resumed = gr.build(r.arch, r.width, seed=0)
    st = gr.run_phase(resumed, data, r, "float", log, ckpt=tmp_path / "machine2.pt",
                      partial=partial)
    assert st["steps"] == 12
    rec = [x for x in log.records if x["event"] == "float_resumed"]
    assert rec and rec[-1]["step"] == 6 and rec[-1]["compact"] is True
    a, b = straight.state_dict(), resumed.state_dict()
    init = gr.build(r.arch, r.width, seed=0).state_dict()
    w = [k for k in a if a[k].is_floating_point() and a[k].dim() > 1]
    gap = sum(float((a[k] - b[k]).norm() ** 2) for k in w) ** 0.5
    travelled = sum(float((a[k] - init[k]).norm() ** 2) for k in w) ** 0.5
    assert 0 < gap < 0.25 * travelled, (gap, travelled)
    other = dataclasses.replace(r, lr_float=0.1)
    with pytest.raises(InputError, match="phase checkpoint"):
        gr.run_phase(gr.build(r.arch, r.width, seed=0), data, other, "float", log,
                     partial=partial)
