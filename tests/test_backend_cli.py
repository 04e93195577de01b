"""``norsim run --backend / --record`` and the sweep option ``backend`` (issue 24)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from norsim.errors import ConfigError

RUN = ["run", "--model", "zoo:lenet-mnist-4b", "--limit", "12", "--no-progress",
       "--set", "array.rows=128", "--set", "array.cols=128",
       "--set", "mapping.calibration_images=8", "--set", "mapping.programming=ideal"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "norsim.cli.main", *args],
                          capture_output=True, text=True)


def test_run_records_and_replays_with_the_same_report(tmp_path):
    rec = tmp_path / "chip"
    a = _cli(*RUN, "--record", str(rec), "--json", str(tmp_path / "sim.json"))
    assert a.returncode == 0, a.stderr
    assert a.stdout.startswith("back-end: sim (sim; chip sim-seed0;"), a.stdout[:200]
    assert (rec / "manifest.json").is_file()
    b = _cli(*RUN, "--backend", f"replay:{rec}", "--json", str(tmp_path / "replay.json"))
    assert b.returncode == 0, b.stderr
    assert b.stdout.startswith(f"back-end: replay:{rec} (replay; chip sim-seed0;")
    sim, rep = (json.loads((tmp_path / f).read_text()) for f in ("sim.json", "replay.json"))
    assert rep["backend"]["kind"] == "replay" and sim["backend"]["kind"] == "sim"
    # same statistics as a simulated run: accuracy, intervals, per-layer SNR, all equal
    assert rep["chip"] == sim["chip"] and rep["difference"] == sim["difference"]
    assert rep["instances"][0]["layers"] == sim["instances"][0]["layers"]
    assert rep["cost"] is None and sim["cost"] is not None


@pytest.mark.parametrize("args, field", [
    (("--backend", "chip"), "backend"),
    (("--backend", "remote:localhost"), "backend"),
    (("--backend", "replay:/no/such/dir"), "--backend"),
    (("--record", "REC", "--seeds", "2"), "--seeds"),
])
def test_bad_backend_arguments_fail_in_one_line(tmp_path, args, field):
    args = tuple(str(tmp_path / "rec") if a == "REC" else a for a in args)
    r = _cli(*RUN, *args)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1 and field in lines[0], r.stderr


def test_record_refuses_a_folder_with_files(tmp_path):
    (tmp_path / "x.txt").write_text("keep me")
    r = _cli(*RUN, "--record", str(tmp_path))
    assert r.returncode != 0 and "--record" in r.stderr and "empty folder" in r.stderr


def test_sweep_option_backend_is_checked_up_front(tmp_path):
    from norsim.experiments.accuracy_eval import _check_backend

    _check_backend("sim")
    _check_backend("remote:127.0.0.1:7000")
    _check_backend(f"replay:{tmp_path}")
    with pytest.raises(ConfigError, match="options.backend"):
        _check_backend("gpu")
    with pytest.raises(ConfigError, match="existing directory"):
        _check_backend(f"replay:{tmp_path / 'missing'}")


def test_sweep_runs_a_point_on_a_replay(tmp_path):
    """A sweep whose options name a recorded chip gives the recorded run's accuracy."""
    from norsim.experiments import sweep

    rec = tmp_path / "chip"
    a = _cli(*RUN, "--record", str(rec), "--json", str(tmp_path / "sim.json"))
    assert a.returncode == 0, a.stderr
    sim = json.loads((tmp_path / "sim.json").read_text())
    spec = tmp_path / "spec.toml"
    spec.write_text('[sweep]\nevaluator = "accuracy"\nmodel = "zoo:lenet-mnist-4b"\n'
                    'data = "mnist"\n[base]\npreset = "nor40"\n'
                    'set = ["array.rows=128", "array.cols=128", "mapping.calibration_images=8",'
                    ' "mapping.programming=ideal"]\n[seeds]\nroot = 0\ncount = 1\n'
                    f'[options]\nimages = 12\nbackend = "replay:{rec}"\n')
    df = sweep(spec, tmp_path / "s.sqlite", workers=1, progress=False)
    assert (df.status == "ok").all(), df.error.tolist()
    assert df.accuracy.iloc[0] == sim["chip"]["accuracy_mean"]


@pytest.mark.slow
def test_run_on_the_reference_chip_server_reports_what_sim_reports(tmp_path):
    """``--backend remote:HOST:PORT`` against the reference server (loopback, started and
    stopped here): the same report as the in-process simulator."""
    srv = subprocess.Popen([sys.executable, "-m", "norsim.backend.chip_server", "--port", "0",
                            "--quiet"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(srv.stdout.readline())
        r = _cli(*RUN, "--backend", f"remote:127.0.0.1:{port}", "--json",
                 str(tmp_path / "remote.json"))
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"back-end: remote:127.0.0.1:{port} (remote;")
    finally:
        srv.terminate()
        srv.wait(timeout=30)
    s = _cli(*RUN, "--json", str(tmp_path / "sim.json"))
    assert s.returncode == 0, s.stderr
    rem, sim = (json.loads((tmp_path / f).read_text()) for f in ("remote.json", "sim.json"))
    assert rem["backend"]["kind"] == "remote"
    assert rem["chip"] == sim["chip"] and rem["instances"][0]["layers"] == sim["instances"][0]["layers"]
