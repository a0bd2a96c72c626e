"""Building the feature cache holds the cache once, and writes a disk cache as it goes.

The build kept every batch of every pass in a list and joined them after the last one:
twice the cache in memory at the peak (13.7 GB for frozen VGG16 over OCT2017 with four
views), reached at the end of the build, and a disk cache written only then. Each door is
measured in a process of its own (the peak of its resident memory, ``VmHWM``).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from _training_helpers import CLASSES
from retinalnet.datasets import KermanyOCT
from retinalnet.models import Classifier, build_head, freeze
from retinalnet.training import build_feature_cache
from retinalnet.training._feature_cache import FeatureCache
from retinalnet.transforms import Preprocessing

_STATUS = Path("/proc/self/status")

_IMAGES_PER_CLASS = 67
"""268 images, 3 rows each (``views=2``) of 32 x 32 x 32 floats: a cache of 100.5 MiB."""

_PROBE = r"""
import gc, json, sys, warnings
from pathlib import Path

import torch

torch.set_num_threads(1)
warnings.simplefilter("ignore")
from torch import nn
from torch.utils.data import DataLoader

from retinalnet.datasets import KermanyOCT
from retinalnet.models import Classifier, build_head, freeze
from retinalnet.training import Callback, FeatureCacheConfig, Trainer, build_feature_cache
from retinalnet.training._feature_cache import FeatureCache
from retinalnet.transforms import Preprocessing

root, door, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
classes = ["CNV", "DME", "DRUSEN", "NORMAL"]


def model():
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Conv2d(3, 32, 1), nn.Flatten())
    freeze(trunk)
    head = build_head(32 * 32 * 32, 4, hidden=None, dropout=0.0)
    return Classifier(nn.Sequential(trunk, head), classes=classes,
                      preprocessing=Preprocessing(size=32))


def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no {key}")


data = KermanyOCT(root, "train")
settings = {"views": 2, "device": "cpu", "precision": "fp32", "progress": False,
            "num_workers": 0, "decode": "tensor" if door == "disk-tensor" else "pil"}
cache_dir = None if door == "memory" else out / "cache"
report = {}
gc.collect()
Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
base = status("VmRSS")
if door == "fit":
    class Built(Callback):  # the training steps' own allocations come after
        def on_epoch_start(self, trainer, epoch):
            report.setdefault("rise", status("VmHWM") - base)
            report.setdefault("held", status("VmRSS") - base)

    config = FeatureCacheConfig(views=2, cache_dir=cache_dir)
    trainer = Trainer(model(), feature_cache=config, max_epochs=1,
                      batch_size=64, device="cpu", precision="fp32", progress=False, seed=0,
                      callbacks=[Built()])
    trainer.fit(data)
    report["cache"] = 3 * len(data) * 32 * 32 * 32 * 4
else:
    cache = build_feature_cache(model(), data, cache_dir=cache_dir, **settings)
    report["cache"] = cache.features.nbytes
    report["rise"] = status("VmHWM") - base
if door.startswith("disk"):
    (folder,) = cache_dir.iterdir()
    report["files"] = sorted(path.name for path in folder.iterdir())
    loaded = FeatureCache.load(folder, fingerprint=cache.fingerprint, num_classes=4)
    in_memory = build_feature_cache(model(), data, **settings)
    report["loaded"] = loaded is not None
    report["same"] = bool(
        loaded is not None
        and torch.equal(loaded.features, in_memory.features)
        and torch.equal(loaded.targets, in_memory.targets)
        and torch.equal(cache.features, in_memory.features)
        and torch.equal(cache.targets, in_memory.targets)
    )
(out / "report.json").write_text(json.dumps(report))
"""


@pytest.fixture(scope="module")
def hundred_mib_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KermanyOCT tree of 268 random 32 x 32 scans."""
    root = tmp_path_factory.mktemp("memory") / "data"
    rng = np.random.default_rng(0)
    for index in range(len(CLASSES) * _IMAGES_PER_CLASS):
        name = CLASSES[index % len(CLASSES)]
        folder = root / "train" / name
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (32, 32), np.uint8)
        Image.fromarray(pixels, "L").save(folder / f"{name}-{1000 + index}-1.png")
    return root


