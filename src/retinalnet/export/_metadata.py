"""What an exported model says about itself: the ONNX ``metadata_props`` schema.

Every value is a string (ONNX allows nothing else); lists and settings are JSON. The schema
is documented on the docs page "Deploying a model", so a consumer can prepare images and
name the outputs without retinalnet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retinalnet._core.regular_files import open_regular
from retinalnet._core.torch_load import is_onnx_start, is_torch_start
from retinalnet._core.utf_8_names import utf_8_data
from retinalnet.export._colour_rule import colour_step
from retinalnet.models._checks import check_class_names
from retinalnet.transforms import Preprocessing

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "OnnxMetadata",
    "preprocessing_steps",
    "read_metadata",
]

FORMAT = "retinalnet-onnx"
"""The ``format`` value of every model retinalnet exports."""

FORMAT_VERSION = 1
"""The version of the metadata schema; raised when a key changes meaning."""

INPUT_NAME = "input"
"""The graph input: float32 ``(batch, 3, size, size)``, prepared as ``preprocessing`` says."""

OUTPUT_NAME = "probabilities"
"""The graph output: float32 ``(batch, num_classes)``, each row summing to 1."""


def preprocessing_steps(preprocessing: Preprocessing) -> list[dict[str, Any]]:
    """The evaluation pipeline of ``preprocessing``, step by step, as plain data.

    The ``preprocessing_steps`` metadata of an exported model: what
    :meth:`~retinalnet.transforms.Preprocessing.prepare` does to one image file, written
    out so that it can be repeated with any image library.

    Examples
    --------
    >>> from retinalnet.transforms import Preprocessing
    >>> [step["op"] for step in preprocessing_steps(Preprocessing())]
    ['decode', 'colour', 'resize', 'center_crop', 'to_float', 'channels', 'normalize']
    """
    p = preprocessing
    decode = (
        "JPEG: decoded by libjpeg at the largest reduction s of 8, 4 and 2 with "
        f"shorter_side / s >= 0.95 * {p.resize} (PIL Image.draft), else at full size; "
        "other formats at full size; the EXIF orientation tag is ignored"
        if p.reduced_decode
        else "full size; the EXIF orientation tag is ignored (pixels used as stored)"
    )
    return [
        {"op": "decode", "reduced_decode": p.reduced_decode, "rule": decode},
        colour_step(),
        {
            "op": "resize",
            "shorter_side": p.resize,
            "longer_side": f"int({p.resize} * longer / shorter)",
            "interpolation": "bilinear",
            "antialias": True,
            "library": "PIL Image.resize",
        },
        {
            "op": "center_crop",
            "size": p.size,
            "offset": f"left = round((width - {p.size}) / 2), top = round((height - {p.size}) / 2)",
        },
        {"op": "to_float", "rule": "8-bit values / 255 -> float32 in [0, 1]"},
        {"op": "channels", "rule": "grey repeated into 3 channels; channel order R, G, B"},
        {
            "op": "normalize",
            "mean": list(p.mean),
            "std": list(p.std),
            "rule": "(x - mean) / std per channel, then layout (3, size, size), batch first",
        },
    ]


@dataclass(frozen=True)
class OnnxMetadata:
    """The metadata of a model exported by :func:`~retinalnet.export.to_onnx`.

    .. versionadded:: 0.2

    Attributes
    ----------
    classes : tuple of str
        Class names in output order.
    preprocessing : Preprocessing
        How images are prepared for the model (rebuilt from the ``preprocessing`` JSON).
    temperature : float
        The calibration temperature the probabilities were divided by (1.0: none).
    arch : str or None
        The registered architecture, ``None`` for a network built by hand.
    retinalnet_version : str
        The library version that exported the model.
    checkpoint_sha256 : str or None
        The sha256 of the checkpoint file exported, ``None`` for an in-memory model.
    opset : int
        The ONNX opset of the graph.
    parity_max_abs_diff : float
        The largest difference between the ONNX and PyTorch probabilities measured at export.
    parity_images : int
        How many images that parity check used.
    extra : dict of str to str
        Every metadata entry as stored, the ones above included.
    """

    classes: tuple[str, ...]
    preprocessing: Preprocessing
    temperature: float
    arch: str | None
    retinalnet_version: str
    checkpoint_sha256: str | None
    opset: int
    parity_max_abs_diff: float
    parity_images: int
    extra: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (``retinalnet info --json``)."""
        return {
            "arch": self.arch,
            "classes": list(self.classes),
            "preprocessing": self.preprocessing.to_dict(),
            "temperature": self.temperature,
            "retinalnet_version": self.retinalnet_version,
            "checkpoint_sha256": self.checkpoint_sha256,
            "opset": self.opset,
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "parity_images": self.parity_images,
        }


