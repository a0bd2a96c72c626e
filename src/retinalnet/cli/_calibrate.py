"""The ``calibrate`` command: fit a checkpoint's temperature on a split and store it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from retinalnet._core.json_text import strict_json

if TYPE_CHECKING:
    from retinalnet.predictor import SkippedImage

__all__ = ["run_calibrate"]


def run_calibrate(args: argparse.Namespace) -> int:
    import contextlib
    import os
    from pathlib import Path

    from retinalnet.cli._stdout import on_stdout, one_output_on_stdout
    from retinalnet.training import RunLock

    one_output_on_stdout(  # a checkpoint's bytes and JSON lines do not share stdout
        {f"--out {args.out}": on_stdout(args.out), "--json": bool(args.json)},
        "write the checkpoint to a file (--out calibrated.pt)",
    )
    # --out the checkpoint itself is written in place; a hard link of it gets a file of its
    # own (the atomic write replaces the name), and the checkpoint stays as it was
    if (
        args.out is not None
        and args.out.exists()
        and os.path.realpath(args.out) == os.path.realpath(args.checkpoint)
    ):
        args.out = None
    # in place, the folder's run lock is held from the read to the write: a live training
    # run there (which holds it) is named and nothing is done, and no run starts meanwhile
    in_place = args.out is None
    with RunLock(Path(args.checkpoint).parent) if in_place else contextlib.nullcontext():
        return _calibrate(args)


def _calibrate(args: argparse.Namespace) -> int:
    import dataclasses
    import warnings

    from retinalnet._core.opened_file import copy_if_unchanged
    from retinalnet.checkpoint import load_checkpoint, set_checkpoint_temperature
    from retinalnet.cli._skip import print_skipped, readable_split
    from retinalnet.cli._split_data import split_data, study_classes
    from retinalnet.cli._stdout import results_stream
    from retinalnet.cli._trained_on import refuse_images_trained_on
    from retinalnet.training import calibrate

    checkpoint = load_checkpoint(args.checkpoint)
    fitted_on = checkpoint.sha256  # the bytes the model is built from: the weights fitted
    if args.split == "test":
        warnings.warn(
            "fitting the temperature on the test split flatters the calibration (ECE) "
            "reported on it: fit on the validation split (--split val) and report on test",
            UserWarning,
            stacklevel=1,
        )
    model = checkpoint.build_model()
    # a model of some of the classes (CNV against NORMAL) is scored on their images
    data = split_data(
        args.data, args.split, args.manifest, study_classes(model.classes), on_error=args.on_error
    )
    refuse_images_trained_on(checkpoint, data, args.data, command="calibrate")
    skipped: list[SkippedImage] = []
    if args.on_error == "skip":  # as evaluate: left out, not replaced, and listed at the end
        data, skipped = readable_split(data, model.preprocessing.load, progress=not args.quiet)
    result = calibrate(
        model,
        data,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        num_workers=args.workers,
    )
    result = dataclasses.replace(result, images=f"images of the {args.split} split")
    target = args.out if args.out is not None else args.checkpoint
    if result.applied:  # --out is written once, whole: never a copy still uncalibrated
        set_checkpoint_temperature(
            args.checkpoint, result.temperature, expected_sha256=fitted_on, out=args.out
        )
    # asked for a file: the checkpoint loaded (the file's bytes, if still those), said so below
    elif args.out is not None and not copy_if_unchanged(args.checkpoint, args.out, fitted_on or ""):
        raise ValueError(
            f"{str(args.checkpoint)!r} changed after it was loaded (did a training run "
            f"write it?); nothing was written to {str(args.out)!r}, which would not be "
            "the checkpoint the fit was made on: calibrate it again once no run writes it"
        )
    if args.json:
        written = str(target) if result.applied or args.out is not None else None
        left_out = [{"source": s.source, "reason": s.reason} for s in skipped]
        print(
            strict_json({**result.to_dict(), "checkpoint": written, "skipped": left_out}, indent=2)
        )
    elif result.applied:  # on stderr when --out - holds stdout
        print(f"{result}\nwrote {target}", file=results_stream(args.out))
    elif args.out is not None:
        print(
            f"{result}\nwrote {args.out}: {args.checkpoint} as it was, uncalibrated",
            file=results_stream(args.out),
        )
    else:
        print(f"{result}\n{args.checkpoint} left as it was")
    print_skipped("calibrate", skipped)
    return 0
