"""A fit resets a calibrated model's temperature to 1.0 (new weights need a new one), but a
fit that ends before it changed the weights (refused by a late check, interrupted while the
feature cache is built) puts it back: the model is left as it was found, calibration too."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from _training_helpers import InterruptAt, frozen_small_cnn, one_thread
from retinalnet import KermanyOCT, SyntheticOCT
from retinalnet.models import Classifier
from retinalnet.training import FineTune, Trainer, fine_tune

CALIBRATED = 2.5
SETTINGS: dict[str, Any] = {"device": "cpu", "batch_size": 4, "num_workers": 0, "progress": False}


class InterruptedAt(Dataset[Any]):
    """Synthetic scans whose item ``at`` raises ``KeyboardInterrupt``, as Ctrl-C would."""

    def __init__(self, at: int) -> None:
        self.inner = SyntheticOCT(4, shape=(40, 36))
        self.at = at

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> Any:
        if index == self.at:
            raise KeyboardInterrupt
        return self.inner[index]

    @property
    def targets(self) -> list[int]:
        return list(self.inner.targets)


def _unreadable(root: Path) -> KermanyOCT:
    """A validation split of four files that are no images (``on_error="skip"``)."""
    for name in ("CNV", "DME", "DRUSEN", "NORMAL"):
        (root / "val" / name).mkdir(parents=True)
        (root / "val" / name / f"{name}-1-1.jpeg").write_bytes(b"not an image")
    return KermanyOCT(root, "val", on_error="skip")


def _trainer_fit(model: Classifier, train: Any, val: Any) -> None:
    Trainer(model, max_epochs=1, **SETTINGS).fit(train, val)


def _fine_tune(model: Classifier, train: Any, val: Any) -> None:
    recipe = FineTune(probe_epochs=1, epochs=1, warmup_epochs=0)
    with warnings.catch_warnings():  # a random backbone is what this test fine-tunes
        warnings.filterwarnings("ignore", "fine_tune: small_cnn has no pretrained", UserWarning)
        fine_tune(model, train, val, recipe, **SETTINGS)


FITS: dict[str, Callable[[Classifier, Any, Any], None]] = {
    "Trainer.fit": _trainer_fit,
    "fine_tune": _fine_tune,
}


def _calibrated() -> tuple[Classifier, dict[str, torch.Tensor]]:
    model = frozen_small_cnn()
    model.temperature = CALIBRATED
    return model, {name: value.clone() for name, value in model.state_dict().items()}


def _same_weights(model: Classifier, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(before[name], value) for name, value in model.state_dict().items())


@pytest.mark.parametrize("fit", list(FITS))
def test_a_fit_refused_for_unreadable_validation_keeps_the_temperature(
    fit: str, tmp_path: Path
) -> None:
    model, before = _calibrated()
    with one_thread(), pytest.raises(ValueError, match="can be read"):
        FITS[fit](model, SyntheticOCT(1, shape=(40, 36)), _unreadable(tmp_path))
    assert _same_weights(model, before)
    assert model.temperature == CALIBRATED


@pytest.mark.parametrize("fit", list(FITS))
def test_a_fit_interrupted_in_the_feature_cache_keeps_the_temperature(fit: str) -> None:
    model, before = _calibrated()
    with one_thread(), pytest.raises(KeyboardInterrupt):
        FITS[fit](model, InterruptedAt(5), SyntheticOCT(1, shape=(40, 36), seed=1))
    assert _same_weights(model, before)
    assert model.temperature == CALIBRATED


def test_a_fit_interrupted_after_it_trained_keeps_the_reset() -> None:
    """Weights an epoch changed are not those the temperature was fitted on."""
    model, before = _calibrated()
    trainer = Trainer(model, max_epochs=3, callbacks=[InterruptAt(2)], **SETTINGS)
    with one_thread(), pytest.raises(KeyboardInterrupt):
        trainer.fit(SyntheticOCT(1, shape=(40, 36)))
    assert not _same_weights(model, before)
    assert model.temperature == 1.0


def test_a_resume_refused_keeps_the_temperature_only_if_no_weights_were_loaded(
    tmp_path: Path,
) -> None:
    # refused after resume loaded last.pt's weights (more epochs than max_epochs): those are
    # not the weights the temperature was fitted on, and kept 2.5 on them (a wrong
    # calibration); refused before any load (no such file): the model is as it was
    data = SyntheticOCT(1, shape=(40, 36))
    with one_thread():
        Trainer(frozen_small_cnn(), max_epochs=2, out_dir=tmp_path / "run", **SETTINGS).fit(data)
        model, before = _calibrated()
        with pytest.raises(ValueError, match="more than max_epochs"):
            Trainer(model, max_epochs=1, **SETTINGS).fit(data, resume_from=tmp_path / "run/last.pt")
        assert not _same_weights(model, before)
        assert model.temperature == 1.0

        model, before = _calibrated()
        with pytest.raises(FileNotFoundError):
            Trainer(model, max_epochs=1, **SETTINGS).fit(data, resume_from=tmp_path / "no.pt")
        assert _same_weights(model, before)
        assert model.temperature == CALIBRATED