def metadata_props(
    *,
    classes: tuple[str, ...],
    preprocessing: Preprocessing,
    temperature: float,
    arch: str | None,
    version: str,
    checkpoint_sha256: str | None,
    opset: int,
    exporter: str,
    parity_max_abs_diff: float,
    parity_images: int,
    parity_tolerance: float,
) -> dict[str, str]:
    """The ``metadata_props`` of an export, every value a string."""
    return {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "arch": arch or "",
        "classes": json.dumps(utf_8_data(list(classes))),
        "preprocessing": json.dumps(preprocessing.to_dict()),
        "preprocessing_steps": json.dumps(preprocessing_steps(preprocessing)),
        "temperature": repr(float(temperature)),
        "output": "probabilities: softmax(log_probabilities / temperature), rows sum to 1",
        "retinalnet_version": version,
        "checkpoint_sha256": checkpoint_sha256 or "",
        "opset": str(opset),
        "exporter": exporter,
        "parity_max_abs_diff": repr(float(parity_max_abs_diff)),
        "parity_images": str(parity_images),
        "parity_tolerance": repr(float(parity_tolerance)),
    }


def parse_metadata(props: Mapping[str, str], source: str) -> OnnxMetadata:
    """Check and read the metadata of a retinalnet ONNX model.

    Raises
    ------
    ValueError
        If the model was not exported by retinalnet, by a newer schema, or has a malformed
        entry; the message names ``source`` and the entry.
    """
    if props.get("format") != FORMAT:
        raise ValueError(
            f"{source!r} is not an ONNX model exported by retinalnet (its metadata has no "
            f"format={FORMAT!r}); export one with retinalnet export --checkpoint best.pt "
            "--out model.onnx"
        )

    def entry(key: str) -> str:
        if key not in props:
            raise ValueError(f"cannot read {source!r}: its metadata has no {key!r} entry")
        return props[key]

    def parsed(key: str, read: Any) -> Any:
        try:
            return read(entry(key))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"cannot read {source!r}: metadata entry {key!r} is malformed ({error})"
            ) from None
        except RecursionError:  # lists or objects nested thousands deep
            raise ValueError(
                f"cannot read {source!r}: metadata entry {key!r} is not valid JSON (nested "
                "too deeply); export the model again (retinalnet export)"
            ) from None

    version = parsed("format_version", int)
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{source!r} was exported by retinalnet {props.get('retinalnet_version')} with "
            f"metadata version {version}; this retinalnet reads version {FORMAT_VERSION}: "
            "upgrade with pip install -U retinalnet"
        )
    classes = parsed("classes", json.loads)
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(
            f"cannot read {source!r}: metadata entry 'classes' must be a JSON list of names, "
            f"got {entry('classes')!r}"
        )
    # the rule of every class name: non-blank, distinct, printed as it is (a name holding a
    # newline or an escape sequence would forge the result lines predict and info print)
    classes = list(check_class_names(classes, source=source))
    preprocessing = parsed("preprocessing", lambda text: Preprocessing.from_dict(json.loads(text)))
    sha = entry("checkpoint_sha256")
    return OnnxMetadata(
        classes=tuple(classes),
        preprocessing=preprocessing,
        temperature=parsed("temperature", float),
        arch=entry("arch") or None,
        retinalnet_version=entry("retinalnet_version"),
        checkpoint_sha256=sha or None,
        opset=parsed("opset", int),
        parity_max_abs_diff=parsed("parity_max_abs_diff", float),
        parity_images=parsed("parity_images", int),
        extra=dict(props),
    )


_HEAD = 16


def file_head(file: Path) -> bytes:
    """The first bytes of ``file``, which tell a PyTorch file from an ONNX model."""
    with open_regular(file) as stream:
        return stream.read(_HEAD)


