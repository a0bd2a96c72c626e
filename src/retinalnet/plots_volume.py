"""The figure of an OCT volume: each B-scan's class probabilities as a strip.

Needs matplotlib (the ``plot`` extra), imported only when the function is called, as in
:mod:`retinalnet.plots`.

.. versionadded:: 0.2
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from retinalnet._core.printable import fit_title
from retinalnet._core.proportion_text import percent_as_given
from retinalnet.plots import SavePath, _figure, _finish

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from retinalnet.volume import VolumeSummary

__all__ = ["plot_volume"]


def plot_volume(
    summary: VolumeSummary, *, title: str | None = None, save: SavePath = None, dpi: int = 100
) -> Figure:
    """Per-B-scan probabilities of a volume: a strip per class, and the volume's class.

    The top panel is a heat strip (one row per class in referral order, one column per
    B-scan, darker = less probable); the B-scans that drove the volume's class are ringed.
    The bottom panel draws the same probabilities as lines, with the threshold dashed.

    Parameters
    ----------
    summary
        From :func:`retinalnet.volume.predict_volume` or
        :func:`~retinalnet.volume.summarise_volume`.
    title
        The figure's title; by default the volume's name, class and reason. It is shown as
        given (a pair of ``$`` is not mathtext), broken into lines where it is wider than
        the figure.
    save
        Write the figure to this file (format from the suffix: PNG, PDF, SVG): whole, or
        not at all.
    dpi
        Resolution when saving.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        A bad ``dpi`` or ``save`` is refused as in :func:`retinalnet.plots.plot_history`.
    OSError
        A :class:`~retinalnet._core.files.FileWriteError` if ``save`` cannot be written (a
        full disk): it names the file, the cause and the fix; the file there before is
        untouched.

    Examples
    --------
    >>> from retinalnet.volume import summarise_volume
    >>> scans = [[0.1, 0.1, 0.1, 0.7]] * 5 + [[0.8, 0.1, 0.05, 0.05]]
    >>> summary = summarise_volume(scans, ("CNV", "DME", "DRUSEN", "NORMAL"))
    >>> figure = plot_volume(summary)
    >>> len(figure.axes)
    3
    """
    rows = [summary.classes.index(name) for name in summary.order]
    strip = summary.array[:, rows].T  # (classes in referral order, scans)
    count = summary.num_scans
    figure = _figure(max(6.0, min(14.0, 2.5 + count * 0.08)), 4.4)
    heat_axes, line_axes = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.4]}
    )
    image = heat_axes.imshow(
        strip,
        aspect="auto",
        interpolation="nearest",
        cmap="magma",
        vmin=0,
        vmax=1,
        extent=(-0.5, count - 0.5, len(rows) - 0.5, -0.5),
    )
    heat_axes.set_yticks(range(len(rows)), list(summary.order))
    figure.colorbar(image, ax=heat_axes, label="probability", fraction=0.04)
    label_row = summary.order.index(summary.label)
    if summary.drivers:
        heat_axes.scatter(
            [s.index for s in summary.drivers],
            [label_row] * len(summary.drivers),
            s=30,
            facecolors="none",
            edgecolors="cyan",
            linewidths=1.2,
            label=f"{summary.label} >= {percent_as_given(summary.threshold)}",
        )
        heat_axes.legend(loc="upper right", fontsize="small", framealpha=0.8)
    scans = np.arange(count)
    for row, name in zip(rows, summary.order, strict=True):
        line_axes.plot(
            scans,
            summary.array[:, row],
            marker="." if count <= 64 else None,
            linewidth=2.2 if name == summary.label else 1.0,
            label=name,
        )
    line_axes.axhline(summary.threshold, color="gray", linestyle="--", linewidth=1)
    line_axes.set_ylim(-0.02, 1.02)
    line_axes.set_ylabel("probability")
    line_axes.set_xlabel("B-scan")
    line_axes.grid(alpha=0.3)
    line_axes.legend(loc="upper right", fontsize="small", ncols=len(rows))
    shown = figure.suptitle(
        title
        if title is not None
        else f"{summary.source}: {summary.label} ({count} B-scans; {summary.reason})",
        fontsize="medium",
        parse_math=False,  # a path's pair of $ is text, not mathtext
    )
    fit_title(shown)  # a long path in lines, not cut off at both edges
    return _finish(figure, save, dpi)
