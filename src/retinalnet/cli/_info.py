"""``retinalnet info``: what a checkpoint or an ONNX export is."""

from __future__ import annotations

import argparse
from typing import Any

from retinalnet._core.json_text import strict_json
from retinalnet.cli._argtypes import path_argument

__all__ = ["add_info_command", "format_info", "run_info"]


def add_info_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``info`` subcommand."""
    info = commands.add_parser(
        "info",
        help="what a checkpoint (or ONNX export) is: architecture, classes, preprocessing, "
        "training, sha256",
    )
    info.add_argument(
        "path",
        type=path_argument,
        metavar="FILE",
        help="a checkpoint (best.pt) or an exported .onnx",
    )
    info.add_argument("--json", action="store_true", help="print JSON instead of lines")
    info.set_defaults(quiet=False)


def _metric(best: dict[str, Any] | None, percent: bool = False) -> str:
    if best is None:
        return "-"
    value = f"{100 * best['value']:.1f}%" if percent else f"{best['value']:.4f}"
    return f"{value} (epoch {best['epoch']})"


def _parameters(info: dict[str, Any]) -> str:
    counts = info.get("parameters")
    if counts is None:
        return f"{info['stored_values']:,} stored values (a network built by hand)"
    if "counted_in" in counts:  # an ONNX graph's values
        return f"{counts['total']:,} ({counts['counted_in']})"
    trained = info.get("training", {}).get("trained")
    if counts.get("trainable") is None:
        return f"{counts['total']:,} (trainable {trained})"
    parts = f": {trained}" if trained else ""
    return f"{counts['total']:,} ({counts['trainable']:,} trainable{parts})"


def _preprocessing(settings: dict[str, Any]) -> str:
    mean = ", ".join(f"{v:g}" for v in settings["mean"])
    std = ", ".join(f"{v:g}" for v in settings["std"])
    decode = "reduced JPEG decode" if settings["reduced_decode"] else "full decode"
    return (
        f"resize {settings['resize']}, centre crop {settings['size']}, mean ({mean}), "
        f"std ({std}), {decode}"
    )


def format_info(info: dict[str, Any]) -> list[str]:
    """The lines ``retinalnet info`` prints for :func:`retinalnet.export.describe` output."""
    kind = "ONNX model" if info["kind"] == "onnx" else "checkpoint"
    temperature = info.get("temperature")
    rows = [
        ("file", f"{info['file']} ({kind})"),
        ("architecture", info.get("arch") or "a network built by hand"),
        ("classes", ", ".join(info["classes"])),
        ("preprocessing", _preprocessing(info["preprocessing"])),
        ("parameters", _parameters(info)),
        ("temperature", "none (not calibrated)" if temperature is None else f"{temperature:g}"),
    ]
    training = info.get("training")
    if training is not None:
        seconds = training["seconds"]
        rows += [
            ("epochs", str(training["epochs"])),
            ("seed", str(training["seed"])),
            ("best val loss", _metric(training["best_val_loss"])),
            ("best val acc", _metric(training["best_val_accuracy"], percent=True)),
            ("training time", "-" if seconds is None else f"{seconds:.0f} s"),
            ("resumable", "yes" if training["resumable"] else "no (no optimizer state)"),
        ]
    if info["kind"] == "onnx":
        sha = info.get("checkpoint_sha256") or "- (exported from a model in memory)"
        rows += [
            ("opset", str(info["opset"])),
            (
                "parity",
                f"max difference {info['parity_max_abs_diff']:.2g} on "
                f"{info['parity_images']} image(s)",
            ),
            ("checkpoint sha256", sha),
        ]
    rows += [
        ("written by", f"retinalnet {info['retinalnet_version']}"),
        ("sha256", info["sha256"]),
    ]
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {value}" for name, value in rows]


def run_info(args: argparse.Namespace) -> int:
    from retinalnet.cli._export import require_onnx
    from retinalnet.export import describe

    if args.path.suffix.lower() == ".onnx":
        require_onnx("reading an ONNX file", ("onnx",))
    info = describe(args.path)
    if args.json:
        print(strict_json(info, indent=2))
    else:
        print("\n".join(format_info(info)))
    return 0
