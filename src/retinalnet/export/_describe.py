"""What a model file is: a checkpoint's or an ONNX export's contents as plain data, for
``retinalnet info`` and for anyone filing a model before it is deployed."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from retinalnet._core.checkpoint_format import train_record
from retinalnet._core.files import file_digest
from retinalnet._core.torch_load import is_onnx_start, is_torch_start
from retinalnet.checkpoint import Checkpoint, load_checkpoint
from retinalnet.export._metadata import file_head, read_metadata
from retinalnet.export._onnx_runtime import require
from retinalnet.models import Classifier, parameter_summary

__all__ = ["describe", "file_kind"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _best(history: Sequence[Mapping[str, Any]], key: str, lowest: bool) -> dict[str, Any] | None:
    """The epoch with the lowest (or highest) ``key``, and its value."""
    scored = [
        (value, record.get("epoch"))
        for record in history
        if (value := _number(record.get(key))) is not None
    ]
    if not scored:
        return None
    pick = min if lowest else max
    value, epoch = pick(scored, key=lambda item: item[0])  # the first epoch of a tie
    return {"epoch": epoch, "value": value}


def _optimized_tensors(state: Mapping[str, Any] | None) -> int | None:
    """How many parameter tensors the saved optimizer state updates; ``None`` if it does
    not say (no state, or none listed)."""
    groups = state.get("param_groups") if state is not None else None
    if not isinstance(groups, list):
        return None
    lists = [group.get("params") for group in groups if isinstance(group, dict)]
    count = sum(len(params) for params in lists if isinstance(params, list))
    return count or None


def _trained(checkpoint: Checkpoint, model: Classifier) -> tuple[int | None, str]:
    """How many parameter values trained in the run that wrote ``checkpoint`` (``None``
    if that cannot be known), and which, in words.

    A fine-tune (its recipe is in the checkpoint) trained the head and the last blocks it
    unfroze, whatever the architecture settings froze when the model was built; any other
    run trained what those settings leave trainable. The optimizer state, where there is
    one, must update as many tensors, or the count is not known.
    """
    from retinalnet.training._finetune import FineTune, _unfreeze, saved_recipe

    recipe = saved_recipe(checkpoint)
    if recipe is None and all(p.requires_grad for p in model.parameters()):
        parts = "all of them, none frozen by its architecture settings"
    elif recipe is None:
        parts = "as its architecture settings freeze it"
    else:
        try:
            blocks = FineTune(**recipe).blocks_for(model)
        except (TypeError, ValueError) as error:  # a recipe of another retinalnet version
            return None, f"not known: fine-tuned with a recipe this version cannot read ({error})"
        _unfreeze(model, blocks)
        available = len(model.feature_block_modules())
        parts = f"the head and the last {blocks} of {available} feature blocks, fine-tuned"
    tensors = [p for p in model.parameters() if p.requires_grad]
    optimized = _optimized_tensors(checkpoint.optimizer_state)
    if optimized is not None and optimized != len(tensors):
        return None, (
            f"not known: the optimizer state updates {optimized} parameter tensors, and "
            f"{len(tensors)} train in the model rebuilt ({parts})"
        )
    return sum(p.numel() for p in tensors), parts


def _train_options(checkpoint: Checkpoint) -> dict[str, Any] | None:
    """The options ``retinalnet train`` recorded (the data folder, the manifest's path and
    SHA-256, the rate, batch size, balance, augmentation, precision...); ``None`` for a
    checkpoint without that record (the Python API, or retinalnet before 0.2)."""
    record = train_record(checkpoint.callback_states)
    return dict(record) if record is not None else None


def _seed(checkpoint: Checkpoint, options: dict[str, Any] | None) -> tuple[int | None, bool]:
    """The run's seed and whether it is recorded at all: ``(None, True)`` for an unseeded
    fit, ``(None, False)`` for a checkpoint that does not say (retinalnet before 0.2, or
    written outside a fit)."""
    for record in (checkpoint.loop_state, options or {}):
        if "seed" in record:
            seed = record["seed"]
            return (seed if isinstance(seed, int) and not isinstance(seed, bool) else None), True
    return None, False


def _training(checkpoint: Checkpoint) -> dict[str, Any]:
    from retinalnet.training._finetune import saved_recipe

    history = checkpoint.history
    last = history[-1] if history else {}
    seconds = [s for record in history if (s := _number(record.get("seconds"))) is not None]
    options = _train_options(checkpoint)
    seed, seed_recorded = _seed(checkpoint, options)
    return {
        "epochs": checkpoint.epoch,
        "seed": seed,
        "seed_recorded": seed_recorded,
        "options": options,
        "recipe": saved_recipe(checkpoint),
        "best_val_loss": _best(history, "val_loss", lowest=True),
        "best_val_accuracy": _best(history, "val_accuracy", lowest=False),
        "last_epoch": dict(last) if last else None,
        "seconds": sum(seconds) if seconds else None,
        "threads": checkpoint.loop_state.get("threads"),
        "num_workers": checkpoint.loop_state.get("num_workers"),
        "callbacks": sorted(checkpoint.callback_states),
        "resumable": checkpoint.optimizer_state is not None,
    }


def _describe_checkpoint(file: Path) -> dict[str, Any]:
    checkpoint = load_checkpoint(file)
    parameters: dict[str, int | None] | None = None
    trained: str | None = None
    temperature = _number(getattr(checkpoint, "temperature", None))
    if temperature == 1.0:  # what every uncalibrated checkpoint carries
        temperature = None
    try:
        model = checkpoint.build_model()
    except ValueError:  # a network built by hand: only the stored tensors can be counted
        pass
    else:
        trainable, trained = _trained(checkpoint, model)
        parameters = {"total": parameter_summary(model).total, "trainable": trainable}
    stored = sum(tensor.numel() for tensor in checkpoint.state_dict.values())
    return {
        "file": str(file),
        "kind": "checkpoint",
        "sha256": checkpoint.sha256,  # of the bytes read, as every field here
        "arch": checkpoint.arch,
        "arch_kwargs": dict(checkpoint.arch_kwargs),
        "classes": list(checkpoint.classes),
        "preprocessing": checkpoint.preprocessing.to_dict(),
        "parameters": parameters,
        "stored_values": stored,
        "temperature": temperature,
        "training": {**_training(checkpoint), "trained": trained},
        "retinalnet_version": checkpoint.retinalnet_version,
        "written_by": list(checkpoint.written_by),
        "torch_version": checkpoint.torch_version,
    }


_GRAPH_COUNT = (
    "values stored in the ONNX graph, where the export folds batch norms into the layers "
    "before them and stores identical constants once: not the model's parameter count, which "
    "retinalnet info on its checkpoint gives"
)


def _describe_onnx(file: Path) -> dict[str, Any]:
    metadata = read_metadata(file)
    onnx = require("onnx")
    graph = onnx.load(str(file), load_external_data=False).graph
    # not the model's parameter count: the export folds batch norms into the layers before
    # them, stores identical tensors once (frozen zero biases) and adds constants of its own
    values = sum(math.prod(tensor.dims) for tensor in graph.initializer)
    described = {
        "file": str(file),
        "kind": "onnx",
        "sha256": file_digest(file).hex(),
        **metadata.to_dict(),
        "parameters": {"total": values, "counted_in": _GRAPH_COUNT},
    }
    if described["temperature"] == 1.0:  # uncalibrated: said as for its checkpoint
        described["temperature"] = None
    return described


def file_kind(file: Path) -> str:
    """``"onnx"`` or ``"checkpoint"``: what a model file is, by its content, whatever its
    suffix (a checkpoint renamed ``.onnx``, an ONNX model renamed ``.pt``). A file that is
    neither is taken by its suffix, and its reader says what it is."""
    if not file.is_file():
        return "onnx" if file.suffix.lower() == ".onnx" else "checkpoint"
    head = file_head(file)
    if is_torch_start(head):
        return "checkpoint"
    if is_onnx_start(head) or file.suffix.lower() == ".onnx":
        return "onnx"
    return "checkpoint"


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a model file is, as plain data: a retinalnet checkpoint or ONNX export.

    For a checkpoint: the architecture, classes, preprocessing, parameter counts, the
    calibration temperature (``None`` if it has none), the training it records (epochs,
    seed, best validation loss and accuracy with their epochs, the last epoch's metrics,
    the training time, the callbacks, whether it can be resumed, which parameters
    trained), the library and torch versions that wrote it and its sha256. For an ONNX
    file written by :func:`~retinalnet.export.to_onnx`: its metadata (its temperature
    ``None`` when uncalibrated, as for a checkpoint), the number of values stored in its
    graph and its sha256. Which of the two a file is is told by its content, not its
    suffix.

    ``training["seed"]`` is ``None`` both for an unseeded run and for a checkpoint that
    does not record its seed (retinalnet before 0.2, or one saved outside a fit):
    ``training["seed_recorded"]`` tells them apart. ``training["options"]`` is what
    ``retinalnet train`` recorded of its inputs (``data``: the data folder;
    ``manifest``: the ``--manifest`` file's ``path``, ``real_path`` and ``sha256``, or
    ``None`` for the folders' split; ``epochs``, ``batch_size``, ``lr``, ``balance``,
    ``patience``, ``augment``, ``precision``, ``seed``, ``calibrate``...), ``None`` for a
    checkpoint without that record (the Python API, retinalnet before 0.2);
    ``training["recipe"]`` the :class:`~retinalnet.training.FineTune` settings of a
    fine-tune, else ``None``. ``training["threads"]`` and ``training["num_workers"]`` are
    the torch threads and DataLoader workers the fit ran with, which a bit-for-bit repeat
    needs besides the seed (``None`` where not recorded).

    ``parameters`` is ``{"total": ..., "trainable": ...}``, where ``trainable`` counts the
    parameters that trained in the run that wrote the checkpoint: for a fine-tune (its
    :class:`~retinalnet.training.FineTune` recipe is in the checkpoint), the head and the
    feature blocks the recipe unfroze; for any other run, those the architecture settings
    leave trainable (all of them for an architecture that freezes nothing, such as
    ``small_cnn``). ``training["trained"]`` says which in words. When the optimizer state
    in the file updates another number of tensors, ``trainable`` is ``None`` and
    ``training["trained"]`` says why. ``parameters`` is ``None`` for a network built by
    hand (``stored_values`` counts its tensors' values). For an ONNX file it is
    ``{"total": ..., "counted_in": ...}``: the values stored in its graph, which is not the
    model's parameter count (the export folds batch norms into the layers before them and
    stores identical tensors once); ``counted_in`` says so.

    .. versionchanged:: 0.2
       ``trainable`` counts what trained in the run, not what the model rebuilt from the
       architecture settings leaves trainable; an ONNX file's count says what it counts.
       A file is told by its content, not its suffix; an uncalibrated ONNX model's
       temperature is ``None``; ``training`` gives ``seed_recorded``, ``options``,
       ``recipe``, ``threads`` and ``num_workers``, and ``torch_version`` is given.

    .. versionadded:: 0.2

    Parameters
    ----------
    path
        A checkpoint (``best.pt``) or an ONNX file (``model.onnx``), whatever its suffix.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not a retinalnet checkpoint or export, or is damaged or incomplete;
        the message names it.

    Examples
    --------
    >>> from retinalnet.export import describe
    >>> describe("runs/best.pt")["training"]["best_val_accuracy"]  # doctest: +SKIP
    {'epoch': 7, 'value': 0.96875}
    """
    file = Path(path)
    if file_kind(file) == "onnx":
        return _describe_onnx(file)
    return _describe_checkpoint(file)
