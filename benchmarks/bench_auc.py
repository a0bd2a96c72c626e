"""What ``roc_auc`` costs, and what it costs a bootstrap: one argsort against the old formula.

``roc_auc`` gives each score its mean rank among ties (the Mann-Whitney U statistic). Until
2026-12-02 it sorted the scores and then found each score's rank by two binary searches of the
sorted copy (``np.searchsorted``, ``left`` and ``right``); it now takes the ranks of runs of
tied scores from one ``argsort``. The old formula is re-implemented here as the baseline and
timed in the same run, alternating, on scores rounded to 3 decimals (so with many ties, as
probabilities of a confident model have) for each ``--sizes`` count of images; the two AUCs
are checked equal. Then ``classification_report(bootstrap=...)`` is timed per resample, with
the library's ``roc_auc`` and with the baseline patched in (the bootstrap calls it once per
class and once for the referral AUC: five times per resample on four classes).

    python benchmarks/bench_auc.py --sizes 1000 10000 80000 --runs 20 --resamples 10
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import time
from collections.abc import Callable
from unittest import mock

import numpy as np
import numpy.typing as npt

from retinalnet.metrics import classification_report, roc_auc

_USERS = (
    "retinalnet.metrics._bootstrap",
    "retinalnet.metrics._report",
    "retinalnet.metrics._rates",
)
"""The modules that import ``roc_auc``: patched together for the baseline bootstrap."""


def auc_by_searchsorted(scores: npt.ArrayLike, positive: npt.ArrayLike) -> float:
    """The old ``roc_auc``: sort, then two binary searches of every (unsorted) score."""
    values = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(positive).astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ordered = np.sort(values)
    ranks = (
        np.searchsorted(ordered, values, "left") + np.searchsorted(ordered, values, "right") + 1
    ) / 2
    u = float(ranks[labels].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def _median_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 80000])
    parser.add_argument("--runs", type=int, default=20, help="timed calls of each roc_auc")
    parser.add_argument("--resamples", type=int, default=10, help="bootstrap resamples")
    args = parser.parse_args()
    print("roc_auc, median of", args.runs, "calls (scores rounded to 3 decimals: many ties)")
    for n in args.sizes:
        rng = np.random.default_rng(0)
        scores = np.round(rng.random(n), 3)
        positive = rng.random(n) < 0.4
        new, old = roc_auc(scores, positive), auc_by_searchsorted(scores, positive)
        assert abs(new - old) <= 1e-12, (new, old)
        base = _median_ms(functools.partial(auc_by_searchsorted, scores, positive), args.runs)
        fast = _median_ms(functools.partial(roc_auc, scores, positive), args.runs)
        print(
            f"  n={n:6d}  searchsorted {base:8.3f} ms  argsort {fast:8.3f} ms  "
            f"{base / fast:5.1f} x faster  (AUC {new:.6f} both)",
            flush=True,
        )
    print("classification_report bootstrap, 4 classes, ms per resample")
    for n in args.sizes:
        rng = np.random.default_rng(0)
        targets = rng.integers(0, 4, n)
        probabilities = rng.dirichlet([1.0] * 4, n)

        report = functools.partial(
            classification_report, targets, probabilities, bootstrap=args.resamples
        )
        with contextlib.ExitStack() as patches:
            for user in _USERS:
                patches.enter_context(mock.patch(f"{user}.roc_auc", auc_by_searchsorted))
            base = _median_ms(report, 1) / args.resamples
        fast = _median_ms(report, 1) / args.resamples
        print(
            f"  n={n:6d}  searchsorted {base:8.2f} ms  argsort {fast:8.2f} ms  "
            f"{base / fast:5.1f} x faster  (--bootstrap 1000: {base:.0f} s -> {fast:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