@pytest.mark.skipif(
    not _STATUS.is_file() or "VmHWM" not in _STATUS.read_text(),
    reason="needs Linux's /proc/self/status (VmHWM)",
)
@pytest.mark.parametrize("door", ["memory", "disk", "disk-tensor", "fit"])
def test_the_build_holds_the_cache_once_not_twice(
    hundred_mib_tree: Path, tmp_path: Path, door: str
) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", _PROBE, str(hundred_mib_tree), door, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if ran.returncode != 0 and "clear_refs" in ran.stderr:
        pytest.skip("this system does not let a process reset its peak memory")
    assert ran.returncode == 0, ran.stderr
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    cache, rise = report["cache"], report["rise"]
    assert cache > 100 * 2**20
    # was 2.0x the cache and more (every batch kept, then joined into a second copy)
    assert rise <= 1.25 * cache + 60 * 2**20, f"peak {rise / cache:.2f}x the cache"
    if door.startswith("disk"):
        assert report["files"] == ["features.npy", "meta.json", "targets.npy"]
        assert report["loaded"]
        assert report["same"]  # the disk cache, read back, is the in-memory build's
    if door == "fit":  # the fit trains from the file, memory-mapped: no copy kept in memory
        assert report["held"] <= 0.25 * cache + 60 * 2**20, f"{report['held'] / cache:.2f}x"


def _small_model() -> Classifier:
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    freeze(trunk)
    network = nn.Sequential(trunk, build_head(8, 4, hidden=None, dropout=0.0))
    return Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=32))


class _Interrupted(KermanyOCT):
    """Ctrl-C the ``at``-th time image 9 is read (in its third batch of four), noting the
    files the cache folder holds then (in lists: the build reads through copies of it)."""

    def __init__(self, root: Path, cache_dir: Path, at: int) -> None:
        super().__init__(root, "train")
        self.cache_dir = cache_dir
        self.at = at
        self.reads: list[int] = []
        self.files_then: list[str] = []

    def __getitem__(self, index: int) -> Any:
        if index == 9:
            self.reads.append(index)
            if len(self.reads) == self.at:
                self.files_then += sorted(p.name for p in self.cache_dir.rglob("*") if p.is_file())
                raise KeyboardInterrupt
        return super().__getitem__(index)


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupted") / "data"
    for index in range(16):
        name = CLASSES[index % len(CLASSES)]
        (root / "train" / name).mkdir(parents=True, exist_ok=True)
        pixels = np.full((32, 32), 15 * index, np.uint8)
        Image.fromarray(pixels, "L").save(root / "train" / name / f"{name}-{100 + index}-1.png")
    return root


@pytest.mark.parametrize(("views", "at"), [(0, 1), (1, 2)], ids=["plain-pass", "view-pass"])
def test_an_interrupted_build_leaves_no_file_a_later_run_reads(
    small_tree: Path, tmp_path: Path, views: int, at: int
) -> None:
    cache_dir = tmp_path / "features"
    settings: dict[str, Any] = {
        "views": views, "batch_size": 4, "device": "cpu", "precision": "fp32",
        "progress": False, "num_workers": 0,
    }  # fmt: skip
    interrupted = _Interrupted(small_tree, cache_dir, at)
    with pytest.raises(KeyboardInterrupt):
        build_feature_cache(_small_model(), interrupted, cache_dir=cache_dir, **settings)

    # the rows went to disk as they came (was: nothing written before the last pass) ...
    (written,) = interrupted.files_then
    assert re.fullmatch(r"\.features\.npy\.[0-9a-f]{8}\.tmp", written)
    # ... and an interrupted build leaves none of it
    assert [p for p in cache_dir.rglob("*") if p.is_file()] == []

    data = KermanyOCT(small_tree, "train")
    rebuilt = build_feature_cache(_small_model(), data, cache_dir=cache_dir, **settings)
    (folder,) = cache_dir.iterdir()
    loaded = FeatureCache.load(folder, fingerprint=rebuilt.fingerprint, num_classes=4)
    assert loaded is not None
    in_memory = build_feature_cache(_small_model(), data, **settings)
    assert torch.equal(loaded.features, in_memory.features)
    assert torch.equal(loaded.targets, in_memory.targets)
    assert len(in_memory.features) == (views + 1) * len(data)


