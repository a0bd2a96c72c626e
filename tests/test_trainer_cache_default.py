"""The Trainer's default feature cache ("auto"), and every refusal of a fit coming before the
cache is built."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from _training_helpers import CLASSES, BuildSpy, linear_classifier, separable_data
from retinalnet import SyntheticOCT
from retinalnet.checkpoint import save_checkpoint
from retinalnet.models import Classifier, small_cnn
from retinalnet.training import (
    ClassificationTask,
    EarlyStopping,
    FeatureCacheConfig,
    RunLockedError,
    Trainer,
    evaluate,
)
from retinalnet.training._config import why_data_is_not_cached

# ---------------------------------------------------------------------------------------------
# Models: which of them "auto" caches


def frozen_trunk(*, seed: int = 0) -> Classifier:
    """A frozen ``Linear(8, 8)`` trunk, then a trainable head ``Linear - LogSoftmax``: the
    shape of ``vgg16_transfer()``, on 8 features."""
    torch.manual_seed(seed)
    trunk = nn.Linear(8, 8)
    trunk.requires_grad_(False)
    head = nn.Sequential(nn.Linear(8, 4), nn.LogSoftmax(dim=1))
    return Classifier(nn.Sequential(trunk, head), classes=CLASSES)


def fine_tuned() -> Classifier:
    """A frozen first layer, a trainable block and the head: the trainable part is more than
    one final head, so no frozen part's output can be cached."""
    torch.manual_seed(0)
    first = nn.Linear(8, 8)
    first.requires_grad_(False)
    head = nn.Sequential(nn.Linear(8, 4), nn.LogSoftmax(dim=1))
    return Classifier(nn.Sequential(first, nn.Linear(8, 8), head), classes=CLASSES)


def head_not_last() -> Classifier:
    """Frozen trunk, trainable ``Linear``, then a ``LogSoftmax`` outside it: the head is not
    the model's last step, which only running the model shows."""
    torch.manual_seed(0)
    trunk = nn.Linear(8, 8)
    trunk.requires_grad_(False)
    network = nn.Sequential(trunk, nn.Linear(8, 4), nn.LogSoftmax(dim=1))
    return Classifier(network, classes=CLASSES)


def plain_module() -> nn.Module:
    trunk = nn.Linear(8, 8)
    trunk.requires_grad_(False)
    return nn.Sequential(trunk, nn.Sequential(nn.Linear(8, 4), nn.LogSoftmax(dim=1)))


@pytest.mark.parametrize(
    ("build", "expected", "why"),
    [
        (frozen_trunk, FeatureCacheConfig(), "the backbone is frozen and only the head '1'"),
        (fine_tuned, None, "parameters outside one final head train (fine-tuning)"),
        (linear_classifier, None, "every parameter trains: no frozen backbone to cache"),
        # was "parameters outside one final head train (fine-tuning)": nothing is frozen
        (small_cnn, None, "every parameter trains: no frozen backbone to cache"),
        (plain_module, None, "the model is not a Classifier"),
    ],
    ids=["frozen", "fine-tuned", "all-trainable", "all-trainable-cnn", "plain-module"],
)
def test_auto_caches_exactly_when_only_a_head_trains(
    build: Callable[[], nn.Module], expected: FeatureCacheConfig | None, why: str
) -> None:
    trainer = Trainer(build(), device="cpu")  # feature_cache="auto", the default

    assert trainer.feature_cache == expected  # in memory, no augmented views
    assert why in trainer._cache_choice.reason


def test_false_turns_the_default_cache_off() -> None:
    assert Trainer(frozen_trunk(), feature_cache=False, device="cpu").feature_cache is None


def test_an_explicit_cache_is_still_refused_where_auto_says_off() -> None:
    with pytest.raises(ValueError, match="needs every parameter outside one final head frozen"):
        Trainer(fine_tuned(), feature_cache=True, device="cpu")
    with pytest.raises(TypeError, match="feature_cache needs a retinalnet Classifier"):
        Trainer(plain_module(), feature_cache=True, device="cpu")


def _trainer_for(model: nn.Module, **kwargs: Any) -> Trainer:
    kwargs.setdefault("progress", True)
    return Trainer(model, device="cpu", max_epochs=2, batch_size=4, seed=0, **kwargs)


