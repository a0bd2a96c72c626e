"""The check of the first batch a fit (or ``lr_find``) runs: the inputs a network receives.

A training pass hands its batches straight to the network, so a DataLoader with a
``collate_fn`` of its own (which :func:`~retinalnet._core.loaders.make_loader` cannot look
into) could bring uint8 images to the first convolution, and the fit ended in torch's
"expected scalar type Byte but found Float". :class:`FirstInputsCheck` checks the first
batch by the rule of every door (:func:`~retinalnet._core.model_inputs.check_batch`), as a
forward pre-hook that removes itself.
"""

from __future__ import annotations

from torch import nn
from torch.utils.hooks import RemovableHandle

from retinalnet._core.model_inputs import check_batch
from retinalnet.models._classifier import Classifier

__all__ = ["FirstInputsCheck"]

_TRAINING_FIX = (
    "give the Trainer a data set of PIL images or file paths, which the model's "
    "preprocessing prepares (train_transform() for training), or make the DataLoader's "
    "collate_fn stack tensors made by model.preprocessing"
)
"""The fix for training batches that are no prepared model inputs."""


class FirstInputsCheck:
    """Checks the inputs of the first forward pass of a module, once per fit.

    :meth:`arm` hooks the module until its next forward; the hook checks that batch and
    removes itself (also when it refuses). :meth:`reset` starts a new fit; :meth:`disarm`
    removes a hook that no forward reached (the task calls it when a fit or ``lr_find``
    ends, however it ends: no hook is left on the user's model).
    """

    def __init__(self) -> None:
        self._handle: RemovableHandle | None = None
        self._done = False
        self._unchecked = False

    def reset(self, *, unchecked: bool = False) -> None:
        """A new fit: its first batch is checked again. ``unchecked``: its loader's samples
        were not checked by ``make_loader`` (a ``collate_fn`` of the user's), so the batch
        gets the data sets' rule, warnings included."""
        self.disarm()
        self._done = False
        self._unchecked = unchecked

    def arm(self, module: nn.Module) -> None:
        """Check the next batch ``module`` runs, unless this fit's first one was checked."""
        if not self._done and self._handle is None:
            self._handle = module.register_forward_pre_hook(self._check)

    def disarm(self) -> None:
        """Remove the hook, if no forward pass reached it."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _check(self, module: nn.Module, args: tuple[object, ...]) -> None:
        self.disarm()
        self._done = True
        # a Classifier, or one inside the module run (DistributedDataParallel's); a head on
        # cached features, or a bare network, has its dtype checked only
        classifier = next((m for m in module.modules() if isinstance(m, Classifier)), None)
        check_batch(
            args[0] if args else None,
            classifier.preprocessing if classifier is not None else None,
            fix=_TRAINING_FIX,
            warn=self._unchecked,  # else make_loader checked the samples, warnings included
            refuse_images=self._unchecked,
        )
