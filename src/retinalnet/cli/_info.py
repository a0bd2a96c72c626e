"""``retinalnet info``: what a checkpoint or an ONNX export is."""

from __future__ import annotations

import argparse
from typing import Any

from retinalnet._core.classes import in_words
from retinalnet._core.json_text import strict_json
from retinalnet._core.proportion_text import percent
from retinalnet._core.utf_8_names import named_here
from retinalnet.cli._argtypes import path_argument
from retinalnet.cli._recorded_options import RECORDED_OPTIONS

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


def _metric(best: dict[str, Any] | None, as_percent: bool = False) -> str:
    if best is None:
        return "-"
    value = percent(best["value"]) if as_percent else f"{best['value']:.4f}"
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


def _seed(training: dict[str, Any]) -> str:
    if training["seed"] is not None:
        return str(training["seed"])
    if training.get("seed_recorded", True):
        return "none (unseeded)"
    return "not recorded (retinalnet before 0.2, or saved outside a fit)"


# the train options retinalnet train records (the seed has its own row), as flags
_OPTIONS = tuple(name for name in RECORDED_OPTIONS if name != "seed")


def _flag(name: str, value: Any) -> str:
    """A recorded train option as the flag that gives it (``--no-calibrate``)."""
    flag = f"--{name.replace('_', '-')}"
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    if name == "feature_cache":  # recorded as on, off or auto
        return {"on": flag, "off": f"--no-{flag[2:]}"}.get(value, "the default feature cache")
    return f"no {flag}" if value is None else f"{flag} {value}"


def _training_inputs(training: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows for what the run was trained on and with: the data folder, the manifest
    (path and SHA-256), the train options and a fine-tune's recipe, as recorded."""
    options = training.get("options")
    if options is None:
        said = (
            "not recorded (only `retinalnet train` records them: trained with the Python API, "
            "by `retinalnet demo`, or by retinalnet before 0.2)"
        )
        rows = [("train options", said)]
    else:
        manifest = options.get("manifest")
        split = "none (the folders' train/val split)"
        if isinstance(manifest, dict):
            where = manifest.get("real_path") or manifest.get("path")
            split = f"{named_here(str(where))} (sha256 {manifest.get('sha256')})"
        flags = ", ".join(_flag(name, options[name]) for name in _OPTIONS if name in options)
        data = options.get("data")
        rows = [
            ("data", named_here(str(data)) if data else "not recorded"),
            ("manifest", split),
            ("train options", flags or "none recorded"),
        ]
    recipe = training.get("recipe")
    if recipe:
        rows.append(("fine-tune recipe", ", ".join(f"{k}={v}" for k, v in recipe.items())))
    return rows


def _ran_with(training: dict[str, Any]) -> str:
    """``torch threads: 2, DataLoader workers: 0``: what a bit-for-bit repeat needs besides
    the seed, as the checkpoint's fit recorded it."""
    threads, workers = training.get("threads"), training.get("num_workers")
    if threads is None:
        return "not recorded (written outside a fit, or by retinalnet before 0.2)"
    return f"torch threads: {threads}, DataLoader workers: {workers}"


def _writers(info: dict[str, Any]) -> str:
    """``retinalnet 0.2.0``, or ``retinalnet 0.2.0 (first 0.1.0)`` for a file rewritten by
    another version than the one that created it (a calibrated 0.1 checkpoint)."""
    last = f"retinalnet {info['retinalnet_version']}"
    history = info.get("written_by") or []
    return f"{last} (first {history[0]})" if len(history) > 1 else last


def _misnamed(info: dict[str, Any]) -> str:
    """A note for a file whose suffix says the other kind (a checkpoint named .onnx)."""
    onnx_name = str(info["file"]).lower().endswith(".onnx")
    if info["kind"] == "checkpoint" and onnx_name:
        return ", although named .onnx: rename it .pt"
    if info["kind"] == "onnx" and not onnx_name:
        return ", although not named .onnx: rename it .onnx"
    return ""


def format_info(info: dict[str, Any]) -> list[str]:
    """The lines ``retinalnet info`` prints for :func:`retinalnet.export.describe` output."""
    kind = "ONNX model" if info["kind"] == "onnx" else "checkpoint"
    temperature = info.get("temperature")
    rows = [
        ("file", f"{info['file']} ({kind}{_misnamed(info)})"),
        ("architecture", info.get("arch") or "a network built by hand"),
        ("classes", in_words(info["classes"])),
        ("preprocessing", _preprocessing(info["preprocessing"])),
        ("parameters", _parameters(info)),
        ("temperature", "none (not calibrated)" if temperature is None else f"{temperature:g}"),
    ]
    training = info.get("training")
    if training is not None:
        seconds = training["seconds"]
        rows += [
            ("epochs", str(training["epochs"])),
            ("seed", _seed(training)),
            ("best val loss", _metric(training["best_val_loss"])),
            ("best val acc", _metric(training["best_val_accuracy"], as_percent=True)),
            ("training time", "-" if seconds is None else f"{seconds:.0f} s"),
            ("ran with", _ran_with(training)),
            ("resumable", "yes" if training["resumable"] else "no (no optimizer state)"),
            *_training_inputs(training),
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
        ("written by", _writers(info)),
        *([("torch", info["torch_version"])] if info.get("torch_version") else []),
        ("sha256", info["sha256"]),
    ]
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {value}" for name, value in rows]


def run_info(args: argparse.Namespace) -> int:
    from retinalnet.cli._export import require_onnx
    from retinalnet.export import describe
    from retinalnet.export._describe import file_kind

    if file_kind(args.path) == "onnx":  # by its content, whatever its suffix
        require_onnx("reading an ONNX file", ("onnx",))
    info = describe(args.path)
    if args.json:
        print(strict_json(info, indent=2))
    else:
        print("\n".join(format_info(info)))
    return 0
