"""The data commands: audit and split."""

from __future__ import annotations

import argparse

from retinalnet._core.files import atomic_write_text

__all__ = ["run_audit", "run_split"]


def run_audit(args: argparse.Namespace) -> int:
    from retinalnet._core.classes import kermany_subset
    from retinalnet.cli._stdout import on_stdout, results_stream
    from retinalnet.datasets import audit

    classes = None if args.classes is None else kermany_subset(args.classes, name="--classes")
    report = audit(args.root, classes=classes, progress=not args.quiet)
    if args.out is not None:  # whole or not at all; through a descriptor (/dev/stdout)
        atomic_write_text(args.out, report.to_json() + "\n")
    if args.json and not on_stdout(args.out):  # --out - has printed it: one document
        print(report.to_json())
    elif not args.json:  # the table; on stderr when --out - holds stdout
        print(report, file=results_stream(args.out))
    return 0 if report.ok else 1


def run_split(args: argparse.Namespace) -> int:
    from collections import Counter

    from retinalnet.datasets import KERMANY_CLASSES, patient_split, write_manifest

    rows = patient_split(
        args.root,
        val_fraction=args.val_fraction,
        seed=args.seed,
        drop_duplicates=args.drop_duplicates,
        drop_test_patients=args.drop_test_patients,
        unparsed=args.unparsed,
    )
    path = write_manifest(rows, args.out)
    counts = Counter((row.split, row.label) for row in rows)
    splits = sorted({row.split for row in rows}, key=("train", "val", "test").index)
    keys = [(r.split, str(int(r.patient)) if r.patient else r.path) for r in rows]  # 0042 is 42
    print(f"{'':<8}" + "".join(f"{name:>8}" for name in KERMANY_CLASSES) + f"{'patients':>10}")
    for split in splits:
        cells = "".join(f"{counts[(split, name)]:>8}" for name in KERMANY_CLASSES)
        print(f"{split:<8}{cells}{len({k for s, k in keys if s == split}):>10}")
    print(f"manifest: {path}")
    return 0
