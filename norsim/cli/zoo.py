"""``norsim zoo``: the committed pre-trained QuantModels and their accuracy tables."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="list the model zoo (pre-trained 4-bit QuantModels)")
    p.add_argument("--table", action="store_true",
                   help="print every entry with its accuracy table and training command")
    p.add_argument("--build", metavar="RUN_DIR",
                   help="(maintainers, needs norsim[train]) export a finished `norsim train` "
                        "run into the zoo as --name")
    p.add_argument("--refresh-check", metavar="NAME",
                   help="(maintainers, needs norsim[train]) rerun entry NAME's export check "
                        "(torch fake-quant vs committed model) on its full test set")
    p.add_argument("--name", help="zoo entry name for --build, e.g. lenet-mnist-4b")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="data root for --build and --refresh-check (default: $NORSIM_DATA, "
                        "else ../shared/data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from norsim import zoo

    if args.build:
        import norsim.qat  # noqa: F401  (clear message without torch)
        from norsim.errors import InputError
        from norsim.qat.zoo_entry import build_entry

        if not args.name:
            raise InputError("--name", None, "an entry name with --build")
        e = build_entry(args.build, args.name, data_dir=args.data_dir)
        print(json.dumps(e["accuracy"]))
        return 0
    if args.refresh_check:
        import norsim.qat  # noqa: F401  (clear message without torch)
        from norsim.qat.zoo_entry import refresh_export_check

        e = refresh_export_check(args.refresh_check, data_dir=args.data_dir)
        print(json.dumps(e["export_check"]))
        return 0
    entries = zoo.entries()
    if not args.table:
        for e in entries:
            print(e["name"])
        return 0
    print(zoo.format_table(entries))
    seed_table = zoo.ZOO_DIR / "seed_table.md"   # written by scripts/seed_table.py
    if seed_table.is_file():
        print("\nSeed table (docs/results.md; rebuild: python scripts/seed_table.py):\n")
        print(seed_table.read_text().rstrip())
    return 0
