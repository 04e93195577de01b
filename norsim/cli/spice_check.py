"""``norsim spice-check``: circuit mode against ngspice on one seeded array.

    norsim spice-check --rows 32 --cols 32 --seed 0 [--stress] [--json]

Writes the netlist of the array (cells as behavioural EKV sources, wires as resistors), runs
``ngspice -b`` with reltol 1e-7, abstol 1e-18, vntol 1e-10, and compares every column current
and node voltage. ``--stress`` uses cell currents of 0.3-1 uA and 20x the wire resistances so
the IR drop moves column currents by more than 5 %; the JSON then reports
``ir_delta_error_rel``: how well norsim's I_circuit - I_ideal matches ngspice's. The netlist
carries the configured ground network (``strap_model``: shared vertical straps with their
pads, or ideal taps); ``--set array.wires.r_strap_pitch_ohm=2 --set
"array.wires.strap_pads='one'"`` checks a harsher strap. Bounds tested in the suite
(tests/test_spice_check.py): ``max_column_error_rel <= 1e-6`` and ``ir_delta_error_rel <=
1e-3`` in nominal, stress and strap-network cases.
"""

from __future__ import annotations

import argparse
import json

from norsim.cli.common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spice-check", help="cross-check circuit mode (IR drop) against ngspice")
    p.add_argument("--rows", type=int, default=32, help="array rows (default 32)")
    p.add_argument("--cols", type=int, default=32, help="array columns (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the V_th map and input vector")
    p.add_argument("--stress", action="store_true",
                   help="stress case: large currents and resistances (> 5%% IR-drop error)")
    p.add_argument("--ngspice", default=None, help="ngspice executable (default: ngspice on PATH)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from norsim.array.spice import spice_check

    cfg = config_from_args(args)
    out = spice_check(cfg, args.rows, args.cols, args.seed, stress=args.stress,
                      ngspice=args.ngspice)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"spice-check {out['rows']} x {out['cols']} {out['cell_type']} seed {out['seed']}"
          f"{' (stress)' if out['stress'] else ''}")
    print(f"  largest column current      {out['max_column_current_a']:.4e} A")
    print(f"  max column error            {out['max_column_error_rel']:.3e} of the largest")
    print(f"  max node-voltage error      {out['max_node_error_v']:.3e} V")
    print(f"  IR-drop effect (ngspice)    {out['ir_drop_error_rel']:.3e} of the largest")
    print(f"  IR-delta error              {out['ir_delta_error_rel']:.3e} of the largest delta")
    print(f"  norsim {out['norsim_seconds']:.3f} s, ngspice analysis "
          f"{out['ngspice_analysis_seconds']:.3f} s")
    return 0