@pytest.mark.parametrize("sizes", [[4, 4, 4, 4], [3, 1, 6, 2, 4]], ids=["fixed", "uneven"])
def test_a_callers_loader_fills_its_rows_in_place_whatever_its_batches(
    small_tree: Path, sizes: list[int]
) -> None:
    # a DataLoader's number of rows is only estimated (its batches times their size): its
    # rows grow when a batch sampler gives more
    model = _small_model()
    settings: dict[str, Any] = {"device": "cpu", "precision": "fp32", "progress": False}
    expected = build_feature_cache(model, KermanyOCT(small_tree, "train"), **settings)
    prepared = KermanyOCT(small_tree, "train", transform=model.preprocessing.eval_transform())
    starts = np.cumsum([0, *sizes])
    batches = [list(range(start, stop)) for start, stop in itertools.pairwise(starts)]
    loader = DataLoader(prepared, batch_sampler=batches)
    cache = build_feature_cache(model, loader, **settings)
    torch.testing.assert_close(cache.features, expected.features)  # other batches: rounding
    assert torch.equal(cache.targets, expected.targets)


def test_a_loader_giving_more_rows_than_estimated_grows_them(small_tree: Path) -> None:
    # a batch sampler that draws 40 images (with replacement) from 16: more rows than
    # len(dataset) estimates, so the rows grow
    from torch.utils.data import BatchSampler, RandomSampler

    model = _small_model()
    prepared = KermanyOCT(small_tree, "train", transform=model.preprocessing.eval_transform())
    draws = RandomSampler(
        prepared, replacement=True, num_samples=40, generator=torch.Generator().manual_seed(0)
    )
    order = [index for batch in BatchSampler(draws, 3, drop_last=False) for index in batch]
    loader = DataLoader(prepared, batch_sampler=BatchSampler(order, 3, drop_last=False))
    settings: dict[str, Any] = {"device": "cpu", "precision": "fp32", "progress": False}

    cache = build_feature_cache(model, loader, **settings)

    expected = build_feature_cache(model, KermanyOCT(small_tree, "train"), **settings)
    assert len(cache.features) == 40
    torch.testing.assert_close(cache.features, expected.features[order])
    assert torch.equal(cache.targets, expected.targets[order])


def test_a_damaged_cache_the_disk_will_not_replace_is_neither_read_nor_left(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the folder refused the new file at the first batch: the damaged cache left there was
    # then memory-mapped by the fit (the run trained on zeros)
    import errno

    from retinalnet.training import _feature_rows

    settings: dict[str, Any] = {"device": "cpu", "precision": "fp32", "progress": False}
    data = KermanyOCT(small_tree, "train")
    cache_dir = tmp_path / "features"
    built = build_feature_cache(_small_model(), data, cache_dir=cache_dir, **settings)
    (folder,) = cache_dir.iterdir()
    features = np.load(folder / "features.npy")
    np.save(folder / "features.npy", np.zeros_like(features))  # damaged: same shape
    np.save(folder / "targets.npy", np.zeros(len(features) + 1, np.int64))  # one row more

    def full_disk(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_feature_rows._RowFile, "zeros", full_disk)
    with pytest.warns(UserWarning, match="No space left on device"):
        again = build_feature_cache(_small_model(), data, cache_dir=cache_dir, **settings)

    assert torch.equal(again.features, built.features)
    assert not (folder / "features.npy").exists()
    assert not (folder / "meta.json").exists()
