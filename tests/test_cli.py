import subprocess
import sys

import norsim


def _run(*args):
    return subprocess.run([sys.executable, "-m", "norsim.cli.main", *args],
                          capture_output=True, text=True)


def test_version_and_help():
    r = _run("--version")
    assert r.returncode == 0 and norsim.__version__ in r.stdout
    r = _run("--help")
    assert r.returncode == 0 and "demo" in r.stdout


def test_bad_override_prints_one_line_and_fails():
    r = _run("demo", "--set", "device.read.temperature_k=-1", "--out", "/tmp/unused-norsim")
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "device.read.temperature_k" in lines[0], r.stderr
