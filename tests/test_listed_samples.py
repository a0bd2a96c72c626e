"""What a data set lists of its images through DataLoaders, Subsets and ConcatDatasets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from _training_helpers import quiet_trainer, tiny_cnn
from retinalnet._core.listed_samples import listed_names, listed_targets
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.datasets._sample_names import sample_names_digest


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> KermanyOCT:
    root = make_synthetic_kermany(
        tmp_path_factory.mktemp("listed") / "d", train=3, val=1, test=1, shape=(40, 40)
    )
    return KermanyOCT(root, "train")


def test_a_subset_lists_its_own_images_not_its_parents(data: KermanyOCT) -> None:
    # was: a Subset's `dataset` (its parent) was read as a DataLoader's
    first, second = Subset(data, [0, 1, 2]), Subset(data, [3, 4, 5])
    assert listed_targets(first) == [data.targets[i] for i in range(3)]
    assert listed_names(first) != listed_names(second)
    assert sample_names_digest(first) != sample_names_digest(second)
    assert sample_names_digest(Subset(data, range(len(data)))) == sample_names_digest(data)


def test_concatenated_and_loaded_data_list_every_part(data: KermanyOCT) -> None:
    both = ConcatDataset([Subset(data, [0]), Subset(data, [5, 6])])
    assert listed_targets(both) == [data.targets[i] for i in (0, 5, 6)]
    assert listed_targets(DataLoader(both, batch_size=2)) == listed_targets(both)
    assert sample_names_digest(ConcatDataset([data])) == sample_names_digest(data)


class _Picks(Dataset[object]):
    """A wrapper that picks some items of the data set it holds."""

    def __init__(self, dataset: KermanyOCT) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> object:
        return self.dataset[index]


def test_what_is_not_listed_as_class_indices_lists_nothing(data: KermanyOCT) -> None:
    assert listed_targets(TensorDataset(torch.zeros(2, 1), torch.tensor([0, 1]))) is None
    assert listed_targets(_Picks(data)) is None  # its own order is unknown
    named = Subset(data, [0])
    named.dataset.targets = ["CNV"] * len(data)  # type: ignore[attr-defined]
    try:
        assert listed_targets(named) is None  # names: the loader's own check speaks
    finally:
        named.dataset.targets = [target for _, target in data.samples]  # type: ignore[attr-defined]


def test_a_fit_and_lr_find_refuse_a_subset_of_one_class(data: KermanyOCT) -> None:
    cnv = Subset(data, [i for i, target in enumerate(data.targets) if target == 0])
    for call in (
        lambda: quiet_trainer(tiny_cnn(), max_epochs=1).fit(cnv),  # was: trained
        lambda: quiet_trainer(tiny_cnn(), max_epochs=1).lr_find(cnv, num_steps=8),
    ):
        with pytest.raises(ValueError, match=r"^the training data holds images of CNV only"):
            call()


def test_a_resumed_fit_on_another_subset_of_the_same_size_is_warned_of(
    data: KermanyOCT, tmp_path: Path
) -> None:
    by_class = [[i for i, t in enumerate(data.targets) if t == c] for c in range(4)]
    first = Subset(data, [ids[0] for ids in by_class] + [ids[1] for ids in by_class])
    other = Subset(data, [ids[0] for ids in by_class] + [ids[2] for ids in by_class])
    quiet_trainer(tiny_cnn(), max_epochs=1, out_dir=tmp_path).fit(first)
    with pytest.warns(UserWarning, match=r"on other training images than its run's"):
        quiet_trainer(tiny_cnn(), max_epochs=2, out_dir=tmp_path).fit(
            other, resume_from=tmp_path / "last.pt"
        )


class _Named(Dataset[object]):
    """Validation data whose targets are class names (a user's own data set)."""

    def __init__(self, base: KermanyOCT) -> None:
        self.base, self.classes = base, base.classes
        self.targets = [base.classes[target] for target in base.targets]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> object:
        image, target = self.base[index]
        return image, self.classes[target]


def test_validation_targets_given_as_names_get_the_loaders_message(data: KermanyOCT) -> None:
    # was: ValueError invalid literal for int() with base 10: 'CNV' (the class check)
    with pytest.raises(TypeError, match=r"has the target 'CNV'; targets must be class indices"):
        quiet_trainer(tiny_cnn(), max_epochs=1).fit(data, _Named(data))
