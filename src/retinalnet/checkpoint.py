"""Checkpoints: state dicts and plain data only, written atomically, loaded safely.

A checkpoint carries the weights, the architecture (rebuilt by name from the model registry),
the class names and the preprocessing, so :class:`~retinalnet.Predictor` and
:func:`~retinalnet.training.evaluate` prepare images exactly as in training. Loading one
needs nothing from the training machinery.

.. versionchanged:: 0.2
   Moved here from :mod:`retinalnet.training`, where the names still work with a
   ``DeprecationWarning``.

Why this module is long: one file format, its writer, and its reader with a check of every
field belong together, so that a field added to the writer is checked by the reader in the
same change.
"""

from __future__ import annotations

import inspect
import math
import os
import pickle
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import torch
from torch import nn

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.checkpoint_format import FORMAT_VERSION, stamped, unknown_model_fields
from retinalnet._core.counts import as_integer, as_number
from retinalnet._core.device import resolve_device
from retinalnet._core.files import FileWriteError, atomic_write, write_error_hint
from retinalnet._core.loadable_data import NotLoadableError, loadable_data
from retinalnet._core.model_use import exclusive_use
from retinalnet._core.opened_file import (
    Identity,
    file_identity,
    still_holds,
    stream_digest,
    unchanged_since,
)
from retinalnet._core.output_kinds import check_output_file, output_path
from retinalnet._core.pickled_objects import pickled_objects_beside_state_dict
from retinalnet._core.python_values import python_values
from retinalnet._core.regular_files import check_regular_file, open_regular
from retinalnet._core.tensor_copies import share_copies
from retinalnet._core.torch_load import (
    asked_to_run,
    check_archive,
    damaged_file_error,
    first_nonfinite,
    not_torch_file,
    pickled_global,
    torch_load_reason,
)
from retinalnet._core.value_equality import fields_equal
from retinalnet._version import __version__
from retinalnet.models import Classifier, build_model
from retinalnet.models._bare_state_dict import bare_state_dict_message
from retinalnet.models._checks import check_class_names
from retinalnet.models._registry import find_spec
from retinalnet.models._state_dict import state_dict_mismatches
from retinalnet.transforms import Preprocessing

__all__ = [
    "Checkpoint",
    "CheckpointWriteError",
    "checkpoint_epoch",
    "load_checkpoint",
    "save_checkpoint",
    "set_checkpoint_temperature",
]