def _unparsable(file: Path, head: bytes, error: Exception) -> ValueError:
    """The error for a file onnx cannot parse: a PyTorch file (a checkpoint named .onnx),
    an ONNX model cut short or damaged, or no ONNX model at all."""
    name = str(file)
    if is_torch_start(head):
        rename = "; rename it .pt" if file.suffix.lower() == ".onnx" else ""
        return ValueError(
            f"{name!r} is not an ONNX model but a PyTorch file, as torch.save writes (a "
            f"retinalnet checkpoint?): Predictor.from_checkpoint({name!r}) predicts with a "
            f"checkpoint, and retinalnet export --checkpoint {name} --out model.onnx writes "
            f"its ONNX model{rename}"
        )
    size = file.stat().st_size
    if not head:
        return ValueError(f"{name!r} is empty (0 bytes), not an ONNX model: copy it again")
    if is_onnx_start(head):
        return ValueError(
            f"ONNX model {name!r} is damaged or incomplete: it starts as an ONNX model but "
            f"cannot be parsed ({size:,} bytes; a copy or download cut short?). Copy it again "
            "from where it came from, or export it again (retinalnet export)"
        )
    return ValueError(
        f"{name!r} is not an ONNX model: it starts with {head!r}, not as an ONNX model does, "
        f"and cannot be parsed as one ({type(error).__name__}); export one with retinalnet "
        "export --checkpoint best.pt --out model.onnx"
    )


_LISTED = 5


def _folder_given(folder: Path) -> IsADirectoryError:
    """The error for a folder given as an ONNX model (a run's ``--out``, an export folder),
    naming the ``.onnx`` files inside it, or its checkpoints when it holds none."""
    name = str(folder)
    try:
        files = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    except OSError as error:  # unreadable: said, not listed
        return IsADirectoryError(
            f"{name!r} is a folder, not an ONNX model file (its files cannot be listed: "
            f"{error.strerror or error}); pass the path of the .onnx file"
        )
    models = [file for file in files if file.lower().endswith(".onnx")]
    if models:
        more = f" and {len(models) - _LISTED} more" if len(models) > _LISTED else ""
        return IsADirectoryError(
            f"{name!r} is a folder, not an ONNX model file; it holds "
            f"{', '.join(models[:_LISTED])}{more}: pass one of them, e.g. "
            f"{str(folder / models[0])!r}"
        )
    checkpoints = [file for file in files if file.lower().endswith(".pt")]
    if checkpoints:
        first = str(folder / ("best.pt" if "best.pt" in checkpoints else checkpoints[0]))
        more = f" and {len(checkpoints) - _LISTED} more" if len(checkpoints) > _LISTED else ""
        return IsADirectoryError(
            f"{name!r} is a folder, not an ONNX model file, and holds no .onnx file but "
            f"checkpoints ({', '.join(checkpoints[:_LISTED])}{more}): "
            f"Predictor.from_checkpoint({first!r}) predicts with one, and retinalnet export "
            f"--checkpoint {first} --out model.onnx writes its ONNX model"
        )
    return IsADirectoryError(
        f"{name!r} is a folder, not an ONNX model file, and holds no .onnx file; pass the "
        "path of an ONNX model (retinalnet export --checkpoint best.pt --out model.onnx "
        "writes one)"
    )


def read_metadata(path: str | os.PathLike[str]) -> OnnxMetadata:
    """The metadata of an ONNX model exported by retinalnet, read without running it.

    Needs the ``onnx`` package (``pip install "retinalnet[onnx]"``); the weights are not
    loaded.

    .. versionadded:: 0.2

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    IsADirectoryError
        If ``path`` is a folder; the message lists the ONNX models in it (or, for a run's
        folder, its checkpoints and how to export one).
    ValueError
        If the file is not an ONNX model (a PyTorch file such as a checkpoint, whatever its
        suffix, is named as one), is damaged or incomplete (it starts as an ONNX model but
        cannot be parsed), or was not exported by retinalnet.

    Examples
    --------
    >>> from retinalnet.export import read_metadata
    >>> read_metadata("model.onnx").classes  # doctest: +SKIP
    ('CNV', 'DME', 'DRUSEN', 'NORMAL')
    """
    from retinalnet.export._onnx_runtime import require

    onnx = require("onnx")
    file = Path(path)
    if file.is_dir():
        raise _folder_given(file)
    if not file.is_file():
        raise FileNotFoundError(f"no ONNX model file {str(file)!r}")
    head = file_head(file)
    if is_torch_start(head):  # protobuf may parse a zip archive's bytes as a message
        raise _unparsable(file, head, ValueError())
    try:
        model = onnx.load(str(file), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError and others for a file it cannot parse
        raise _unparsable(file, head, error) from None
    props = {prop.key: prop.value for prop in model.metadata_props}
    return parse_metadata(props, str(file))
