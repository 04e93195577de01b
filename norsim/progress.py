"""Progress for anything a user waits on: a tqdm bar on a terminal, one line per step
otherwise (logs, CI, pipes), with elapsed time and an ETA, on stderr."""

from __future__ import annotations

import sys
import time


def _fmt(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


class Progress:
    """``total`` steps of ``work`` units each (the ETA weighs steps by their work).

    ``enabled``: None shows progress (a bar on a terminal, lines otherwise); False is silent.
    ``stream`` defaults to ``sys.stderr`` at construction time.
    """

    def __init__(self, total: int, desc: str, *, unit: str = "step", enabled: bool | None = None,
                 stream=None, total_work: float | None = None):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.total_work = float(total_work) if total_work is not None else float(total)
        self.done, self.work = 0, 0.0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled is not False
        self.t0 = time.perf_counter()
        self.bar = None
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.total, desc=desc, unit=unit, file=self.stream,
                            dynamic_ncols=True, leave=False)

    def eta(self) -> float | None:
        if self.work <= 0:
            return None
        el = time.perf_counter() - self.t0
        return el * (self.total_work - self.work) / self.work

    def step(self, note: str = "", work: float = 1.0) -> None:
        self.done += 1
        self.work += work
        if not self.enabled:
            return
        if self.bar is not None:
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(1)
            return
        eta = self.eta()
        el = time.perf_counter() - self.t0
        msg = (f"{self.desc}: {self.done}/{self.total} {self.unit}s, {_fmt(el)} elapsed"
               + ("" if eta is None or self.done >= self.total else f", about {_fmt(eta)} left")
               + (f" ({note})" if note else ""))
        print(msg, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