CHECKPOINT_FORMAT = "retinalnet-checkpoint"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the checkpoint there before is untouched.

    The message names the file, the cause in words ("no space left on device [ENOSPC]",
    "permission denied [EACCES]"), the epoch that could not be written, the epoch of the
    checkpoint on disk instead, and how to fix it. The bytes go to a temporary file that
    replaces the checkpoint only once complete, so a full disk or a refused write never
    leaves a half-written or missing checkpoint behind.

    Parameters
    ----------
    path
        The checkpoint file.
    reason
        The cause in words.
    code
        The ``errno`` of the failure, ``None`` if unknown.
    epoch
        The epoch that could not be written.
    previous
        Whether a file was at ``path`` before (it is untouched).
    epoch_on_disk
        The epoch of the checkpoint left at ``path``; ``None`` if there is none, or it
        could not be read.

    Attributes
    ----------
    path : pathlib.Path
        The checkpoint file.
    reason : str
        The cause in words.
    errno : int or None
        The ``errno`` of the failure.
    epoch : int
        The epoch that could not be written.
    epoch_on_disk : int or None
        The epoch of the checkpoint on disk at ``path``.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        reason: str,
        code: int | None = None,
        epoch: int = 0,
        previous: bool = False,
        epoch_on_disk: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.reason = reason
        self.epoch = epoch
        self.previous = previous
        self.epoch_on_disk = epoch_on_disk
        if not previous:
            kept = "there was no checkpoint there before, and there is none now"
        elif epoch_on_disk is None:
            kept = "the file there before is untouched"
        else:
            kept = f"the checkpoint there before is untouched and holds epoch {epoch_on_disk}"
        super().__init__(
            f"cannot write checkpoint {str(self.path)!r} (epoch {epoch}): {reason}; {kept}. "
            f"{write_error_hint(code)}"
        )
        self.errno = code  # str(self) stays the message: no strerror is set

    def __reduce__(
        self,
    ) -> tuple[type[CheckpointWriteError], tuple[str, str, int | None, int, bool, int | None]]:
        arguments = (str(self.path), self.reason, self.errno, self.epoch, self.previous)
        return (type(self), (*arguments, self.epoch_on_disk))


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Classifier,
    *,
    epoch: int = 0,
    history: Sequence[Mapping[str, Any]] = (),
    optimizer_state: Mapping[str, Any] | None = None,
    scheduler_state: Mapping[str, Any] | None = None,
    callback_states: Mapping[str, Any] | None = None,
    loop_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint of ``model`` (and training state) atomically.

    The file holds state dicts and plain data only: the weights, the architecture config,
    the parts the model declares itself (its ``head``, ``feature_blocks`` and
    ``gradcam_layer``, given as module paths to :class:`~retinalnet.models.Classifier`), the
    calibration temperature, the class names, the preprocessing, the history, the
    optimizer, scheduler and callback states, the loop state (random generators and data
    order, for a resumed fit that repeats the uninterrupted one) and the library version. It
    loads with ``torch.load(path, weights_only=True)``.

    The file is written whole or not at all: the bytes go to a temporary file beside it,
    which replaces ``path`` only once flushed to disk. Where ``path`` is a symbolic link
    (``best.pt -> models/v3.pt``), the file it points to is replaced and the link kept.

    Everything is checked by the rules :func:`load_checkpoint` reads it with before a byte
    is written, so a checkpoint is never replaced by a file that would not load. NumPy
    numbers in the history and the training state (``np.float64(0.5)``, as a callback's
    ``state_dict()`` may hold them) are stored as the Python numbers they hold, and NumPy
    arrays as tensors: a load with ``weights_only=True`` reads neither back.

    A declaration given as a function (``feature_blocks=``, or ``gradcam_reshape=`` with
    its ``gradcam_layer``) cannot be stored: the checkpoint records that it was declared,
    and :meth:`Checkpoint.build_model` warns when the model it builds lacks it.

    Parameters
    ----------
    path
        Where to write: a ``.pt``, ``.pth`` or ``.ckpt`` file, or a name whose suffix says
        nothing (its folder is made).
    model
        The :class:`~retinalnet.models.Classifier` to save: its weights, architecture
        config, declared parts, temperature, class names and preprocessing.
    epoch
        The number of epochs trained (an int >= 0, NumPy's too; 0 for a model saved outside
        a fit).
    history
        One record per epoch, as :meth:`History.to_records
        <retinalnet.training.History.to_records>` gives them (dicts with string keys).
    optimizer_state, scheduler_state
        ``optimizer.state_dict()`` and ``scheduler.state_dict()``, for resuming; ``None``
        (default) for a model saved to predict with.
    callback_states
        Each callback's ``state_dict()`` by name (as the Trainer keeps them), for
        resuming; an :class:`~retinalnet.training.EarlyStopping` copy of the weights
        saved is stored once.
    loop_state
        The fit loop's random generators and data order (see
        :attr:`Checkpoint.loop_state`), for a resumed fit that repeats the uninterrupted
        one.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`~retinalnet.models.Classifier`.
    ValueError
        If the checkpoint would not load: an ``epoch`` that is not an int >= 0, weights
        with NaN or infinite values (naming the first such tensor), a history record with
        keys that are not strings, a value in the training state that a load with
        ``weights_only=True`` does not read back (an object of your class in a callback's
        state, named by its place: ``callbacks['BestSeen']['best']``). Nothing is written;
        the file there before is untouched.
        Also if the suffix of ``path`` names another kind of file (``.onnx``, ``.json``,
        ``.csv``, ``.html``, an image's): it would be read as one next time.
    CheckpointWriteError
        If the disk or the operating system refuses the write (a full disk, no permission).
        The checkpoint there before is untouched, and the message says which epoch it
        holds.
    FileExistsError
        If ``path`` (or the file it links to) is an image: a checkpoint would replace the
        scan. A checkpoint or another PyTorch file there is replaced.

    .. versionchanged:: 0.2
       Checks what it writes by the rules :func:`load_checkpoint` reads with, and writes
       through a symbolic link to the file it points to. Stores the model's declared head,
       feature blocks and Grad-CAM layer. Stores NumPy numbers in the history and training
       state as Python numbers, and takes a NumPy ``epoch``.
    """
    out = output_path(path, writer="save_checkpoint", call="save_checkpoint(path, model)")
    if not isinstance(model, Classifier):
        raise TypeError(
            f"save_checkpoint needs a retinalnet Classifier (got {type(model).__name__}): wrap "
            "the network with Classifier(network, classes=[...], preprocessing=...)"
        )
    # a checkpoint replaces a checkpoint, never a scan, nor an ONNX, HTML or JSON file
    check_output_file(out, "checkpoint", writer="save_checkpoint", replaces_checkpoints=True)
    with exclusive_use(model):  # not mid-way through another thread's pass (a ViT's swap)
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,  # its version, the writer's and torch's: _write stamps
        "model": {
            "arch": model.arch,
            "arch_kwargs": python_values(model.arch_kwargs),  # never a NumPy scalar
            "state_dict": weights,
            "temperature": model.temperature,
            "declarations": _declarations_of(model),
        },
        "classes": list(model.classes),
        "preprocessing": model.preprocessing.to_dict(),
        "epoch": _integer_or_as_given(epoch),
        "history": [dict(record) for record in history],
        "optimizer": dict(optimizer_state) if optimizer_state is not None else None,
        "scheduler": dict(scheduler_state) if scheduler_state is not None else None,
        # an EarlyStopping copy of this epoch's weights is written once, with the weights
        "callbacks": share_copies(dict(callback_states or {}), weights),
        "loop": dict(loop_state or {}),
    }
    return _write(out, payload, _integer_or_as_given(epoch))


def _integer_or_as_given(value: Any) -> Any:
    """``value`` as an int if it is an integer (NumPy's too, never a bool), else as it is:
    for the check of its field to refuse by name."""
    number = as_integer(value)
    return value if number is None else number


def _text_or_none(value: object) -> str | None:
    """``value`` if it is a string, else ``None``: a field only shown, never acted on."""
    return value if isinstance(value, str) else None


_DECLARABLE = ("head", "feature_blocks", "gradcam_layer")
_DECLARED_AS = {
    "head": "its head",
    "feature_blocks": "its feature blocks",
    "gradcam_layer": "its Grad-CAM layer",
}


def _declarations_of(model: Classifier) -> dict[str, Any]:
    """The parts ``model`` declares itself (not its registered spec's), as plain data: module
    paths, and under ``"unstored"`` the names of those declared by a function."""
    blocks = model._feature_blocks
    declared: dict[str, Any] = {
        "head": model._head,
        "feature_blocks": None if blocks is None or callable(blocks) else list(blocks),
        # the layer is of no use without the function that reshapes its output
        "gradcam_layer": model._gradcam_layer if model._gradcam_reshape is None else None,
    }
    unstored = [
        name
        for name, function in (
            ("feature_blocks", callable(blocks)),
            ("gradcam_layer", model._gradcam_reshape is not None),
        )
        if function
    ]
    stored = {name: value for name, value in declared.items() if value is not None}
    return {**stored, "unstored": unstored} if unstored else stored


def _write(
    out: Path,
    payload: Mapping[str, Any],
    epoch: int,
    *,
    before_replace: Callable[[], None] | None = None,
) -> Path:
    """Write ``payload`` to ``out`` atomically, once it passes the checks :func:`load_checkpoint`
    makes: every writer of checkpoints comes here, so no writer can leave a file that the
    reader refuses in place of a good one. The file is stamped with this version and the
    format its fields need (:func:`~retinalnet._core.checkpoint_format.stamped`): a rewrite by
    ``calibrate`` of a 0.1 checkpoint is no longer "written by 0.1.0" in format 1, which
    retinalnet 0.1 would load without its temperature.

    NumPy numbers and arrays anywhere in it are written as Python numbers and tensors
    (:func:`~retinalnet._core.loadable_data.loadable_data`), which a load with
    ``weights_only=True`` reads back, and anything it would not read back is refused by its
    place before a byte is written: ``torch.save`` writes anything.

    ``before_replace`` runs once the new file is whole and on disk, right before it replaces
    ``out``; an error it raises leaves ``out`` as it is."""
    payload = _loadable(stamped(payload), out)  # checked as written, as it will be read
    _Fields(payload, out, writing=True).checkpoint()

    def write(stream: BinaryIO) -> None:
        torch.save(dict(payload), stream)
        if before_replace is not None:  # the flush to disk first: the check comes last
            stream.flush()
            os.fsync(stream.fileno())
            before_replace()

    try:
        return atomic_write(out, write)
    except FileWriteError as error:
        on_disk = _epoch_on_disk(out) if error.previous else None
        raise CheckpointWriteError(
            out, error.reason, error.errno, epoch, error.previous, on_disk
        ) from error.__cause__


# how to fix a value that would not load, by the field it is in
_PLAIN_HINTS = {
    "callbacks": "return plain Python values (numbers, str, lists, dicts) and tensors from "
    "that callback's state_dict()",
    "optimizer": "the optimizer's state_dict() must hold tensors and plain Python values",
    "scheduler": "the scheduler's state_dict() must hold tensors and plain Python values",
    "history": "log plain Python numbers",
}


def _loadable(payload: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """``payload`` made of what ``torch.load(weights_only=True)`` reads back, field by field
    (NumPy values as Python's and tensors); a value it would not read back is refused, with
    its field, its place and the fix."""
    plain = {}
    for name, value in payload.items():
        try:
            plain[name] = loadable_data(value, name)
        except NotLoadableError as error:
            hint = _PLAIN_HINTS.get(name, "store plain Python values and tensors there")
            problem = (
                f"holds {error}, which a load with weights_only=True does not read back: {hint}"
            )
            raise _malformed(out, name, problem, writing=True) from None
    return plain


def set_checkpoint_temperature(
    path: str | os.PathLike[str],
    temperature: float,
    *,
    expected_sha256: str | None = None,
    out: str | os.PathLike[str] | None = None,
) -> Path:
    """Store a calibration temperature in an existing checkpoint, atomically.

    Everything else in the file (weights, history, training state) is kept as it is; a
    symbolic link is kept too, and the file it points to updated. The file is stamped as
    written by this retinalnet (``retinalnet_version``; ``written_by`` keeps the versions
    that wrote it before) in the format its fields need: format 2 for a temperature other
    than 1, which retinalnet 0.1 refuses rather than loading without it. With ``out``, the
    calibrated checkpoint is written there instead (atomically too: a file already at
    ``out`` is replaced whole or not at all) and ``path`` is left as it is. The
    :class:`~retinalnet.training.TemperatureScaling` callback writes the temperature it fits
    into ``best.pt`` this way, and ``retinalnet calibrate`` into the checkpoint it is given.

    The file is read once (see :func:`load_checkpoint`): the digest compared with
    ``expected_sha256`` is that of the bytes the calibrated checkpoint is made of. Written in
    place, the file is replaced only if it still holds those bytes once the new file is on
    disk, so a checkpoint that a training run wrote meanwhile is never replaced by the older
    one, nor given a temperature fitted on other weights. That last check and the
    replacement are two steps, which a program writing the file could come between: while a
    run may write it, hold the run folder's :class:`~retinalnet.training.RunLock` around the
    call, as ``retinalnet calibrate`` does (a live run then makes it fail with a
    :class:`~retinalnet.training.RunLockedError` naming that run).

    .. versionadded:: 0.2

    Parameters
    ----------
    path
        A checkpoint written by retinalnet.
    temperature
        A finite number > 0 (see :attr:`Classifier.temperature
        <retinalnet.models.Classifier.temperature>`).
    expected_sha256
        The SHA-256 (hex) of the file the temperature was fitted on
        (:attr:`Checkpoint.sha256` of the checkpoint the model was built from). A
        temperature fits the weights it was fitted on: when the file no longer has this
        digest (a training run wrote a new epoch into it meanwhile), nothing is written.

        .. versionadded:: 0.2
    out
        Where to write the calibrated checkpoint (its folder is made); ``None``: ``path``.

        .. versionadded:: 0.2

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If ``temperature`` is not a finite number > 0, the file is not a valid checkpoint,
        is damaged (as :func:`load_checkpoint` says), or no longer has ``expected_sha256``;
        written in place, also if the file was replaced while the new one was written.
        Nothing is written then.
    FileNotFoundError
        If there is no such file.
    CheckpointWriteError
        If the file cannot be written; it is then untouched.

    Examples
    --------
    >>> from retinalnet.checkpoint import set_checkpoint_temperature
    >>> set_checkpoint_temperature("runs/best.pt", 1.7)  # doctest: +SKIP
    """
    _check_temperature(temperature, "temperature")
    expected = None if expected_sha256 is None else _sha256_hex(expected_sha256)
    # one read: the digest checked is that of the bytes the calibrated file is made of
    loaded = _load(path, "cpu")  # refuses anything but a valid checkpoint
    checkpoint = loaded.checkpoint
    if expected is not None and loaded.sha256 != expected:
        raise ValueError(
            f"{str(checkpoint.path)!r} changed after the temperature was fitted on it (now "
            f"epoch {checkpoint.epoch}; did a training run write it?), and a temperature fits "
            "the weights it was fitted on; nothing was written: calibrate it again once no "
            "run writes it"
        )
    data = loaded.data
    data["model"]["temperature"] = float(temperature)
    if out is not None:  # made of the bytes read: what happens to path since is no matter
        return _write(Path(out), data, checkpoint.epoch)

    def unchanged() -> None:
        """In place: still the file read, so that a newer one is never replaced."""
        if not still_holds(checkpoint.path, loaded.identity, loaded.sha256):
            raise ValueError(
                f"{str(checkpoint.path)!r} was replaced while its temperature was being "
                "written (did a training run write it?); nothing was written, and the file "
                "written meanwhile is kept: calibrate it again once no run writes it"
            )

    return _write(checkpoint.path, data, checkpoint.epoch, before_replace=unchanged)


def _sha256_hex(value: object) -> str:
    """A SHA-256 digest as 64 lower-case hex digits (``sha256:`` and upper case allowed)."""
    text = value.strip().lower().removeprefix("sha256:") if isinstance(value, str) else ""
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError(
            f"expected_sha256 must be a SHA-256 digest (64 hex digits, e.g. "
            f"file_digest(path).hex()), got {value!r}"
        )
    return text


def _check_temperature(value: object, name: str) -> float:
    """``value`` as a float if it is a finite number > 0; a ValueError naming ``name`` else."""
    number = as_number(value)
    if number is None or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0 (1.0: uncalibrated), got {value!r}")
    return number


def _epoch_on_disk(path: Path) -> int | None:
    """The epoch of the retinalnet checkpoint at ``path``; ``None`` if it cannot be read.

    Memory-mapped, so the weights are not read: the answer costs little even for a large
    checkpoint on a full disk.
    """
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a checkpoint, or unreadable: the message then says less
        return None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        return None
    epoch = data.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        return None
    return epoch


def checkpoint_epoch(path: str | os.PathLike[str]) -> int | None:
    """The epoch of the retinalnet checkpoint at ``path``, read without loading the weights.

    Parameters
    ----------
    path
        A file written by :func:`save_checkpoint` or the Trainer (``best.pt``, ``last.pt``).

    Returns
    -------
    int or None
        The epochs it holds (0 for a model saved outside a fit); ``None`` if there is no
        file, or it is not a readable retinalnet checkpoint.

    Examples
    --------
    >>> from retinalnet.checkpoint import checkpoint_epoch
    >>> checkpoint_epoch("runs/vgg16/last.pt")  # doctest: +SKIP
    7

    .. versionadded:: 0.2
    """
    file = Path(path)
    try:
        if not file.is_file():
            return None
    except OSError:
        return None
    return _epoch_on_disk(file)


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """The contents of a checkpoint file, see :func:`load_checkpoint`.

    Two are equal (``==``) when every attribute is, the weights and the optimizer's tensors
    compared whole (same dtype, shape and values): a file loaded twice gives equal
    checkpoints. A checkpoint holds tensors and dicts, so it is not hashable.

    .. versionchanged:: 0.2
       ``==`` compares; it raised ("Boolean value of Tensor ... is ambiguous").
    """

    path: Path
    arch: str | None
    arch_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    epoch: int
    history: list[dict[str, Any]]
    optimizer_state: dict[str, Any] | None
    scheduler_state: dict[str, Any] | None
    callback_states: dict[str, Any]
    retinalnet_version: str
    loop_state: dict[str, Any] = field(default_factory=dict)
    """The fit loop's random generators and data order (empty for a checkpoint written
    outside a fit, or before 0.2).

    .. versionadded:: 0.2
    """
    temperature: float = 1.0
    """The calibration temperature (1.0 for an uncalibrated model, and for a checkpoint
    written before 0.2); :meth:`build_model` gives it to the model.

    .. versionadded:: 0.2
    """
    declarations: dict[str, Any] = field(default_factory=dict)
    """The parts the saved model declared itself, as module paths: ``"head"``,
    ``"feature_blocks"`` (a list) and ``"gradcam_layer"``, each present only when declared,
    and ``"unstored"``: the names of those declared by a function, which a file cannot hold.
    Empty for a registered architecture's model, and for a checkpoint written before 0.2.
    :meth:`build_model` gives them to the model.

    .. versionadded:: 0.2
    """
    written_by: tuple[str, ...] = ()
    """The versions of retinalnet that wrote the file, oldest first: a checkpoint of 0.1.0
    calibrated by 0.2.0 gives ``("0.1.0", "0.2.0")``, and :attr:`retinalnet_version` is the
    last. A file written before it was recorded gives its ``retinalnet_version`` alone.
    A fit writes its checkpoints afresh: a resumed run's files name the versions that wrote
    them since it resumed, not those of the run before.

    .. versionadded:: 0.2
    """
    torch_version: str | None = None
    """The version of torch that wrote the file last, as it records it (``None`` if it does
    not say).

    .. versionadded:: 0.2
    """
    sha256: str | None = None
    """The SHA-256 (64 lower-case hex digits) of the file's bytes this checkpoint was read
    from: its weights and this digest come from the same file, also when a training run
    renamed a new ``best.pt`` over it meanwhile (``sha256sum best.pt`` then names the new
    file). ``evaluate --json``, the HTML report, ``retinalnet
    info`` and the ONNX metadata give it as the checkpoint's. ``None`` for a checkpoint not
    read from a file by :func:`load_checkpoint`.

    .. versionadded:: 0.2
    """

    def __eq__(self, other: object) -> bool:
        return fields_equal(self, other)

    __hash__ = None  # type: ignore[assignment]  # holds tensors and dicts

    def build_model(self, model: nn.Module | None = None) -> Classifier:
        """The trained model, rebuilt from the config (or ``model``) and the weights.

        The model gets the parts the saved model declared (:attr:`declarations`: its
        head, feature blocks and Grad-CAM layer), so a network built by hand is explained
        and fine-tuned as it was; a Classifier passed as ``model`` keeps those it declares
        itself. When the saved model declared one by a function, which the file cannot hold,
        and the model built here has none of its own, a :class:`UserWarning` says that the
        registered declaration or the structure guess is used instead.

        Parameters
        ----------
        model
            The untrained network (or Classifier) to load the weights into; needed only for
            a checkpoint of a network built by hand (``arch`` is ``None``).

        Raises
        ------
        ValueError
            If the weights do not fit the model, ``model`` is a Classifier of another
            registered architecture, or one that prepares images otherwise than the
            checkpoint's preprocessing (another size, normalisation or decoding: the
            weights would see other inputs than in training; the message lists what
            differs), or a declared part is not a module of the network.

        .. versionchanged:: 0.2
           Gives the model the declared parts; refuses a Classifier of another
           architecture.
        """
        if model is None:
            if self.arch is None:
                raise ValueError(
                    f"checkpoint {str(self.path)!r} holds a network built by hand; pass that "
                    "untrained network as model= to load the weights into it"
                )
            try:
                # the random init is overwritten by the weights: keep the host's RNG as it was
                with torch.random.fork_rng(devices=[]):
                    classifier = build_model(
                        self.arch,
                        self.arch_kwargs,
                        classes=self.classes,
                        preprocessing=self.preprocessing,
                    )
            except TypeError as error:  # a setting the architecture does not take
                raise _malformed(
                    self.path, "model.arch_kwargs", f"does not fit {self.arch!r}: {error}"
                ) from None
        elif isinstance(model, Classifier):
            other = other_architecture(self.arch, model)
            if other is not None:
                raise ValueError(
                    f"checkpoint {str(self.path)!r} was trained as arch {self.arch!r} but the "
                    f"model is arch {other!r}; build it with create_model({self.arch!r}, "
                    "...), or pass no model to rebuild it from the checkpoint"
                )
            if model.classes != self.classes:
                raise ValueError(
                    f"checkpoint {str(self.path)!r} was trained for classes "
                    f"{list(self.classes)} but the model has {list(model.classes)}"
                )
            differ = preprocessing_differences(self.preprocessing, model.preprocessing)
            if differ:  # its weights would see images prepared otherwise than in training
                raise ValueError(
                    f"checkpoint {str(self.path)!r} was trained on images prepared otherwise "
                    f"than the model prepares them ({differ}); build the model with "
                    "preprocessing=checkpoint.preprocessing, or pass the bare network"
                )
            classifier = model
        else:
            classifier = Classifier(
                model,
                classes=self.classes,
                preprocessing=self.preprocessing,
                arch=self.arch,
                arch_kwargs=self.arch_kwargs,
            )
        archs = architectures_met(
            self.arch, classifier if model is None else model, self.arch_kwargs
        )
        declared = self._declared_for(classifier)  # checked before any weight is loaded
        load_weights(classifier, self.state_dict, source=self.path, archs=archs)
        classifier.temperature = self.temperature
        for name, value in declared.items():
            setattr(classifier, f"_{name}", value)
        self._warn_unstored(classifier)
        return classifier

    def _declared_for(self, classifier: Classifier) -> dict[str, Any]:
        """The declared parts ``classifier`` lacks, checked to be modules of its network."""
        network = classifier.network
        found: dict[str, Any] = {}
        for name in _DECLARABLE:
            value = self.declarations.get(name)
            if value is None or getattr(classifier, f"_{name}") is not None:
                continue
            for path in [value] if isinstance(value, str) else value:
                try:
                    network.get_submodule(path)
                except AttributeError:
                    raise ValueError(
                        f"checkpoint {str(self.path)!r} declares {name} {path!r} (field "
                        f"'model.declarations.{name}'), which is not a module of the "
                        f"{type(network).__name__} network; pass the network the checkpoint "
                        "was trained with"
                    ) from None
            found[name] = value if isinstance(value, str) else tuple(value)
        return found

    def _warn_unstored(self, classifier: Classifier) -> None:
        """Warn about declarations given as functions that ``classifier`` is without."""
        lost = [
            name
            for name in self.declarations.get("unstored", ())
            if getattr(classifier, f"_{name}") is None
        ]
        if not lost:
            return
        what = " and ".join(_DECLARED_AS[name] for name in lost)
        instead = (
            f"the declaration registered for {classifier.arch!r}"
            if classifier.spec is not None
            else "a guess from the network's structure"
        )
        arguments = ", ".join(
            "gradcam_layer=..., gradcam_reshape=..." if name == "gradcam_layer" else f"{name}=..."
            for name in lost
        )
        warn_caller(
            f"checkpoint {str(self.path)!r} was saved from a model that declared {what} with "
            f"a function, which a checkpoint cannot hold: the model loaded uses {instead}. "
            f"Pass model=Classifier(network, classes=..., {arguments}) with the same "
            "declarations to use them",
            UserWarning,
        )


def preprocessing_differences(saved: Preprocessing, current: Preprocessing) -> str:
    """What makes ``current`` prepare an image for the network otherwise than ``saved``
    (size, resize, normalisation, decoding; not the training augmentation), as
    ``"size=256 there, 224 now"``; ``""`` when nothing does."""
    there = saved.with_augmentation("none").to_dict()
    here = current.with_augmentation("none").to_dict()
    return ", ".join(
        f"{key}={there[key]!r} there, {here.get(key)!r} now"
        for key in there
        if there[key] != here.get(key)
    )


def load_weights(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: Path,
    archs: str = "",
) -> None:
    """``model.load_state_dict(state_dict)`` with an error that says what does not fit.

    Weights of an integer dtype for a floating-point tensor of the model do not fit either:
    ``load_state_dict`` would copy them, and the model compute with other numbers.
    ``archs`` says which architectures meet (``"arch 'resnet18' there, arch 'vgg16'
    here"``), for the error about weights that do not fit.
    """
    expected = model.state_dict()
    problems = state_dict_mismatches(
        {k: v.shape for k, v in expected.items()},
        {k: v.shape for k, v in state_dict.items()},
        given_name="checkpoint",
    )
    wrong_kind = sorted(
        f"{k}: checkpoint {v.dtype} vs model {expected[k].dtype}"
        for k, v in state_dict.items()
        if k in expected and expected[k].is_floating_point() and not v.is_floating_point()
    )
    if wrong_kind and not problems:
        more = f" and {len(wrong_kind) - 3} more" if len(wrong_kind) > 3 else ""
        raise ValueError(
            f"the weights in {str(source)!r} are integers where the model's are floating-point "
            f"numbers: {wrong_kind[:3]}{more}; the file was edited or written by another "
            "program. Use a checkpoint written by retinalnet"
        )
    if problems:
        meet = f": {archs}" if archs else ""
        raise ValueError(
            f"the weights in {str(source)!r} do not fit the model: {'; '.join(problems)}. "
            f"Build the model with the same architecture and settings as the checkpoint{meet}"
        )
    model.load_state_dict(state_dict)


def _arch_name(arch: str | None) -> str:
    return "a network built by hand" if arch is None else f"arch {arch!r}"


def other_architecture(saved: str | None, model: nn.Module) -> str | None:
    """The registered architecture of ``model`` when it is not ``saved``, the one a
    checkpoint's weights were trained as; ``None`` when they agree or either is unknown. The
    weights of another architecture with the same state-dict keys (another BatchNorm eps)
    load without an error and give other numbers."""
    arch = model.arch if isinstance(model, Classifier) else None
    return arch if arch is not None and saved is not None and arch != saved else None


def architectures_met(
    saved: str | None, model: nn.Module, saved_kwargs: Mapping[str, Any] | None = None
) -> str:
    """``"arch 'resnet18' there, arch 'vgg16' here"``: the architectures a checkpoint's
    weights and ``model`` are, for :func:`load_weights`' error about weights that do not
    fit. For one architecture on both sides, with the checkpoint's ``saved_kwargs``, the
    settings that differ: ``"arch 'small_cnn' on both sides, with other settings: width 16
    (small_cnn's default) there, 8 here"``.

    .. versionchanged:: 0.2
       ``saved_kwargs``: the settings that differ are named.
    """
    if isinstance(model, Classifier):
        here = _arch_name(model.arch)
    else:
        here = f"the {type(model).__name__} network given"
    met = f"{_arch_name(saved)} there, {here} here"
    if not isinstance(model, Classifier) or saved is None or saved_kwargs is None:
        return met
    if model.arch != saved:
        return met
    differ = _settings_differences(saved, saved_kwargs, model.arch_kwargs)
    if not differ:
        return met
    return f"arch {saved!r} on both sides, with other settings: {differ}"


_NOT_SET = object()


def _settings_differences(arch: str, saved: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """The settings (``arch_kwargs``) in which two models of ``arch`` differ, a setting
    left out on one side read as its builder's default: ``"width 16 (small_cnn's default)
    there, 8 here"``; ``""`` when none does."""
    defaults = _builder_defaults(arch)
    parts = []
    for key in sorted(set(saved) | set(current), key=str):
        there = _setting(saved, key, defaults, arch)
        here = _setting(current, key, defaults, arch)
        if there[0] is not _NOT_SET and here[0] is not _NOT_SET and there[0] == here[0]:
            continue
        parts.append(f"{key} {there[1]} there, {here[1]} here")
    return "; ".join(parts)


def _setting(
    kwargs: Mapping[str, Any], key: str, defaults: Mapping[str, Any], arch: str
) -> tuple[Any, str]:
    """A setting's value and how it is shown: as given, the builder's default, or not set."""
    if key in kwargs:
        return kwargs[key], repr(kwargs[key])
    if key in defaults:
        return defaults[key], f"{defaults[key]!r} ({arch}'s default)"
    return _NOT_SET, "not set"


def _builder_defaults(arch: str) -> dict[str, Any]:
    """The keyword defaults of ``arch``'s registered builder (``{"width": 16}`` for
    small_cnn); none for an unknown architecture or a builder without a signature."""
    spec = find_spec(arch)
    if spec is None:
        return {}
    try:
        parameters = inspect.signature(spec.builder).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {
        parameter.name: parameter.default
        for parameter in parameters
        if parameter.default is not inspect.Parameter.empty
    }


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by retinalnet, safely and without network access.

    Uses ``torch.load(weights_only=True)``: no code in the file is ever run. Every field is
    checked, so a damaged or hand-edited file is refused with a message naming the file and
    the field, never half loaded. The weights must be finite numbers, and every part of the
    file must pass the CRC-32 check written with it (a checkpoint is a zip archive), so a
    file whose bytes changed since it was written (a bad copy, a failing disk) is refused
    rather than giving other predictions. The checks add about 0.3 s to loading a 537 MB
    VGG16 checkpoint on two CPU cores (0.47 s to 0.79 s), and no read from disk: the file
    read for its CRCs is read again from memory.

    The file is opened once, and loaded and hashed through that one descriptor
    (:attr:`Checkpoint.sha256`): the weights and the digest that names them are of the same
    file, also when a training run renames a new ``best.pt`` over it meanwhile. A file
    written in place while it is read is read again. The hash adds about 0.4 s for a 537 MB
    VGG16 checkpoint, and no memory: the file is hashed in 1 MiB pieces.

    A file in PyTorch's legacy format (``torch.save(...,
    _use_new_zipfile_serialization=False)``; retinalnet never writes it) has no checksums:
    it loads, with a :class:`UserWarning` saying that damage to it cannot be detected.

    Parameters
    ----------
    path
        A file written by :func:`save_checkpoint` or the Trainer.
    map_location
        Where tensors are loaded (the CPU by default): a device as ``device=`` takes it
        (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``), refused in one line
        otherwise.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    IsADirectoryError
        If ``path`` is a folder (a training run's): the message names the checkpoint files
        inside it, ``best.pt`` first.
    ValueError
        If the file is not a retinalnet checkpoint (for example a whole pickled model, as the
        tutorial saved, which is unsafe to load), was written by a newer format, holds a
        field under ``model`` this retinalnet does not know (a newer retinalnet's, which it
        would load without and answer otherwise), is incomplete (a copy cut short), has a
        field that is missing or of the wrong kind (``cannot load checkpoint 'x.pt': field
        'epoch' must be an int >= 0, got str '3'``), preprocessing settings that are not
        valid, weights with NaN or infinite values (naming the first such tensor), or is
        damaged: a part of the file fails its CRC-32 check (``checkpoint 'x.pt' is damaged:
        ...``).

    .. versionchanged:: 0.2
       Refuses a damaged or incomplete file (CRC-32, no zip directory), weights that are
       not finite, and fields under ``model`` it does not know. Reads checkpoint format 2.

    Examples
    --------
    >>> from retinalnet.checkpoint import load_checkpoint
    >>> checkpoint = load_checkpoint("runs/best.pt")  # doctest: +SKIP
    >>> model = checkpoint.build_model()  # doctest: +SKIP
    """
    return _load(path, map_location).checkpoint


_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
"""The names :func:`save_checkpoint` writes; the files of a folder offered in its place."""

_LISTED = 5
"""How many of a folder's checkpoint files :func:`folder_given_message` names."""


def folder_given_message(folder: Path, preferred: str = "best.pt") -> str:
    """Why ``folder`` is no checkpoint, and the checkpoint files it (or its ``checkpoints``
    folder, as ``retinalnet demo`` writes them) holds: ``"'run1' is a folder, not a
    checkpoint file; pass the checkpoint file inside it: 'run1/best.pt' (or last.pt; it
    holds best.pt, last.pt)"``. ``preferred`` is the file suggested first when it is there
    (``"last.pt"`` to resume a run).

    .. versionadded:: 0.2
    """
    found: list[Path] = []
    for place in (folder, folder / "checkpoints"):
        found = _checkpoint_files(place)
        if found:
            break
    shown = str(folder)
    if not found:
        return (
            f"{shown!r} is a folder, not a checkpoint file, and holds no "
            f"{'/'.join(_CHECKPOINT_SUFFIXES)} file; pass the path of a checkpoint file (a "
            "training run writes OUT/best.pt and OUT/last.pt)"
        )
    names = [file.name for file in found]
    first = next((file for file in found if file.name == preferred), found[0])
    other = " (or last.pt)" if first.name == "best.pt" and "last.pt" in names else ""
    listed = ", ".join(str(file.relative_to(folder)) for file in found[:_LISTED])
    more = f" and {len(found) - _LISTED} more" if len(found) > _LISTED else ""
    return (
        f"{shown!r} is a folder, not a checkpoint file; pass the checkpoint file inside it: "
        f"{str(first)!r}{other}; it holds {listed}{more}"
    )


def _checkpoint_files(folder: Path) -> list[Path]:
    """The checkpoint files in ``folder`` (by suffix), ``best.pt`` and ``last.pt`` first;
    none when it cannot be listed."""
    try:
        files = [
            entry
            for entry in folder.iterdir()
            if entry.suffix.lower() in _CHECKPOINT_SUFFIXES and entry.is_file()
        ]
    except OSError:
        return []
    order = {"best.pt": 0, "last.pt": 1}
    return sorted(files, key=lambda file: (order.get(file.name, 2), file.name))


class _Loaded(NamedTuple):
    """A checkpoint file read through one descriptor: the checkpoint, the dict it was read
    from (for a rewrite of the file), the file's identity while read (for
    :func:`still_holds`) and the SHA-256 of its bytes."""

    checkpoint: Checkpoint
    data: dict[str, Any]
    identity: Identity
    sha256: str


_READ_TRIES = 5


def _load(path: str | os.PathLike[str], map_location: str | torch.device) -> _Loaded:
    """:func:`load_checkpoint`, with the dict read, the file's identity and its SHA-256.

    The file is opened once, and loaded and hashed through that descriptor: both are of the
    file it was opened on, whatever is renamed over the path meanwhile. The CRC-32 check
    opens the path, so it is made again when the path no longer leads to that file after
    it; the load and the hash are made again when the file was written in place meanwhile
    (:func:`~retinalnet._core.opened_file.unchanged_since`)."""
    device: Any = map_location  # a dict or a function, as torch.load takes them, as given
    if isinstance(map_location, str | torch.device):
        device = resolve_device(map_location)  # the device types retinalnet runs on
        if device.type == "cpu":
            device = torch.device("cpu")  # "cpu:1" is the CPU, which torch.load cannot restore to
    file = Path(path)
    check_regular_file(file)  # a named pipe or a device: refused, not "no checkpoint file"
    if file.is_dir():  # a run's folder: it exists, and holds the file meant
        raise IsADirectoryError(folder_given_message(file))
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint file {str(file)!r}")
    for _ in range(_READ_TRIES):
        with open_regular(file) as stream:  # loaded and hashed through this one descriptor
            opened = os.fstat(stream.fileno())
            archive = _check_archive(file)
            if file_identity(file.stat()) != file_identity(opened):  # it checked another file
                continue
            data = _torch_load(stream, file, device)
            sha256 = stream_digest(stream)
            if unchanged_since(opened, os.fstat(stream.fileno())):  # not written in place
                break
    else:
        raise ValueError(
            f"checkpoint {str(file)!r} was replaced or written to each of the {_READ_TRIES} "
            "times it was read (a copy in progress? a program writing it over and over?); load "
            "it again once it stays as it is"
        )
    if archive == "unreadable":  # torch read what Python's zipfile could not: be safe
        raise damaged_file_error(file, "checkpoint", "its zip directory cannot be read")
    checkpoint = _Fields(data, file).checkpoint(sha256=sha256)
    if archive == "legacy":
        warn_caller(
            f"checkpoint {str(file)!r} is in PyTorch's legacy file format, which has no "
            "checksums: damage to it cannot be detected. Write it again in the current "
            "format, checked from then on: torch.save(torch.load(old, weights_only=True), "
            "new)",
            UserWarning,
        )
    return _Loaded(checkpoint, data, file_identity(opened), sha256)


def _torch_load(stream: BinaryIO, file: Path, device: Any) -> Any:
    """``torch.load`` of the checkpoint ``file`` open as ``stream``, safely, its errors in
    words."""
    try:
        return torch.load(stream, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        code = asked_to_run(error)
        if code:
            raise ValueError(f"checkpoint {str(file)!r} is refused: {code}") from None
        found = pickled_global(error)
        beside = found and pickled_objects_beside_state_dict(file, found)
        if beside:
            raise ValueError(
                f"{beside}; `retinalnet info weights.pt` then says how to use it"
            ) from None
        if found:
            raise ValueError(
                f"{str(file)!r} is not a retinalnet checkpoint: it holds pickled Python objects "
                f"({found}), as a whole model saved with torch.save(model) does, which "
                "retinalnet does not load because unpickling can run arbitrary code. Save "
                "model.state_dict() instead"
            ) from None
        raise ValueError(
            f"{str(file)!r} is not a PyTorch checkpoint file that loads safely, or it is "
            f"corrupt ({torch_load_reason(error)})"
        ) from None
    except Exception as error:  # any other failure of torch.load: not a readable checkpoint
        raise ValueError(
            f"cannot read checkpoint {str(file)!r}: {type(error).__name__}: "
            f"{torch_load_reason(error)} (is it a checkpoint written by retinalnet, and is the "
            "file complete?)"
        ) from None


def _check_archive(file: Path) -> str:
    """What :func:`check_archive` says of the checkpoint ``file`` (``"checked"``: every
    CRC-32 passed, ``"legacy"`` or ``"unreadable"``); a file that is not a PyTorch file
    at all is refused in words."""
    archive = check_archive(file, "checkpoint")  # before torch.load, which checks no CRC
    foreign = not_torch_file(file) if archive == "legacy" else None
    if foreign is not None:  # torch.load would name the byte its unpickler tripped on
        raise ValueError(
            f"cannot read checkpoint {str(file)!r}: it is not a PyTorch checkpoint file "
            f"({foreign}); pass a checkpoint written by retinalnet (best.pt or last.pt)"
        )
    return archive


def _malformed(file: Path, name: str, problem: str, *, writing: bool = False) -> ValueError:
    if writing:
        return ValueError(
            f"cannot write checkpoint {str(file)!r}: field {name!r} {problem}; nothing was written"
        )
    return ValueError(f"cannot load checkpoint {str(file)!r}: field {name!r} {problem}")


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"


_REQUIRED = object()


class _Fields:
    """Reads the fields of a checkpoint's dict, refusing a missing or ill-typed one by name."""

    def __init__(self, data: Any, file: Path, *, writing: bool = False) -> None:
        self.data = data
        self.file = file
        self.writing = writing  # the checks of a checkpoint about to be written

    def malformed(self, name: str, problem: str) -> ValueError:
        return _malformed(self.file, name, problem, writing=self.writing)

    def get(
        self,
        name: str,
        kinds: type | tuple[type, ...],
        expected: str,
        *,
        default: Any = _REQUIRED,
        within: Mapping[str, Any] | None = None,
        prefix: str = "",
    ) -> Any:
        """``data[name]``, checked to be one of ``kinds`` (never a bool for an int)."""
        source = self.data if within is None else within
        if name not in source:
            if default is not _REQUIRED:
                return default
            raise self.malformed(prefix + name, "is missing")
        value = source[name]
        wrong_bool = isinstance(value, bool) and bool not in _as_tuple(kinds)
        if wrong_bool or not isinstance(value, kinds):
            raise self.malformed(prefix + name, f"must be {expected}, got {_shown(value)}")
        return value

    def string_keys(self, name: str, mapping: Mapping[Any, Any]) -> dict[str, Any]:
        keys = [key for key in mapping if not isinstance(key, str)]
        if keys:
            raise self.malformed(name, f"must have str keys, got {_shown(keys[0])}")
        return dict(mapping)

    def epoch_values(self, index: int, record: Mapping[str, Any]) -> None:
        """An epoch record's values are numbers (its ``epoch`` an int) or ``None``: what the
        report, the history plot and a resumed run read (fields may be missing: a history
        saved by hand)."""
        for name, value in record.items():
            number = as_integer(value) if name == "epoch" else as_number(value)
            if value is not None and number is None:
                kind = "an int" if name == "epoch" else "a number or None"
                problem = f"is malformed: epoch record {index + 1}: {name!r} must be {kind}, got "
                problem += _shown(value)
                raise self.malformed("history", problem)

    def checkpoint(self, *, sha256: str | None = None) -> Checkpoint:
        """The checkpoint the fields make: the one set of rules for reading and writing
        (``sha256``: the digest of the file's bytes they were read from)."""
        data, file = self.data, self.file
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(bare_state_dict_message(data, file, CHECKPOINT_FORMAT))
        format_version = self.get("format_version", int, "an int", default=0)
        if format_version > FORMAT_VERSION:
            raise ValueError(
                f"{str(file)!r} was written by retinalnet {data.get('retinalnet_version')} in "
                f"checkpoint format {format_version}; this is retinalnet {__version__} "
                f"(format {FORMAT_VERSION}): upgrade with pip install -U retinalnet"
            )
        model = self.get("model", dict, "a dict")
        unknown = unknown_model_fields(model, data.get("retinalnet_version"))
        if unknown is not None:  # a newer retinalnet's: loaded without, other answers
            verb = "write" if self.writing else "load"
            raise ValueError(f"cannot {verb} checkpoint {str(file)!r}: it {unknown}")
        arch = self.get("arch", (str, type(None)), "a str or None", within=model, prefix="model.")
        kwargs = self.get("arch_kwargs", dict, "a dict", within=model, prefix="model.")
        state = self.get("state_dict", dict, "a dict", within=model, prefix="model.")
        state = self.string_keys("model.state_dict", state)
        temperature = self.get(
            "temperature",
            (int, float),
            "a finite number > 0",
            default=1.0,
            within=model,
            prefix="model.",
        )
        if not (math.isfinite(temperature) and temperature > 0):
            problem = f"must be a finite number > 0 (1.0: uncalibrated), got {temperature!r}"
            raise self.malformed("model.temperature", problem)
        declarations = self.declarations(model)
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                problem = f"must hold tensors, got {_shown(value)} for {key!r}"
                raise self.malformed("model.state_dict", problem)
        broken = first_nonfinite(state)
        if broken is not None:
            problem = f"holds NaN or infinite weights in {broken!r}" + (
                " (did training diverge?)"
                if self.writing
                else ": the model would give no valid predictions; use another checkpoint of "
                "the run (last.pt or best.pt)"
            )
            raise self.malformed("model.state_dict", problem)
        classes = self.get("classes", (list, tuple), "a list of class names")
        if not classes or not all(isinstance(name, str) and name for name in classes):
            problem = f"must be a non-empty list of non-empty strings, got {reprlib.repr(classes)}"
            raise self.malformed("classes", problem)
        if len(set(classes)) != len(classes):
            raise self.malformed("classes", f"has repeated names: {list(classes)}")
        try:
            check_class_names(classes)  # printed on result lines: none that forges one
        except (TypeError, ValueError) as error:
            raise self.malformed("classes", f"is not valid ({error})") from None
        settings = self.string_keys(
            "preprocessing", self.get("preprocessing", dict, "a dict of settings")
        )
        try:
            preprocessing = Preprocessing.from_dict(settings)
        except (TypeError, ValueError) as error:
            raise self.malformed("preprocessing", f"is not valid: {error}") from None
        epoch = self.get("epoch", int, "an int >= 0")
        if epoch < 0:
            raise self.malformed("epoch", f"must be an int >= 0, got {epoch}")
        history = self.get("history", list, "a list of epoch records")
        for index, record in enumerate(history):
            if not isinstance(record, dict):
                problem = f"must hold a dict per epoch, got {_shown(record)} at index {index}"
                raise self.malformed("history", problem)
            self.string_keys(f"history[{index}]", record)
            self.epoch_values(index, record)
        optimizer = self.get("optimizer", (dict, type(None)), "a dict or None")
        scheduler = self.get("scheduler", (dict, type(None)), "a dict or None", default=None)
        callbacks = self.string_keys("callbacks", self.get("callbacks", dict, "a dict"))
        loop = self.string_keys("loop", self.get("loop", dict, "a dict", default={}))
        return Checkpoint(
            path=self.file,
            arch=arch,
            arch_kwargs=self.string_keys("model.arch_kwargs", kwargs),
            state_dict=state,
            classes=tuple(classes),
            preprocessing=preprocessing,
            epoch=epoch,
            history=list(history),
            optimizer_state=optimizer,
            scheduler_state=scheduler,
            callback_states=callbacks,
            retinalnet_version=self.get("retinalnet_version", str, "a str"),
            written_by=self.written_by(),
            torch_version=_text_or_none(self.data.get("torch_version")),
            loop_state=loop,
            temperature=float(temperature),
            declarations=declarations,
            sha256=sha256,
        )

    def written_by(self) -> tuple[str, ...]:
        """``written_by`` (the versions that wrote the file, oldest first); before it was
        recorded, the ``retinalnet_version`` alone."""
        history = self.get("written_by", list, "a list of versions (str)", default=None)
        if history is None:
            return (str(self.data.get("retinalnet_version")),)
        if not history or not all(isinstance(version, str) for version in history):
            raise self.malformed(
                "written_by", f"must be a list of versions (str), got {_shown(history)}"
            )
        return tuple(history)

    def declarations(self, model: Mapping[str, Any]) -> dict[str, Any]:
        """``model["declarations"]`` (``{}`` if absent: before 0.2), each entry checked."""
        where = "model.declarations"
        declared = self.string_keys(
            where,
            self.get("declarations", dict, "a dict", default={}, within=model, prefix="model."),
        )
        for name in ("head", "gradcam_layer"):
            if name in declared:
                self.get(name, str, "a module path (a str)", within=declared, prefix=f"{where}.")
        blocks = declared.get("feature_blocks")
        if "feature_blocks" in declared and not (
            isinstance(blocks, list) and all(isinstance(path, str) for path in blocks)
        ):
            problem = f"must be a list of module paths (str), got {_shown(blocks)}"
            raise self.malformed(f"{where}.feature_blocks", problem)
        unstored = declared.get("unstored", [])
        if not isinstance(unstored, list) or not all(
            name in ("feature_blocks", "gradcam_layer") for name in unstored
        ):
            problem = (
                "must be a list of the names 'feature_blocks' and 'gradcam_layer', got "
                f"{_shown(unstored)}"
            )
            raise self.malformed(f"{where}.unstored", problem)
        unknown = sorted(name for name in declared if name not in (*_DECLARABLE, "unstored"))
        if unknown:  # a newer retinalnet's declaration: the model would lack it
            problem = (
                f"holds {unknown}, which retinalnet {__version__} does not know (written by "
                f"retinalnet {self.data.get('retinalnet_version')}): upgrade with pip install "
                "-U retinalnet"
            )
            raise self.malformed(where, problem)
        return {name: declared[name] for name in (*_DECLARABLE, "unstored") if name in declared}


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)
