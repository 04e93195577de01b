"""``norsim zoo``: the committed pre-trained QuantModels and their accuracy tables."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="list the model zoo (pre-trained 4-bit QuantModels)")
    p.add_argument("--table", action="store_true",
                   help="print every entry with its accuracy table and training command")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from norsim import zoo

    entries = zoo.entries()
    if not args.table:
        for e in entries:
            print(e["name"])
        return 0
    print(zoo.format_table(entries))
    return 0
