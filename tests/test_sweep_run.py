"""Running sweeps: worker-count independence, failures, resume, thread limits, Dask, kills."""

import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from norsim.config.sim import SimConfig
from norsim.errors import InputError
from norsim.experiments import sweep
from norsim.experiments.evaluators import Point
from norsim.experiments.runner import run_sweep

VOLATILE = ["worker", "wall_s", "finished_at"]  # may differ between runs of the same point


def write_spec(folder, evaluator, axes, *, root=21, count=2, options="", mode="common",
               name="spec.toml"):
    """A spec over SimConfig defaults (base.toml), so the test does not depend on a preset."""
    (folder / "base.toml").write_text("seed = 0\n")
    lines = [f'[sweep]\nevaluator = "{evaluator}"\n[base]\nconfig = "base.toml"\n',
             f'[seeds]\nroot = {root}\ncount = {count}\nmode = "{mode}"\n', "[axes]\n"]
    lines += [f'"{k}" = {v}\n' for k, v in axes.items()]
    lines.append("[options]\n" + options)
    path = folder / name
    path.write_text("".join(lines))
    return path


def _rows(path):
    con = sqlite3.connect(path)
    try:
        cols = [c[1] for c in con.execute("PRAGMA table_info(points)")]
        return {(r[0], r[1]): dict(zip(cols, r)) for r in con.execute("SELECT * FROM points")}
    finally:
        con.close()


def test_one_worker_and_two_workers_give_identical_rows(tmp_path):
    spec = write_spec(tmp_path, "device", {"device.read.temperature_k": "[290.0, 300.0]",
                                           "device.programming.ispp_step_v": "[0.01, 0.05]"},
                      options="cells_per_level = 200\n")
    a = sweep(spec, tmp_path / "one.sqlite", workers=1, progress=False)
    b = sweep(spec, tmp_path / "two.sqlite", workers=2, progress=False)
    assert len(a) == 4 * 2 and (a.status == "ok").all()
    keep = [c for c in a.columns if c not in VOLATILE]
    assert a[keep].equals(b[keep])
    assert a.worker.nunique() == 1 and b.worker.nunique() >= 1
    # the stored configuration is complete: evaluating it here gives the stored metrics
    from norsim.experiments.device_eval import evaluate

    for row in a.itertuples():
        cfg = SimConfig.from_toml(row.config_toml)
        m = evaluate(Point(row.point_index, row.replicate, {}, cfg, row.seed, row.spawn_key,
                           options={"cells_per_level": 200}))
        assert m["level_error_rate"] == row.level_error_rate
        assert m["current_error_rms_units"] == row.current_error_rms_units


def test_failing_point_is_recorded_and_the_sweep_goes_on_then_retry(tmp_path):
    flag = tmp_path / "fail-now"
    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": "[280.0, 300.0, 320.0]"},
                      count=1, options=f'fail_points = [1]\nfail_if_exists = "{flag}"\n')
    out = tmp_path / "r.sqlite"
    df = sweep(spec, out, workers=2, progress=False)
    assert list(df.status) == ["ok", "error", "ok"]
    assert "asked to fail at point 1" in df.error[1] and "RuntimeError" in df.traceback[1]
    assert df.error[[0, 2]].isna().all()
    # the closed form of the test evaluator: value = T/100 + rows/1000
    np.testing.assert_allclose(df.value[[0, 2]], [2.8 + 0.256, 3.2 + 0.256])

    # a rerun skips finished points, failed ones included
    before = _rows(out)
    s = run_sweep(spec, out, workers=1, progress=False)
    assert (s.ran, s.skipped) == (0, 3) and _rows(out) == before

    # --retry-failed runs failed points again and never touches successful rows
    spec2 = write_spec(tmp_path, "test", {"device.read.temperature_k": "[280.0, 300.0, 320.0]"},
                       count=1, options=f'fail_points = []\nfail_if_exists = "{flag}"\n',
                       name="spec2.toml")
    with pytest.raises(InputError, match="different options"):  # another spec: refused
        run_sweep(spec2, out, progress=False)
    flag.write_text("")
    spec3 = write_spec(tmp_path, "test", {"device.read.temperature_k": "[280.0, 300.0, 330.0]"},
                       count=1, options=f'fail_points = [1]\nfail_if_exists = "{flag}"\n',
                       name="spec3.toml")
    with pytest.raises(InputError, match="point 2 replicate 0 has another configuration"):
        run_sweep(spec3, out, progress=False)  # a changed value: refused
    s = run_sweep(spec, out, workers=1, progress=False, retry_failed=True)
    assert (s.ran, s.failed) == (1, 1)  # point 1 ran again and failed again
    flag.unlink()
    s = run_sweep(spec, out, workers=1, progress=False, retry_failed=True)
    assert (s.ran, s.failed) == (1, 1)  # still asked to fail at point 1
    after = _rows(out)
    for key in [(0, 0), (2, 0)]:
        assert after[key] == before[key]


