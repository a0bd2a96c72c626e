"""``retinalnet export``: a checkpoint as an ONNX model, parity checked."""

from __future__ import annotations

import argparse
import importlib.util
import math
from pathlib import Path

from retinalnet.cli._argtypes import file_argument, int_in_range, path_argument

__all__ = ["add_export_command", "require_onnx", "run_export"]


def require_onnx(
    command: str, names: tuple[str, ...] = ("onnx", "onnxscript", "onnxruntime")
) -> None:
    """Stop before any work when an ONNX package the command needs is not installed.

    Raises
    ------
    RuntimeError
        Naming the missing packages and the pip command (one line on the command line).
    """
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeError(
            f"{command} needs {', '.join(missing)}, not installed: pip install 'retinalnet[onnx]'"
        )


def _spread(items: list[Path], count: int) -> list[Path]:
    """At most ``count`` of ``items``, evenly spaced (every class of a sorted Kermany tree)."""
    if len(items) <= count:
        return items
    return [items[index * len(items) // count] for index in range(count)]


def _tolerance(text: str) -> float:
    """An argparse type: a probability difference in (0, 1) (``--tolerance``), the rule of
    :func:`~retinalnet.export.check_parity` said in the CLI's words, before any work: at 1
    or more (``1`` meant as 1%) no probability can differ by more, and the check never fails.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1e-4, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value < 1):
        fraction = (
            "; it is a fraction of 1, not a percentage (the default 1e-4 allows 0.01 "
            "percentage points)"
            if value >= 1
            else ""
        )
        raise argparse.ArgumentTypeError(
            f"must be a probability difference in (0, 1), got {text}{fraction}"
        )
    return value


_tolerance.__name__ = "tolerance"  # how argparse names the type in its messages


def add_export_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``export`` subcommand."""
    export = commands.add_parser(
        "export",
        help="write a checkpoint as an ONNX model (probabilities out, class names and "
        "preprocessing inside), checked against PyTorch",
    )
    export.add_argument(
        "--checkpoint", required=True, type=path_argument, help="a checkpoint written by retinalnet"
    )
    export.add_argument(
        "--format", choices=["onnx"], default="onnx", help="model format (default: %(default)s)"
    )
    export.add_argument(
        "--out",
        required=True,
        type=file_argument("model.onnx"),
        metavar="FILE",
        help="file to write",
    )
    export.add_argument(
        "--images",
        type=path_argument,
        nargs="+",
        default=None,
        metavar="PATH",
        help="images or folders for the parity check (a few real scans are best; default: "
        "four synthetic images)",
    )
    export.add_argument(
        "--max-images",
        type=int_in_range(1),
        default=16,
        metavar="N",
        help="use at most N of the --images, evenly spread over them, for the parity check "
        "(default: %(default)s)",
    )
    export.add_argument(
        "--tolerance",
        type=_tolerance,
        default=None,
        help="largest probability difference allowed between ONNX and PyTorch, a fraction in "
        "(0, 1) (default: 1e-4)",
    )
    export.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")


def run_export(args: argparse.Namespace) -> int:
    from retinalnet.cli._image_paths import image_paths
    from retinalnet.cli._stdout import results_stream
    from retinalnet.export import PARITY_TOLERANCE, to_onnx

    require_onnx("ONNX export")
    images: list[Path] | None = None
    if args.images is not None:
        images = _spread(image_paths(args.images), args.max_images)
    tolerance = PARITY_TOLERANCE if args.tolerance is None else args.tolerance
    result = to_onnx(args.checkpoint, args.out, images=images, tolerance=tolerance)
    parity = result.parity
    print(  # on stderr when --out - holds stdout
        f"wrote {result.path} (ONNX opset {result.opset}); parity with PyTorch on "
        f"{parity.images} image(s): max probability difference {parity.max_abs_diff:.2g} "
        f"(tolerance {parity.tolerance:g})",
        file=results_stream(args.out),
    )
    return 0
