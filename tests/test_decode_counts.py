"""How often each door reads an image: once per call.

A Predictor's call built a loader that looked at its first sample to check what the data
set yields, decoding and preparing the first image a second time (2.2 to 2.5x the cost of
one small image at a time); Grad-CAM read its image four times. The library's own data sets
are not looked at; a user's still are, for their clear errors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import retinalnet._core.images as images_module
from _training_helpers import tiny_cnn
from retinalnet import SyntheticOCT
from retinalnet._core.loaders import make_loader
from retinalnet.engine import InferenceEngine
from retinalnet.predictor import Predictor
from retinalnet.training import evaluate


class _Reads:
    """The files decoded (``_decode``: one per image read) and opened by path (``_open``: a
    header read, or the decode of a file that is not read as bytes) by the library's image
    reader, by path."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decoded: Counter[str] = Counter()
        self.opened: Counter[str] = Counter()
        monkeypatch.setattr(images_module, "_decode", self._counting(self.decoded, "_decode"))
        monkeypatch.setattr(images_module, "_open", self._counting(self.opened, "_open"))

    @staticmethod
    def _counting(counts: Counter[str], name: str) -> Callable[..., Any]:
        real = getattr(images_module, name)

        def counting(file: Path, *args: Any, **kwargs: Any) -> Any:
            counts[str(file)] += 1
            return real(file, *args, **kwargs)

        return counting


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> _Reads:
    return _Reads(monkeypatch)


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    data = SyntheticOCT(5, shape=(48, 56), seed=3)
    folder = data.write(tmp_path, "test")
    return [folder / name.split("-")[0] / name for name, _ in data.samples]


@pytest.fixture
def predictor() -> Predictor:  # in this process (no workers), so the reads are counted here
    return Predictor(tiny_cnn(size=32), device="cpu", precision="fp32", batch_size=2)


@pytest.mark.parametrize(
    "call",
    [
        lambda p, f: p.topk(f[0]),
        lambda p, f: p.topk([f[0]]),
        lambda p, f: p.topk(f),  # three batches
        lambda p, f: p.predict_proba(f),
        lambda p, f: p.predict_proba(f[:1]),
    ],
    ids=["topk(file)", "topk([file])", "topk(files)", "predict_proba(files)", "predict_proba"],
)
def test_a_prediction_reads_each_file_once(
    call: Callable[[Predictor, list[Path]], object],
    predictor: Predictor,
    files: list[Path],
    reads: _Reads,
) -> None:
    call(predictor, files)
    read = {str(path) for path in files if str(path) in reads.decoded}
    assert read  # the reads were counted
    assert reads.decoded == Counter(dict.fromkeys(read, 1))  # the first one was read twice
    assert all(reads.opened[path] <= 1 for path in read)  # nothing but the decode


def test_the_on_error_skip_path_reads_each_file_once_too(
    files: list[Path], reads: _Reads, tmp_path: Path
) -> None:
    predictor = Predictor(tiny_cnn(size=32), device="cpu", precision="fp32", on_error="skip")
    missing = tmp_path / "missing.jpeg"
    predictor.predict_proba([files[0], missing, files[1]])
    assert [s.source for s in predictor.skipped] == [str(missing)]
    assert reads.decoded == Counter({str(files[0]): 1, str(missing): 1, str(files[1]): 1})


@pytest.mark.parametrize("class_index", [None, 2])
def test_gradcam_decodes_its_image_once(
    class_index: int | None, predictor: Predictor, files: list[Path], reads: _Reads
) -> None:
    heatmap = predictor.gradcam(files[0], class_index=class_index)
    assert heatmap.shape == (48, 56)
    # one decode (the class topk reports and the map come from it), and at most the header
    # read that gives the file's own size (a reduced decode is smaller than the file): it
    # was 3 decodes and a header read without a class_index
    assert reads.decoded == Counter({str(files[0]): 1})
    assert reads.opened[str(files[0])] <= 2


def test_gradcam_explains_the_class_topk_reports_from_its_one_decode(
    predictor: Predictor, files: list[Path]
) -> None:
    reported = predictor.topk(files[0], k=1).top[0].index
    assert (predictor.gradcam(files[0]) == predictor.gradcam(files[0], class_index=reported)).all()


# -- the look at a data set: skipped for the library's own, kept for a user's ---------------


class _Counted(Dataset[tuple[torch.Tensor, int]]):
    """Prepared inputs, counting the reads of each item."""

    def __init__(self, items: int = 4, *, image: torch.Tensor | None = None) -> None:
        self.items = items
        self.image = image
        self.reads: Counter[int] = Counter()

    def __len__(self) -> int:
        return self.items

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        self.reads[index] += 1
        image = self.image if self.image is not None else torch.randn(3, 32, 32)
        return image, 0


def test_a_checked_data_set_is_read_once_per_item_and_not_looked_at_before() -> None:
    data = _Counted()
    loader = make_loader(data, batch_size=2, shuffle=False, transform=None, checked=True)
    assert data.reads == Counter()  # nothing read to look at it
    assert sum(len(batch[0]) for batch in loader) == 4
    assert data.reads == Counter({0: 1, 1: 1, 2: 1, 3: 1})


def test_a_users_data_set_is_still_looked_at_when_the_loader_is_made() -> None:
    data = _Counted()
    transform = tiny_cnn(size=32).preprocessing.eval_transform()
    make_loader(data, batch_size=2, shuffle=False, transform=transform)
    assert data.reads == Counter({0: 1})  # the look at its first sample


def test_a_checked_data_set_takes_no_transform() -> None:
    transform = tiny_cnn(size=32).preprocessing.eval_transform()
    with pytest.raises(ValueError, match=r"checked=True\) takes no transform .* transform=None"):
        make_loader(_Counted(), batch_size=2, shuffle=False, transform=transform, checked=True)


_UNPREPARED = r"image of sample 0 of _Counted is a uint8 tensor \(40, 48\), an image; model inputs"


@pytest.mark.parametrize(
    "door",
    [
        lambda model, data: InferenceEngine(model, device="cpu").loader(data),
        lambda model, data: evaluate(model, data, device="cpu", precision="fp32"),
        lambda model, data: InferenceEngine(model, device="cpu").loader(DataLoader(data)),
    ],
    ids=["engine.loader", "evaluate", "a user's DataLoader"],
)
def test_a_users_bad_data_set_still_gets_the_looks_clear_error(
    door: Callable[[Any, Dataset[Any]], object],
) -> None:
    data = _Counted(image=torch.zeros(40, 48, dtype=torch.uint8))
    with pytest.raises(ValueError, match=_UNPREPARED):
        door(tiny_cnn(size=32), data)
