"""benchmarks/_threads.py (issue 26): both sides of every benchmark ratio on the same threads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numba
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "_threads.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_threads", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pin_sets_numba_and_blas_to_the_same_count_and_records_them(monkeypatch):
    pytest.importorskip("threadpoolctl")
    th = _module()
    before = numba.get_num_threads()
    try:
        monkeypatch.setenv(th.ENV, "1")
        rec = th.pin()
        assert rec["bench_threads"] == 1 and rec["numba_threads"] == 1
        assert rec["blas_threads"] in (1, None) and rec["threads_equal"]
        # something that changes numba's count afterwards shows in the record
        if numba.config.NUMBA_NUM_THREADS > 1:
            numba.set_num_threads(2)
            assert not th.record()["threads_equal"]
    finally:
        numba.set_num_threads(before)
        th._limits.restore_original_limits()


@pytest.mark.parametrize("raw", ["0", "two", "-1"])
def test_bad_thread_count_is_refused_with_the_variable_named(monkeypatch, raw):
    th = _module()
    monkeypatch.setenv(th.ENV, raw)
    with pytest.raises(SystemExit, match=th.ENV):
        th.bench_threads()


def test_default_is_two_threads_or_the_cores_there_are(monkeypatch):
    th = _module()
    monkeypatch.delenv(th.ENV, raising=False)
    monkeypatch.setattr(th.os, "cpu_count", lambda: 1)
    assert th.bench_threads() == 1
    monkeypatch.setattr(th.os, "cpu_count", lambda: 16)
    assert th.bench_threads() == 2


def test_every_benchmark_pins_and_records_its_threads():
    scripts = sorted(_PATH.parent.glob("bench_*.py"))
    assert len(scripts) >= 8
    missing = [p.name for p in scripts
               if "from _threads import pin, record" not in (text := p.read_text())
               or "pin(" not in text or "record()" not in text]
    assert not missing, f"benchmarks without benchmarks/_threads.py pin()/record(): {missing}"
