"""A last training batch of one image: left out, with one warning, only where a batch-norm
layer that trains would get one value per channel (torch refuses it); kept otherwise."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from _training_helpers import CLASSES, FEATURES, quiet_trainer, same_state, separable_data, snapshot
from retinalnet.checkpoint import load_checkpoint
from retinalnet.models import Classifier
from retinalnet.training._last_batch import TrainingBatches

WARNING = (
    r"training: the last batch of each epoch holds 1 of its 5 images \(batch_size=4\), and "
    r"batch-norm layers that train \('network\.1'\) get one value per channel from one image, "
    r"which torch cannot train on: that batch is left out of each epoch .*; pass "
    r"batch_size=3 or 5 to train on every image"
)


def _with_batch_norm(*, per_image: int, seed: int = 0) -> Classifier:
    """A classifier of the 8 features whose batch norm gets ``per_image`` values per
    channel from each image (1: as resnet18's last block at 32 px)."""
    torch.manual_seed(seed)
    channels = FEATURES // per_image
    network = nn.Sequential(
        nn.Unflatten(1, (channels, per_image)) if per_image > 1 else nn.Identity(),
        nn.BatchNorm1d(channels),
        nn.Flatten(),
        nn.Linear(FEATURES, len(CLASSES)),
        nn.LogSoftmax(dim=1),
    )
    return Classifier(network, classes=CLASSES)


def _batch_sizes(model: Classifier) -> list[int]:
    """The sizes of the batches the model's network trains on, as they come."""
    seen: list[int] = []

    def note(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if module.training:
            seen.append(len(args[0]))

    model.network.register_forward_pre_hook(note)
    return seen


def test_a_last_batch_of_one_image_a_batch_norm_cannot_take_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = _with_batch_norm(per_image=1)
    seen = _batch_sizes(model)
    trainer = quiet_trainer(model, max_epochs=2, batch_size=4)

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        history = trainer.fit(separable_data(5))  # torch's "more than 1 value per channel"

    assert len(history) == 2
    assert seen == [4, 4]  # one step per epoch: the image left over each epoch is left out
    said = [r.getMessage() for r in caplog.records if "last batch" in r.getMessage()]
    assert len(said) == 1  # once, not at every epoch
    assert re.fullmatch(WARNING, said[0])
    assert not model.network[1]._forward_pre_hooks  # no hook left behind


def test_a_last_batch_of_one_image_that_works_is_trained_on_as_before(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = _with_batch_norm(per_image=2)  # two values per channel from one image
    seen = _batch_sizes(model)

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        quiet_trainer(model, max_epochs=2, batch_size=4).fit(separable_data(5))

    assert seen == [4, 1, 4, 1]
    assert not [r for r in caplog.records if "last batch" in r.getMessage()]


def test_batch_norm_in_eval_mode_keeps_the_last_batch() -> None:
    model = _with_batch_norm(per_image=1)
    model.network[1].requires_grad_(False)  # frozen: eval mode in training, as a backbone's
    model.network[3].requires_grad_(True)
    seen = _batch_sizes(model)

    quiet_trainer(model, max_epochs=1, batch_size=4).fit(separable_data(5))

    assert seen == [4, 1]


def test_a_run_that_leaves_out_its_last_batch_resumes_as_it_ran(tmp_path: Path) -> None:
    data = separable_data(9)  # batch_size=4: batches of 4, 4 and 1
    whole = quiet_trainer(_with_batch_norm(per_image=1), max_epochs=3, batch_size=4, seed=0)
    whole.fit(data)
    first = quiet_trainer(
        _with_batch_norm(per_image=1), max_epochs=1, batch_size=4, seed=0, out_dir=tmp_path
    )
    first.fit(data)
    assert load_checkpoint(tmp_path / "last.pt").loop_state["steps_per_epoch"] == 3
    resumed = quiet_trainer(
        _with_batch_norm(per_image=1, seed=5), max_epochs=3, batch_size=4, seed=0
    )

    history = resumed.fit(data, resume_from=tmp_path / "last.pt")

    assert len(history) == 3
    assert same_state(snapshot(resumed.model), snapshot(whole.model))


def test_batches_of_one_image_the_check_cannot_foresee_are_explained() -> None:
    loader = DataLoader(separable_data(2), batch_size=1)  # every batch holds one image
    trainer = quiet_trainer(_with_batch_norm(per_image=1), max_epochs=1)

    with pytest.raises(
        ValueError,
        match=r"^a training batch holds 1 image \(an epoch of 2 image\(s\), batch_size=1\), and "
        r"a batch-norm layer that trains gets one value per channel from it, which torch "
        r"cannot train on \(Expected more than 1 value per channel .*\); train on more "
        r"images, give batches of at least 2",
    ):
        trainer.fit(loader)


def test_training_batches_can_be_gone_through_again_and_closed() -> None:
    model = _with_batch_norm(per_image=1)
    model.train()
    batches = TrainingBatches(
        model, DataLoader(separable_data(5), batch_size=4), tell=False, per_process=False
    )
    sizes = []
    for _ in range(2):  # as lr_find cycles through short data
        for inputs, _targets in batches:
            model(inputs)
            sizes.append(len(inputs))
    assert sizes == [4, 4]
    passing = iter(batches)
    model(next(passing)[0])  # a loop that stops after its first batch
    batches.close()
    assert not model.network[1]._forward_pre_hooks
    assert len(batches) == 2


def test_rows_of_tokens_in_a_batch_norm_keep_a_last_batch_of_one_image(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A BatchNorm1d over (images x tokens, channels) rows trains on one image; its last
    batch was left out with a false warning (rows were counted as images)."""
    from torch import nn

    from _training_helpers import CLASSES, quiet_trainer, separable_data
    from retinalnet.models import Classifier

    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.BatchNorm1d(2)
            self.head = nn.Linear(2, len(CLASSES))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows = x.reshape(-1, 2)  # 4 tokens of 2 channels per image
            return self.head(self.norm(rows).reshape(len(x), -1, 2).mean(dim=1))

    model = Classifier(Tokens(), classes=CLASSES)
    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        history = quiet_trainer(model, max_epochs=1, batch_size=4).fit(
            separable_data(5, features=8), separable_data(4, seed=1, features=8)
        )
    assert len(history) == 1
    assert "left out" not in caplog.text
