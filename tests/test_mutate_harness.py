"""The mutation harness's journal (issue 26): a killed run resumes where it stopped, a
changed module or test reruns, and the resumed mutants count in the score and the time.
No real mutation run: a tiny module in a temporary folder and a fake copy whose "tests"
kill some mutants and report fixed times."""

import argparse
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import mutate  # noqa: E402
from mutants import sites  # noqa: E402

SOURCE = '''def f(a, b):
    return a + b * 2


def g(x):
    if x > 3:
        return x - 1
    return -x
'''
REL, TEST = "pkg/tiny.py", "tests/test_tiny.py"


class FakeWorker:
    """A copy whose tests kill a mutant unless it left ``a + b`` alone (so some survive);
    each test run takes ``secs`` "seconds"; ``stop_after`` runs it raises KeyboardInterrupt
    (a killed run), the mutant still in the copy."""

    def __init__(self, root: Path, secs=1.5, stop_after=None):
        self.dir, self.cache, self.secs, self.stop_after = root, root / "no-cache", secs, stop_after
        self.runs = 0
        self.inflight = None

    def pytest(self, tests, timeout):
        self.runs += 1
        if self.stop_after is not None and self.runs > self.stop_after:
            raise KeyboardInterrupt
        src = (self.dir / REL).read_text()
        return ("survived" if "a + b" in src else "killed"), self.secs, ""

    def mark_inflight(self, rel):
        self.inflight = rel

    def kill(self):
        pass


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / REL).write_text(SOURCE)
    (tmp_path / TEST).write_text("def test_f(): pass\n")
    monkeypatch.setitem(mutate.MODULES, "tiny", (REL, (TEST,)))
    return tmp_path


def _args(snapshot, max_mutants=0):
    return argparse.Namespace(extra_tests=[], snapshot=snapshot, max_mutants=max_mutants, seed=0,
                              survivors_of=None, skip_equivalent=False, baseline_timeout=900.0,
                              min_timeout=60.0, timeout_factor=3.0)


def _run(root, journal_path, worker=None, max_mutants=0):
    import queue

    w = worker or FakeWorker(root)
    q = queue.Queue()
    q.put(w)
    journal = mutate.Journal(journal_path)
    return mutate.run_module("tiny", _args(root, max_mutants), q, {}, journal), w


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_finished_run_is_resumed_whole(tiny):
    journal = tiny / "j" / "journal.jsonl"
    first, w1 = _run(tiny, journal)
    n = len(sites(SOURCE))
    assert first["mutants"] == n and first["resumed"] == 0 and w1.runs == n + 1
    assert 0 < first["killed"] < n and first["survivors"] == n - first["killed"]
    entries = _lines(journal)
    assert [e["kind"] for e in entries] == ["baseline"] + ["mutant"] * n
    assert {e["fp"] for e in entries} == {entries[0]["hashes"]["id"]}
    assert entries[0]["hashes"]["tests"].keys() == {TEST}
    assert first["seconds"] == pytest.approx(1.5 * (n + 1))
    second, w2 = _run(tiny, journal)
    assert w2.runs == 0  # neither the baseline nor any mutant runs again
    assert second["resumed"] == n
    for k in ("mutants", "killed", "survivors", "equivalent", "score", "survived", "seconds"):
        assert second[k] == first[k], k
    assert len(_lines(journal)) == n + 1  # nothing appended


def test_a_killed_run_resumes_where_it_stopped(tiny):
    journal = tiny / "journal.jsonl"
    whole, _ = _run(tiny, tiny / "other.jsonl")
    stopper = FakeWorker(tiny, stop_after=3)  # the baseline and two mutants, then killed
    with pytest.raises(KeyboardInterrupt):
        _run(tiny, journal, stopper)
    assert (tiny / REL).read_text() == SOURCE  # the copy's source put back
    assert stopper.inflight is None
    assert [e["kind"] for e in _lines(journal)] == ["baseline", "mutant", "mutant"]
    again, w = _run(tiny, journal)
    n = whole["mutants"]
    assert again["resumed"] == 2 and w.runs == 1 + n - 2   # a new baseline, the rest
    for k in ("mutants", "killed", "survivors", "score", "survived"):
        assert again[k] == whole[k], k
    # time summed over both runs: two baselines and every mutant once
    assert again["seconds"] == pytest.approx(1.5 * (n + 2))


