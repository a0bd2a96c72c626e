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
from retinalnet.training._feature_cache import build_feature_cache
from retinalnet.transforms import Preprocessing


def _frozen_model() -> Classifier:
    trunk = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    freeze(trunk)
    network = nn.Sequential(trunk, build_head(16, 4, hidden=8, dropout=0.0))
    return Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=32))


def _other_caches_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "other cache(s)" in r.getMessage()]


def test_writing_a_cache_logs_the_other_caches_the_folder_holds_and_removes_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
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
