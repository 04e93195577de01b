"""``norsim fit``: device models fitted to a chip's measurements with honest uncertainties."""

from __future__ import annotations

import argparse

from norsim.cli.common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="fit the device layer to measurement files (I-V sweeps, "
                       "repeated reads, post-programming maps, bake logs): a preset TOML, a JSON "
                       "of uncertainties, correlations and degenerate combinations, residual plots "
                       "(docs/fitting.md)")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="measurement files: CSV with unit-named columns (e.g. "
                        "v_cg_V,v_d_V,temp_K,i_d_A), .npz or structured .npy (no pickle)")
    add_config_args(p)
    p.add_argument("--out", default="fit", help="folder for fitted.toml, fit.json and the "
                   "plots (default fit)")
    p.add_argument("--plan", action="store_true", help="only say which parameters these "
                   "files determine and which measurements are missing")
    p.add_argument("--no-plots", action="store_true", help="skip the residual plots")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.plan:
        from norsim.fit.plan import format_plan, plan

        print(format_plan(plan(args.files, cfg)))
        return 0
    from norsim.fit.run import PRESET_FILE, SIDECAR_FILE, format_summary, run_fit
    from norsim.outputs import check_output_dir

    check_output_dir("--out", args.out)  # before any fitting
    side = run_fit(args.files, cfg, args.out, plots=not args.no_plots)
    print(format_summary(side))
    print(f"\npreset {args.out}/{PRESET_FILE} (use with --config), uncertainties in "
          f"{args.out}/{SIDECAR_FILE}, plots: {', '.join(side['figures']) or 'none'}")
    return 0