def test_a_frozen_backbone_trains_on_cached_features_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spy = BuildSpy(monkeypatch)
    trainer = _trainer_for(frozen_trunk())
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        trainer.fit(separable_data(16), separable_data(8, seed=1))

    assert spy.calls == 2  # train and val, once each, not once per epoch
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("feature cache")]
    assert said == [
        "feature cache: on (the backbone is frozen and only the head '1' trains, so its "
        "features are computed once, in memory, from the training images without their "
        "augmentation: FeatureCacheConfig(views=N) also caches N augmented views of each, "
        "feature_cache=False turns the cache off and augments every epoch)"
    ]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (DataLoader(separable_data(8), batch_size=4), "the data is a DataLoader, used as it is"),
        (
            SyntheticOCT(1, shape=(40, 40), transform=lambda image: image),
            "the SyntheticOCT has its own transform, which may augment at random",
        ),
        (
            Subset(SyntheticOCT(2, shape=(40, 40), transform=lambda image: image), [0, 1]),
            "the SyntheticOCT has its own transform",
        ),
        (separable_data(8), None),
        (SyntheticOCT(1, shape=(40, 40)), None),
    ],
    ids=["data-loader", "own-transform", "subset-with-transform", "tensors", "pil-images"],
)
def test_auto_leaves_data_uncached_that_a_cache_would_change(data: Any, why: str | None) -> None:
    reason = why_data_is_not_cached(data)
    assert reason is None if why is None else reason.startswith(why)


def test_auto_trains_a_data_loader_as_it_is_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spy = BuildSpy(monkeypatch, refuse=True)
    loader = DataLoader(separable_data(16), batch_size=4)
    trainer = _trainer_for(frozen_trunk())
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        history = trainer.fit(loader, separable_data(8, seed=1))

    assert len(history) == 2
    assert spy.calls == 0
    assert "feature cache: off (the data is a DataLoader, used as it is)" in caplog.messages
    # an explicit disk cache of a DataLoader is refused, as before, before any epoch
    explicit = _trainer_for(frozen_trunk(), feature_cache=FeatureCacheConfig(cache_dir="x"))
    monkeypatch.undo()
    with pytest.raises(TypeError, match="a disk cache needs the data set itself"):
        explicit.fit(loader)
    assert explicit.epoch == 0


def test_auto_falls_back_when_the_head_is_not_the_last_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    trainer = _trainer_for(head_not_last())
    assert trainer.feature_cache == FeatureCacheConfig()  # only running the model tells
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        history = trainer.fit(separable_data(16), separable_data(8, seed=1))
        result = trainer.evaluate(separable_data(8, seed=1))

    assert len(history) == 2
    assert result.loss == pytest.approx(history[-1].val_loss)
    off = [m for m in caplog.messages if m.startswith("feature cache: off after all")]
    assert len(off) == 1
    assert "the trainable head is not the last step" in off[0]
    with pytest.raises(ValueError, match="not the last step"):  # asked for: an error
        _trainer_for(head_not_last(), feature_cache=True).fit(separable_data(16))


def test_evaluate_runs_the_whole_model_on_data_it_does_not_cache_after_a_cached_fit() -> None:
    trainer = _trainer_for(frozen_trunk(), progress=False)
    val = separable_data(8, seed=1)
    history = trainer.fit(separable_data(16), val)
    cached = trainer.evaluate(val)
    as_loader = trainer.evaluate(DataLoader(val, batch_size=3))  # "auto" leaves it uncached

    assert cached.loss == pytest.approx(history[-1].val_loss, rel=1e-5)
    assert as_loader.loss == pytest.approx(cached.loss, rel=1e-5)
    assert as_loader.accuracy == cached.accuracy


def test_evaluate_reuses_the_validation_features_of_the_fit_while_the_backbone_is_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = BuildSpy(monkeypatch)
    model = frozen_trunk()
    trainer = _trainer_for(model, progress=False)
    val = separable_data(8, seed=1)
    history = trainer.fit(separable_data(16), val)
    assert spy.calls == 2

    reused = trainer.evaluate(val)
    assert spy.calls == 2  # the features of the fit's validation data, not built again
    assert reused.loss == pytest.approx(history[-1].val_loss, rel=1e-5)
    trainer.evaluate(separable_data(8, seed=1))  # equal data, another object: built
    assert spy.calls == 3
    trainer.evaluate(val)  # the last features built are kept, not the fit's
    assert spy.calls == 4

    model.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    trainer.evaluate(val)  # the same values written again (as restoring the best epoch does)
    assert spy.calls == 4
    with torch.no_grad():
        model.network[0].weight.mul_(2.0)  # the frozen backbone changes: stale features
    changed = trainer.evaluate(val)
    assert spy.calls == 5
    assert changed.loss != pytest.approx(reused.loss, rel=1e-5)


