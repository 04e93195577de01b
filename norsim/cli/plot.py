"""``norsim plot RESULTS --x FIELD --y METRIC``: a metric against an axis, seeds aggregated."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="plot a sweep metric against an axis (mean, chip-to-chip "
                                    "band, test-sampling interval)",
                       description="Plot METRIC against the axis FIELD of a sweep's results: "
                                   "the mean over Monte-Carlo seeds, the chip-to-chip band "
                                   "(+-1 s.d. over seeds, shaded) and, for a proportion with a "
                                   "reported sample count METRIC_n, the 95%% Wilson "
                                   "test-sampling interval (error bars). The data behind the "
                                   "figure is written next to it as CSV.")
    p.add_argument("results", metavar="RESULTS", help="results file of `norsim sweep`")
    p.add_argument("--x", required=True, metavar="FIELD", help="axis on the x axis")
    p.add_argument("--y", required=True, metavar="METRIC", help="metric on the y axis")
    p.add_argument("--hue", metavar="FIELD", default=None, help="axis giving one curve per value")
    p.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                   help="keep only rows with this axis value (repeatable)")
    p.add_argument("--out", required=True, metavar="PNG", help="figure file (PNG)")
    p.add_argument("--logx", action="store_true", help="logarithmic x axis")
    p.add_argument("--logy", action="store_true", help="logarithmic y axis")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from norsim.experiments.plotting import aggregate, plot, write_csv
    from norsim.outputs import check_output_file

    out = check_output_file("--out", args.out, suffix=".png")
    agg = aggregate(args.results, args.x, args.y, hue=args.hue, where=args.where)
    plot(agg, out, logx=args.logx, logy=args.logy)
    csv_path = out.with_suffix(".csv")
    write_csv(agg, csv_path)
    note = f" ({agg.failed_rows} failed runs left out)" if agg.failed_rows else ""
    print(f"wrote {out} and {csv_path}{note}")
    return 0
