"""The frozen-feature cache: same features, same trained head, never stale."""

from __future__ import annotations

import copy
import errno
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models import resnet18

from _file_limits import file_size_limit
from _training_helpers import CLASSES, BuildSpy, frozen_small_cnn
from retinalnet._core.loaders import BatchedTensorDataset
from retinalnet.datasets import KermanyOCT, SyntheticOCT, make_synthetic_kermany
from retinalnet.models import Classifier, build_head, freeze, replace_head, vgg16_transfer
from retinalnet.training import FeatureCacheConfig, Trainer, _feature_cache, evaluate
from retinalnet.training import _trainer as trainer_module
from retinalnet.training._feature_cache import FeatureCache, build_feature_cache, trainable_head
from retinalnet.transforms import Preprocessing


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache") / "data"
    return make_synthetic_kermany(root, train=4, val=2, test=1, shape=(64, 64), seed=7)


def frozen_model(seed: int = 0) -> Classifier:
    """A frozen conv trunk (no dropout, no batch norm) and a trainable tutorial-style head."""
    torch.manual_seed(seed)
    trunk = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    )
    freeze(trunk)
    network = nn.Sequential(trunk, build_head(16, 4, hidden=8, dropout=0.2))
    return Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=32))


def test_trainable_head_of_the_tutorial_model_is_classifier_6() -> None:
    with torch.device("meta"):
        model = vgg16_transfer(weights=None)
    name, head = trainable_head(model)
    assert name == "classifier.6"
    assert head is model.network.classifier[6]


def test_trainable_head_of_a_frozen_resnet_is_fc() -> None:
    with torch.device("meta"):
        network = freeze(resnet18(weights=None))
        replace_head(network, 4)
    assert trainable_head(network)[0] == "fc"


@pytest.mark.parametrize("kwargs", [{"except_last_blocks": 1}, {"freeze": False}])
def test_no_cache_when_more_than_the_head_trains(kwargs: dict[str, object]) -> None:
    with torch.device("meta"):
        model = vgg16_transfer(weights=None, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="every parameter outside one final head frozen"):
        trainable_head(model)


def test_features_are_what_the_head_receives(tree: Path) -> None:
    model = frozen_model()
    model.train()
    rng_before = torch.random.get_rng_state()
    data = KermanyOCT(tree, "train")
    cache = build_feature_cache(
        model, data, device="cpu", precision="fp32", batch_size=3, progress=False
    )

    assert cache.head_name == "1"
    assert cache.features.shape == (16, 16)
    assert cache.targets.tolist() == data.targets
    transform = model.preprocessing.eval_transform()
    with torch.no_grad():
        expected = model.network[0](torch.stack([transform(data[i][0]) for i in range(16)]))
    torch.testing.assert_close(cache.features, expected)
    assert model.training  # mode restored
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # global RNG untouched


def test_a_head_that_is_not_last_is_refused(tree: Path) -> None:
    model = frozen_model()
    after = nn.Linear(4, 4)
    after.requires_grad_(False)
    model.network.append(after)
    with pytest.raises(ValueError, match="not the last step"):
        build_feature_cache(model, KermanyOCT(tree, "train"), device="cpu", progress=False)


