"""The real Kermany images in ../shared/data/kermany-sample: load, train a step, predict.

These are a few dozen real OCT2017 scans (CC BY 4.0, Kermany et al., Cell 2018), read from
where they lie; they are never copied into the project.
"""

from __future__ import annotations

from pathlib import Path

import torch

from retinalnet import KermanyOCT, Predictor, Trainer
from retinalnet.datasets import count_images
from retinalnet.models import small_cnn
from retinalnet.transforms import Preprocessing


def test_sample_counts(kermany_sample: Path) -> None:
    counts = count_images(kermany_sample)
    assert counts.counts["train"] == {"CNV": 12, "DME": 12, "DRUSEN": 12, "NORMAL": 12}
    assert counts.counts["val"] == {"CNV": 4, "DME": 4, "DRUSEN": 4, "NORMAL": 4}
    assert counts.total == 80


def test_real_scans_train_one_epoch_and_predict(kermany_sample: Path, tmp_path: Path) -> None:
    model = small_cnn(preprocessing=Preprocessing(size=64))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, max_epochs=1, batch_size=16, seed=0, out_dir=tmp_path, progress=False)
    history = trainer.fit(KermanyOCT(kermany_sample, "train"), KermanyOCT(kermany_sample, "val"))

    assert len(history) == 1
    assert torch.isfinite(torch.tensor(history[0].train_loss))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())

    test = KermanyOCT(kermany_sample, "test")
    predictor = Predictor.from_checkpoint(tmp_path / "best.pt", device="cpu")
    predictions = predictor.topk([path for path, _ in test.samples], k=4)
    assert len(predictions) == len(test) == 16
    for prediction, (path, _) in zip(predictions, test.samples, strict=True):
        assert prediction.source == path
        assert sorted(c.name for c in prediction.top) == ["CNV", "DME", "DRUSEN", "NORMAL"]
        assert abs(sum(c.probability for c in prediction.top) - 1) < 1e-5
