"""What ``roc_auc`` costs, and what it costs a bootstrap: one argsort against the old formula.

``roc_auc`` gives each score its mean rank among ties (the Mann-Whitney U statistic). Until
2026-12-02 it sorted the scores and then found each score's rank by two binary searches of the
sorted copy (``np.searchsorted``, ``left`` and ``right``); it now takes the ranks of runs of
tied scores from one ``argsort``. The old formula is re-implemented here as the baseline and
timed in the same run, alternating, on scores rounded to 3 decimals (so with many ties, as
probabilities of a confident model have) for each ``--sizes`` count of images; the two AUCs
are checked equal. Then ``classification_report(bootstrap=...)`` is timed per resample, with
the library's ``roc_auc`` and with the baseline patched into every module of
``retinalnet.metrics`` that calls it (found at run time; the bootstrap calls it once per class
and once for the referral AUC: five times per resample on four classes, plus five for the
point estimates, a count the script checks). ``--resamples`` is at least 40, the fewest
``classification_report`` accepts for 95% intervals.

    python benchmarks/bench_auc.py --sizes 1000 10000 80000 --runs 20 --resamples 40
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import pkgutil
import statistics
import time
from collections.abc import Callable
from unittest import mock

import numpy as np
import numpy.typing as npt

import retinalnet.metrics
from retinalnet.metrics import classification_report, roc_auc
from retinalnet.metrics._intervals import minimum_resamples

FEWEST_RESAMPLES = minimum_resamples(0.95)
"""The fewest resamples ``classification_report`` accepts at its default 95% (40)."""


def roc_auc_users() -> list[str]:
    """The modules of ``retinalnet.metrics`` that hold the library's ``roc_auc`` under that
    name (those that import it, and ``_roc`` itself): patching them all routes every call."""
    users = []
    for info in pkgutil.iter_modules(retinalnet.metrics.__path__):
        name = f"{retinalnet.metrics.__name__}.{info.name}"
        if getattr(importlib.import_module(name), "roc_auc", None) is roc_auc:
            users.append(name)
    if not users:
        raise SystemExit(
            "no module of retinalnet.metrics holds roc_auc any more: this benchmark cannot "
            "patch the baseline in; update roc_auc_users() in benchmarks/bench_auc.py"
        )
    return users


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


class CountedBaseline:
    """:func:`auc_by_searchsorted`, counting its calls: the patch must reach every caller."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, scores: npt.ArrayLike, positive: npt.ArrayLike) -> float:
        self.calls += 1
        return auc_by_searchsorted(scores, positive)


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
    parser.add_argument(
        "--resamples",
        type=int,
        default=FEWEST_RESAMPLES,
        help=f"bootstrap resamples (default and fewest: {FEWEST_RESAMPLES})",
    )
    args = parser.parse_args()
    if args.resamples < FEWEST_RESAMPLES:
        parser.error(
            f"--resamples {args.resamples} is too few: classification_report needs at least "
            f"{FEWEST_RESAMPLES} for 95% intervals; pass --resamples {FEWEST_RESAMPLES} or more"
        )
    users = roc_auc_users()
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
        baseline = CountedBaseline()
        with contextlib.ExitStack() as patches:
            for user in users:
                patches.enter_context(mock.patch(f"{user}.roc_auc", baseline))
            base = _median_ms(report, 1) / args.resamples
        expected_calls = 5 * (args.resamples + 1)  # 4 classes + referral, per resample + point
        if baseline.calls != expected_calls:
            raise SystemExit(
                f"the baseline roc_auc was called {baseline.calls} times, expected "
                f"{expected_calls} (5 per resample and 5 for the point estimates): the patch "
                f"of {users} misses a caller, so the baseline row would time the library"
            )
        fast = _median_ms(report, 1) / args.resamples
        print(
            f"  n={n:6d}  searchsorted {base:8.2f} ms  argsort {fast:8.2f} ms  "
            f"{base / fast:5.1f} x faster  (--bootstrap 1000: {base:.1f} s -> {fast:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