def test_a_cache_dir_that_is_a_file_is_refused_before_the_backbone_runs(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retinalnet.training import _feature_cache

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the backbone ran before cache_dir was checked")

    monkeypatch.setattr(_feature_cache, "_extract", never)
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(NotADirectoryError, match=r"^cache_dir '.*afile' is a file, not a folder"):
        build_feature_cache(
            frozen_model(), KermanyOCT(tree, "train"), cache_dir=afile, device="cpu", progress=False
        )


def test_training_through_the_cache_gives_the_same_model(tree: Path) -> None:
    # Without augmentation, training the whole model (frozen trunk recomputed every
    # epoch) and training the head alone on cached features must give the same head.
    direct = frozen_model()
    cached = copy.deepcopy(direct)
    eval_prep = direct.preprocessing.eval_transform()
    train_data = KermanyOCT(tree, "train", transform=eval_prep)
    Trainer(
        direct, max_epochs=3, batch_size=4, seed=1, device="cpu", progress=False, precision="fp32",
        feature_cache=False,
    ).fit(train_data)  # fmt: skip

    cache = build_feature_cache(
        cached, KermanyOCT(tree, "train"), device="cpu", precision="fp32", progress=False
    )
    head = cached.network[1]
    head_model = Classifier(head, classes=CLASSES)
    settings = {"max_epochs": 3, "batch_size": 4, "seed": 1, "device": "cpu", "progress": False}
    Trainer(head_model, precision="fp32", **settings).fit(cache.dataset())  # type: ignore[arg-type]

    for name, value in direct.network[1].state_dict().items():
        torch.testing.assert_close(head.state_dict()[name], value, rtol=1e-4, atol=1e-5)
    changed = frozen_model().network[1].state_dict()
    assert any(not torch.equal(changed[n], v) for n, v in head.state_dict().items())


def test_augmented_views_follow_the_plain_rows_and_are_seeded(tree: Path) -> None:
    data = KermanyOCT(tree, "train")
    model = frozen_model()
    first = build_feature_cache(model, data, views=2, seed=3, device="cpu", progress=False)
    again = build_feature_cache(model, data, views=2, seed=3, device="cpu", progress=False)
    plain = build_feature_cache(model, data, device="cpu", progress=False)

    assert first.features.shape == (48, 16)
    assert first.targets.tolist() == data.targets * 3
    torch.testing.assert_close(first.features[:16], plain.features)
    assert not torch.allclose(first.features[16:32], plain.features)
    assert torch.equal(first.features, again.features)
    with pytest.raises(ValueError, match="views must be an int >= 0"):
        build_feature_cache(model, data, views=-1, device="cpu", progress=False)


def test_augmented_views_are_the_same_whatever_the_workers_and_batches(tree: Path) -> None:
    data = KermanyOCT(tree, "train")
    model = frozen_model()
    common: dict[str, Any] = {"views": 2, "seed": 3, "device": "cpu", "progress": False}
    alone = build_feature_cache(model, data, num_workers=0, **common)
    in_workers = build_feature_cache(model, data, num_workers=2, batch_size=3, **common)

    assert not torch.allclose(alone.features[16:32], alone.features[:16])  # views, not copies
    assert torch.equal(in_workers.features, alone.features)


def test_augmented_views_drawn_in_workers_follow_the_seed(tree: Path) -> None:
    data = KermanyOCT(tree, "train")
    model = frozen_model()
    views = {
        seed: build_feature_cache(
            model, data, views=1, seed=seed, num_workers=2, device="cpu", progress=False
        ).features[16:]
        for seed in (1, 2)
    }
    assert not torch.allclose(views[1], views[2])


def test_a_seed_out_of_range_is_refused_before_the_backbone_runs(tree: Path) -> None:
    with pytest.raises(ValueError, match=r"seed must be an int from 0 to 2\*\*32 - 1, got -1"):
        build_feature_cache(frozen_model(), KermanyOCT(tree, "train"), views=1, seed=-1)


class _Draws(torch.utils.data.Dataset[torch.Tensor]):
    """Eight items, each three numbers drawn from torch's generator when it is read."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(3)


def test_a_view_is_seeded_by_the_image_place_in_the_whole_data_set() -> None:
    """Under torchrun each process reads its share (a Subset starting at ``start``): an
    image's view is the one a single process draws for it, and the caller's generator is
    left as it was."""
    views = _feature_cache._SeededViews
    whole = views(_Draws(), seed=1, view=1, start=0)
    share = views(torch.utils.data.Subset(_Draws(), range(5, 8)), seed=1, view=1, start=5)
    state = torch.get_rng_state()

    assert torch.equal(share[0], whole[5])
    assert torch.equal(share[2], whole[7])
    assert torch.equal(whole[5], whole[5])  # read again (another epoch, worker): the same
    assert not torch.equal(whole[5], whole[6])
    assert not torch.equal(whole[5], views(_Draws(), seed=1, view=2, start=0)[5])
    assert not torch.equal(whole[5], views(_Draws(), seed=2, view=1, start=0)[5])
    assert torch.equal(torch.get_rng_state(), state)


def test_a_fit_on_cached_views_is_the_same_with_and_without_workers(tree: Path) -> None:
    train, val = KermanyOCT(tree, "train"), KermanyOCT(tree, "val")
    histories = []
    for workers in (0, 2):
        trainer = Trainer(
            frozen_model(), max_epochs=2, batch_size=4, seed=0, device="cpu", progress=False,
            num_workers=workers, feature_cache=FeatureCacheConfig(views=1),
        )  # fmt: skip
        history = trainer.fit(train, val)
        histories.append([row["train_loss"] for row in history.to_records()])
    assert histories[0] == histories[1]


def test_disk_cache_is_reused_and_never_stale(
    tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache_dir = tmp_path / "features"
    model = frozen_model()
    data = KermanyOCT(tree, "train")
    first = build_feature_cache(model, data, cache_dir=cache_dir, device="cpu", progress=False)
    assert len(list(cache_dir.iterdir())) == 1

    with caplog.at_level(logging.INFO, logger="retinalnet"):
        reused = build_feature_cache(model, data, cache_dir=cache_dir, device="cpu", progress=False)
    assert "using cached features" in caplog.text
    torch.testing.assert_close(reused.features, first.features)
    assert reused.fingerprint == first.fingerprint

    other_weights = frozen_model(seed=1)
    build_feature_cache(other_weights, data, cache_dir=cache_dir, device="cpu", progress=False)
    assert len(list(cache_dir.iterdir())) == 2

    other_prep = copy.deepcopy(model)
    other_prep.preprocessing = Preprocessing(size=48)
    build_feature_cache(other_prep, data, cache_dir=cache_dir, device="cpu", progress=False)
    assert len(list(cache_dir.iterdir())) == 3

    path = Path(data.samples[0][0])
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    build_feature_cache(model, data, cache_dir=cache_dir, device="cpu", progress=False)
    assert len(list(cache_dir.iterdir())) == 4


def test_one_root_spelled_any_way_shares_one_disk_cache(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # was: `--data base`, `--data ../base` (a job started in another folder) and
    # `--data /abs/base` each built a cache of their own
    cache_dir = tmp_path / "features"
    model = frozen_model()
    (tmp_path / "job").mkdir()
    monkeypatch.chdir(tmp_path / "job")
    spellings = [
        tree,
        Path(os.path.relpath(tree)),
        Path("..") / ".." / tree.parent.name / tree.name,
    ]
    if hasattr(os, "symlink"):
        (tmp_path / "linked").symlink_to(tree, target_is_directory=True)
        spellings.append(tmp_path / "linked")
    fingerprints = set()
    for root in spellings:
        cache = build_feature_cache(
            model, KermanyOCT(root, "train"), cache_dir=cache_dir, device="cpu", progress=False
        )
        fingerprints.add(cache.fingerprint)
    assert len(fingerprints) == 1
    assert len(list(cache_dir.iterdir())) == 1


def _bitmaps(root: Path, seed: int) -> Path:
    """One 32 x 32 BMP scan per class in ``root/train``: files of one size whatever their
    pixels, all with one modification time."""
    pixels = np.random.default_rng(seed).integers(0, 256, (len(CLASSES), 32, 32), np.uint8)
    for name, image in zip(CLASSES, pixels, strict=True):
        path = root / "train" / name / f"{name}-1-1.bmp"
        path.parent.mkdir(parents=True)
        Image.fromarray(image, "L").save(path)
        os.utime(path, ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))
    return root


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_a_root_link_pointed_at_other_files_of_the_same_sizes_and_times_builds_again(
    tmp_path: Path,
) -> None:
    # the files count by their real paths: before, a link pointed elsewhere gave the same
    # paths, and files of the same sizes and times were served the other files' features
    cache_dir = tmp_path / "features"
    model = frozen_model()
    first_root, other_root = _bitmaps(tmp_path / "a", seed=0), _bitmaps(tmp_path / "b", seed=1)
    link = tmp_path / "current"
    link.symlink_to(first_root, target_is_directory=True)
    first = build_feature_cache(
        model, KermanyOCT(link, "train"), cache_dir=cache_dir, device="cpu", progress=False
    )
    link.unlink()
    link.symlink_to(other_root, target_is_directory=True)
    again = build_feature_cache(
        model, KermanyOCT(link, "train"), cache_dir=cache_dir, device="cpu", progress=False
    )
    assert again.fingerprint != first.fingerprint
    assert not torch.equal(again.features, first.features)


def test_plain_disk_cache_is_shared_across_seeds_and_augmentations_views_are_not(
    tree: Path, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "features"
    model = frozen_model()
    data = KermanyOCT(tree, "train")
    first = build_feature_cache(model, data, cache_dir=cache_dir, seed=0, progress=False)
    augmented = copy.deepcopy(model)
    augmented.preprocessing = model.preprocessing.with_augmentation("oct")
    for other_model, seed in ((model, 5), (augmented, 0)):  # plain features: nothing changes
        again = build_feature_cache(
            other_model, data, cache_dir=cache_dir, seed=seed, progress=False
        )
        assert again.fingerprint == first.fingerprint
    assert len(list(cache_dir.iterdir())) == 1

    with_views = {"cache_dir": cache_dir, "views": 1, "progress": False}
    seeded = build_feature_cache(model, data, seed=0, **with_views)
    assert build_feature_cache(model, data, seed=1, **with_views).fingerprint != seeded.fingerprint
    other_aug = build_feature_cache(augmented, data, seed=0, **with_views)
    assert other_aug.fingerprint != seeded.fingerprint
    assert len(list(cache_dir.iterdir())) == 4


def test_disk_cache_needs_file_backed_data(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not file-backed"):
        build_feature_cache(
            frozen_model(), SyntheticOCT(1, shape=(64, 64)), cache_dir=tmp_path, device="cpu"
        )


def test_trainer_option_trains_the_same_head_as_training_without_it(tree: Path) -> None:
    direct = frozen_model()
    cached = copy.deepcopy(direct)
    eval_prep = direct.preprocessing.eval_transform()
    settings = {"max_epochs": 2, "batch_size": 4, "seed": 2, "device": "cpu", "progress": False}
    settings["precision"] = "fp32"
    history = Trainer(direct, feature_cache=False, **settings).fit(  # type: ignore[arg-type]
        KermanyOCT(tree, "train", transform=eval_prep), KermanyOCT(tree, "val", transform=eval_prep)
    )
    trainer = Trainer(cached, feature_cache=True, **settings)  # type: ignore[arg-type]
    cached_history = trainer.fit(KermanyOCT(tree, "train"), KermanyOCT(tree, "val"))

    for name, value in direct.state_dict().items():
        torch.testing.assert_close(cached.state_dict()[name], value, rtol=1e-4, atol=1e-5)
    for plain, fast in zip(history, cached_history, strict=True):
        assert fast.val_loss == pytest.approx(plain.val_loss, rel=1e-4)
        assert fast.train_accuracy == plain.train_accuracy
    assert trainer.evaluate(KermanyOCT(tree, "test")).num_samples == 4


def test_trainer_feature_cache_config_keeps_views_on_disk(tree: Path, tmp_path: Path) -> None:
    config = FeatureCacheConfig(cache_dir=tmp_path / "features", views=1)
    trainer = Trainer(
        frozen_model(), feature_cache=config, max_epochs=1, batch_size=8, device="cpu",
        progress=False,
    )  # fmt: skip

    trainer.fit(KermanyOCT(tree, "train"), KermanyOCT(tree, "val"))

    metas = sorted((tmp_path / "features").glob("*/meta.json"))
    views = sorted(json.loads(meta.read_text())["views"] for meta in metas)
    assert views == [0, 1]  # validation without views, training with one augmented copy


def test_trainer_option_refuses_a_model_without_a_frozen_part() -> None:
    network = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))  # all trainable
    model = Classifier(network, classes=CLASSES)
    with pytest.raises(ValueError, match="every parameter outside one final head frozen"):
        Trainer(model, feature_cache=True)


def test_frozen_backbone_runs_in_eval_mode_during_training(tree: Path) -> None:
    model = frozen_model()
    model.network[0].append(nn.Dropout(0.5))  # a frozen dropout, like VGG16's classifier[2]
    seen: list[bool] = []
    model.network[0][-1].register_forward_hook(lambda m, i, o: seen.append(m.training))
    head_modes: list[bool] = []
    model.network[1].register_forward_hook(lambda m, i, o: head_modes.append(m.training))
    trainer = Trainer(
        model, max_epochs=1, batch_size=8, device="cpu", progress=False, feature_cache=False
    )
    trainer.fit(KermanyOCT(tree, "train"))
    assert seen == [False, False]
    assert head_modes == [True, True]


def test_reduced_precision_features_stay_close_to_fp32(tree: Path) -> None:
    data = KermanyOCT(tree, "train")
    model = frozen_model()
    exact = build_feature_cache(model, data, device="cpu", precision="fp32", progress=False)
    fast = build_feature_cache(model, data, device="cpu", precision="bf16", progress=False)
    assert fast.features.dtype == torch.float32
    assert fast.fingerprint != exact.fingerprint
    torch.testing.assert_close(fast.features, exact.features, rtol=0.05, atol=0.02)


def test_evaluate_through_the_cache_matches_evaluate_without_it(
    tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = frozen_model()
    data = KermanyOCT(tree, "val")
    plain = evaluate(model, data, device="cpu")
    cached = evaluate(model, data, device="cpu", feature_cache=tmp_path)
    assert cached.loss == pytest.approx(plain.loss, rel=1e-5)
    assert (cached.confusion_matrix == plain.confusion_matrix).all()
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        again = evaluate(model, data, device="cpu", feature_cache=tmp_path)
    assert "using cached features" in caplog.text
    assert again.loss == pytest.approx(plain.loss, rel=1e-5)
    with pytest.raises(ValueError, match="use one or the other"):
        evaluate(model, data, device="cpu", feature_cache=True, tta=True)


def test_cache_dataset_reads_batches_and_moves_to_a_device(tree: Path) -> None:
    cache = build_feature_cache(frozen_model(), KermanyOCT(tree, "train"), device="cpu")
    data = cache.dataset("cpu")
    assert len(data) == 16
    features, targets = data.__getitems__([3, 0])  # type: ignore[attr-defined]
    assert torch.equal(features, cache.features[[3, 0]])
    assert torch.equal(targets, cache.targets[[3, 0]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_trainer_keeps_cached_features_on_the_gpu(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_from: list[str] = []
    read_batch = BatchedTensorDataset.__getitems__

    def spy(self: BatchedTensorDataset, indices: list[int]) -> tuple[torch.Tensor, ...]:
        read_from.append(self.tensors[0].device.type)
        return read_batch(self, indices)

    monkeypatch.setattr(BatchedTensorDataset, "__getitems__", spy)

    def fit(model: Classifier) -> list[float]:
        trainer = Trainer(
            model, feature_cache=True, device="cuda", max_epochs=2, batch_size=4, seed=2,
            precision="fp32", progress=False, num_workers=0,  # the spy sees every read
        )  # fmt: skip
        return [record.train_loss for record in trainer.fit(KermanyOCT(tree, "train"))]

    on_host = frozen_model()
    on_gpu = copy.deepcopy(on_host)
    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "resident_device", lambda nbytes, device: None)
        host_losses = fit(on_host)
    assert set(read_from) == {"cpu"}
    read_from.clear()
    gpu_losses = fit(on_gpu)
    assert set(read_from) == {"cuda"}
    assert gpu_losses == pytest.approx(host_losses, rel=1e-6)  # the same batches, the same steps


def test_the_trainer_builds_its_kept_features_again_when_the_preprocessing_changes(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = BuildSpy(monkeypatch)
    model = frozen_model()
    trainer = Trainer(model, max_epochs=1, batch_size=4, seed=0, device="cpu", progress=False)
    val = KermanyOCT(tree, "val")
    trainer.evaluate(val)
    model.preprocessing = model.preprocessing.with_augmentation("oct")
    trainer.evaluate(val)  # plain features: the training augmentation changes none of them
    assert builds.calls == 1
    model.preprocessing = Preprocessing(size=48)
    resized = trainer.evaluate(val)  # other inputs: the kept features are stale
    assert builds.calls == 2
    assert resized.loss == pytest.approx(evaluate(model, val, batch_size=4).loss, rel=1e-5)

    with_views = Trainer(
        model, max_epochs=1, batch_size=4, seed=0, device="cpu", progress=False,
        feature_cache=FeatureCacheConfig(views=1),
    )  # fmt: skip
    train = KermanyOCT(tree, "train")
    with_views.fit(train)
    with_views.fit(train)  # the same views again: kept
    assert builds.calls == 3
    model.preprocessing = model.preprocessing.with_augmentation("oct")
    with_views.fit(train)  # views of another augmentation: built again
    assert builds.calls == 4
    with_views.seed = 1
    with_views.fit(train)  # another seed draws other views: built again (was: kept)
    assert builds.calls == 5


class FullDisk:
    """Stands in for ``numpy.save`` on a disk that fills up: the ``fail_at``-th array saved
    gets some bytes out, then ``OSError(ENOSPC)``, as a full disk does; the others are saved."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail_at: int) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self._real = np.save
        monkeypatch.setattr(np, "save", self)

    def __call__(self, file: Any, arr: Any, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls != self.fail_at:
            return self._real(file, arr, *args, **kwargs)  # type: ignore[no-any-return]
        some_bytes = b"\x93NUMPY" + bytes(4096)
        if hasattr(file, "write"):
            file.write(some_bytes)
        else:  # a path
            Path(file).write_bytes(some_bytes)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if not path.is_dir())


class ExtractSpy:
    """Counts the backbone passes of the cache builds (one per pass over the data)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._real = _feature_cache._extract
        monkeypatch.setattr(_feature_cache, "_extract", self)

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return self._real(*args, **kwargs)


CACHE_FIT = {
    "max_epochs": 2, "batch_size": 4, "seed": 2, "device": "cpu", "progress": False,
    "precision": "fp32",
}  # fmt: skip


def fit_with_cache(model: Classifier, data: KermanyOCT, config: FeatureCacheConfig) -> list[float]:
    trainer = Trainer(model, feature_cache=config, **CACHE_FIT)  # type: ignore[arg-type]
    return [record.train_loss for record in trainer.fit(data)]


@pytest.mark.parametrize("fail_at", [1, 2], ids=["features", "targets"])
def test_a_full_disk_leaves_no_partial_cache_warns_once_and_the_fit_goes_on_in_memory(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    data = KermanyOCT(tree, "train")
    in_memory = frozen_model()
    on_full_disk = copy.deepcopy(in_memory)
    expected = fit_with_cache(in_memory, data, FeatureCacheConfig())
    cache_dir = tmp_path / "features"

    with monkeypatch.context() as patch:
        disk = FullDisk(patch, fail_at=fail_at)
        with pytest.warns(UserWarning, match="feature cache could not be saved") as warned:
            losses = fit_with_cache(on_full_disk, data, FeatureCacheConfig(cache_dir=cache_dir))

    assert disk.calls == fail_at
    assert files_under(cache_dir) == []  # no partial features.npy filling the disk
    messages = [str(w.message) for w in warned if "feature cache" in str(w.message)]
    assert len(messages) == 1
    assert str(cache_dir) in messages[0]
    assert "No space left on device" in messages[0]
    assert "free some disk space" in messages[0]
    assert "--feature-cache" in messages[0]
    assert losses == expected
    for name, value in in_memory.state_dict().items():
        torch.testing.assert_close(on_full_disk.state_dict()[name], value, rtol=0, atol=0)


def test_a_run_after_a_full_disk_builds_the_cache_and_the_next_one_reuses_it(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = KermanyOCT(tree, "train")
    model = frozen_model()
    cache_dir = tmp_path / "features"
    config = FeatureCacheConfig(cache_dir=cache_dir)
    with monkeypatch.context() as patch:
        FullDisk(patch, fail_at=1)
        with pytest.warns(UserWarning, match="No space left"):
            expected = fit_with_cache(copy.deepcopy(model), data, config)

    passes = ExtractSpy(monkeypatch)
    assert fit_with_cache(copy.deepcopy(model), data, config) == expected
    assert passes.calls == 1  # built
    assert sorted(path.name for path in files_under(cache_dir)) == [
        "features.npy", "meta.json", "targets.npy",
    ]  # fmt: skip
    assert fit_with_cache(copy.deepcopy(model), data, config) == expected
    assert passes.calls == 1  # reused


def test_a_save_that_fails_over_an_older_cache_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    older = FeatureCache(torch.ones(8, 16), torch.zeros(8, dtype=torch.long), "1", "same")
    older.save(folder)
    newer = FeatureCache(torch.full((8, 16), 2.0), torch.ones(8, dtype=torch.long), "1", "same")
    FullDisk(monkeypatch, fail_at=2)  # the features are saved, the targets are not

    with pytest.raises(OSError, match=r"(?i)targets\.npy'?: no space left on device") as raised:
        newer.save(folder)

    assert raised.value.errno == errno.ENOSPC
    assert FeatureCache.load(folder, fingerprint="same") is None
    assert files_under(folder) == []


_FILE_SIZE_LIMIT = 4096


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and EFBIG as on Linux")
def test_a_real_refused_write_names_the_file_and_its_cause_not_numpys_byte_counts(
    tmp_path: Path,
) -> None:
    # numpy writes a real file with fwrite, and says of a refused write only "N requested
    # and M written", without errno: the cache writes through the stream to keep the cause
    features = torch.zeros(8, _FILE_SIZE_LIMIT)
    big = FeatureCache(features, torch.zeros(8, dtype=torch.long), "1", "x")
    refused = r"(?i)features\.npy'?: file too large"
    with pytest.raises(OSError, match=refused) as raised, file_size_limit(_FILE_SIZE_LIMIT):
        big.save(tmp_path / "cache")
    assert raised.value.errno == errno.EFBIG
    assert files_under(tmp_path) == []


def test_a_cache_of_other_classes_than_the_models_is_refused_as_evaluate_refuses_it(
    tree: Path,
) -> None:
    # its targets are the data's indices: a CNV-NORMAL study's NORMAL scans (target 1) were
    # cached for a 4-class model as DME, with nothing left to catch it later
    study = KermanyOCT(tree, "train", classes=["CNV", "NORMAL"])
    message = r"build_feature_cache: the model's classes are \['CNV', 'DME', 'DRUSEN', 'NORMAL'\]"
    with pytest.raises(ValueError, match=message):
        build_feature_cache(frozen_model(), study, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0"):
        build_feature_cache(frozen_model(), study, batch_size=0, device="cpu", progress=False)


# ---------------------------------------------------------------------------------------------
# The feature pass seeds its own draws and leaves the caller's generators, GPUs' included


def _queued_cuda_seed() -> int | None:
    """The seed of the last GPU seeding torch queued for when CUDA starts (``None``: none),
    read from torch's queue: on a machine without CUDA started, the seed the GPUs would get."""
    tracker = getattr(torch.cuda, "_lazy_seed_tracker", None)
    if tracker is None:
        pytest.skip("this torch keeps no queue of GPU seedings")
    calls = [call for call in tracker.get_calls() if call]
    if not calls:
        return None
    cells = calls[-1][0].__closure__ or ()
    seeds = [cell.cell_contents for cell in cells if isinstance(cell.cell_contents, int)]
    return seeds[0] if seeds else None


@pytest.mark.skipif(torch.cuda.is_initialized(), reason="CUDA started: seeded at once")
def test_the_feature_pass_leaves_the_seed_the_caller_gave_the_gpus() -> None:
    model = frozen_small_cnn()  # seeds torch (and queues the GPUs' seed): before the caller's
    data = SyntheticOCT(1, shape=(40, 44), seed=1)
    torch.cuda.manual_seed_all(1234)  # queued until CUDA starts, as on a GPU machine
    assert _queued_cuda_seed() == 1234

    Trainer(model, max_epochs=1, batch_size=4, device="cpu", progress=False).fit(data)
    assert _queued_cuda_seed() == 1234  # the fit's feature pass, seed=None
    evaluate(model, data, device="cpu", feature_cache=True)
    assert _queued_cuda_seed() == 1234


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_feature_pass_leaves_the_gpus_random_state() -> None:
    model = frozen_small_cnn()
    torch.cuda.init()  # type: ignore[no-untyped-call]
    torch.cuda.manual_seed_all(1234)
    states = torch.cuda.get_rng_state_all()

    evaluate(model, SyntheticOCT(1, shape=(40, 44), seed=1), device="cpu", feature_cache=True)

    after = torch.cuda.get_rng_state_all()
    assert all(torch.equal(a, b) for a, b in zip(states, after, strict=True))


def _rewrite_scans(paths: list[str]) -> None:
    """Write another scan over each file (as a re-export in place), a second later."""
    from PIL import Image

    for index, path in enumerate(paths):
        Image.new("L", (40, 44), color=40 * index % 255).save(path, format="JPEG")
        status = Path(path).stat()
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))


