"""Progress without a terminal: a line per step with its count, elapsed time and an ETA
weighted by work; silent when disabled."""

import io

from norsim.progress import Progress, _fmt


def test_a_line_per_step_with_eta_until_the_last():
    out = io.StringIO()                       # not a terminal: lines, no bar
    p = Progress(3, "job", unit="run", stream=out, total_work=4.0)
    for w in (1.0, 2.0, 1.0):
        p.step("note", work=w)
    p.close()
    lines = out.getvalue().splitlines()
    assert [ln.split(",")[0] for ln in lines] == ["job: 1/3 runs", "job: 2/3 runs",
                                                  "job: 3/3 runs"]
    assert all("left" in ln for ln in lines[:2]) and "left" not in lines[2]
    assert all(ln.endswith("(note)") for ln in lines)
    assert p.work == 4.0 and p.eta() == 0.0


def test_disabled_is_silent_and_times_read_as_people_write_them():
    out = io.StringIO()
    p = Progress(2, "job", stream=out, enabled=False)
    p.step()
    p.step()
    assert out.getvalue() == ""
    assert [_fmt(5), _fmt(75), _fmt(3 * 3600 + 120)] == ["5 s", "1 min 15 s", "3 h 02 min"]