def test_more_seeds_extend_a_finished_sweep(tmp_path):
    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": "[280.0, 300.0]"}, count=1)
    out = tmp_path / "r.sqlite"
    run_sweep(spec, out, workers=1, progress=False)
    before = _rows(out)
    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": "[280.0, 300.0]"}, count=3)
    s = run_sweep(spec, out, workers=1, progress=False)
    assert (s.skipped, s.ran) == (2, 4)
    after = _rows(out)
    assert sorted(after) == [(i, r) for i in range(2) for r in range(3)]
    assert all(after[k] == v for k, v in before.items())


def test_appending_to_the_first_axis_extends_appending_to_the_last_is_refused(tmp_path):
    axes = {"device.read.temperature_k": "[280.0, 300.0]", "array.rows": "[64, 128]"}
    out = tmp_path / "r.sqlite"
    run_sweep(write_spec(tmp_path, "test", axes, count=1), out, workers=1, progress=False)
    longer_last = dict(axes, **{"array.rows": "[64, 128, 256]"})
    with pytest.raises(InputError, match="another configuration"):
        run_sweep(write_spec(tmp_path, "test", longer_last, count=1, name="b.toml"), out,
                  progress=False)
    longer_first = dict(axes, **{"device.read.temperature_k": "[280.0, 300.0, 320.0]"})
    s = run_sweep(write_spec(tmp_path, "test", longer_first, count=1, name="c.toml"), out,
                  workers=1, progress=False)
    assert (s.skipped, s.ran) == (4, 2)


def test_a_second_sweep_on_the_same_file_is_refused_while_the_first_runs(tmp_path):
    from norsim.experiments.store import ResultStore

    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": "[280.0]"}, count=1)
    out = tmp_path / "r.sqlite"
    holder = ResultStore.open(out, create=True)  # as a running sweep holds it
    try:
        with pytest.raises(InputError, match="holds its lock"):
            run_sweep(spec, out, workers=1, progress=False)
    finally:
        holder.close()
    assert run_sweep(spec, out, workers=1, progress=False).ran == 1


def test_retry_failed_replaces_error_rows(tmp_path):
    flag = tmp_path / "broken"
    flag.write_text("")
    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": "[280.0, 300.0]"},
                      count=1, options=f'fail_if_exists = "{flag}"\n')
    out = tmp_path / "r.sqlite"
    assert (sweep(spec, out, workers=1, progress=False).status == "error").all()
    flag.unlink()
    df = sweep(spec, out, workers=1, progress=False, retry_failed=True)
    assert (df.status == "ok").all() and df.error.isna().all() and len(df) == 2


def test_workers_run_one_blas_and_numba_thread(tmp_path):
    spec = write_spec(tmp_path, "test-env", {"device.read.temperature_k": "[300.0, 310.0]"},
                      count=1)
    df = sweep(spec, tmp_path / "r.sqlite", workers=2, progress=False)
    assert (df.status == "ok").all(), df.error.tolist()
    for col in ["omp_threads", "openblas_threads", "mkl_threads", "numba_threads"]:
        assert (df[col] == 1).all(), col
    assert (df.in_worker_process == 1).all()
    assert (df.numpy_imported_before_init == 0).all()


def test_progress_bar_shows_done_failures_and_eta(tmp_path, capfd):
    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": "[280.0, 300.0]"},
                      count=1, options="fail_points = [0]\n")
    run_sweep(spec, tmp_path / "r.sqlite", workers=1, progress=True)
    err = capfd.readouterr().err.splitlines()
    assert "1/2 runs" in err[0] and "elapsed" in err[0] and "left" in err[0]   # an ETA
    assert "2/2 runs" in err[1] and "(1 failed)" in err[1]