def test_a_resumed_fit_with_the_default_cache_repeats_the_uninterrupted_one(
    tmp_path: Path,
) -> None:
    train, val = separable_data(16), separable_data(8, seed=1)
    settings: dict[str, Any] = {"batch_size": 4, "seed": 0, "device": "cpu", "progress": False}
    whole = Trainer(frozen_trunk(), max_epochs=3, **settings).fit(train, val)
    first = Trainer(frozen_trunk(), max_epochs=2, out_dir=tmp_path, **settings)
    first.fit(train, val)
    resumed = Trainer(frozen_trunk(seed=5), max_epochs=3, out_dir=tmp_path, **settings)
    history = resumed.fit(train, val, resume_from=tmp_path / "last.pt")

    assert resumed.feature_cache == FeatureCacheConfig()
    assert [r.epoch for r in history] == [1, 2, 3]
    assert [r.val_loss for r in history] == pytest.approx([r.val_loss for r in whole], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Every refusal comes before the feature cache is built


def _lock_held_by_another_process(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    owner = {
        "pid": os.getppid(),  # alive: the process that started the tests
        "host": socket.gethostname(),
        "started": "2026-01-02T03:04:05+01:00",
        "time": time.time(),
        "program": "retinalnet train --out runs/x",
        "token": "0" * 32,
    }
    (out / "run.lock").write_text(json.dumps(owner))


def _best_pt_there(out: Path) -> None:
    save_checkpoint(out / "best.pt", frozen_trunk())


def _nothing_wrong(out: Path) -> None:
    pass


OTHER_CLASSES = TensorDataset(torch.randn(4, 8), torch.tensor([0, 1, 2, 3]))
OTHER_CLASSES.classes = ("CNV", "DME", "NORMAL", "DRUSEN")  # type: ignore[attr-defined]


def _checkpoint_of_other_classes(out: Path) -> Path:
    model = frozen_trunk()
    other = Classifier(model.network, classes=("A", "B", "C", "D"))
    return save_checkpoint(out.parent / "other.pt", other)


REFUSALS: list[tuple[str, Callable[[Path], Any], dict[str, Any], type[BaseException], str]] = [
    # what is wrong, how the test makes it so, fit arguments, error, its message
    ("best.pt exists", _best_pt_there, {}, FileExistsError, "best.pt already exists"),
    ("run lock", _lock_held_by_another_process, {}, RunLockedError, "is in use by another run"),
    ("no resume file", _nothing_wrong, {"resume_from": "gone.pt"}, FileNotFoundError, "gone"),
    (
        "resume other classes",
        _nothing_wrong,
        {"resume_from": _checkpoint_of_other_classes},
        ValueError,
        "it was trained for classes",
    ),
    ("train classes", _nothing_wrong, {"train": OTHER_CLASSES}, ValueError, r"fit \(train\)"),
    ("val classes", _nothing_wrong, {"val": OTHER_CLASSES}, ValueError, r"fit \(val\)"),
    (
        "unknown monitor",
        _nothing_wrong,
        {"callbacks": [EarlyStopping(monitor="val_auc")]},
        ValueError,
        "val_auc",
    ),
    (
        "balance without targets",
        _nothing_wrong,
        {"task": ClassificationTask(balance="weights"), "feature_cache": False},
        TypeError,
        "needs a data set with a `targets` attribute",
    ),
    # the control: with nothing wrong, the fit reaches the build
    ("nothing wrong", _nothing_wrong, {}, AssertionError, "the feature cache was built"),
]


@pytest.mark.parametrize(
    ("wrong", "make", "arguments", "error", "message"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_every_refusal_of_a_fit_comes_before_the_feature_cache_is_built(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    wrong: str,
    make: Callable[[Path], Any],
    arguments: dict[str, Any],
    error: type[BaseException],
    message: str,
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    make(out)
    arguments = dict(arguments)
    resume_from = arguments.pop("resume_from", None)
    if callable(resume_from):
        resume_from = resume_from(out)
    train = arguments.pop("train", separable_data(8))
    if wrong == "balance without targets":
        train = DataLoader(train, batch_size=4)
    val = arguments.pop("val", separable_data(4, seed=1))
    spy = BuildSpy(monkeypatch, refuse=True)
    trainer = Trainer(
        frozen_trunk(), device="cpu", max_epochs=1, progress=False, out_dir=out, **arguments
    )

    with pytest.raises(error, match=message):
        trainer.fit(train, val, resume_from=resume_from)

    assert spy.calls == (1 if wrong == "nothing wrong" else 0)
    assert trainer.epoch == 0


def test_a_fit_after_unfreezing_turns_auto_off_and_trains_the_whole_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = frozen_trunk()
    trainer = _trainer_for(model)
    train, val = separable_data(16), separable_data(8, seed=1)
    trainer.fit(train, val)
    assert trainer.feature_cache == FeatureCacheConfig()
    model.requires_grad_(True)  # unfrozen between two fits
    # evaluate runs the whole model now: the backbone may change, its features go stale
    assert trainer.evaluate(val).loss == pytest.approx(evaluate(model, val, device="cpu").loss)
    trunk = model.network[0].weight.detach().clone()

    with caplog.at_level(logging.INFO, logger="retinalnet"):
        trainer.fit(train, val)

    assert "feature cache: off (every parameter trains: no frozen backbone" in caplog.text
    assert trainer.feature_cache is None
    assert not torch.equal(model.network[0].weight, trunk)  # the backbone trained too
