"""What a learning-rate range test measured (:class:`LRFinderResult`), and the two rules
that read a rate off its curve."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from retinalnet._core.printable import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_RULE", "SUGGESTION_RULES", "LRFinderResult"]

SUGGESTION_RULES: tuple[str, ...] = ("steepest", "valley")
"""How a rate is read off the curve: ``"steepest"`` (Lightning's: where the smoothed loss
falls fastest; the default here) or ``"valley"`` (fastai's default since 2.4: about halfway
into the longest stretch where the smoothed loss keeps falling, a more cautious rate)."""

DEFAULT_RULE = "steepest"
"""The rule of :attr:`LRFinderResult.suggestion`: it trained better than ``"valley"`` in
``benchmarks/bench_lr_find.py`` (synthetic and real scans)."""


@dataclass(frozen=True)
class LRFinderResult:
    """What a learning-rate range test measured, and the rate it suggests.

    Attributes
    ----------
    lrs : tuple of float
        The rate of each step (of the first parameter group; other groups were scaled with
        it).
    losses : tuple of float
        The smoothed training loss at each step (bias-corrected exponential moving average).
    raw_losses : tuple of float
        The loss of each step's batch.
    rule : str
        The rule behind :attr:`suggestion`, one of :data:`SUGGESTION_RULES`.
    stop_reason : str
        Why the test ended: it ran ``num_steps`` steps, or the loss diverged.

    Examples
    --------
    >>> result = trainer.lr_find(train)  # doctest: +SKIP
    >>> result.suggestion  # the default rule, "steepest"  # doctest: +SKIP
    0.0052
    >>> result.suggest("valley")  # doctest: +SKIP
    0.0013
    >>> figure = result.plot(save="lr_find.png")  # doctest: +SKIP

    .. versionadded:: 0.2
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    raw_losses: tuple[float, ...]
    rule: str = DEFAULT_RULE
    stop_reason: str = ""

    @property
    def suggestion(self) -> float | None:
        """The suggested rate by :attr:`rule`; ``None`` when the curve is too short (fewer
        than 8 steps before the loss diverged)."""
        return self.suggest(self.rule)

    def suggest(self, rule: str = DEFAULT_RULE) -> float | None:
        """The rate ``rule`` reads off the smoothed curve.

        Parameters
        ----------
        rule
            ``"steepest"`` or ``"valley"`` (see :data:`SUGGESTION_RULES`). Both skip the
            first tenth of the steps, where the moving average is still settling, and
            ``"valley"`` also the last five, as fastai does.

        Returns
        -------
        float or None
            ``None`` when fewer than 8 steps were recorded.

        Raises
        ------
        ValueError
            If ``rule`` is unknown.
        """
        if rule not in SUGGESTION_RULES:
            raise ValueError(
                f"rule must be one of {', '.join(map(repr, SUGGESTION_RULES))}, got {rule!r}"
            )
        if len(self.losses) < 8:
            return None
        index = _valley(self.losses) if rule == "valley" else _steepest(self.losses)
        return self.lrs[index]

    def __str__(self) -> str:
        if not self.lrs:
            return f"lr_find: no step recorded ({self.stop_reason})"
        suggestion = self.suggestion
        chosen = "none (too few steps)" if suggestion is None else f"{suggestion:.2e}"
        return (
            f"lr_find: {len(self.lrs)} steps from {self.lrs[0]:.1e} to {self.lrs[-1]:.1e} "
            f"({self.stop_reason}); suggested lr {chosen} ({self.rule})"
        )

    def plot(self, *, save: str | os.PathLike[str] | None = None, dpi: int = 100) -> Figure:
        """The smoothed loss against the rate (log scale), the suggestion marked.

        Needs matplotlib (the ``plot`` extra). The figure is built without ``pyplot``, so
        nothing changes matplotlib's global state; it is written to ``save`` if given.

        Raises
        ------
        ImportError
            If matplotlib is not installed.
        """
        try:
            from matplotlib.figure import Figure
        except ImportError as error:
            raise ImportError(
                "LRFinderResult.plot draws with matplotlib, which is not installed: pip "
                'install matplotlib (or pip install "retinalnet[plot]")'
            ) from error
        figure = Figure(figsize=(6.0, 4.0), layout="constrained")
        axes = figure.add_subplot()
        axes.plot(self.lrs, self.raw_losses, color="0.75", linewidth=0.8, label="batch loss")
        axes.plot(self.lrs, self.losses, color="C0", label="smoothed loss")
        suggestion = self.suggestion
        if suggestion is not None:
            axes.axvline(suggestion, color="C3", linestyle="--", label=f"{suggestion:.1e}")
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel("training loss")
        low, high = (min(self.losses), self.losses[0]) if self.losses else (0.0, 0.0)
        if high > low:  # from the lowest loss to the first: the diverging tail is cut off
            span = high - low
            axes.set_ylim(low - 0.1 * span, high + 0.3 * span)
        axes.set_title(f"learning-rate range test ({self.rule})")
        axes.legend()
        if save is not None:
            save_figure(figure, os.fspath(save), dpi=dpi)
        return figure


def _valley(losses: tuple[float, ...]) -> int:
    """fastai's ``valley``: the longest run of falling losses, 1/2 of the way in."""
    start = len(losses) // 10
    stop = max(start + 3, len(losses) - 5)
    values = losses[start:stop]
    count = len(values)
    longest = [1] * count  # longest falling subsequence ending at each point
    best_start, best_end = 0, 0
    for i in range(1, count):
        for j in range(i):
            if values[i] < values[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[best_end] < longest[i]:
            best_end = i
            best_start = best_end - longest[best_end]
    sections = (best_end - best_start) / 3
    return start + best_start + int(sections) + int(sections / 2)


def _steepest(losses: tuple[float, ...]) -> int:
    """Lightning's rule: where the smoothed loss falls fastest (per step, so per log-rate)."""
    start = len(losses) // 10
    values = np.asarray(losses[start:], dtype=np.float64)
    return start + int(np.gradient(values).argmin())