@pytest.mark.parametrize("changed", [REL, TEST, "mutants"])
def test_a_changed_module_test_or_operator_reruns(tiny, changed, monkeypatch):
    journal = tiny / "journal.jsonl"
    first, _ = _run(tiny, journal)
    if changed == "mutants":  # the harness's mutation operators
        fake = tiny / "mutants.py"
        fake.write_text((ROOT / "scripts" / "mutants.py").read_text() + "\n# changed\n")
        real = mutate.fingerprint
        monkeypatch.setattr(mutate, "fingerprint",
                            lambda root, rel, tests, _m: real(root, rel, tests, fake))
    else:
        (tiny / changed).write_text((tiny / changed).read_text() + "\n# changed\n")
    again, w = _run(tiny, journal)
    assert again["resumed"] == 0 and w.runs == first["mutants"] + 1
    assert again["seconds"] == pytest.approx(first["seconds"])  # the old runs don't count


def test_only_the_sampled_mutants_and_their_outcomes_are_taken(tiny):
    journal = tiny / "journal.jsonl"
    some, _ = _run(tiny, journal, max_mutants=3)
    assert some["mutants"] == 3
    full, w = _run(tiny, journal)   # every site: the three journaled ones resume
    assert full["resumed"] == 3 and w.runs == 1 + full["mutants"] - 3


def test_torn_lines_and_errors_are_not_resumed(tiny):
    journal = tiny / "journal.jsonl"
    first, _ = _run(tiny, journal)
    entries = _lines(journal)
    entries[1]["status"] = "error"  # no test collected then: run again
    journal.write_text("".join(json.dumps(e) + "\n" for e in entries) + '{"kind": "mut')
    j = mutate.Journal(journal)
    assert j.bad_lines == 1
    again, w = _run(tiny, journal)
    assert again["resumed"] == first["mutants"] - 1 and w.runs == 2


def test_no_journal_reads_and_writes_nothing(tiny):
    j = mutate.Journal(None)
    res, w = _run(tiny, None)
    assert res["resumed"] == 0 and w.runs == res["mutants"] + 1
    assert j.path is None and not list(tiny.glob("**/*.jsonl"))


def test_the_journal_appends_whole_fsynced_lines(tmp_path):
    j = mutate.Journal(tmp_path / "a" / "b.jsonl")
    site = sites(SOURCE)[0]
    hashes = {"id": "x"}
    j.record_mutant("tiny", site, hashes, "killed", 2.25)
    j.record_baseline("tiny", hashes, 1.0)
    lines = (tmp_path / "a" / "b.jsonl").read_text().splitlines()
    assert len(lines) == 2
    e = json.loads(lines[0])
    assert e["key"] == site.key("tiny") and e["status"] == "killed" and e["seconds"] == 2.25
    assert e["line"] == site.line and e["time"].endswith("Z")
    assert mutate.Journal(tmp_path / "a" / "b.jsonl").lookup("tiny", site, "x")["seconds"] == 2.25


def test_the_default_journal_and_the_options():
    assert mutate.JOURNAL == ROOT / "results" / "mutation" / "journal.jsonl"
    makefile = (ROOT / "Makefile").read_text()
    assert "--no-journal" not in makefile.split("MUTATE_ARGS ?=")[1].splitlines()[0]


def test_tests_killed_by_an_interrupted_run_are_no_outcome(tmp_path):
    """With two jobs an interrupted harness kills the copies' running tests; their exit
    status must not be taken (and journaled) as a killed mutant."""
    import threading
    import time

    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(60)\n")
    w = mutate.Worker.__new__(mutate.Worker)
    w.dir, w.env = tmp_path, dict(__import__("os").environ, PYTHONDONTWRITEBYTECODE="1")
    caught = []

    def run():
        try:
            caught.append(w.pytest(["test_slow.py"], timeout=120))
        except KeyboardInterrupt as e:
            caught.append(e)

    t = threading.Thread(target=run)
    t.start()
    while w.proc is None:
        time.sleep(0.01)
    time.sleep(0.3)
    w.kill()
    t.join(30)
    assert not t.is_alive() and len(caught) == 1 and isinstance(caught[0], KeyboardInterrupt)
