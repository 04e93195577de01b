#!/usr/bin/env python3
"""Stage CIFAR-10 for the GPU machine in parts that fit one device call each.

The device tool carries at most 64 MiB per call (working tree included), so the six npz
files (about 170 MB) travel in three calls, each carrying one folder of ``data_cache/``
(git-ignored). Files carried by an earlier call stay on the warm machine, so the third call
finds all of them. The machine is given back about 30 s after a call ends: make the three
calls back to back.

    python scripts/stage_cifar.py                 # copy + verify, print the three calls
    python scripts/stage_cifar.py --lossless      # also part 4: train_lossless_first4000.npz
    python3 scripts/stage_cifar.py --verify data_cache   # on the GPU machine: sha256 check

See docs/results.md ("Reproducing on a GPU") for the full sequence.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARTS = {
    "cifar10_p1": ["train_0.npz", "train_1.npz"],
    "cifar10_p2": ["train_2.npz", "train_3.npz"],
    "cifar10_p3": ["train_4.npz", "test.npz"],
}
LOSSLESS = {"cifar10_p4": ["train_lossless_first4000.npz"]}
CALL_LIMIT = 64 * 2 ** 20

TRAIN_CMD = ("PYTHONPATH=. PYTHONUNBUFFERED=1 python3 scripts/stage_cifar.py --verify "
             "data_cache && PYTHONPATH=. PYTHONUNBUFFERED=1 timeout 560 python3 "
             "scripts/train_cifar_gpu.py --data-dir data_cache --out /tmp/run --tar-dir $OUT "
             "--budget-s 540 --check-sha 2>&1 | tee $OUT/train.log")


def tree_bytes() -> int:
    """Bytes of the files that travel anyway (tracked + untracked, not ignored)."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum((ROOT / f).stat().st_size for f in out.decode().split("\0")
               if f and (ROOT / f).is_file())


def stage(src: Path, dest: Path, lossless: bool) -> list[tuple[str, int]]:
    from norsim.qat.gpu_recipe import CIFAR_SHA256, sha256

    parts = PARTS | (LOSSLESS if lossless else {})
    sizes = []
    for part, files in parts.items():
        d = dest / part
        d.mkdir(parents=True, exist_ok=True)
        for f in files:
            if not (d / f).is_file() or (d / f).stat().st_size != (src / f).stat().st_size:
                shutil.copyfile(src / f, d / f)
            if sha256(d / f) != CIFAR_SHA256[f]:
                raise SystemExit(f"error: {d / f}: sha256 differs from the published sum")
        sizes.append((part, sum((d / f).stat().st_size for f in files)))
    return sizes


def verify(dest: Path) -> int:
    from norsim.qat.gpu_recipe import CIFAR_SHA256, sha256

    bad = 0
    for f, want in CIFAR_SHA256.items():
        hits = sorted(dest.rglob(f))
        if not hits:
            print(f"missing  {f}")
            continue
        ok = sha256(hits[0]) == want
        bad += not ok
        print(f"{'ok      ' if ok else 'MISMATCH'} {hits[0]}")
    return 1 if bad else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    p.add_argument("--dest", default=str(ROOT / "data_cache"))
    p.add_argument("--lossless", action="store_true")
    p.add_argument("--verify", metavar="DIR", help="only check the sha256 of staged files")
    a = p.parse_args(argv)
    if a.verify:
        return verify(Path(a.verify))
    sizes = stage(Path(a.src), Path(a.dest), a.lossless)
    tree = tree_bytes()
    print(f"working tree that travels with every call: {tree / 2**20:.1f} MiB")
    rel = Path(a.dest).resolve().relative_to(ROOT) if Path(a.dest).resolve().is_relative_to(ROOT) \
        else Path(a.dest)
    n = len(sizes)
    for i, (part, size) in enumerate(sizes, 1):
        total = size + tree
        flag = "" if total <= CALL_LIMIT else "  <-- OVER THE 64 MiB LIMIT"
        last = part == "cifar10_p3"
        cmd = TRAIN_CMD if last else "ls -la data_cache/*"
        print(f"\ncall {i}/{n}: carry=[\"{rel}/{part}\"]  ({total / 2**20:.1f} MiB){flag}"
              f"{'  timeout_s=600' if last else ''}\n"
              f"  command: {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
