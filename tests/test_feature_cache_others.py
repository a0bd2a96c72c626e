"""A disk feature cache says how many other caches its folder holds (they are never removed)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from torch import nn

from _training_helpers import CLASSES
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.models import Classifier, build_head, freeze
from retinalnet.training import _feature_cache
from retinalnet.training._feature_cache import build_feature_cache
from retinalnet.transforms import Preprocessing


def _frozen_model() -> Classifier:
    trunk = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    freeze(trunk)
    network = nn.Sequential(trunk, build_head(16, 4, hidden=8, dropout=0.0))
    return Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=32))


def _other_caches_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "other cache(s)" in r.getMessage()]


def _another_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new process knows: no cache it wrote or read."""
    monkeypatch.setattr(_feature_cache, "_IN_USE", set())


def test_writing_a_cache_logs_the_other_caches_the_folder_holds_and_removes_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # was: each change to the files wrote a full new copy beside the old ones, unsaid
    root = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(40, 40))
    cache_dir = tmp_path / "features"
    (cache_dir / "notes").mkdir(parents=True)  # not a cache: not counted
    model, data = _frozen_model(), KermanyOCT(root, "train")

    def build() -> None:
        build_feature_cache(model, data, cache_dir=cache_dir, device="cpu", progress=False)

    with caplog.at_level(logging.INFO, logger="retinalnet"):
        build()
    assert _other_caches_said(caplog) == []  # the only cache
    first = next(path for path in cache_dir.iterdir() if path.name != "notes")

    path = Path(data.samples[0][0])  # the data change: a new fingerprint, a new folder
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    _another_run(monkeypatch)  # the first cache is another run's
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        build()
    size = sum(file.stat().st_size for file in first.iterdir())
    said = _other_caches_said(caplog)
    assert len(said) == 1
    assert f"{cache_dir} holds 1 other cache(s) besides " in said[0]
    assert size < 10**6
    assert f"({size / 1e3:.1f} kB in all)" in said[0]
    assert "none is removed automatically" in said[0]
    assert "delete the ones you no longer use" in said[0]
    assert first.is_dir()  # kept: another run may be reading it
    assert len(list(cache_dir.iterdir())) == 3

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        build()  # read back, nothing written: nothing said
    assert _other_caches_said(caplog) == []


def test_the_caches_this_process_wrote_or_read_are_not_counted_as_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # was: a fit's validation cache said the folder "holds 1 other cache(s) ... delete the
    # ones you no longer use" of the training cache this same fit wrote a moment before
    # (and, for `retinalnet train --feature-cache` without a folder, of a scratch folder)
    root = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(40, 40))
    cache_dir = tmp_path / "features"
    model = _frozen_model()
    train, val = KermanyOCT(root, "train"), KermanyOCT(root, "val")

    def build(data: KermanyOCT) -> None:
        build_feature_cache(model, data, cache_dir=cache_dir, device="cpu", progress=False)

    _another_run(monkeypatch)
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        build(train)
        build(val)  # beside the training split's, which this process wrote
    assert _other_caches_said(caplog) == []
    assert len(list(cache_dir.iterdir())) == 2

    _another_run(monkeypatch)  # a new run reads the training cache, writes the test split's
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        build(train)
        build(KermanyOCT(root, "test"))
    said = _other_caches_said(caplog)
    assert len(said) == 1  # the validation cache, another run's; not the training one it read
    assert "holds 1 other cache(s)" in said[0]
