"""Seeds and random state: :func:`seed_everything`, and the random generators and data order
that a checkpoint carries, so that a resumed fit repeats the uninterrupted one."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.seeds import check_seed

__all__ = [
    "check_seed",
    "data_order_state",
    "random_state",
    "seed_everything",
    "set_data_order_state",
    "set_random_state",
]


def seed_everything(seed: int) -> int:
    """Seed Python's :mod:`random`, NumPy's global generator and torch (the CPU and every GPU).

    Call it before building a model, so that its new head starts from the same weights in
    every run: ``Trainer(seed=...)`` seeds the fit itself (the shuffle, augmentation and
    dropout) when :meth:`~retinalnet.training.Trainer.fit` starts, which is after the model
    was built. ``retinalnet train --seed N`` does both.

    Parameters
    ----------
    seed
        An int from 0 to 2**32 - 1.

    Returns
    -------
    int
        The seed.

    Raises
    ------
    ValueError
        If ``seed`` is not an int from 0 to 2**32 - 1.

    Examples
    --------
    >>> from retinalnet.models import create_model
    >>> from retinalnet.training import Trainer, seed_everything
    >>> seed_everything(0)
    0
    >>> model = create_model("small_cnn")  # doctest: +SKIP
    >>> trainer = Trainer(model, seed=0)  # doctest: +SKIP

    The model starts from the same weights in every run, and the trainer draws the same
    shuffles, augmentation and dropout.

    With the same seed, the same ``num_workers`` and the same number of threads
    (``torch.get_num_threads()``, set by ``OMP_NUM_THREADS`` or ``torch.set_num_threads``),
    two fits on the same CPU give the same weights and history, bit for bit (but for each
    epoch's wall time). Another number of threads shares out some of a training step's sums
    differently, which rounds differently and gives another run (a resume too); prediction
    and evaluation do not depend on it.
    Another number of DataLoader workers draws other augmentations (not the feature cache's
    augmented views, seeded per image), and another CPU can give another run:
    other vector instructions round differently
    (``torch.backends.cpu.get_cpu_capability()``), and on a CPU with native bf16 the default
    ``precision="auto"`` runs the fit's validation and feature cache in bf16. Over a
    fine-tune both show (see "Reproducibility" in the docs). On a GPU, some operations are
    not deterministic (see PyTorch's notes on reproducibility).

    .. versionadded:: 0.2
    """
    global seedings
    seed = check_seed(seed, allow_none=False)  # a NumPy int is refused by random.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
    seedings += 1
    return seed


seedings = 0
"""How many times :func:`seed_everything` has run in this process (a command run from
Python puts the caller's generators back only when it seeded them)."""


def random_state() -> dict[str, Any]:
    """The global random generators of Python, NumPy and torch (CPU, and GPUs in use), as
    plain data and tensors for a checkpoint."""
    version, internal, gauss_next = random.getstate()
    _, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        # only GPUs already in use: asking for their state would start CUDA on a CPU run
        "cuda": torch.cuda.get_rng_state_all() if _cuda_in_use() else None,
    }


def _cuda_in_use() -> bool:
    initialized: bool = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    return initialized


def set_random_state(state: Mapping[str, Any], *, source: str) -> None:
    """Restore what :func:`random_state` returned.

    Raises
    ------
    ValueError
        If a part of ``state`` is malformed; the message names ``source`` (the checkpoint)
        and the part.
    """
    for part, restore in (
        ("python", _set_python),
        ("numpy", _set_numpy),
        ("torch", _set_torch),
        ("cuda", _set_cuda),
    ):
        if part not in state:
            raise _malformed(source, f"loop.random.{part}", "is missing")
        try:
            restore(state[part])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            raise _malformed(
                source, f"loop.random.{part}", f"cannot be restored ({error})"
            ) from None


def _set_python(state: Mapping[str, Any]) -> None:
    internal = tuple(int(value) for value in state["internal"])
    random.setstate((int(state["version"]), internal, state["gauss_next"]))


def _set_numpy(state: Mapping[str, Any]) -> None:
    key = np.asarray(state["key"].cpu().numpy(), dtype=np.uint32)
    np.random.set_state(
        (
            "MT19937",
            key,
            int(state["pos"]),
            int(state["has_gauss"]),
            float(state["cached_gaussian"]),
        )
    )


def _set_torch(state: torch.Tensor) -> None:
    torch.set_rng_state(state.cpu())


def _set_cuda(states: list[torch.Tensor] | None) -> None:
    if states is None:
        return  # written on a CPU (or before any GPU was used)
    if not torch.cuda.is_available() or torch.cuda.device_count() != len(states):
        warn_caller(
            f"the checkpoint holds the random state of {len(states)} GPU(s) and this machine "
            f"has {torch.cuda.device_count() if torch.cuda.is_available() else 0}: random "
            "operations on a GPU (dropout) will not repeat the original run",
            UserWarning,
        )
        return
    torch.cuda.set_rng_state_all([value.cpu() for value in states])


def _generators(loader: DataLoader[Any]) -> dict[str, torch.Generator]:
    """The generators that decide a loader's data order: its own (worker seeds, the
    shuffle) and its sampler's (a shuffling or class-balanced sampler)."""
    found: dict[str, torch.Generator] = {}
    if isinstance(loader.generator, torch.Generator):
        found["loader"] = loader.generator
    sampler_generator = getattr(loader.sampler, "generator", None)
    if isinstance(sampler_generator, torch.Generator):
        found["sampler"] = sampler_generator
    return found


def data_order_state(loader: DataLoader[Any] | None) -> dict[str, torch.Tensor]:
    """The states of the generators deciding ``loader``'s data order, by name."""
    if loader is None:
        return {}
    return {name: generator.get_state() for name, generator in _generators(loader).items()}


def set_data_order_state(
    loader: DataLoader[Any], state: Mapping[str, Any], *, source: str, warn: bool = True
) -> None:
    """Restore what :func:`data_order_state` returned into ``loader``'s generators.

    A state with no generator to go to (the resumed fit shuffles differently: another seed,
    balance or loader) is reported with a warning, since the data order then differs from
    the original run's (unless ``warn`` is false: the caller said why already).

    Raises
    ------
    ValueError
        If a state is malformed; the message names ``source`` and the part.
    """
    generators = _generators(loader)
    lost = sorted(set(state) - set(generators))
    for name, value in state.items():
        if name not in generators:
            continue
        try:
            generators[name].set_state(value.cpu())
        except (AttributeError, TypeError, ValueError, RuntimeError) as error:
            raise _malformed(source, f"loop.data.{name}", f"cannot be restored ({error})") from None
    if lost and warn:
        warn_caller(
            f"the run in {source} drew its data order from generators this fit does not have "
            f"({', '.join(lost)}): the data order will differ from the original run's; resume "
            "with the same seed, balance and data as the run being resumed",
            UserWarning,
        )


def _malformed(source: str, name: str, problem: str) -> ValueError:
    return ValueError(f"cannot resume from {source}: field {name!r} {problem}")
