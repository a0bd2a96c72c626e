"""A callback writing each epoch to TensorBoard: the metrics, the validation confusion matrix
and Grad-CAM overlays of a few fixed validation images.

Needs the ``tensorboard`` package (the ``tensorboard`` extra), imported when the callback is
built.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from retinalnet._core.counts import check_count
from retinalnet._core.files import os_error_in_words
from retinalnet._core.folders import check_folder
from retinalnet._core.images import coerce_image
from retinalnet._core.model_use import exclusive_use, modes_restored
from retinalnet._core.proportion_text import percent
from retinalnet.engine import InferenceEngine
from retinalnet.gradcam import grad_cam_image
from retinalnet.models import Classifier
from retinalnet.training._callbacks import Callback
from retinalnet.training._evaluation import EvaluationResult
from retinalnet.training._tensorboard_runs import make_run_folder, out_dir_key

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from retinalnet.training._trainer import Trainer

__all__ = ["TensorBoardLogger"]

logger = logging.getLogger(__name__)

_INSTALL = 'pip install "retinalnet[tensorboard]"'
_FOLDER_FIX = "pass a folder that can be written (it is made if missing)"
_CELL = 48  # pixels per cell of the confusion-matrix image
_LOGGED_SIDE = 320  # longest side of a logged Grad-CAM overlay


def _summary_writer_class() -> type[SummaryWriter]:
    try:
        import tensorboard  # noqa: F401 - torch's writer needs it; fail here, not later
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError(
            "TensorBoardLogger writes with the tensorboard package, which is not installed: "
            f"{_INSTALL} (or pip install tensorboard)"
        ) from error
    return SummaryWriter


class TensorBoardLogger(Callback):
    """Write each epoch to TensorBoard: metrics, confusion matrix and Grad-CAM overlays.

    After every epoch it writes, at step ``epoch``:

    - every metric of the epoch as a scalar under its own name (``train_loss``,
      ``val_accuracy``, ``lr``, the task's and the callbacks' metrics);
    - with validation data, the confusion matrix as an image (``confusion_matrix``, rows
      the true classes, columns the predicted ones, shaded by the share of each row) and as
      a table of counts (text ``confusion_matrix``);
    - ``images`` Grad-CAM overlays (``gradcam/<n>_<class>``) of the same validation images
      every epoch, one of each class in turn, explaining the predicted class (text
      ``gradcam`` lists it). They need the validation data as images or files (a
      :class:`~retinalnet.datasets.KermanyOCT`, say) and a model with a Grad-CAM layer
      (declared, or the last convolution of a CNN); otherwise they are skipped with one log
      line. With the feature cache they are still computed: the full model runs on them.

    Each fit writes in a folder of its own inside ``log_dir``, as Lightning's logger does,
    so that ``tensorboard --logdir log_dir`` shows every run beside the others (a folder is
    one run to TensorBoard: two runs in one folder showed only one): ``log_dir/NAME``, where
    NAME is the name of the trainer's ``out_dir`` (``runs/tb/vgg16`` for
    ``out_dir="runs/vgg16"``), or ``version_0`` without one; a NAME already in ``log_dir``
    gets the next number (``vgg16_2``, ``version_1``). The folder is made in one step when
    the fit's first epoch starts, so fits started together (in other processes too) never
    share one; it is logged when the first epoch is written, and is :attr:`run_dir`.

    Only the main process writes in a distributed run. A fit resumed in the same
    ``out_dir`` continues the curves in its run's folder (its checkpoint names it; the step
    is the epoch), and what the interrupted run logged after its checkpoint is replaced. A
    fit resumed in another ``out_dir`` (a copy of the run folder, or a fork of the run with
    another ``--out``) is another run: it logs in a new folder of its own, from the epoch it
    resumed after, and leaves the original run's folder as it is.

    Parameters
    ----------
    log_dir
        The folder of the runs' folders; ``tensorboard --logdir DIR`` shows them.
    images
        How many validation images get a Grad-CAM overlay each epoch (0: none). Each costs
        a forward and a backward pass of the model every epoch.

    Raises
    ------
    ImportError
        If the ``tensorboard`` package is not installed.
    ValueError
        If ``images`` is not an int >= 0.
    NotADirectoryError, PermissionError
        If ``log_dir`` is a file (or inside one), or cannot be written: checked when the
        callback is built, not after the first epoch. Should the folder become unwritable
        during the fit, the logging stops with a warning; the fit and its checkpoints go on.

    Examples
    --------
    >>> from retinalnet.training import TensorBoardLogger, Trainer
    >>> trainer = Trainer(model, callbacks=[TensorBoardLogger("runs/tb")])  # doctest: +SKIP
    >>> history = trainer.fit(train, val)  # doctest: +SKIP

    .. versionadded:: 0.2
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, images: int = 4) -> None:
        images = check_count(images, "images", 0, " (0: no Grad-CAM images)")
        if not isinstance(log_dir, str | os.PathLike):
            raise TypeError(f"log_dir must be a folder path, got {type(log_dir).__name__}")
        self._writer_class = _summary_writer_class()
        # now, not after the first epoch
        check_folder(log_dir, name="TensorBoardLogger: log_dir", fix=_FOLDER_FIX)
        self.log_dir = Path(log_dir)
        self.images = images
        self._writer: SummaryWriter | None = None
        self._run: str | None = None
        self._out_dir: str | None = None  # the fit's out_dir, as out_dir_key gives it
        self._made: Path | None = None  # the run folder this fit made, until it writes there
        self._cam_images: list[tuple[str, Image.Image]] | None = None
        self._cam_skipped = False
        self._failed = False

    @property
    def run_dir(self) -> Path | None:
        """The folder of this fit's event files, ``log_dir/NAME``: made when the fit's first
        epoch starts (a fit resumed in the same ``out_dir`` has its run's, which its
        checkpoint names), ``None`` before and in the other processes of a distributed run.

        .. versionadded:: 0.2
        """
        return self.log_dir / self._run if self._run is not None else None

    def on_fit_start(self, trainer: Trainer) -> None:
        self._close()
        self._cam_images = None
        self._cam_skipped = self.images == 0
        self._failed = False
        # made when the first epoch starts: a fit refused before leaves no empty folder, and
        # a resumed fit gets its run's folder from its checkpoint first (load_state_dict)
        self._run = self._made = None
        self._out_dir = out_dir_key(trainer.out_dir)

    def state_dict(self) -> dict[str, Any]:
        """The name of the run's folder in ``log_dir``, and which ``out_dir`` the run writes
        in (a digest of its real path: checkpoints are shared, paths can be private): a fit
        resumed in that ``out_dir`` writes on in the folder."""
        state = {"run": self._run, "out_dir": self._out_dir}  # None: no fit started
        return {key: value for key, value in state.items() if value is not None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Write in the folder of the run resumed, if this fit writes in its ``out_dir``;
        else (a copy of the run folder, a fork into another ``out_dir``) in a new folder of
        its own. A checkpoint that names no ``out_dir`` (of 0.2.0) gives its folder, as it
        did; one that names no folder (of an earlier development version) leaves the fit a
        new one."""
        run = state.get("run")
        if run is None:
            return
        if not isinstance(run, str) or run in ("", ".", "..") or Path(run).name != run:
            raise ValueError(f"'run' must be the name of a folder, got {run!r}")
        recorded = state.get("out_dir")
        if recorded is not None and not isinstance(recorded, str):
            raise ValueError(f"'out_dir' must be the digest of a folder's path, got {recorded!r}")
        if recorded is None or self._out_dir is None or recorded == self._out_dir:
            self._run = run  # no fit started (self._out_dir None): nothing to compare
            return
        logger.info(
            "TensorBoard: the run resumed wrote in another out_dir and logs to %s; this fit "
            "logs to a folder of its own",
            self.log_dir / run,
        )

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        loop = trainer._loop
        if self._run is None and not self._failed and (loop is None or loop.dist.is_main):
            self._make_run_folder(trainer, epoch)

    def _make_run_folder(self, trainer: Trainer, epoch: int) -> None:
        """Make this fit's folder (numbered past those of other runs); on an error, say so."""
        try:
            self._run = make_run_folder(self.log_dir, trainer.out_dir)
        except OSError as error:  # log_dir went since the check: keep the epoch
            self._stop_logging(self.log_dir, error, epoch)
            return
        self._made = self.log_dir / self._run

    def _stop_logging(self, folder: Path, error: OSError, epoch: int) -> None:
        self._failed = True
        logger.warning(
            "TensorBoardLogger: cannot write in %s (%s): no TensorBoard logging from "
            "epoch %d on; the fit and its checkpoints go on",
            folder,
            os_error_in_words(error),
            epoch,
        )

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        loop = trainer._loop
        if self._failed or (loop is not None and not loop.dist.is_main):
            return
        if self._writer is None:  # a resumed run replaces what was logged after its checkpoint
            if self._run is None:  # on_epoch_end without on_epoch_start: a run of its own
                self._make_run_folder(trainer, epoch)
            if (folder := self.run_dir) is None:  # could not be made: said so
                return
            try:  # a resumed run's folder may have gone meanwhile: made again
                folder.mkdir(parents=True, exist_ok=True)
                self._writer = self._writer_class(log_dir=str(folder), purge_step=epoch)
            except OSError as error:  # the folder went since the check: keep the epoch
                self._stop_logging(folder, error, epoch)
                return
            self._made = None  # written in: the run's, whatever happens next
            logger.info(
                "TensorBoard: this run logs to %s (tensorboard --logdir %s shows the runs)",
                folder,
                self.log_dir,
            )
        writer = self._writer
        for name, value in metrics.items():
            writer.add_scalar(name, float(value), epoch)
        result = loop.validation_result if loop is not None else None
        if result is not None:
            writer.add_image("confusion_matrix", _matrix_image(result), epoch, dataformats="HWC")
            writer.add_text("confusion_matrix", _matrix_table(result), epoch)
        if not self._cam_skipped:
            self._write_cams(trainer, writer, epoch)
        writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        """Close the writer; remove the folder this fit made if it wrote nothing there
        (interrupted in its first epoch), so that the next run may have the name."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._made is not None:
            with contextlib.suppress(OSError):  # not empty: leave it
                self._made.rmdir()
            self._run = self._made = None

    def _skip_cams(self, reason: str) -> None:
        logger.warning("TensorBoardLogger: no Grad-CAM images in this fit: %s", reason)
        self._cam_skipped = True

    def _write_cams(self, trainer: Trainer, writer: SummaryWriter, epoch: int) -> None:
        model = trainer.model
        if not isinstance(model, Classifier):
            self._skip_cams("the model is not a retinalnet Classifier (it has no preprocessing)")
            return
        if self._cam_images is None:
            loop = trainer._loop
            data = loop.val_data if loop is not None else None
            if data is None:
                self._skip_cams("the fit has no validation data")
                return
            picked = _pick_images(data, self.images, model.classes, model.preprocessing.load)
            if not picked:
                self._skip_cams(
                    f"the validation data ({type(data).__name__}) gives neither image files nor "
                    "PIL images"
                )
                return
            self._cam_images = picked
        lines = ["| image | true class | predicted |", "|---|---|---|"]
        # one thread at a time on the model, and each module's train/eval mode put back
        try:
            with exclusive_use(model), modes_restored(model):
                _add_cams(model, self._cam_images, writer, epoch, lines)
        except (TypeError, ValueError) as error:  # no Grad-CAM layer, or not a spatial one
            self._skip_cams(str(error))
            return
        writer.add_text("gradcam", "\n".join(lines), epoch)


def _add_cams(
    model: Classifier,
    images: Sequence[tuple[str, Image.Image]],
    writer: SummaryWriter,
    epoch: int,
    lines: list[str],
) -> None:
    """Write the Grad-CAM image of each tagged image, and add its line to ``lines``."""
    device = next(model.parameters()).device
    # the Predictor's path: its checks of the inputs and outputs, its temperature; fp32, as
    # the Grad-CAM beside it
    engine = InferenceEngine(model, device=device, precision="fp32")
    for tag, image in images:
        probabilities = engine.probabilities(model.preprocessing.prepare(image)[None])[0]
        predicted = int(probabilities.argmax())
        heatmap = grad_cam_image(model, image, class_index=predicted)
        writer.add_image(f"gradcam/{tag}", _overlay(image, heatmap), epoch, dataformats="HWC")
        shown = f"{model.classes[predicted]} ({percent(float(probabilities[predicted]), 0)})"
        lines.append(f"| {tag} | {tag.partition('_')[2]} | {shown} |")  # tag: NUMBER_CLASS


def _pick_images(
    data: Any, count: int, classes: Sequence[str], load: Any
) -> list[tuple[str, Image.Image]]:
    """``count`` images of ``data``, one of each class in turn, tagged ``<n>_<class>``; empty
    when the data set holds neither files nor PIL images."""
    samples = getattr(data, "samples", None)
    if isinstance(samples, list) and samples and isinstance(samples[0][0], str | os.PathLike):
        targets = [int(target) for _, target in samples]
        chosen = _one_class_at_a_time(targets, count)
        return [(f"{n}_{classes[targets[i]]}", load(samples[i][0])) for n, i in enumerate(chosen)]
    try:
        length = len(data)
        first = data[0]
    except (TypeError, IndexError, KeyError, NotImplementedError):
        return []
    if not (isinstance(first, tuple | list) and len(first) == 2):
        return []
    if not isinstance(first[0], Image.Image):
        return []
    items = [data[i] for i in range(min(length, 64))]
    chosen = _one_class_at_a_time([int(target) for _, target in items], count)
    return [(f"{n}_{classes[int(items[i][1])]}", items[i][0]) for n, i in enumerate(chosen)]


def _one_class_at_a_time(targets: Sequence[int], count: int) -> list[int]:
    """Indices of the first image of each class, then the second of each, ... up to count."""
    by_class: dict[int, list[int]] = {}
    for index, target in enumerate(targets):
        by_class.setdefault(target, []).append(index)
    queues = [by_class[target] for target in sorted(by_class)]
    chosen: list[int] = []
    rank = 0
    while len(chosen) < count and any(rank < len(queue) for queue in queues):
        chosen += [queue[rank] for queue in queues if rank < len(queue)]
        rank += 1
    return chosen[:count]


def _overlay(image: Image.Image, heatmap: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """The scan in grey with the heatmap in colour over it (cold parts left clear), its
    longest side at most 320 pixels."""
    picture = coerce_image(image).convert("L")
    scale = _LOGGED_SIDE / max(picture.size)
    if scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.BILINEAR)
        heat_image = Image.fromarray(heatmap.astype(np.float32), mode="F")
        heatmap = np.asarray(heat_image.resize(size, Image.Resampling.BILINEAR), np.float32)
    grey = np.asarray(picture, dtype=np.float32)[..., None] / 255
    heat = np.clip(heatmap, 0, 1)[..., None]
    four = 4 * heat
    colour = np.clip(1.5 - np.abs(four - np.array([3.0, 2.0, 1.0], np.float32)), 0, 1)  # jet
    alpha = 0.6 * heat
    blended = (1 - alpha) * grey + alpha * colour
    pixels: npt.NDArray[np.uint8] = (np.clip(blended, 0, 1) * 255).round().astype(np.uint8)
    return pixels


def _matrix_image(result: EvaluationResult) -> npt.NDArray[np.uint8]:
    """The confusion matrix as ``(rows * 48, columns * 48, 3)`` pixels: white for none of
    the row's images, dark blue for all of them, a grey line between cells."""
    counts = result.confusion_matrix.astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
    cells = white + shares[..., None] * (blue - white)
    pixels = np.repeat(np.repeat(cells, _CELL, axis=0), _CELL, axis=1)
    pixels[::_CELL, :, :] = 160
    pixels[:, ::_CELL, :] = 160
    image: npt.NDArray[np.uint8] = pixels.round().astype(np.uint8)
    return image


def _matrix_table(result: EvaluationResult) -> str:
    """The confusion matrix as a Markdown table of counts (TensorBoard renders it)."""
    header = "| true \\ predicted | " + " | ".join(result.classes) + " |"
    rule = "|---" * (len(result.classes) + 1) + "|"
    rows = [
        f"| {name} | " + " | ".join(str(int(v)) for v in result.confusion_matrix[i]) + " |"
        for i, name in enumerate(result.classes)
    ]
    return "\n".join([header, rule, *rows])
