"""Predictor: top-k of paths, PIL images and tensors through the model's one preprocessing path."""

from __future__ import annotations

import copy
import json
import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from _training_helpers import (
    CLASSES,
    tiny_cnn,
)
from retinalnet import SyntheticOCT
from retinalnet.checkpoint import save_checkpoint
from retinalnet.datasets import UnreadableImageError, find_images
from retinalnet.gradcam import grad_cam_image
from retinalnet.models import Classifier, SmallCNN, small_cnn
from retinalnet.predictor import (
    ClassProbability,
    Prediction,
    Predictor,
    SkippedImage,
    top_predictions,
)
from retinalnet.transforms import Preprocessing


@pytest.fixture(scope="module")
def model() -> Classifier:
    return tiny_cnn(seed=2).eval()


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    data = SyntheticOCT(2, shape=(60, 52), seed=4)
    return [data.image(i) for i in range(len(data))]


@pytest.fixture
def predictor(model: Classifier) -> Predictor:
    return Predictor(model, device="cpu", precision="fp32")


def _by_hand(model: Classifier, image: Image.Image) -> torch.Tensor:
    """Softmax of the model on the image prepared with its eval preprocessing."""
    batch = model.preprocessing.eval_transform()(image).unsqueeze(0)
    with torch.no_grad():
        return torch.softmax(model.eval()(batch), dim=1)[0]


def _uint8(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image))


def _as_path(image: Image.Image, tmp_path: Path) -> Path:
    path = tmp_path / "scan.png"  # lossless: the file holds exactly the image
    image.save(path)
    return path


INPUTS: dict[str, Callable[[Image.Image, Path], Any]] = {
    "path": _as_path,
    "str-path": lambda image, tmp_path: str(_as_path(image, tmp_path)),
    "pil": lambda image, tmp_path: image,
    "pil-rgb": lambda image, tmp_path: image.convert("RGB"),
    "uint8-hw": lambda image, tmp_path: _uint8(image),
    "uint8-1hw": lambda image, tmp_path: _uint8(image).unsqueeze(0),
    "uint8-3hw": lambda image, tmp_path: _uint8(image).expand(3, -1, -1),
    "float-hw": lambda image, tmp_path: _uint8(image).float() / 255,
    "float64-1hw": lambda image, tmp_path: _uint8(image).double().unsqueeze(0) / 255,
}


