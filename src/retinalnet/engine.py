"""The inference engine: the one place where a batch of images meets a network.

Prediction (:class:`~retinalnet.Predictor`), evaluation
(:func:`~retinalnet.training.evaluate` and the Trainer's validation), the feature cache's
extraction and Grad-CAM's input preparation all go through :class:`InferenceEngine`, so
they agree on the device, the memory layout, the numeric precision, eval mode, the
calibration temperature, softmax and test-time augmentation. It plays the part of MONAI's
``Inferer``.

It is thread-safe: calls on one model run one at a time (each session holds the model and
every module in it until it ends), and nothing of the model changes during a pass but its
train/eval mode, which is put back module by module. The calibration temperature is read
once per call (:meth:`InferenceEngine.session`), so a call's rows are all at one
temperature, whatever another thread sets meanwhile.

Why this module is long: the engine is one class, and what it owns (device, precision, eval
mode, the temperature of a call, test-time augmentation, the checks of a call's first batch)
is one contract; half of the length is its docstrings.

.. versionadded:: 0.2

Examples
--------
>>> import torch
>>> from retinalnet.engine import InferenceEngine
>>> from retinalnet.models import small_cnn
>>> engine = InferenceEngine(small_cnn(), device="cpu", precision="fp32")
>>> engine.probabilities(torch.zeros(2, 3, 64, 64)).shape
torch.Size([2, 4])
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Generator, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from retinalnet._core.bool_options import check_bool
from retinalnet._core.counts import as_number
from retinalnet._core.cudnn_benchmark import cudnn_benchmark
from retinalnet._core.device import default_num_workers, resolve_device
from retinalnet._core.device_copies import copy_to
from retinalnet._core.loaders import DataSource, make_loader, unchecked_samples
from retinalnet._core.model_inputs import check_batch
from retinalnet._core.model_outputs import class_scores
from retinalnet._core.model_use import check_float32_weights, exclusive_use, modes_restored
from retinalnet._core.widest_float import widest_float
from retinalnet.models import Classifier
from retinalnet.models._checks import check_input_size
from retinalnet.models._classifier import network_of
from retinalnet.precision import (
    CastWeights,
    Precision,
    autocast,
    cast_forward,
    cast_weights,
    resolve_precision,
)
from retinalnet.transforms import Preprocessing, check_preprocessing

__all__ = ["InferenceEngine"]


class InferenceEngine:
    """Runs a network for inference: device, channels-last, precision, eval mode, TTA.

    Parameters
    ----------
    model
        A :class:`~retinalnet.models.Classifier` (its preprocessing prepares images for
        :meth:`loader`) or any module mapping ``(N, 3, H, W)`` to class scores
        (log-probabilities or logits). It is moved to ``device`` (as
        :meth:`torch.nn.Module.to` does); nothing else about it changes: its weights stay
        fp32 and in their memory layout, and the train/eval mode of each of its modules is
        restored after each call.
    device
        ``"auto"`` (CUDA, then MPS, then the CPU) or a device.
    precision
        ``"auto"`` (default): bf16 on GPUs and on CPUs with native bf16, where it measured
        several times faster, fp32 elsewhere; or ``"fp32"``, ``"bf16"``, ``"fp16"`` (GPU).
        The convolution weights (and in bf16/fp16 the linear ones too) go through a
        channels-last copy in that dtype, made once (see
        :func:`~retinalnet.precision.cast_weights`) and made again only for the weights
        that changed since, so a Trainer's validation recasts just the head.
    tta
        Test-time augmentation: average the probabilities of each prepared input and of
        its horizontal mirror (twice the work). The mirror is of the centre crop, which
        can sit a pixel off the crop of the mirrored scan.
    preprocessing
        How :meth:`loader` prepares images; the model's own by default (for a
        :class:`~retinalnet.models.Classifier`). Give it when the engine runs only part of
        a classifier, such as its head on cached features.
    temperature
        Divide the outputs by this before the softmax (temperature scaling, see
        :attr:`Classifier.temperature <retinalnet.models.Classifier.temperature>`).
        ``None`` (default): the model's own, read when each call (each :meth:`session`)
        begins, so a temperature set on the model later applies from the next call; 1.0
        for a module that is not a Classifier. Give it when the engine runs only part of a
        classifier, or ``1.0`` for the raw probabilities (as a Trainer's validation during
        a fit, and the temperature's own fitting, need).

        .. versionadded:: 0.2

    Raises
    ------
    TypeError
        If ``model`` is not a torch module (a checkpoint's path, for one).
    ValueError
        If ``temperature`` is not ``None`` or a finite number > 0, or ``tta`` is not
        ``True`` or ``False``.

    Attributes
    ----------
    device : torch.device
    dtype : torch.dtype or None
        The autocast dtype; ``None`` for fp32.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        tta: bool = False,
        preprocessing: Preprocessing | None = None,
        temperature: float | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                "InferenceEngine needs a torch nn.Module (ideally a retinalnet Classifier), "
                f"got {type(model).__name__} {model!r:.80}; load a checkpoint with "
                "load_checkpoint(path).build_model(), or use Predictor.from_checkpoint(path)"
            )
        tta = check_bool(tta, "tta")  # "no" read as True doubled the work, changed answers
        preprocessing = check_preprocessing(preprocessing)
        check_float32_weights(model, "run")
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.precision = precision
        self.tta = tta
        self.model = model.to(self.device)
        if isinstance(model, Classifier):
            if preprocessing is None:
                preprocessing = model.preprocessing
            elif (sizes := model._input_sizes()) is not None:  # a ViT's one size: now,
                check_input_size(sizes, preprocessing)  # not at the first batch
        self.preprocessing = preprocessing
        self.temperature = temperature  # None: the model's
        self._session_temperature: float | None = None  # read once per session
        self._cast: CastWeights = {}  # the weights in `dtype`, kept between calls
        self._outputs_checked = False  # a session's first outputs are checked (class_scores)
        self._inputs_checked = False  # and its first inputs (check_batch)

    @property
    def temperature(self) -> float:
        """The temperature the outputs are divided by before the softmax.

        The one given, else the model's (:class:`~retinalnet.models.Classifier`), else 1.0.
        Set it to a number, or to ``None`` to follow the model's again.

        .. versionadded:: 0.2
        """
        if self._temperature is not None:
            return self._temperature
        if isinstance(self.model, Classifier):
            return self.model.temperature
        return 1.0

    @temperature.setter
    def temperature(self, value: float | None) -> None:
        number = as_number(value)
        if value is not None and (number is None or not math.isfinite(number) or number <= 0):
            raise ValueError(
                f"temperature must be None (the model's) or a finite number > 0, got {value!r}"
            )
        self._temperature = number

    # -- data ------------------------------------------------------------------------------
    def loader(
        self, data: DataSource, *, batch_size: int = 64, num_workers: int | None = None
    ) -> DataLoader[Any]:
        """Batches of ``data`` prepared with the model's evaluation preprocessing.

        Files are decoded by the model's :class:`~retinalnet.transforms.Preprocessing`
        (its decoding scale included), so every door prepares a scan the same way. A
        DataLoader is returned as it is.

        Raises
        ------
        TypeError, ValueError
            As :func:`~retinalnet._core.loaders.make_loader`: for a data set (or loader)
            whose image tensors or arrays are not the model's prepared inputs ``(3, size,
            size)`` float (a uint8 image, another size), or whose targets are class names.

            .. versionchanged:: 0.2
               Such data reached the network unprepared, without a word.
        """
        preprocessing = self.preprocessing
        return make_loader(
            data,
            batch_size=batch_size,
            shuffle=False,
            transform=preprocessing.eval_transform() if preprocessing is not None else None,
            decode=preprocessing.load if preprocessing is not None else None,
            num_workers=default_num_workers(self.device, num_workers),
            pin_memory=self.device.type == "cuda",
        )

    # -- forward passes --------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
        """A forward function valid inside the block: eval mode, no autograd, autocast
        (turned off in fp32, also when the caller has it on).

        The block holds the model: another thread's session on it (or on a module in it)
        waits until this one ends; this thread may nest sessions. The train/eval mode of
        each module is restored on exit.

        The temperature is read once, when the block begins (:attr:`session_temperature`),
        and every batch of the block is divided by it: a temperature set meanwhile (by
        :func:`~retinalnet.training.calibrate` in another thread, say) applies from the next
        session, so one call's rows are never at two temperatures.
        """
        check_float32_weights(self.model, "run")  # cast since the engine was built?
        with exclusive_use(self.model), modes_restored(self.model):
            self._outputs_checked = False
            self._inputs_checked = False
            outer = self._session_temperature  # a session this thread nests in
            self._session_temperature = self.temperature
            self.model.eval()
            try:
                with (
                    torch.inference_mode(),
                    autocast(self.device, self.dtype),
                    cudnn_benchmark(self.device),  # the caller's setting after
                ):
                    yield self._forward_function()
            finally:
                self._session_temperature = outer

    @property
    def session_temperature(self) -> float | None:
        """The temperature of the session in progress, read when it began (every batch of
        it is divided by this one); ``None`` outside a session. A caller that reports the
        temperature of what a session computed (:func:`~retinalnet.training.evaluate`)
        reads it here, inside the session, not :attr:`temperature` afterwards.

        .. versionadded:: 0.2
        """
        return self._session_temperature

    def _forward_function(self) -> Callable[[torch.Tensor], torch.Tensor]:
        self._cast = cast_weights(self.model, self.dtype, self._cast)
        if not self._cast:  # nothing to cast: no convolution in fp32
            return self.model
        return cast_forward(self.model, self._cast)

    def _scores(self, outputs: object) -> torch.Tensor:
        """The network's ``outputs``, checked once a session to be class scores
        ``(N, num_classes)`` (:func:`~retinalnet._core.model_outputs.class_scores`): a network
        returning probabilities, a tuple or another number of scores is refused in one line,
        not softmaxed again or read past its columns."""
        if self._outputs_checked:
            return outputs  # type: ignore[return-value]  # checked on the first batch
        classes = getattr(self.model, "classes", None)
        scores = class_scores(
            outputs,
            len(classes) if classes is not None else None,
            model_name=type(network_of(self.model)).__name__,
        )
        self._outputs_checked = True
        return scores

    def _to_device(self, inputs: torch.Tensor, *, warn: bool = False) -> torch.Tensor:
        """``inputs`` on the device, as float32 (the autocast dtype is the engine's to
        choose); a session's first batch checked to be prepared inputs
        (:func:`~retinalnet._core.model_inputs.check_batch`, warning of other sizes and of
        unnormalised inputs with ``warn``: a loader whose samples nothing checked)."""
        if not self._inputs_checked:
            model = self.model
            check_batch(
                inputs,
                self.preprocessing if isinstance(model, Classifier) else None,
                warn=warn,
                refuse_images=warn,  # samples nothing checked: a data set's rule, per batch
            )
            self._inputs_checked = True
        batch = copy_to(inputs, self.device, torch.float32)  # queued toward CUDA only
        if batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def outputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The network's raw outputs (float32) for a batch of prepared inputs; no TTA."""
        with self.session() as forward:
            return self._scores(forward(self._to_device(inputs))).float()

    def log_probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (float64, on the engine's device), mirror-averaged with TTA.

        ``log_softmax(outputs / temperature)``: valid for networks ending in
        ``LogSoftmax`` and for logits alike, since ``softmax(log_softmax(z) / T)`` equals
        ``softmax(z / T)``. With TTA each view is scaled, then the probabilities averaged.
        On Apple MPS, which has no float64, they are float32 (0.2: every call raised there).
        """
        with self.session() as forward:
            return self._log_probabilities(forward, self._to_device(inputs))

    def _log_probabilities(
        self, forward: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor
    ) -> torch.Tensor:
        temperature = self._session_temperature
        if temperature is None:  # not in a session (a caller's own forward function)
            temperature = self.temperature
        scores = self._scores(forward(batch))
        wide = widest_float(scores.device)  # float64; float32 on MPS, which has no float64
        log_probabilities = torch.log_softmax(scores.to(wide) / temperature, dim=1)
        if not self.tta:
            return log_probabilities
        mirrored = torch.log_softmax(
            self._scores(forward(batch.flip(-1))).to(wide) / temperature, dim=1
        )
        # log of the mean of the two probabilities (math.log(2) is float64's log of 2)
        stacked = torch.stack([log_probabilities, mirrored])
        return torch.logsumexp(stacked, dim=0) - math.log(2.0)

    def probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities (float32, on the CPU) of a batch of prepared inputs.

        Inputs of any floating-point dtype are cast to float32 first (autocast then runs
        the engine's precision).

        Raises
        ------
        TypeError
            If ``inputs`` is not a tensor (a list, a NumPy array).
        ValueError
            If ``inputs`` is not floating point (a uint8 image), or, for a Classifier, is
            not a batch ``(N, 3, H, W)``.
        """
        return self.log_probabilities(inputs).exp().float().cpu()

    def run(
        self, loader: DataLoader[Any], *, progress: Callable[[Any], Any] | None = None
    ) -> Generator[tuple[torch.Tensor, Any], None, None]:
        """Yield ``(log_probabilities, rest)`` for each batch ``(inputs, *rest)`` of a loader.

        ``log_probabilities`` stay on the engine's device (float64; float32 on MPS); ``rest``
        is the rest of the batch as the loader gave it (the targets, for a labelled data set).
        One session covers the whole loader, so the weights are cast once; it holds the model
        until the generator ends or is closed: a caller that may stop early closes it
        (:func:`contextlib.closing`).
        """
        batches = progress(loader) if progress is not None else loader
        warn = unchecked_samples(loader)  # a user's loader with a collate_fn of its own
        with self.session() as forward:
            for batch in batches:
                inputs, rest = (
                    (batch[0], batch[1:])
                    if isinstance(batch, (tuple, list))
                    else (
                        batch,
                        (),
                    )
                )
                batch_inputs = self._to_device(inputs, warn=warn)
                yield self._log_probabilities(forward, batch_inputs), rest

    def features(
        self, inputs: torch.Tensor, module: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What ``module`` receives for a batch, and the network's outputs.

        Returns
        -------
        features : torch.Tensor
            The input of ``module``, flattened to ``(N, -1)``, float32 on the CPU.
        outputs : torch.Tensor
            The network's raw outputs, on the engine's device.
        """
        captured: list[torch.Tensor] = []

        def keep_input(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            captured.append(args[0].detach().flatten(1).float().cpu())

        with self.session() as forward:  # the hook inside: it sees this thread's pass alone
            handle = module.register_forward_pre_hook(keep_input)
            try:
                outputs = forward(self._to_device(inputs))
            finally:
                handle.remove()
        if len(captured) != 1:
            raise ValueError(
                f"the module {type(module).__name__} ran {len(captured)} times in one forward "
                "pass; the feature cache needs a head that runs exactly once"
            )
        return captured[0], outputs


def first_nonfinite_row(outputs: torch.Tensor) -> int | None:
    """The first row of ``outputs`` (one per input: scores, log-probabilities or
    probabilities) holding a NaN or infinite value; ``None`` if all are finite.

    A network that gives a NaN for an input (weights that are not finite, an overflow in
    low precision) has no answer for it: its "probabilities" are NaN, and their argmax is
    class 0 whatever the image. Callers that turn outputs into answers for people
    (:class:`~retinalnet.Predictor`) refuse such a row, naming the input. One reduction
    and one read back per batch.

    .. versionadded:: 0.2
    """
    finite = torch.isfinite(outputs)
    if finite.dim() > 1:
        finite = finite.flatten(1).all(dim=1)
    if bool(finite.all()):  # also for no rows
        return None
    return int(torch.nonzero(~finite)[0])
