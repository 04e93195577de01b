"""The committed model zoo: files, accuracy table, loader, CLI, export equivalence."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from norsim import zoo
from norsim.data.embedded import load_embedded_mnist
from norsim.errors import FileFormatError, InputError
from norsim.mapping.quant_model import QuantModel
from norsim.mapping.reference import input_codes, run_reference

NAME = "lenet-mnist-4b"


@pytest.fixture(scope="module")
def mnist_test():
    x, y = load_embedded_mnist("test")       # the full 10k t10k set shipped with norsim
    assert len(y) == 10000
    return x, y.astype(np.int64)


def test_entry_files_are_complete_and_small():
    assert NAME in zoo.names()
    d = zoo.ZOO_DIR / NAME
    for f in ("model.npz", "entry.json", "log.jsonl", "torch_state.npz"):
        assert (d / f).is_file(), f
    assert sum(p.stat().st_size for p in d.iterdir()) < 1_000_000
    e = zoo.entry(NAME)
    assert e["command"].startswith("norsim train ") and f"--seed {e['seed']}" in e["command"]
    log = [json.loads(s) for s in (d / "log.jsonl").read_text().splitlines()]
    assert {r.get("phase") for r in log if r["event"] == "epoch"} == {"float", "qat"}


def test_load_returns_a_valid_4bit_quantmodel():
    qm = zoo.load(NAME)
    assert isinstance(qm, QuantModel)
    mm = [nd for nd in qm.order() if nd.OP in ("conv2d", "linear")]
    assert [nd.weight_bits for nd in mm] == [8, 4, 4, 4, 8]
    assert all(np.abs(nd.weight).max() <= 2 ** (nd.weight_bits - 1) - 1 for nd in mm)
    assert all(nd.out_bits == 4 and not nd.out_signed for nd in mm[:-1])
    with pytest.raises(InputError):
        zoo.load("no-such-model")


@pytest.fixture(scope="module")
def reference_logits(mnist_test):
    qm = zoo.load(NAME)
    codes = run_reference(qm, input_codes(qm, mnist_test[0]), batch_size=2000)
    return qm.dequantize_output(codes)


def test_integer_accuracy_on_full_test_set_matches_table(mnist_test, reference_logits):
    x, y = mnist_test
    acc = float((reference_logits.argmax(1) == y).mean())
    a = zoo.entry(NAME)["accuracy"]
    assert a["n_test"] == 10000
    assert acc == pytest.approx(a["qat_test_acc"], abs=1e-12)   # the table is reproducible
    assert acc >= 0.99
    assert a["float_test_acc"] - acc <= 0.003                  # within 0.3 points of float


def test_cli_table_prints_every_entry():
    r = subprocess.run([sys.executable, "-m", "norsim.cli.main", "zoo", "--table"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for n in zoo.names():
        assert f"| {n} |" in r.stdout
        assert zoo.entry(n)["command"] in r.stdout


@pytest.mark.torch
def test_export_equivalence_on_full_mnist_test_set(mnist_test, reference_logits):
    pytest.importorskip("torch")
    import torch

    from norsim.qat.export import compare
    from norsim.qat.zoo_entry import load_zoo_torch_model

    torch.set_num_threads(1)
    x, y = mnist_test
    model = load_zoo_torch_model(NAME)
    qm = zoo.load(NAME)
    r = compare(model, qm, x[:, None], batch=2000, exact=False,
                reference_logits=reference_logits)
    # torch fake-quant (float32) vs exported integer reference, all 10,000 test images
    assert r["n"] == 10000
    assert r["fq_top1_agreement"] >= 0.999
    assert r["fq_images_within_one_step"] >= 0.999
    assert float((r["reference_logits"].argmax(1) == y).mean()) == pytest.approx(
        zoo.entry(NAME)["accuracy"]["qat_test_acc"], abs=1e-12)
    # integer-exact torch evaluation (a subset, it is slower): every logit equal
    r = compare(model, qm, x[:2000, None], batch=2000, exact=True)
    assert r["exact_images_within_one_step"] == 1.0
    assert r["exact_max_logit_diff_steps"] < 1e-6
    assert r["exact_top1_agreement"] == 1.0


# ------------------------------------------------------------------ CIFAR-10 entry ----
CIFAR_NAME = "cnn-cifar10-4b"


@pytest.fixture(scope="module")
def cifar_slice():
    from norsim.data.embedded import load_embedded_cifar10_test

    x, y = load_embedded_cifar10_test()
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y.astype(np.int64)


def test_cifar_entry_meets_the_issue_criteria():
    e = zoo.entry(CIFAR_NAME)
    a = e["accuracy"]
    assert e["arch"] == "vgg-small" and e["data"] == "cifar10" and e["bits"] == 4
    assert "--data cifar10" in e["command"] and f"--seed {e['seed']}" in e["command"]
    assert a["n_test"] == 10000
    # 4-bit (exported integer model, full test set) within 1.5 points of its float twin
    assert a["float_test_acc"] - a["qat_test_acc"] <= 0.015
    assert a["qat_test_acc"] >= 0.80
    # export equivalence recorded on the full 10k test set
    c = e["export_check"]
    assert c["n"] == 10000
    assert c["fq_top1_agreement"] >= 0.999
    assert c["fq_images_within_one_step"] >= 0.999     # logits within one output step
    # the integer-exact torch forward equals the exported model on every logit
    assert c["exact_top1_agreement"] == 1.0 and c["exact_images_within_one_step"] == 1.0
    d = zoo.ZOO_DIR / CIFAR_NAME
    assert sum(p.stat().st_size for p in d.iterdir()) < 3_500_000
    log = [json.loads(s) for s in (d / "log.jsonl").read_text().splitlines()]
    assert {r.get("phase") for r in log if r["event"] == "epoch"} == {"float", "qat"}


def test_cifar_entry_reproduces_its_accuracy_on_the_embedded_slice(cifar_slice):
    x, y = cifar_slice
    qm = zoo.load(CIFAR_NAME)
    codes = run_reference(qm, input_codes(qm, x), batch_size=250)
    acc = float((qm.dequantize_output(codes).argmax(1) == y).mean())
    assert acc == pytest.approx(zoo.entry(CIFAR_NAME)["accuracy"]["first_500_test_acc"], abs=1e-12)


@pytest.mark.torch
def test_cifar_export_equivalence_on_the_embedded_slice(cifar_slice):
    pytest.importorskip("torch")
    import torch

    from norsim.qat.export import compare
    from norsim.qat.zoo_entry import load_zoo_torch_model

    torch.set_num_threads(1)
    x, y = cifar_slice
    model = load_zoo_torch_model(CIFAR_NAME)
    r = compare(model, zoo.load(CIFAR_NAME), x[:200], batch=200, exact=True)
    assert r["exact_top1_agreement"] == 1.0 and r["exact_max_logit_diff_steps"] < 1e-6
    # the fake-quant forward (eval mode: fixed-point requantisation) agrees too
    assert r["fq_top1_agreement"] == 1.0 and r["fq_images_within_one_step"] == 1.0


@pytest.mark.torch
def test_refresh_check_rewrites_the_export_check_and_refuses_a_wrong_test_set(
        tmp_path, monkeypatch, mnist_test):
    """`norsim zoo --refresh-check`: reruns the check on the full test set and rewrites
    entry.json's export_check; a test set on which the committed model does not reproduce its
    recorded accuracy is refused (nothing written)."""
    pytest.importorskip("torch")
    import shutil

    import norsim.qat.zoo_entry as ze

    shutil.copytree(zoo.ZOO_DIR / NAME, tmp_path / NAME)
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    entry = tmp_path / NAME / "entry.json"
    before = json.loads(entry.read_text())
    x, y = mnist_test
    monkeypatch.setattr(ze, "load_split", lambda data, split, d=None: (x[:300, None], y[:300]))
    with pytest.raises(FileFormatError, match="entry.json says"):
        ze.refresh_export_check(NAME)
    with pytest.raises(InputError, match="zoo model"):
        ze.refresh_export_check("no-such-entry")
    assert json.loads(entry.read_text()) == before
    monkeypatch.setattr(ze, "load_split", lambda data, split, d=None: (x[:, None], y))
    e = ze.refresh_export_check(NAME)
    assert e["export_check"]["n"] == 10000 and e["export_check"]["fq_images_within_one_step"] == 1.0
    assert json.loads(entry.read_text())["export_check"] == json.loads(json.dumps(e["export_check"]))


# --------------------------------------------------- seed-table entries (issue 21) ----
#: the campaign's entries (scripts/train_campaign.py): a "recipe" with a seed-table arch
SEED_ENTRIES = [n for n in zoo.names()
                if zoo.entry(n).get("recipe", {}).get("arch") in ("alexnet-bn", "vgg16", "resnet18")
                and zoo.entry(n)["recipe"].get("width") == 1.0]


#: noise-aware variants (a recipe with out_noise_rel): trained against a chip's error, their
#: clean 4-bit accuracy is reported, not held to the 1.5-point criterion
NOISE_AWARE = [n for n in SEED_ENTRIES if zoo.entry(n)["recipe"].get("out_noise_rel")]


@pytest.mark.parametrize("name", [n for n in SEED_ENTRIES if n not in NOISE_AWARE])
def test_seed_entry_meets_the_issue_criteria(name):
    """Float twin within 1 point of the seed figure (no JPEG penalty credited until it is
    measured), 4-bit loss < 1.5 points on all 10k test images, export checked on all 10k."""
    e = zoo.entry(name)
    a, c = e["accuracy"], e["export_check"]
    assert a["n_test"] == 10000 and c["n"] == 10000
    assert 100 * a["float_test_acc"] >= a["seed_float_acc_pct"] - 1.0
    assert a["float_test_acc"] - a["qat_test_acc"] < 0.015
    assert c["exact_top1_agreement"] == 1.0 and c["exact_max_logit_diff_steps"] == 0.0
    assert c["fq_top1_agreement"] >= 0.99
    assert e["recipe"]["seed"] == e["seed"] and e["command"].startswith("python3 scripts/")
    log = [json.loads(s) for s in (zoo.ZOO_DIR / name / "log.jsonl").read_text().splitlines()]
    assert {"float_done", "qat_done", "exported"} <= {r["event"] for r in log}


@pytest.mark.parametrize("name", SEED_ENTRIES)
def test_seed_entry_export_reproduces_its_torch_twin_on_the_embedded_slice(name, cifar_slice):
    """The committed integer model, run by the reference executor on the 500 test images
    shipped with norsim, gives the torch twin's integer-exact logits recorded at export, bit
    for bit, and the fake-quant logits' top-1 (the torch state itself is not committed)."""
    x, y = cifar_slice
    qm = zoo.load(name)
    logits = qm.dequantize_output(run_reference(qm, input_codes(qm, x), batch_size=250))
    with np.load(zoo.ZOO_DIR / name / "export_witness.npz") as w:
        ex, fq = w["exact_logits"], w["fake_quant_logits"]
    assert ex.shape == logits.shape == (500, 10)
    np.testing.assert_array_equal(logits, ex)
    assert (fq.argmax(1) == logits.argmax(1)).mean() >= 0.99
    assert (logits.argmax(1) == y).mean() > 0.8


@pytest.mark.parametrize("name", NOISE_AWARE)
def test_noise_aware_entry_was_trained_against_its_committed_noise_file(name):
    """The noise in the recipe is the committed measurement (results/campaign/<plain>/
    noise.json, scripts/layer_noise.py), the float phase is the plain twin's, the export is
    checked on all 10k test images."""
    e = zoo.entry(name)
    plain = name.rsplit("-", 1)[0]
    noise = json.loads((Path(__file__).resolve().parents[1] / "results" / "campaign" / plain
                        / "noise.json").read_text())
    assert e["recipe"]["out_noise_rel"] == noise["out_noise_rel"]
    assert e["accuracy"]["float_test_acc"] == zoo.entry(plain)["accuracy"]["float_test_acc"]
    assert e["phases"]["float"] == {"resumed_from": "float_fp16.npz"}
    c = e["export_check"]
    assert c["n"] == 10000 and c["exact_top1_agreement"] == 1.0
    assert c["exact_max_logit_diff_steps"] == 0.0
