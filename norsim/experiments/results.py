"""Results as a table: one row per (grid point, replicate), axes and metrics as columns."""

from __future__ import annotations

from pathlib import Path

from norsim.errors import ExternalToolError
from norsim.experiments.store import ResultStore

BASE_COLUMNS = ("point_index", "replicate", "seed", "status")
TAIL_COLUMNS = ("error", "wall_s", "norsim_version", "worker", "finished_at", "spawn_key",
                "config_toml", "traceback")


def metric_column(name: str, axes) -> str:
    """A metric's column; ``metric.<name>`` if the name is taken by an axis or a base column."""
    return f"metric.{name}" if name in axes or name in BASE_COLUMNS + TAIL_COLUMNS else name


def flat_rows(out: str | Path) -> tuple[list[dict], list[str], list[str]]:
    """(rows with axes and metrics flattened, axis names, metric names) of a results file."""
    with ResultStore.open(out) as store:
        rows = store.rows()
    axes: list[str] = []
    metrics: list[str] = []
    flat = []
    for row in rows:
        rec = {k: row[k] for k in BASE_COLUMNS}
        for k, v in row["axes"].items():
            if k not in axes:
                axes.append(k)
            rec[k] = v
        for k, v in row["metrics"].items():
            if k not in metrics:
                metrics.append(k)
            rec[metric_column(k, row["axes"])] = v
        for k in TAIL_COLUMNS:
            rec[k] = row[k]
        flat.append(rec)
    return flat, axes, metrics


def require_pandas():
    try:
        import pandas
    except ImportError:
        raise ExternalToolError("norsim.sweep/load_results return a pandas DataFrame: "
                                "pip install 'norsim[notebooks]'") from None
    return pandas


def load_results(out: str | Path):
    """A pandas DataFrame of a results file (needs the ``notebooks`` extra: pandas)."""
    pd = require_pandas()
    rows, axes, metrics = flat_rows(out)
    metric_cols = [metric_column(m, axes) for m in metrics]
    columns = list(BASE_COLUMNS) + axes + metric_cols + list(TAIL_COLUMNS)
    return pd.DataFrame(rows, columns=columns)