def test_dask_local_cluster_one_worker_two_points(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": "[290.0, 310.0]"},
                      count=1)
    local = sweep(spec, tmp_path / "local.sqlite", workers=1, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        df = sweep(spec, tmp_path / "dask.sqlite", scheduler=cluster.scheduler_address,
                   progress=False)
        env = sweep(write_spec(tmp_path, "test-env", {"array.rows": "[64]"}, count=1,
                               name="env.toml"),
                    tmp_path / "env.sqlite", scheduler=cluster.scheduler_address, progress=False)
    # Dask's nanny starts workers with one BLAS thread; norsim sets numba to one per task
    assert env.status.tolist() == ["ok"], env.error.tolist()
    assert int(env.numba_threads[0]) == 1 and int(env.omp_threads[0]) == 1
    assert len(df) == 2 and (df.status == "ok").all(), df.error.tolist()
    keep = [c for c in df.columns if c not in VOLATILE]
    assert df[keep].equals(local[keep])


def _children(pid):
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _count(path):
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _wait_for(cond, timeout_s, what):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_worker_and_parent_resume_without_loss(tmp_path):
    psutil = pytest.importorskip("psutil")
    n = 16
    temps = ", ".join(f"{280.0 + 2 * i}" for i in range(n))
    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": f"[{temps}]"}, count=1,
                      options="sleep_s = 0.4\n")
    out = tmp_path / "r.sqlite"
    cmd = [sys.executable, "-m", "norsim.cli.main", "sweep", str(spec), "--out", str(out),
           "--workers", "2", "--no-progress"]
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _count(out) >= 2, 120, "the first rows")
        workers = [p for p in _children(parent.pid) if "spawn_main" in " ".join(p.cmdline())]
        assert workers, "no worker processes found"
        workers[0].send_signal(signal.SIGKILL)
        at_kill = _count(out)
        _wait_for(lambda: _count(out) >= at_kill + 2, 120, "rows after the worker was killed")
        family = _children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
    finally:
        if parent.poll() is None:
            parent.kill()
    # orphaned workers notice the dead parent and exit (no stray processes)
    gone, alive = psutil.wait_procs(family, timeout=15)
    assert not alive, alive
    before = _rows(out)
    assert 0 < len(before) < n, "the parent was not killed mid-run"
    assert all(r["status"] == "ok" for r in before.values())

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{n - len(before)} ran (0 failed), {len(before)} already finished" in r.stdout
    after = _rows(out)
    assert sorted(after) == [(i, 0) for i in range(n)]  # every point exactly once
    assert all(row["status"] == "ok" for row in after.values())
    for key, row in before.items():
        assert after[key] == row  # finished rows untouched
    con = sqlite3.connect(out)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT point_index) FROM points").fetchone() == (n, n)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_sigterm_stops_the_sweep_and_keeps_rows(tmp_path):
    psutil = pytest.importorskip("psutil")
    temps = ", ".join(f"{280.0 + i}" for i in range(12))
    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": f"[{temps}]"}, count=1,
                      options="sleep_s = 0.3\n")
    out = tmp_path / "r.sqlite"
    cmd = [sys.executable, "-m", "norsim.cli.main", "sweep", str(spec), "--out", str(out),
           "--workers", "2", "--no-progress"]
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _count(out) >= 1, 120, "the first row")
    family = _children(parent.pid)
    parent.send_signal(signal.SIGTERM)
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == 130 and "interrupted" in err
    gone, alive = psutil.wait_procs(family, timeout=15)
    assert not alive
    assert 1 <= _count(out) < 12


def test_the_same_store_through_a_symlink_takes_the_same_lock(tmp_path):
    from norsim.experiments.store import ResultStore

    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": "[280.0]"}, count=1)
    real = tmp_path / "r.sqlite"
    holder = ResultStore.open(real, create=True)
    (tmp_path / "alias.sqlite").symlink_to(real)
    try:
        with pytest.raises(InputError, match="holds its lock"):
            run_sweep(spec, tmp_path / "alias.sqlite", workers=1, progress=False)
    finally:
        holder.close()


def test_chip_major_order_runs_replicate_by_replicate_with_the_same_rows(tmp_path):
    """chip_major: every grid point of replicate 0, then of replicate 1 (one worker: the
    finishing order), and the same stored rows as the grid order."""
    spec = write_spec(tmp_path, "test", {"device.read.temperature_k": "[280.0, 300.0, 320.0]"},
                      count=2)
    a = run_sweep(spec, tmp_path / "grid.sqlite", workers=1, progress=False)
    b = run_sweep(spec, tmp_path / "chip.sqlite", workers=1, progress=False, chip_major=True)
    assert a.ran == b.ran == 6
    ra, rb = _rows(tmp_path / "grid.sqlite"), _rows(tmp_path / "chip.sqlite")
    order = [k for k, _ in sorted(rb.items(), key=lambda kv: kv[1]["finished_at"])]
    assert order == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    grid = [k for k, _ in sorted(ra.items(), key=lambda kv: kv[1]["finished_at"])]
    assert grid == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    strip = lambda r: {c: v for c, v in r.items() if c not in VOLATILE}  # noqa: E731
    assert {k: strip(r) for k, r in ra.items()} == {k: strip(r) for k, r in rb.items()}


def test_progress_is_a_line_per_run_without_a_terminal(tmp_path, capsys):
    """Not a terminal (a log, CI): one line per finished run on stderr; a resumed sweep
    says how many runs were already done and counts the rest."""
    spec = write_spec(tmp_path, "device", {"device.read.temperature_k": "[290.0, 300.0]"},
                      options="cells_per_level = 50\n", count=1)
    out = tmp_path / "p.sqlite"
    run_sweep(spec, out, workers=1)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("sweep")]
    assert [ln.split(": ")[1].split(",")[0] for ln in lines] == ["1/2 runs", "2/2 runs"]
    spec2 = write_spec(tmp_path, "device", {"device.read.temperature_k": "[290.0, 300.0, 310.0]"},
                       options="cells_per_level = 50\n", count=1, name="spec2.toml")
    run_sweep(spec2, out, workers=1)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("sweep")]
    assert lines == [ln for ln in lines if "(2 of 3 runs already done): 1/1 runs" in ln]
    assert len(lines) == 1
