"""One thread at a time on a model, and every module's train/eval mode put back afterwards.

Every door that runs a model for inference or Grad-CAM (:class:`~retinalnet.Predictor`,
:func:`~retinalnet.training.evaluate`, the Trainer's validation, the feature cache's pass,
:func:`~retinalnet.gradcam.grad_cam`) switches the model to eval mode for the pass and puts
the modes back after it. Two threads doing that on one model at once would each see the
other's modes: :func:`exclusive_use` makes them take turns, and :func:`modes_restored` puts
back the mode of each module (a frozen backbone kept in eval mode under a head in train mode
stays so), not just the model's own flag.

.. versionadded:: 0.2
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator

import torch
from torch import nn

from retinalnet._core.default_dtype import set_by_default

__all__ = [
    "check_float32_weights",
    "check_no_inference_weights",
    "exclusive_use",
    "modes_restored",
]

_turns = threading.Condition()
# id(module) -> (the thread using it, how many of that thread's sessions hold it); an entry
# lives only while its module is in use, so the module is alive and its id is its own
_users: dict[int, tuple[int, int]] = {}


def _forget_other_threads() -> None:
    """In a process forked from this one, only the forking thread goes on: the models the
    other threads were using are free in it (they waited forever for threads it does not
    have), and its lock is a new one (another thread may have held the old one at the fork).
    The forking thread's own uses stay: it leaves its blocks in the child as in the parent
    (a DataLoader worker forked during a prediction)."""
    global _turns
    me = threading.get_ident()
    _turns = threading.Condition()
    for key, (user, _) in list(_users.items()):
        if user != me:
            del _users[key]


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_other_threads)


@contextlib.contextmanager
def exclusive_use(model: nn.Module) -> Iterator[None]:
    """Use ``model`` and every module in it from this thread alone for the block.

    A thread entering the block waits while another thread uses the model or any module in
    it or around it (a Trainer's validation running a classifier's head alone waits for a
    prediction on the whole classifier, and the other way round); different models run at
    the same time. The block is re-entrant: a thread already using the model enters again at
    once (Grad-CAM inside a prediction). All the modules are taken at once or not at all, so
    threads that each enter one block never wait for one another in a circle; DataLoader
    worker processes take no part. The block may be left from another thread (a generator
    closed elsewhere): it counts uses, not owners.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2))
    >>> with exclusive_use(net), exclusive_use(net[0]):  # re-entrant
    ...     pass
    """
    me = threading.get_ident()
    keys = [id(module) for module in model.modules()]

    def free() -> bool:
        return all(_users.get(key, (me, 0))[0] == me for key in keys)

    with _turns:
        _turns.wait_for(free)
        for key in keys:
            _, depth = _users.get(key, (me, 0))
            _users[key] = (me, depth + 1)
    try:
        yield
    finally:
        with _turns:
            for key in keys:
                user, depth = _users[key]
                if depth > 1:
                    _users[key] = (user, depth - 1)
                else:
                    del _users[key]
            _turns.notify_all()


@contextlib.contextmanager
def modes_restored(model: nn.Module) -> Iterator[None]:
    """Put back, on leaving the block (an error too), the train/eval mode of every module of
    ``model`` as it was on entering it.

    ``model.train(was_training)`` would set every module to the model's own mode, undoing a
    mix such as a frozen backbone kept in eval mode under a head in train mode. Each module's
    ``training`` flag is set back directly (no module's ``train`` method is called).

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> _ = net[1].eval()
    >>> with modes_restored(net):
    ...     _ = net.eval()
    >>> net.training, net[1].training
    (True, False)
    """
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def check_no_inference_weights(model: object, use: str) -> None:
    """Refuse a model whose weights were made under ``torch.inference_mode()`` before a
    call that needs their gradients (``use``: ``"trained"``, ``"explained by Grad-CAM"``):
    torch refuses such inference tensors only deep inside the first backward pass.

    Raises
    ------
    ValueError
        Naming the first such weight and the fix.
    """
    named = model.named_parameters() if isinstance(model, nn.Module) else iter(())
    made = next((name for name, weight in named if weight.is_inference()), None)
    if made is not None:
        raise ValueError(
            f"the model's weight {made!r} was made under torch.inference_mode() (an inference "
            f"tensor, which cannot be {use}); build or load the model outside "
            "torch.inference_mode()"
        )


def check_float32_weights(model: object, use: str) -> None:
    """Refuse a model whose floating-point weights or norm statistics are not float32 (a
    model cast by ``.half()``, ``.bfloat16()`` or ``.double()``, or a network built by
    hand under another ``torch.set_default_dtype``, which the message then names; the
    library builds its own networks in float32) before it is ``use``-d
    (``"run"``, ``"trained"``, ``"explained by Grad-CAM"``, ``"exported"``): every door
    gives the network float32 images and lowers the precision of a pass itself
    (``precision=``), so torch would otherwise fail deep inside the first layer, or run in a
    precision other than the one asked for. Other buffers may be of any dtype (a float64
    constant a network keeps for itself).

    Raises
    ------
    ValueError
        Naming the first such tensor, its dtype and the fix.

    Examples
    --------
    >>> import torch
    >>> check_float32_weights(torch.nn.Linear(2, 2).half(), "run")
    Traceback (most recent call last):
    ...
    ValueError: the model's weight 'weight' is torch.float16, not float32 ... model.float() ...
    """
    if not isinstance(model, nn.Module):
        return
    norms = (
        (f"{prefix}.{name}" if prefix else name, tensor)
        for prefix, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._NormBase)  # running statistics
        for name, tensor in module.named_buffers(recurse=False)
    )
    tensors = itertools.chain(
        (("weight", name, tensor) for name, tensor in model.named_parameters()),
        (("buffer", name, tensor) for name, tensor in norms),
    )
    for kind, name, tensor in tensors:
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            cause = "a model cast by .half(), .bfloat16() or .double()"
            if set_by_default(tensor.dtype):  # not a cast: the modules were built so
                cause = (
                    f"torch's default dtype is {torch.get_default_dtype()} "
                    "(torch.set_default_dtype), which a network built by hand takes"
                )
            raise ValueError(
                f"the model's {kind} {name!r} is {tensor.dtype}, not float32 ({cause}), so it "
                f"cannot be {use}: call model.float() first; retinalnet lowers the precision "
                "of a pass itself (precision='bf16' or 'fp16')"
            )
