"""Suite-wide hooks: measured figures that tests print (ONNX agreement, ...) are shown in the
terminal summary of every run, not only with ``-s``."""

from __future__ import annotations

#: test modules whose printed lines are measurement figures to show in the summary
FIGURE_MODULES = ("test_onnx_",)

_figures: list[str] = []


def pytest_runtest_logreport(report):
    if report.when != "call" or not report.passed:
        return
    module = report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    if module.startswith(FIGURE_MODULES) and report.capstdout.strip():
        _figures.extend(ln.strip() for ln in report.capstdout.splitlines() if ln.strip())


def pytest_terminal_summary(terminalreporter):
    if _figures:
        terminalreporter.section("measured figures")
        for line in _figures:
            terminalreporter.write_line(line)