def test_trainer_evaluate_builds_the_features_again_when_the_data_set_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_synthetic_kermany(tmp_path / "data", train=2, val=2, test=0, shape=(40, 44))
    model = frozen_small_cnn()
    trainer = Trainer(model, max_epochs=1, batch_size=4, device="cpu", progress=False, seed=0)
    val = KermanyOCT(root, "val")
    trainer.fit(KermanyOCT(root, "train"), val)
    spy = BuildSpy(monkeypatch)
    assert trainer.evaluate(val).num_samples == 8
    assert spy.calls == 0  # the fit's validation features, reused

    kept = [sample for sample in val.samples if sample[1] in (0, 3)]  # filtered in place
    val.samples, val.targets = kept, [target for _, target in kept]
    filtered = trainer.evaluate(val)
    assert spy.calls == 1
    assert filtered.num_samples == 4
    trainer.evaluate(val)
    assert spy.calls == 1  # unchanged since: reused

    _rewrite_scans([path for path, _ in val.samples])
    rewritten = trainer.evaluate(val)
    assert spy.calls == 2
    assert rewritten.loss == pytest.approx(evaluate(model, val, device="cpu").loss, rel=1e-4)


class _HeadInADict(nn.Module):
    """A frozen trunk and a head kept in a ModuleDict (which has no forward of its own)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.heads = nn.ModuleDict({"cls": nn.Linear(4, 4)})
        self.trunk.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.heads["cls"](self.trunk(x).mean((2, 3)))
        return output


def _dict_model() -> Classifier:
    return Classifier(
        _HeadInADict(), classes=CLASSES, preprocessing=Preprocessing(size=32), head="heads.cls"
    )


def _middle_stage_model() -> Classifier:
    """Everything frozen but the first conv stage: no head to cache features for."""
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 4),
    )
    network.requires_grad_(False)
    network[0].requires_grad_(True)
    return Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=32), head="4")


def test_the_declared_head_is_the_trainable_part_not_its_container() -> None:
    model = _dict_model()

    name, head = trainable_head(model)

    assert name == "heads.cls"
    assert head is model.network.heads["cls"]


def test_a_declared_linear_takes_the_parameter_free_steps_of_its_head_with_it() -> None:
    trunk = frozen_model().network[0]
    network = nn.Sequential(trunk, nn.Sequential(nn.Linear(16, 4), nn.LogSoftmax(dim=1)))
    model = Classifier(network, classes=CLASSES, head="1.0")

    name, head = trainable_head(model)

    assert (name, head) == ("1", model.network[1])


def test_a_head_in_a_module_dict_trains_on_cached_features(tree: Path) -> None:
    model = _dict_model()
    trainer = Trainer(model, max_epochs=1, device="cpu", precision="fp32", progress=False)

    trainer.fit(KermanyOCT(tree, "train"))

    assert trainer.feature_cache is not None
    assert trainer._head is model.network.heads["cls"]


def test_a_trainable_middle_stage_is_refused_as_a_cached_head_in_one_line(tree: Path) -> None:
    with pytest.raises(_feature_cache.HeadNotLastError, match=r"cannot be run alone.*\(Runtime"):
        build_feature_cache(_middle_stage_model(), KermanyOCT(tree, "train"), device="cpu")


def test_auto_trains_a_trainable_middle_stage_without_the_cache(
    tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = _middle_stage_model()
    before = model.network[0][0].weight.detach().clone()
    trainer = Trainer(model, max_epochs=1, device="cpu", precision="fp32", progress=False)

    with caplog.at_level(logging.DEBUG, logger="retinalnet"):
        trainer.fit(KermanyOCT(tree, "train"))

    assert not torch.equal(model.network[0][0].weight, before)
    assert "feature cache: off after all (the trainable part Sequential cannot be run" in (
        caplog.text
    )


def test_a_model_returning_probabilities_is_refused_while_caching(tree: Path) -> None:
    model = frozen_model()
    model.network.append(nn.Softmax(dim=1))

    with pytest.raises(ValueError, match="returned probabilities"):
        build_feature_cache(model, KermanyOCT(tree, "train"), device="cpu", progress=False)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("features.npy", "cut"),
        ("features.npy", "remove"),
        ("targets.npy", "cut"),
        ("targets.npy", "remove"),
    ],
)
def test_a_damaged_disk_cache_is_rebuilt_with_a_warning(
    tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, damage: str
) -> None:
    # was: numpy's "mmap length is greater than file size" or a FileNotFoundError
    cache_dir = tmp_path / "features"
    model = frozen_model()
    data = KermanyOCT(tree, "train")
    first = build_feature_cache(model, data, cache_dir=cache_dir, device="cpu", progress=False)
    (folder,) = cache_dir.iterdir()
    if damage == "cut":
        whole = (folder / name).read_bytes()
        (folder / name).write_bytes(whole[: len(whole) // 2])
    else:
        (folder / name).unlink()
    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        rebuilt = build_feature_cache(
            model, data, cache_dir=cache_dir, device="cpu", progress=False
        )
    assert f"feature cache {folder} is damaged" in caplog.text
    assert "it is rebuilt" in caplog.text
    torch.testing.assert_close(rebuilt.features, first.features)
    assert torch.equal(rebuilt.targets, first.targets)
    again = FeatureCache.load(folder, fingerprint=first.fingerprint)  # whole again on disk
    assert again is not None
    assert torch.equal(again.targets, first.targets)


@pytest.mark.skipif(sys.getfilesystemencodeerrors() != "surrogateescape", reason="POSIX names")
def test_a_non_ascii_folder_has_one_key_whether_its_name_was_read_under_utf_8_or_lang_c(
    tmp_path: Path,
) -> None:
    # was: under LANG=C 'données' reads as 'donn\udcc3\udca9es', and the key's
    # `.encode()` failed: "surrogates not allowed" ended `train --feature-cache`
    folder = tmp_path / "données"
    folder.mkdir()
    Image.new("L", (8, 8)).save(folder / "scan.png")
    as_lang_c = os.fsencode(folder).decode("ascii", "surrogateescape")

    class Files:
        def __init__(self, root: str) -> None:
            self.samples = [(f"{root}/scan.png", 0)]

    key = _feature_cache.data_fingerprint(Files(str(folder)))  # type: ignore[arg-type]
    assert _feature_cache.data_fingerprint(Files(as_lang_c)) == key  # type: ignore[arg-type]