@pytest.mark.parametrize("kind", list(INPUTS))
def test_topk_of_one_image_matches_the_softmax_by_hand(
    predictor: Predictor,
    model: Classifier,
    images: list[Image.Image],
    tmp_path: Path,
    kind: str,
) -> None:
    image = images[1]
    given = INPUTS[kind](image, tmp_path)
    expected = _by_hand(model, image)

    prediction = predictor.topk(given, k=4)

    assert isinstance(prediction, Prediction)
    assert prediction.source == (str(given) if kind.endswith("path") else "<image 0>")
    probabilities = [c.probability for c in prediction.top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
    order = torch.argsort(expected, descending=True).tolist()
    assert [c.index for c in prediction.top] == order
    assert [c.name for c in prediction.top] == [CLASSES[i] for i in order]
    assert probabilities == pytest.approx(expected[order].tolist(), abs=1e-6)
    assert (prediction.label, prediction.probability) == (CLASSES[order[0]], probabilities[0])


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_topk_returns_k_classes_most_probable_first(
    predictor: Predictor, images: list[Image.Image], k: int
) -> None:
    full = predictor.topk(images[0], k=4)

    prediction = predictor.topk(images[0], k=k)

    assert prediction.top == full.top[:k]
    assert len({c.name for c in prediction.top}) == k


def test_a_list_gives_a_list_in_input_order(
    predictor: Predictor, images: list[Image.Image], tmp_path: Path
) -> None:
    path = _as_path(images[2], tmp_path)
    inputs: list[Any] = [images[0], _uint8(images[1]), path]

    predictions = predictor.topk(inputs, k=2)

    assert isinstance(predictions, list)
    assert [p.source for p in predictions] == ["<image 0>", "<image 1>", str(path)]
    for prediction, image in zip(predictions, images[:3], strict=True):
        assert prediction == Prediction(
            source=prediction.source, top=predictor.topk(image, k=2).top
        )
    assert predictor.topk(tuple(inputs), k=2) == predictions
    assert predictor.topk([], k=2) == []


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_batching_does_not_change_the_probabilities(
    model: Classifier, images: list[Image.Image], batch_size: int
) -> None:
    reference = Predictor(model, device="cpu", precision="fp32", batch_size=32).predict_proba(
        images
    )

    probabilities = Predictor(
        model, device="cpu", precision="fp32", batch_size=batch_size
    ).predict_proba(images)

    assert probabilities.shape == (8, 4)
    torch.testing.assert_close(probabilities, reference, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        reference, torch.stack([_by_hand(model, image) for image in images]), rtol=0, atol=1e-6
    )


def test_predict_proba_of_nothing_is_empty(predictor: Predictor) -> None:
    assert predictor.predict_proba([]).shape == (0, 4)


@pytest.mark.parametrize("k", [0, 5, -1, True, 2.0])  # None is the default, 3
def test_k_out_of_range(predictor: Predictor, images: list[Image.Image], k: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(f"k must be an int from 1 to 4, got {k!r}")):
        predictor.topk(images[0], k=k)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        pytest.param(
            torch.zeros(2, 1, 40, 40, dtype=torch.uint8),
            r"image 0 is a batch tensor of shape \(2, 1, 40, 40\); pass list\(batch\)",
            id="4d",
        ),
        pytest.param(
            torch.zeros(2, 40, 40, dtype=torch.uint8),
            r"image 0 has shape \(2, 40, 40\); expected \(H, W\), \(1, H, W\) or \(3, H, W\)",
            id="2-channels",
        ),
        pytest.param(
            torch.zeros(40, dtype=torch.uint8), r"image 0 has shape \(40,\); expected", id="1d"
        ),
        pytest.param(
            torch.linspace(-2.1, 2.6, 3 * 40 * 40).reshape(3, 40, 40),
            r"image 0 is a float tensor with values in \[-2\.1, 2\.6\]; expected an image in "
            r"\[0, 1\] \(a normalised tensor is a model input",
            id="normalised",
        ),
        pytest.param(
            torch.full((40, 40), 255.0),
            r"values in \[255, 255\]; expected an image in \[0, 1\]",
            id="float-0-255",
        ),
        pytest.param(
            torch.zeros(40, 40, dtype=torch.int32),
            r"image 0 has dtype torch\.int32; expected uint8 or float",
            id="int32",
        ),
        pytest.param(
            torch.zeros(40, 40, dtype=torch.bool),
            r"image 0 has dtype torch\.bool; expected uint8 or float",
            id="bool",
        ),
    ],
)
def test_tensors_that_are_not_images(
    predictor: Predictor, tensor: torch.Tensor, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        predictor.topk(tensor)


def test_the_error_names_the_position_in_a_list(
    predictor: Predictor, images: list[Image.Image]
) -> None:
    with pytest.raises(ValueError, match=r"^image 2 has dtype torch\.int64"):
        predictor.topk([images[0], images[1], torch.zeros(40, 40, dtype=torch.int64)])


@pytest.mark.parametrize("value", [{"scan": 1}, 3, b"scan.jpeg"])
def test_other_types_are_refused(predictor: Predictor, value: Any) -> None:
    with pytest.raises(
        TypeError,
        match=rf"image 0 is an? {type(value).__name__}; expected a path, a PIL image or an image "
        r"tensor",
    ):
        predictor.topk(value)


COLLECTIONS: dict[str, Callable[[list[str]], Any]] = {
    "numpy array of paths": lambda paths: np.array(paths),
    "numpy object array": lambda paths: np.array(paths, dtype=object),
    "generator": lambda paths: (path for path in paths),
    "set": lambda paths: set(paths),
}


def _collection(kind: str, paths: list[str]) -> Any:
    if kind == "pandas Series":
        return pytest.importorskip("pandas").Series(paths)  # df["path"]
    return COLLECTIONS[kind](paths)


@pytest.mark.parametrize("kind", [*COLLECTIONS, "pandas Series"])
def test_a_collection_of_images_is_told_to_be_a_list_by_topk_as_by_predict_proba(
    predictor: Predictor, images: list[Image.Image], tmp_path: Path, kind: str
) -> None:
    # was: topk read it as one image: "image 0 has shape (3,)" or "image 0 is a Series"
    paths = []
    for index, image in enumerate(images[:3]):
        paths.append(str(tmp_path / f"scan-{index}.png"))
        image.save(paths[-1])
    for method, takes in (("topk", "one image or a list"), ("predict_proba", "a list")):
        given = _collection(kind, paths)
        with pytest.raises(
            TypeError,
            match=rf"^{method} takes {takes} of images, got an? \w+( of 3)?; pass it as a "
            rf"list: {method}\(list\(images\)\)$",
        ):
            getattr(predictor, method)(given)
    with pytest.raises(TypeError, match=r"^gradcam\(\) explains one image, got an? \w+"):
        predictor.gradcam(_collection(kind, paths))
    answers = predictor.topk(sorted(_collection(kind, paths)))  # the fix the message gives
    assert [answer.source for answer in answers] == paths


def test_one_image_as_an_array_of_pixels_is_still_one_image(
    predictor: Predictor, images: list[Image.Image]
) -> None:
    pixels = np.array(images[0])
    assert predictor.topk(pixels).source == "<image 0>"
    with pytest.raises(ValueError, match=r"^image 0 has shape \(3,\)"):
        predictor.topk(np.array([1.0, 0.5, 0.0]))  # pixels, not a collection of images


def test_an_unreadable_file_is_named(
    predictor: Predictor, images: list[Image.Image], tmp_path: Path
) -> None:
    fake = tmp_path / "CNV-123-1.jpeg"
    fake.write_text("this is not a scan\n")

    with pytest.raises(
        UnreadableImageError, match=r"cannot read image '.*CNV-123-1\.jpeg'"
    ) as info:
        predictor.topk([images[0], fake])
    assert info.value.path == fake

    with pytest.raises(UnreadableImageError, match=r"missing\.jpeg'.*no such file"):
        predictor.topk(tmp_path / "missing.jpeg")


def test_an_empty_file_is_said_to_be_empty(predictor: Predictor, tmp_path: Path) -> None:
    empty = tmp_path / "CNV-123-1.jpeg"
    empty.touch()
    with pytest.raises(
        UnreadableImageError,
        match=r"CNV-123-1\.jpeg': the file is empty, 0 bytes: was it cut short while written",
    ) as info:
        predictor.topk(empty)
    assert info.value.path == empty


def test_predicts_on_the_cpu_in_eval_mode_without_gradients(
    images: list[Image.Image],
) -> None:
    model = tiny_cnn(seed=3).train()  # dropout and BatchNorm behave differently in training

    predictor = Predictor(model, device="cpu", precision="fp32")
    first = predictor.predict_proba(images)
    second = predictor.predict_proba(images)

    assert predictor.device == torch.device("cpu")
    assert predictor.model.training  # predicted in eval mode, the caller's mode restored
    assert torch.equal(first, second)
    assert first.device == torch.device("cpu")
    assert not first.requires_grad
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(first[0], _by_hand(model, images[0]), rtol=0, atol=1e-6)


def test_from_checkpoint_predicts_like_the_saved_model(
    model: Classifier, images: list[Image.Image], tmp_path: Path
) -> None:
    save_checkpoint(tmp_path / "best.pt", model)

    loaded = Predictor.from_checkpoint(
        tmp_path / "best.pt", device="cpu", precision="fp32", batch_size=3
    )

    assert loaded.classes == CLASSES
    assert loaded.batch_size == 3
    assert loaded.model.preprocessing == model.preprocessing
    torch.testing.assert_close(
        loaded.predict_proba(images),
        Predictor(model, device="cpu", precision="fp32").predict_proba(images),
        rtol=0,
        atol=1e-6,
    )


def test_from_checkpoint_of_a_hand_built_network_needs_it(
    images: list[Image.Image], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    network = SmallCNN(4, width=4, hidden=8)
    model = Classifier(network, classes=["a", "b", "c", "d"], preprocessing=Preprocessing(size=32))
    save_checkpoint(tmp_path / "hand.pt", model)

    with pytest.raises(ValueError, match="pass that untrained network as model="):
        Predictor.from_checkpoint(tmp_path / "hand.pt", device="cpu", precision="fp32")

    loaded = Predictor.from_checkpoint(
        tmp_path / "hand.pt", device="cpu", precision="fp32", model=SmallCNN(4, width=4, hidden=8)
    )
    assert loaded.classes == ("a", "b", "c", "d")
    torch.testing.assert_close(
        loaded.predict_proba(images[:2]),
        torch.stack([_by_hand(model, image) for image in images[:2]]),
        rtol=0,
        atol=1e-6,
    )


def test_prediction_to_dict_is_json_data() -> None:
    prediction = Prediction(
        source="scan.jpeg",
        top=(ClassProbability("DME", 1, 0.75), ClassProbability("CNV", 0, 0.125)),
    )

    data = prediction.to_dict()

    assert data == {
        "source": "scan.jpeg",
        "label": "DME",
        "top": [{"class": "DME", "probability": 0.75}, {"class": "CNV", "probability": 0.125}],
    }
    assert json.loads(json.dumps(data)) == data


def test_predictor_needs_a_classifier_and_a_positive_batch_size(model: Classifier) -> None:
    with pytest.raises(TypeError, match=r"Predictor needs a retinalnet Classifier \(got Linear\)"):
        Predictor(nn.Linear(2, 2), device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        Predictor(model, device="cpu", precision="fp32", batch_size=0)


def test_predicts_the_real_test_scans_in_one_call(kermany_sample: Path) -> None:
    paths = find_images(kermany_sample / "test")
    assert len(paths) == 16
    torch.manual_seed(0)
    predictor = Predictor(
        small_cnn(preprocessing=Preprocessing(size=64)),
        device="cpu",
        precision="fp32",
        batch_size=16,
    )

    predictions = predictor.topk(paths, k=2)

    assert [p.source for p in predictions] == [str(path) for path in paths]
    for prediction in predictions:
        assert len(prediction.top) == 2
        assert {c.name for c in prediction.top} <= set(CLASSES)
        assert prediction.top[0].probability >= prediction.top[1].probability
    probabilities = predictor.predict_proba(paths)
    assert probabilities.shape == (16, 4)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_and_cpu_give_the_same_probabilities(
    model: Classifier, images: list[Image.Image]
) -> None:
    on_cpu = Predictor(copy.deepcopy(model), device="cpu", precision="fp32").predict_proba(images)
    predictor = Predictor(copy.deepcopy(model), device="cuda", batch_size=3, precision="fp32")

    on_cuda = predictor.predict_proba(images)

    assert on_cuda.device.type == "cpu"
    torch.testing.assert_close(on_cuda, on_cpu, rtol=0, atol=1e-3)
    from_tensor = predictor.topk(_uint8(images[0]).cuda(), k=4)
    assert [c.probability for c in from_tensor.top] == pytest.approx(
        sorted(on_cpu[0].tolist(), reverse=True), abs=1e-3
    )


# ---------------------------------------------------------------------------------------------
# Test-time augmentation and Grad-CAM


def test_tta_averages_the_image_and_its_mirror(
    model: Classifier, images: list[Image.Image]
) -> None:
    # the prepared tensor is mirrored (mirroring the image first can shift the centre crop
    # by a pixel)
    transform = model.preprocessing.eval_transform()
    batch = torch.stack([transform(image) for image in images[:3]])
    with torch.no_grad():
        plain = torch.softmax(model.eval()(batch), dim=1)
        mirrored = torch.softmax(model(batch.flip(-1)), dim=1)
    expected = (plain + mirrored) / 2

    with_tta = Predictor(model, device="cpu", precision="fp32", tta=True)

    assert with_tta.tta
    assert torch.allclose(with_tta.predict_proba(images[:3]), expected, atol=1e-6)
    assert with_tta.topk(images[0], k=2).probability == pytest.approx(
        float(expected[0].max()), abs=1e-6
    )


def test_gradcam_is_at_the_image_size_for_every_kind_of_input(
    predictor: Predictor, images: list[Image.Image], tmp_path: Path
) -> None:
    image = images[0]
    expected = predictor.gradcam(image)

    assert expected.shape == (image.height, image.width)
    assert expected.dtype == np.float32
    assert 0 <= expected.min() <= expected.max() <= 1
    assert np.allclose(predictor.gradcam(_as_path(image, tmp_path)), expected, atol=1e-6)
    assert np.allclose(predictor.gradcam(_uint8(image)), expected, atol=1e-6)


def test_gradcam_explains_the_class_asked_for(
    predictor: Predictor, images: list[Image.Image]
) -> None:
    label = predictor.topk(images[1], k=4).top[-1]  # the least probable class

    by_name = predictor.gradcam(images[1], class_index=label.name)

    assert np.array_equal(by_name, predictor.gradcam(images[1], class_index=label.index))
    with pytest.raises(ValueError, match=r"class_index 'GLAUCOMA' is not a class of this model"):
        predictor.gradcam(images[1], class_index="GLAUCOMA")
    with pytest.raises(ValueError, match=r"class_index must be from 0 to 3 or a class name, got 4"):
        predictor.gradcam(images[1], class_index=4)
    # one image, named as grad_cam_image names it (not "image 0" of a list): with or
    # without class_index, the same words
    with pytest.raises(TypeError, match=r"image is an int; expected a path"):
        predictor.gradcam(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"image is an int; expected a path"):
        predictor.gradcam(3, class_index=0)  # type: ignore[arg-type]


def test_gradcam_explains_the_class_topk_reports_not_the_plain_forwards(
    model: Classifier, images: list[Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    # topk's class comes from the Predictor's precision, TTA and temperature, which can
    # differ from a plain fp32 forward's near a tie (bf16 on this CPU: DRUSEN reported, the
    # map was CNV's); whatever topk reports is the class the default map explains. Here
    # the Predictor's engine favours the plain forward's least probable class.
    predictor = Predictor(model, device="cpu", precision="fp32", tta=True)
    least = predictor.topk(images[1], k=4).top[-1]
    log_probabilities = predictor.engine._log_probabilities

    def favouring_least(forward: Any, batch: torch.Tensor) -> torch.Tensor:
        log_probabilities(forward, batch)  # the model still runs
        favoured = torch.full((len(batch), len(predictor.classes)), -9.0, dtype=torch.float64)
        favoured[:, least.index] = 0.0
        return torch.log_softmax(favoured, dim=1)

    monkeypatch.setattr(predictor.engine, "_log_probabilities", favouring_least)
    assert predictor.topk(images[1]).label == least.name

    explained = predictor.gradcam(images[1])

    assert np.array_equal(explained, predictor.gradcam(images[1], class_index=least.index))
    assert not np.array_equal(explained, grad_cam_image(model, images[1]))  # the argmax's


def test_a_scan_in_memory_meeting_a_reduced_decode_model_is_warned_of(tmp_path: Path) -> None:
    # the model reads a 512 x 496 JPEG file at half scale, as it was trained; the same scan
    # in memory is at full size, and its probabilities can differ: said, not silent
    scan = SyntheticOCT(1, shape=(496, 512), seed=1).image(0)
    jpeg, png = tmp_path / "scan.jpeg", tmp_path / "scan.png"
    scan.save(jpeg)
    scan.save(png)
    model = small_cnn(preprocessing=Preprocessing(size=64, reduced_decode=True))
    predictor = Predictor(model, device="cpu", precision="fp32")
    in_memory = r"given in memory, decoded at full size, but this model decodes JPEG files at"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor.topk([jpeg, png, Image.open(png)])  # files, and a PNG's pixels: as read
        predictor.topk(torch.zeros(60, 60, dtype=torch.uint8))  # too small to be reduced
        Predictor(small_cnn(preprocessing=Preprocessing(size=64)), device="cpu").topk(scan)
    with pytest.warns(UserWarning, match=r"^image 0 " + in_memory):
        predictor.topk(Image.open(jpeg))
    with pytest.warns(UserWarning, match=r"^2 image\(s\) \(e\.g\. image 1\) " + in_memory):
        predictor.topk([jpeg, scan, torch.from_numpy(np.array(scan))])
    with pytest.warns(UserWarning, match=in_memory):
        model.preprocessing.prepare(scan)


def test_topk_by_default_lists_three_classes_or_all_of_a_smaller_model(
    images: list[Image.Image],
) -> None:
    # a two-class study's model: topk(image) failed with "k must be an int from 1 to 2, got 3"
    two = small_cnn(classes=["CNV", "NORMAL"], preprocessing=Preprocessing(size=32))
    assert len(Predictor(two, device="cpu").topk(images[0]).top) == 2
    assert len(Predictor(tiny_cnn(), device="cpu").topk(images[0]).top) == 3


def test_auto_precision_stays_close_to_fp32() -> None:
    # "auto" runs bf16 autocast on CPUs with native bf16 (several times faster); the
    # probabilities stay within a few thousandths of fp32 on this tiny model.
    model = small_cnn(preprocessing=Preprocessing(size=32))
    images = [SyntheticOCT(2, shape=(64, 64), seed=4).image(i) for i in range(8)]
    fast = Predictor(model, device="cpu")
    exact = Predictor(model, device="cpu", precision="fp32")
    assert fast.precision == "auto"
    difference = (fast.predict_proba(images) - exact.predict_proba(images)).abs().max()
    assert float(difference) < 0.02


def test_bf16_weights_are_cast_once_and_again_only_after_they_change(
    images: list[Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    from retinalnet import engine as engine_module

    casts: list[int] = []
    cast = engine_module.cast_weights

    def counting(model: nn.Module, dtype: torch.dtype, previous: Any = None) -> Any:
        result = cast(model, dtype, previous)
        kept = {id(t) for _, t in (previous or {}).values()}
        casts.append(sum(id(t) not in kept for _, t in result.values()))
        return result

    monkeypatch.setattr(engine_module, "cast_weights", counting)
    model = small_cnn(preprocessing=Preprocessing(size=32))
    predictor = Predictor(model, device="cpu", precision="bf16")
    first = predictor.predict_proba(images)
    weights = casts[0]
    assert weights > 0
    assert torch.equal(predictor.predict_proba(images), first)
    assert casts[1] == 0  # the second call reused every cast weight

    with torch.no_grad():
        next(model.parameters()).mul_(-2.0)  # trained further, say
    changed = predictor.predict_proba(images)
    assert casts[2] == 1  # only the weight that changed is cast again
    fresh = Predictor(model, device="cpu", precision="bf16")
    assert torch.equal(changed, fresh.predict_proba(images))
    assert not torch.equal(changed, first)


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be"):
        Predictor(small_cnn(), device="cpu", precision="int8")


def test_worker_processes_give_the_same_probabilities_and_name_bad_files(tmp_path: Path) -> None:
    model = small_cnn(preprocessing=Preprocessing(size=32))
    data = SyntheticOCT(2, shape=(64, 64), seed=5)
    paths = [data.write(tmp_path, "test") / name.split("-")[0] / name for name, _ in data.samples]
    in_process = Predictor(model, device="cpu", precision="fp32").predict_proba(paths)
    workers = Predictor(model, device="cpu", precision="fp32", num_workers=1, batch_size=3)
    torch.testing.assert_close(workers.predict_proba(paths), in_process)

    broken = tmp_path / "broken.jpeg"
    broken.write_text("not an image")
    with pytest.raises(UnreadableImageError, match=r"broken\.jpeg"):
        workers.predict_proba([*paths, broken])


def test_workers_start_only_for_more_than_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a pool started again at every call: 10-13 s per single image under "spawn" (macOS,
    # Windows) with 2 workers, 0.01-0.03 s without
    import retinalnet.predictor as predictor_module

    started: list[int] = []
    make_loader = predictor_module.make_loader

    def recording(*args: Any, **kwargs: Any) -> Any:
        started.append(kwargs["num_workers"])
        return make_loader(*args, **kwargs)

    monkeypatch.setattr(predictor_module, "make_loader", recording)
    model = small_cnn(preprocessing=Preprocessing(size=32))
    data = SyntheticOCT(1, shape=(64, 64), seed=5)
    paths = [data.write(tmp_path, "test") / name.split("-")[0] / name for name, _ in data.samples]
    predictor = Predictor(model, device="cpu", precision="fp32", num_workers=8, batch_size=2)
    predictor.topk(paths[0])
    predictor.predict_proba(paths[:2])  # one batch
    predictor.predict_proba(paths)  # two batches: no more workers than batches
    assert started == [0, 0, 2]


def test_the_callers_model_keeps_its_layout_dtype_and_mode() -> None:
    model = small_cnn(preprocessing=Preprocessing(size=32)).train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    predictor = Predictor(model, device="cpu", precision="bf16")
    predictor.predict_proba([torch.rand(40, 40)])
    assert model.training
    for name, parameter in model.named_parameters():
        assert parameter.dtype == torch.float32
        assert parameter.is_contiguous()  # not switched to channels-last
        assert torch.equal(parameter, before[name])


def test_in_memory_images_are_prepared_in_process_even_with_workers() -> None:
    model = small_cnn(preprocessing=Preprocessing(size=32))
    images = [SyntheticOCT(1, shape=(64, 64), seed=6).image(i) for i in range(4)]
    predictor = Predictor(model, device="cpu", precision="fp32", num_workers=4)
    expected = Predictor(model, device="cpu", precision="fp32").predict_proba(images)
    torch.testing.assert_close(predictor.predict_proba(images), expected)


# --- on_error="skip": one bad file does not cost the others ---------------------------------


@pytest.mark.parametrize("num_workers", [0, 1])
def test_skip_leaves_unreadable_files_out_and_lists_them(
    tmp_path: Path, num_workers: int, caplog: pytest.LogCaptureFixture
) -> None:
    model = small_cnn(preprocessing=Preprocessing(size=32))
    data = SyntheticOCT(1, shape=(64, 64), seed=5)
    paths = [data.write(tmp_path, "test") / name.split("-")[0] / name for name, _ in data.samples]
    broken = tmp_path / "broken.jpeg"
    broken.write_text("not an image")
    missing = tmp_path / "missing.jpeg"
    given = [paths[0], broken, *paths[1:], missing]
    strict = Predictor(model, device="cpu", precision="fp32")
    expected = strict.predict_proba(paths)
    predictor = Predictor(
        model,
        device="cpu",
        precision="fp32",
        on_error="skip",
        batch_size=2,
        num_workers=num_workers,
    )

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        predictions = predictor.topk(given, k=2)

    assert [p.source for p in predictions] == [str(path) for path in paths]
    assert [(s.source, s.reason) for s in predictor.skipped] == [
        (str(broken), predictor.skipped[0].reason),
        (str(missing), predictor.skipped[1].reason),
    ]
    assert "no such file" in predictor.skipped[1].reason
    assert predictor.skipped[0].reason
    assert [r.getMessage() for r in caplog.records] == [
        "skipped 2 unreadable image(s) of 6: broken.jpeg, missing.jpeg (Predictor.skipped "
        "lists them)"
    ]
    torch.testing.assert_close(predictor.predict_proba(given), expected)
    assert len(predictor.skipped) == 2
    predictor.predict_proba(paths)
    assert predictor.skipped == []  # each call starts afresh
    assert strict.skipped == []


def test_skip_still_raises_for_a_single_image_and_bad_policies_are_refused(
    tmp_path: Path, images: list[Image.Image]
) -> None:
    predictor = Predictor(small_cnn(), device="cpu", on_error="skip")
    with pytest.raises(UnreadableImageError, match=r"missing\.jpeg"):
        predictor.topk(tmp_path / "missing.jpeg")
    assert predictor.topk([images[0], tmp_path / "missing.jpeg"], k=1)[0].source == "<image 0>"
    with pytest.raises(ValueError, match=r"on_error must be 'raise' or 'skip', got 'ignore'"):
        Predictor(small_cnn(), on_error="ignore")  # type: ignore[arg-type]


def test_a_single_unreadable_image_is_raised_and_neither_logged_nor_listed_as_skipped(
    tmp_path: Path, images: list[Image.Image], caplog: pytest.LogCaptureFixture
) -> None:
    """A single image is raised whatever ``on_error`` says: no "skipped" line is logged for a
    request that failed, and ``skipped`` lists nothing (the call returned nothing, so it left
    nothing out); gradcam, which takes one image, alike."""
    predictor = Predictor(
        small_cnn(preprocessing=Preprocessing(size=32)), device="cpu", on_error="skip"
    )
    missing = tmp_path / "missing.jpeg"
    listed = [SkippedImage(str(missing), "no such file")]
    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        predictor.topk([images[0], missing], k=1)
        assert [r.getMessage() for r in caplog.records] == [
            "skipped 1 unreadable image(s) of 2: missing.jpeg (Predictor.skipped lists them)"
        ]
        assert predictor.skipped == listed
        caplog.clear()
        with pytest.raises(UnreadableImageError, match=r"missing\.jpeg': no such file"):
            predictor.topk(missing)
        assert predictor.skipped == []
        predictor.predict_proba([missing])  # a list: skipped, as the log says
        assert predictor.skipped == listed
        with pytest.raises(UnreadableImageError, match=r"missing\.jpeg': no such file"):
            predictor.gradcam(missing)
        assert predictor.skipped == []
    assert [r.getMessage() for r in caplog.records] == [
        "skipped 1 unreadable image(s) of 1: missing.jpeg (Predictor.skipped lists them)"
    ]


def test_from_checkpoint_takes_the_skip_policy(tmp_path: Path) -> None:
    checkpoint = save_checkpoint(
        tmp_path / "best.pt", small_cnn(preprocessing=Preprocessing(size=32))
    )
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", on_error="skip")
    assert predictor.on_error == "skip"
    assert predictor.topk([tmp_path / "missing.jpeg"]) == []
    assert [s.source for s in predictor.skipped] == [str(tmp_path / "missing.jpeg")]


# --- a model output that is NaN or infinite is no answer ------------------------------------


class _NanForBrightImages(nn.Module):
    """A network that fails on some inputs: NaN (or -inf) scores for bright images."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.scale = nn.Parameter(torch.ones(len(CLASSES)))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        brightness = inputs.mean(dim=(1, 2, 3))
        scores = brightness[:, None] * self.scale
        return torch.where((brightness > 0)[:, None], torch.full_like(scores, self.value), scores)


def _failing_model(value: float) -> Classifier:
    return Classifier(
        _NanForBrightImages(value), classes=CLASSES, preprocessing=Preprocessing(size=32)
    )


def _scans(tmp_path: Path) -> list[Path]:
    """Five scans; the fourth (scan-3) is bright, the others dark."""
    paths = []
    for index in range(5):
        path = tmp_path / f"scan-{index}.png"
        Image.new("L", (40, 40), 250 if index == 3 else 10).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("batch_size", [1, 2, 3])
@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_an_output_that_is_not_finite_is_refused_naming_the_image(
    tmp_path: Path, value: float, batch_size: int, on_error: Any
) -> None:
    paths = _scans(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    given = [paths[0], broken, *paths[1:]] if on_error == "skip" else paths
    predictor = Predictor(
        _failing_model(value),
        device="cpu",
        precision="fp32",
        batch_size=batch_size,
        on_error=on_error,
    )
    message = (
        rf"^the model's output for {re.escape(repr(str(paths[3])))} is NaN or infinite, so it "
        r"gives no answer for this image \(the image passed its checks: the model fails on "
        r"it\)\. Check the model: its weights, or a layer that overflows$"
    )
    for door in (
        lambda: predictor.topk(given, k=2),
        lambda: predictor.predict_proba(given),
        lambda: predictor.topk(paths[3]),
    ):
        with pytest.raises(ValueError, match=message):
            door()

    assert len(predictor.topk([paths[0], paths[4]], k=1)) == 2  # the others have answers


def test_in_low_precision_the_error_suggests_fp32(tmp_path: Path) -> None:
    predictor = Predictor(_failing_model(float("nan")), device="cpu", precision="bf16")
    with pytest.raises(
        ValueError,
        match=r"'<image 0>' is NaN or infinite.*\. Predict in fp32 \(precision='fp32'\), or "
        r"check the model's weights$",
    ):
        predictor.topk(torch.full((40, 40), 250, dtype=torch.uint8))


def test_results_are_never_built_from_probabilities_that_are_not_finite() -> None:
    """The ONNX predictor builds its results through the same function."""
    probabilities = torch.tensor([[0.5, 0.5, 0.0, 0.0], [float("nan")] * 4])
    with pytest.raises(ValueError, match=r"output for 'b\.png' is NaN or infinite"):
        top_predictions(
            probabilities, ["a.png", "gone.png", "b.png"], [True, False, True], CLASSES, 2
        )


class _Confident(nn.Module):
    """Fixed scores: CNV far ahead, then NORMAL, DME and DRUSEN, the last three with
    probabilities below float32's smallest (they round to 0.0 as float32)."""

    def __init__(self) -> None:
        super().__init__()
        self.scores = nn.Parameter(torch.tensor([0.0, -407.2, -535.9, -111.0]))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.scores.expand(len(inputs), -1) + 0 * inputs.mean()


def test_top_k_ranks_probabilities_too_small_for_a_float_by_the_model() -> None:
    model = Classifier(_Confident(), classes=CLASSES, preprocessing=Preprocessing(size=32))
    predictor = Predictor(model, device="cpu", precision="fp32")
    prediction = predictor.topk(Image.new("L", (40, 40), 10), k=4)
    # was CNV, DME, DRUSEN, NORMAL: the three 0.0 floats ordered by class index
    assert [c.name for c in prediction.top] == ["CNV", "NORMAL", "DME", "DRUSEN"]
    assert prediction.top[0].probability == 1.0
    assert predictor.predict_proba([Image.new("L", (40, 40), 10)]).dtype == torch.float32


def test_a_warning_of_the_predictor_names_the_callers_line(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    Image.new("L", (20, 20), 40).save(small)
    predictor = Predictor(tiny_cnn(), device="cpu")
    for call in (lambda: predictor.topk(small), lambda: predictor.topk([small, small])):
        with pytest.warns(UserWarning, match="only 20 x 20 pixels") as caught:
            call()
        assert {w.filename for w in caught} == {__file__}  # was transforms.py


def test_gradcam_explains_one_image_and_says_so_for_a_list(
    predictor: Predictor, images: list[Image.Image]
) -> None:
    with pytest.raises(TypeError, match=r"^gradcam\(\) explains one image, got a list of 2"):
        predictor.gradcam([images[0], images[1]])  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_the_engine_takes_prepared_inputs_of_any_float_dtype(
    predictor: Predictor, images: list[Image.Image], dtype: torch.dtype
) -> None:
    inputs = predictor.preprocessing.prepare(images[0])[None]

    assert torch.equal(
        predictor.engine.probabilities(inputs.to(dtype)),
        predictor.engine.probabilities(inputs.to(dtype).float()),
    )


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        (
            torch.zeros(1, 3, 32, 32, dtype=torch.uint8),
            ValueError,
            r"a uint8 tensor .*not prepared",
        ),
        (torch.zeros(3, 32, 32), ValueError, r"one input \(3, 32, 32\).*unsqueeze\(0\)"),
        (
            torch.zeros(1, 1, 32, 32),
            ValueError,
            r"\(1, 1, 32, 32\); the model takes a batch \(N, 3",
        ),
        (np.zeros((1, 3, 32, 32), np.float32), TypeError, r"got a NumPy array"),
        ([[0.0]], TypeError, r"must be a torch\.Tensor batch .*got a list"),
    ],
)
def test_the_engine_refuses_what_is_no_batch_of_prepared_inputs(
    predictor: Predictor, inputs: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        predictor.engine.probabilities(inputs)  # type: ignore[arg-type]


def test_an_onnx_predictor_given_a_prepared_input_says_what_it_takes(tmp_path: Path) -> None:
    # "a normalised tensor is a model input: call the model directly": it has no model
    for module in ("onnxruntime", "onnxscript", "onnx"):
        pytest.importorskip(module)
    from retinalnet.export import to_onnx

    model = small_cnn(preprocessing=Preprocessing(size=32)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to_onnx(model, tmp_path / "model.onnx")
    predictor = Predictor.from_onnx(tmp_path / "model.onnx")
    scan = SyntheticOCT(1, shape=(40, 48), seed=0).image(0)
    prepared = model.preprocessing.prepare(scan)
    with pytest.raises(
        ValueError,
        match=r"image 0 is a float32 tensor \(3, 32, 32\) with v.*"
        r"normalised model input.*an OnnxPredictor takes images",
    ):
        predictor.topk(prepared)
    assert predictor.topk(scan).label in model.classes


def test_a_prediction_prints_its_probabilities_never_rounded_to_an_end() -> None:
    # the docs' examples printed f"{p:.1%}": 0.9996 read "100.0%", the text of a certainty
    from retinalnet.predictor import ClassProbability, Prediction
    from retinalnet.volume import ScanProbability

    top = (ClassProbability("CNV", 0, 0.9996), ClassProbability("DME", 1, 0.0004))

    assert str(Prediction("scan.jpeg", top)) == "scan.jpeg: CNV >99.9%, DME <0.1%"
    assert str(ClassProbability("NORMAL", 3, 0.25)) == "NORMAL 25.0%"
    assert str(ScanProbability(7, 0.9999)) == "B-scan 7: >99.9%"
    assert repr(top[0]) == "ClassProbability(name='CNV', index=0, probability=0.9996)"
