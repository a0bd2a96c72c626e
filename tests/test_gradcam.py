"""Grad-CAM: exact on a small network, safe on frozen VGG16, and pointing at the lesions."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional

from _training_helpers import SYNTHETIC_SIZE, tiny_cnn, trained_small_cnn
from retinalnet import SyntheticOCT
from retinalnet.gradcam import (
    PointingGame,
    find_target_layer,
    grad_cam,
    grad_cam_image,
    heatmap_to_image,
    pointing_game,
)
from retinalnet.models import Classifier, create_model, small_cnn
from retinalnet.transforms import Preprocessing


class ConvNet(nn.Module):
    """conv - in-place ReLU - conv - in-place ReLU - global pool - linear: no feature blocks."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.linear = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.linear(x.mean(dim=(2, 3)))


def _cam_by_hand(
    net: ConvNet,
    inputs: torch.Tensor,
    classes: list[int],
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Grad-CAM of conv2's output, written out without hooks or in-place operations; the
    scores are ``head`` of the pooled features (``net.linear`` by default)."""
    activation = net.conv2(functional.relu(net.conv1(inputs))).detach().requires_grad_(True)
    scores = (head or net.linear)(functional.relu(activation).mean(dim=(2, 3)))
    scores[torch.arange(len(classes)), classes].sum().backward()
    assert activation.grad is not None
    weights = activation.grad.mean(dim=(2, 3), keepdim=True)
    cam = functional.relu((weights * activation).sum(dim=1)).detach()
    return cam / cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]


def test_grad_cam_matches_the_definition_with_in_place_relus() -> None:
    net = ConvNet().eval()
    inputs = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    classes = [0, 2, 1]

    cam = grad_cam(net, inputs, class_index=classes)

    assert cam.shape == (3, 12, 12)
    assert torch.allclose(cam, _cam_by_hand(net, inputs, classes), atol=1e-6)


def test_the_predicted_class_is_explained_by_default() -> None:
    net = ConvNet().eval()
    inputs = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    predicted = net(inputs).argmax(dim=1).tolist()

    assert torch.equal(grad_cam(net, inputs), grad_cam(net, inputs, class_index=predicted))
    # one image without a batch dimension gives one map
    assert torch.allclose(grad_cam(net, inputs[0]), grad_cam(net, inputs)[0], atol=1e-6)


def test_frozen_vgg16_inside_inference_mode(vgg16_random: Classifier) -> None:
    # Every backbone parameter is frozen and every ReLU is in place: the classic pitfalls.
    model = vgg16_random
    assert not any(p.requires_grad for p in model.network.features.parameters())
    inputs = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    target = find_target_layer(model)

    with torch.inference_mode():
        cams = [grad_cam(model, inputs, class_index=c) for c in range(4)]

    for cam in cams:
        assert cam.shape == (2, 224, 224)
        assert cam.dtype == torch.float32
        assert float(cam.min()) >= 0
        # each map is scaled to a peak of 1, or all zero where nothing speaks for the class
        # (possible with random weights)
        assert set(cam.flatten(1).amax(dim=1).tolist()) <= {0.0, 1.0}
    assert any(float(cam.max()) == 1.0 for cam in cams)
    assert model.training == was_training
    assert not target._forward_pre_hooks
    assert not target._forward_hooks
    assert all(p.grad is None for p in model.parameters())


def test_find_target_layer_of_each_kind_of_backbone(vgg16_random: Classifier) -> None:
    # VGG16: declared as the ReLU after conv5_3 (14x14 at 224), the input of the last max-pool
    assert find_target_layer(vgg16_random) is vgg16_random.network.features[29]
    small = small_cnn()
    assert find_target_layer(small) is small.network.features[14]
    # bare networks: the 0.1 guess (the last max-pool, explained at its input)
    assert find_target_layer(small.network) is small.network.features[-1]
    resnet = torchvision.models.resnet18(weights=None)
    assert find_target_layer(resnet) is resnet.layer4[-1]
    net = ConvNet()
    assert find_target_layer(net) is net.conv2
    with pytest.raises(TypeError, match=r"Linear has no Conv2d layer for Grad-CAM"):
        find_target_layer(nn.Linear(2, 2))


def test_resnet_works_too() -> None:
    resnet = torchvision.models.resnet18(weights=None, num_classes=4).eval()

    cam = grad_cam(resnet, torch.rand(1, 3, 64, 64))

    assert cam.shape == (1, 64, 64)
    assert float(cam.max()) == pytest.approx(1.0)


def test_an_explicit_layer_is_explained_at_its_output() -> None:
    net = ConvNet().eval()
    inputs = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(3))

    assert torch.allclose(grad_cam(net, inputs, layer=net.conv2), grad_cam(net, inputs))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_index": 3}, r"class_index must be an int from 0 to 2, one per image, or None"),
        ({"class_index": [0, 1, 2]}, r"class_index must be an int from 0 to 2"),
        ({"class_index": 1.5}, r"class_index must be an int from 0 to 2, .* got 1\.5"),
        ({"class_index": True}, r"class_index must be an int .* got True"),
        ({"class_index": [1, 0.5]}, r"class_index must be an int .* got \[1, 0\.5\]"),
        ({"class_index": torch.tensor([1.0, 0.0])}, r"class_index must be an int"),
        ({"layer": nn.Conv2d(3, 3, 1)}, r"did not run in the forward pass"),
        ({"layer": "linear"}, r"needs a spatial \(N, C, H, W\) activation"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    net = ConvNet()
    if kwargs.get("layer") == "linear":
        kwargs["layer"] = net.linear
    with pytest.raises(ValueError, match=message):
        grad_cam(net, torch.rand(2, 3, 8, 8), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"inputs must be \(N, 3, H, W\)"):
        grad_cam(net, torch.rand(8, 8))


def test_heatmap_to_image_places_the_crop_where_the_preprocessing_took_it() -> None:
    # 80x40 image, Resize(40) keeps it 80x40, CenterCrop(32) takes rows 4-35, columns 24-55
    prep = Preprocessing(size=32, resize=40)

    mapped = heatmap_to_image(np.ones((32, 32)), (80, 40), prep)

    assert mapped.shape == (40, 80)
    assert mapped.dtype == np.float32
    inside = np.zeros((40, 80), dtype=bool)
    inside[4:36, 24:56] = True
    assert np.all(mapped[inside][1:-1] > 0.49)
    assert np.all(mapped[~inside] < 0.51)
    assert mapped[20, 40] == 1.0
    assert mapped[20, 5] == 0.0


def test_heatmap_to_image_follows_a_bright_spot_through_the_preprocessing() -> None:
    from PIL import Image

    # a bright square in a wide image: after resize and crop, the model input's brightest
    # pixel, mapped back, must land on the square
    picture = np.zeros((120, 300), dtype=np.uint8)
    picture[50:60, 170:180] = 255
    image = Image.fromarray(picture)
    prep = Preprocessing(size=64)
    inputs = prep.eval_transform()(image.convert("RGB"))[0]
    spot = (inputs == inputs.max()).float().numpy()

    mapped = heatmap_to_image(spot, image.size, prep)

    row, column = np.unravel_index(np.argmax(mapped), mapped.shape)
    assert 48 <= row < 62
    assert 168 <= column < 182


def test_grad_cam_image_is_at_the_image_size() -> None:
    model = tiny_cnn(seed=1)
    image = SyntheticOCT(1, shape=(50, 70), seed=0).image(2)

    heatmap = grad_cam_image(model, image, class_index=2)

    assert heatmap.shape == (50, 70)
    assert 0 <= heatmap.min() <= heatmap.max() <= 1
    with pytest.raises(TypeError, match=r"needs a retinalnet Classifier \(got ConvNet\)"):
        grad_cam_image(ConvNet(), image)  # type: ignore[arg-type]


def test_pointing_game_by_hand() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[2, 2] = True
    near = np.zeros((10, 10))
    near[3, 3] = 1.0  # one pixel off diagonally
    far = np.zeros((10, 10))
    far[8, 8] = 1.0
    empty = np.zeros((10, 10), dtype=bool)

    exact = pointing_game([near, far, far], [mask, mask, empty])
    tolerant = pointing_game([near, far], [mask, mask], tolerance=1)

    assert exact == PointingGame(hits=0, total=2, chance=0.01)
    assert tolerant == PointingGame(hits=1, total=2, chance=0.09)
    assert tolerant.score == 0.5
    with pytest.raises(ValueError, match=r"heatmap shape \(4, 4\) differs from mask shape"):
        pointing_game([np.zeros((4, 4))], [mask])


def test_a_trained_model_points_at_the_lesions() -> None:
    # Trained as in test_small_cnn_learns_synthetic_oct (about 4 s on one thread). On 30
    # held-out lesion images (10 each of CNV, DME, DRUSEN; NORMAL has no lesion) the
    # Grad-CAM peak of the true class's logit falls inside the lesion mask dilated by 3 px.
    # Measured on one thread, model/trainer seeds 0-5: hit rates 0.37, 0.50, 0.30, 0.40,
    # 0.57, 0.53 against a chance rate (mean dilated-mask area) of 0.058; seed 0 scores 0.37
    # (11 of 30), over 6x chance. CNV's elevation is found most often (8 of 10 at seed 0),
    # DRUSEN least (0 of 10: the peak tends to sit just above the drusen, on the raised RPE).
    # (Maps of the log-probability, as first computed: 0.40, 0.57, 0.43, 0.60, 0.57, 0.60.)
    # With 30 images at a 5.8% chance rate, 6 or more hits by chance has probability below 1%.
    model, _ = trained_small_cnn(seed=0)
    test = SyntheticOCT(10, shape=SYNTHETIC_SIZE, seed=2)
    lesions = [i for i, target in enumerate(test.targets) if test.classes[target] != "NORMAL"]

    heatmaps = [grad_cam_image(model, test.image(i), class_index=test.targets[i]) for i in lesions]
    result = pointing_game(heatmaps, [test.mask(i) for i in lesions], tolerance=3)

    assert result.total == 30
    assert 0.04 < result.chance < 0.08
    assert result.score >= 3 * result.chance
    assert result.hits >= 6


@pytest.mark.parametrize(
    ("inputs", "error", "message"),
    [
        (torch.zeros(1, 3, 1, 1), ValueError, r"inputs of 1 x 1 pixels are too small: small_cnn"),
        (np.zeros((1, 3, 32, 32)), TypeError, r"inputs must be a torch\.Tensor .* got ndarray"),
        (torch.zeros(1, 1, 32, 32), ValueError, r"inputs must be \(N, 3, H, W\) .* \(1, 1, 32"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), ValueError, r"floating-point .*uint8"),
        (torch.full((1, 3, 32, 32), float("nan")), ValueError, r"NaN or infinite"),
    ],
)
def test_grad_cam_refuses_inputs_a_classifier_cannot_take(
    inputs: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        grad_cam(small_cnn(), inputs)  # type: ignore[arg-type]


def test_grad_cam_says_when_a_bare_network_shrinks_the_inputs_to_nothing() -> None:
    pooled = nn.Sequential(nn.Conv2d(3, 4, 1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2))
    convolved = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    for net in (pooled, convolved):
        with pytest.raises(ValueError, match=r"inputs of 1 x 1 pixels are too small for the model"):
            grad_cam(net, torch.zeros(1, 3, 1, 1), layer=net[0])


@pytest.mark.parametrize(
    ("heatmap", "size", "message"),
    [
        (np.ones((8, 8)), (0, 0), r"image_size must be the image's \(width, height\).* \(0, 0\)"),
        (np.ones((8, 8)), (-5, 5), r"two ints >= 1, got \(-5, 5\)"),
        (np.ones((8, 8)), (5.0, 5), r"image_size .* got \(5\.0, 5\)"),
        (np.ones((8, 8)), (5,), r"image_size .* got \(5,\)"),
        (np.ones(8), (10, 10), r"heatmap must be a non-empty 2-d \(H, W\) map, got shape \(8,\)"),
        (np.ones((0, 0)), (10, 10), r"heatmap must be a non-empty 2-d .* \(0, 0\)"),
        (torch.ones(1, 8, 8), (10, 10), r"heatmap must be .* got shape \(1, 8, 8\)"),
        ([[float("nan")]], (10, 10), r"heatmap holds NaN"),
        ("hot", (10, 10), r"heatmap must be a 2-d array of numbers, got str"),
    ],
)
def test_heatmap_to_image_refuses_bad_sizes_and_maps(
    heatmap: object, size: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        heatmap_to_image(heatmap, size, Preprocessing(size=32))  # type: ignore[arg-type]


def test_heatmap_to_image_of_a_tiny_image_covers_at_least_a_pixel() -> None:
    # a 32 px crop of a 1024 px resize rounds to nothing on a 2 px wide image
    mapped = heatmap_to_image(np.ones((32, 32)), (2, 2), Preprocessing(size=32, resize=1024))
    assert mapped.shape == (2, 2)
    assert mapped.max() == 1.0


@pytest.mark.parametrize("tolerance", [-1, 1.5, True])
def test_pointing_game_refuses_a_tolerance_that_is_not_a_radius(tolerance: object) -> None:
    with pytest.raises(
        ValueError, match=rf"tolerance must be an int >= 0 \(pixels\), got {tolerance}"
    ):
        pointing_game([np.ones((3, 3))], [np.ones((3, 3))], tolerance=tolerance)  # type: ignore[arg-type]


def test_grad_cam_names_the_only_size_a_fixed_size_architecture_takes() -> None:
    with torch.device("meta"):
        vit = create_model("vit_b_16", weights=None)  # structure only: refused before it runs
    with pytest.raises(ValueError, match=r"vit_b_16 takes 224 x 224 inputs only, got 224 x 256"):
        grad_cam(vit, torch.zeros(1, 3, 224, 256))


def test_a_callers_autocast_does_not_change_a_heatmap() -> None:
    # was 0.035 off under torch.autocast(bf16), while the fp32 prediction it explains was not
    from retinalnet.predictor import Predictor

    model = tiny_cnn(seed=3)
    images = torch.rand(2, 3, 32, 32)
    plain = grad_cam(model, images)
    scan = torch.rand(3, 40, 40)
    predictor = Predictor(model, device="cpu", precision="fp32")
    plain_predicted = predictor.gradcam(scan)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(grad_cam(model, images), plain)
        np.testing.assert_array_equal(predictor.gradcam(scan), plain_predicted)


def test_a_model_made_under_inference_mode_is_refused_by_gradcam_in_one_line() -> None:
    # predictions of it work; Grad-CAM raised torch's "Inference tensors cannot be saved for
    # backward" from deep inside, where fit refuses such a model in one line
    from retinalnet.predictor import Predictor

    with torch.inference_mode():
        model = tiny_cnn()
    predictor = Predictor(model, device="cpu")
    scan = torch.rand(3, 40, 40)
    assert predictor.topk(scan, k=1).top
    message = r"^the model's weight 'network\..*' .* cannot be explained by Grad-CAM\)"
    with pytest.raises(ValueError, match=message):
        predictor.gradcam(scan)
    with pytest.raises(ValueError, match=message):
        grad_cam(model, torch.rand(1, 3, 32, 32))


# ---------------------------------------------------------------------------------------------
# A layer that maps the input to 1 x 1: one value spread over the image, refused at every door


def _resnet18_at(size: int) -> Classifier:
    torch.manual_seed(0)
    return create_model("resnet18", weights=None, preprocessing=Preprocessing(size=size))


def _door_grad_cam(model: Classifier, image: str, tmp_path: object) -> object:
    return grad_cam(model, model.preprocessing.prepare(image))


def _door_grad_cam_image(model: Classifier, image: str, tmp_path: object) -> object:
    return grad_cam_image(model, image)


def _door_predictor(model: Classifier, image: str, tmp_path: object) -> object:
    from retinalnet import Predictor

    return Predictor(model).gradcam(image)


def _door_cli_predict_cam(model: Classifier, image: str, tmp_path: object) -> object:
    pytest.importorskip("matplotlib")
    import contextlib
    import io
    from pathlib import Path

    from retinalnet.checkpoint import save_checkpoint
    from retinalnet.cli import main

    folder = Path(str(tmp_path))
    save_checkpoint(folder / "m.pt", model)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["predict", image, "--checkpoint", str(folder / "m.pt"), "-q",
                     "--cam", str(folder / "cams")])  # fmt: skip
    assert code != 0
    assert not list((folder / "cams").glob("*.png"))
    raise ValueError(stderr.getvalue())  # the message the command line printed


@pytest.mark.parametrize(
    "door",
    [_door_grad_cam, _door_grad_cam_image, _door_predictor, _door_cli_predict_cam],
    ids=["grad_cam", "grad_cam_image", "Predictor.gradcam", "predict --cam"],
)
def test_a_one_by_one_map_is_refused_with_the_smallest_size_that_works(
    door: object, tmp_path: object
) -> None:
    # resnet18's layer4 is 1 x 1 on 32 px inputs: the heatmap was silently all ones
    from pathlib import Path

    image = Path(str(tmp_path)) / "scan.png"
    SyntheticOCT(1, shape=(64, 64), seed=0).image(0).save(image)
    model = _resnet18_at(32)
    expected = r"resnet18 .*'network\.layer4' gives a 1 x 1 map.*constant.*from 33 x 33 inputs"
    with pytest.raises(ValueError, match=expected):
        door(model, str(image), tmp_path)  # type: ignore[operator]


def test_the_smallest_size_named_gives_a_heatmap_that_varies() -> None:
    image = SyntheticOCT(1, shape=(64, 64), seed=0).image(0)
    cam = grad_cam_image(_resnet18_at(33), image)  # layer4: 2 x 2
    assert len(np.unique(cam.round(4))) > 10


def test_the_gradcam_images_of_a_fit_are_skipped_with_the_reason_not_the_fit(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    # TensorBoard's Grad-CAM images during training: one log line, and the fit goes on
    pytest.importorskip("tensorboard")
    import logging
    from pathlib import Path

    from _training_helpers import one_thread, quiet_trainer
    from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
    from retinalnet.training import TensorBoardLogger

    root = make_synthetic_kermany(
        Path(str(tmp_path)) / "data", train=1, val=1, test=0, shape=(40, 40), seed=3
    )
    with one_thread(), caplog.at_level(logging.WARNING, logger="retinalnet"):
        trainer = quiet_trainer(
            _resnet18_at(32),
            callbacks=[TensorBoardLogger(Path(str(tmp_path)) / "tb", images=1)],
            max_epochs=2,
            batch_size=4,
        )
        history = trainer.fit(KermanyOCT(root, "train"), KermanyOCT(root, "val"))
    assert len(history) == 2
    skipped = [r.getMessage() for r in caplog.records if "no Grad-CAM images" in r.getMessage()]
    assert len(skipped) == 1
    assert "1 x 1 map" in skipped[0]
    assert "from 33 x 33 inputs" in skipped[0]


class _PooledNet(nn.Module):
    """conv then global pooling: the pooled map is 1 x 1 at any input size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(4, 3)  # a score for each of _declared's three classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pool(self.conv(x)).flatten(1))


def test_a_layer_that_stays_one_by_one_is_refused_as_pooled() -> None:
    net = _PooledNet()
    with pytest.raises(ValueError, match=r"'pool' gives a 1 x 1 map.*stays smaller than 2 x 2"):
        grad_cam(net, torch.randn(1, 3, 8, 8), layer=net.pool)
    assert grad_cam(net, torch.randn(1, 3, 8, 8), layer=net.conv).shape == (1, 8, 8)


class _StridedNet(nn.Module):
    """A bare network (no declared layer): a stride-8 conv and ReLU, then global pooling,
    class 0 the sum of the channels (so its Grad-CAM is the ReLU's map, never all zeros)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 8, stride=8)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(4, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0] * 4, [-1.0] * 4]))
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pool(self.relu(self.conv(x))).flatten(1))


def _door_classifier_layer(height: int, width: int) -> torch.Tensor:
    # resnet18's declared layer4 (stride 32): 32 x 96 inputs give a 1 x 3 map
    model = _resnet18_at(32)
    with warnings.catch_warnings():  # another size than the model's, on purpose
        warnings.filterwarnings("ignore", "inputs of .* not the model's prepared inputs")
        return grad_cam(model, torch.rand(1, 3, height, width))[0]


def _door_bare_network_layer(height: int, width: int) -> torch.Tensor:
    # layer= of a bare network (stride 8): 8 x 24 inputs give a 1 x 3 map
    torch.manual_seed(0)
    net = _StridedNet()
    inputs = torch.rand(1, 3, height // 4, width // 4)
    return grad_cam(net, inputs, class_index=0, layer=net.relu)[0]


@pytest.mark.parametrize(
    "door", [_door_classifier_layer, _door_bare_network_layer], ids=["resnet18", "layer="]
)
@pytest.mark.parametrize(("height", "width"), [(32, 96), (96, 32), (32, 256)])
def test_a_map_one_cell_high_or_wide_is_explained_along_its_long_side(
    door: object, height: int, width: int
) -> None:
    # a 1 x N map (a wide B-scan strip) was refused as if flat: only a 1 x 1 map is flat
    cam = door(height, width)  # type: ignore[operator]
    across = 0 if width > height else 1  # a wide map: one row, repeated down the height
    assert float(cam.std(dim=across).max()) < 1e-6
    profile = cam.mean(dim=across)  # along the long side: it varies
    assert float(profile.max() - profile.min()) > 0.1


# -- a Classifier's inputs that do not look prepared ----------------------------------------


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        # an image in [0, 1] at another size (the model's is 32)
        (torch.rand(3, 40, 48), r"inputs of 40 x 48 pixels are not the model's prepared"),
        # the right size, never normalised
        (torch.rand(3, 32, 32), r"the batch holds no negative value.*not normalised"),
    ],
)
def test_unprepared_inputs_of_a_classifier_are_warned_about(
    inputs: torch.Tensor, match: str
) -> None:
    with pytest.warns(UserWarning, match=match + r".*grad_cam_image"):
        grad_cam(tiny_cnn(size=32), inputs)


def test_prepared_inputs_of_a_classifier_are_explained_without_a_word() -> None:
    model = tiny_cnn(size=32)
    image = SyntheticOCT(1, shape=(40, 48), seed=0).image(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad_cam(model, model.preprocessing.prepare(image))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_inputs_of_any_float_dtype_are_explained_in_fp32(dtype: torch.dtype) -> None:
    model = tiny_cnn(size=32)
    inputs = model.preprocessing.prepare(SyntheticOCT(1, shape=(40, 48), seed=0).image(0))
    cast = inputs.to(dtype)

    assert torch.equal(grad_cam(model, cast), grad_cam(model, cast.float()))


# -- the class score before the softmax (Selvaraju et al.): logits, not log-probabilities -----


def _with_final(final: nn.Module) -> nn.Sequential:
    return nn.Sequential(ConvNet(), final).eval()  # ConvNet's seeded weights: the same logits


@pytest.mark.parametrize("final", [nn.LogSoftmax(dim=1), nn.Softmax(dim=-1)], ids=repr)
@pytest.mark.parametrize("class_index", [None, [2, 0, 1, 0]])
def test_a_final_softmax_module_does_not_change_the_map(
    final: nn.Module, class_index: list[int] | None
) -> None:
    # the map of log p_c = y_c - logsumexp(y) correlated only 0.82 with that of the logit y_c
    inputs = torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    logits_net = ConvNet().eval()
    normalised = _with_final(final)

    expected = grad_cam(logits_net, inputs, class_index=class_index)
    cam = grad_cam(normalised, inputs, class_index=class_index)

    assert torch.allclose(cam, expected, atol=1e-6)
    predicted = logits_net(inputs).argmax(dim=1).tolist()  # None: still the predicted class
    hand = _cam_by_hand(logits_net, inputs, predicted if class_index is None else class_index)
    assert torch.allclose(cam, hand, atol=1e-6)
    assert not final._forward_hooks  # the watch on the softmax is removed


def test_the_predictor_explains_a_builders_logits_as_those_of_the_same_weights_without_it() -> None:
    # every door (Predictor.gradcam, grad_cam_image, predict --cam, the report, TensorBoard)
    # goes through grad_cam: small_cnn ends in LogSoftmax; without it, the same logits. On
    # the code before, the maps differed (mean |difference| 0.1 in the audit)
    import copy

    from retinalnet import Predictor

    model = tiny_cnn(seed=4)
    assert isinstance(model.network.classifier[-1], nn.LogSoftmax)
    bare = copy.deepcopy(model)
    bare.network.classifier[-1] = nn.Identity()
    scan = SyntheticOCT(1, shape=(40, 48), seed=0).image(1)

    for index in (None, 0, 3):
        with_softmax = Predictor(model, device="cpu", precision="fp32").gradcam(
            scan, class_index=index
        )
        logits = Predictor(bare, device="cpu", precision="fp32").gradcam(scan, class_index=index)
        np.testing.assert_allclose(with_softmax, logits, atol=1e-6)
        assert float(logits.max()) > 0.5  # a map, not all zeros


class _FunctionalLogSoftmax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = ConvNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.log_softmax(self.net(x), dim=1)


def test_a_functional_log_softmax_is_explained_with_a_warning_naming_the_fix() -> None:
    # its logits are lost (known up to a constant per image): the map is of log p_c
    net = _FunctionalLogSoftmax().eval()
    with pytest.warns(
        UserWarning, match=r"computed in its forward.*end the network in nn\.LogSoftmax"
    ):
        cam = grad_cam(net, torch.randn(2, 3, 12, 12), class_index=0)
    assert cam.shape == (2, 12, 12)


class _GatedNet(ConvNet):
    """A softmax inside the network (a gate over the channels), not at its end."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv2(self.relu(self.conv1(x))))
        pooled = x.mean(dim=(2, 3))
        return self.linear(pooled * self.gate(pooled))


def test_a_softmax_that_is_not_the_output_or_not_over_the_classes_is_left_alone() -> None:
    inputs = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    # a softmax over the batch (dim 0) is not one over the classes: its output is explained
    over_batch = _with_final(nn.LogSoftmax(dim=0))
    convnet = over_batch[0]
    assert isinstance(convnet, ConvNet)
    cam = grad_cam(over_batch, inputs, class_index=0)
    hand = _cam_by_hand(convnet, inputs, [0] * 3, lambda x: torch.log_softmax(convnet.linear(x), 0))
    assert torch.allclose(cam, hand, atol=1e-6)
    # a softmax inside the network: the output, not the softmax's input, is explained
    gated = _GatedNet().eval()
    cam = grad_cam(gated, inputs, class_index=0)
    hand = _cam_by_hand(gated, inputs, [0] * 3, lambda x: gated.linear(x * torch.softmax(x, 1)))
    assert torch.allclose(cam, hand, atol=1e-6)


# -- a layer that cannot be explained: the fix for the door used ------------------------------


class _UnusedBranchNet(ConvNet):
    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Conv2d(3, 2, 1)


def _declared(network: nn.Module, layer: str) -> Classifier:
    return Classifier(
        network, classes=["A", "B", "C"], preprocessing=Preprocessing(size=32), gradcam_layer=layer
    )


_DECLARE = (
    r"declare {what} with Classifier\(network, \.\.\., gradcam_layer={path}\) .*or in "
    r"Python pass layer= one to grad_cam or grad_cam_image$"
)


@pytest.mark.parametrize(
    ("network", "layer", "problem", "what"),
    [
        (
            ConvNet,
            "linear",
            r"'network\.linear' gives shape \(1, 3\); it needs a spatial",
            "a convolutional module",
        ),
        (
            _UnusedBranchNet,
            "unused",
            r"'network\.unused' did not run in the forward pass",
            "a module that it runs",
        ),
        (
            _PooledNet,
            "pool",
            r"'network\.pool' gives a 1 x 1 map",
            "a convolutional layer before the pooling",
        ),
    ],
    ids=["not spatial", "not run", "pooled"],
)
def test_a_declared_layer_that_cannot_be_explained_names_gradcam_layer_at_the_predictor(
    network: type[nn.Module], layer: str, problem: str, what: str
) -> None:
    # Predictor.gradcam has no layer=: "pass layer= a convolutional module" named no fix
    from retinalnet import Predictor

    torch.manual_seed(0)
    net = network()
    model = _declared(net, layer)
    scan = SyntheticOCT(1, shape=(40, 40), seed=0).image(0)
    path = {"linear": "'conv2'", "unused": "PATH", "pool": "'conv'"}[layer]
    declare = _DECLARE.format(what=what, path=path)

    with pytest.raises(ValueError, match=problem + ".*" + declare):
        Predictor(model, device="cpu").gradcam(scan)
    with pytest.raises(ValueError, match=problem + ".*" + declare):
        grad_cam_image(model, scan)
    # layer= given: replaced there
    given = getattr(net, layer)
    with pytest.raises(ValueError, match=rf"{problem}.*[;:] pass layer= {what}$") as raised:
        grad_cam_image(model, scan, layer=given)
    assert "gradcam_layer" not in str(raised.value)


def test_an_image_the_library_prepares_is_not_warned_of_as_unprepared() -> None:
    # a bright scan has no negative value once normalised: grad_cam_image (Predictor.gradcam,
    # predict --cam) warned that the batch it had prepared itself "was never normalised"
    model = small_cnn(preprocessing=Preprocessing(size=32))
    bright = SyntheticOCT(1, shape=(36, 40)).image(0).point(lambda value: 200 + value // 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad_cam_image(model, bright)
    with warnings.catch_warnings():  # normalised, it lies above 1: no image in [0, 1]
        warnings.simplefilter("error")
        grad_cam(model, model.preprocessing.prepare(bright))
    with pytest.warns(UserWarning, match="no negative value"):  # an image never normalised
        grad_cam(model, torch.rand(1, 3, 32, 32))


# -- what the network returns: checked as at every other door ---------------------------------


class _Returns(nn.Module):
    """A ConvNet whose forward returns ``shape`` of its scores: a tuple, a dict, (N, C, 1, 1),
    or its first three scores."""

    def __init__(self, shape: str) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.shape = shape

    def forward(self, x: torch.Tensor) -> object:
        scores = self.net(x)
        if self.shape == "tuple":
            return scores, scores
        if self.shape == "dict":
            return {"logits": scores}
        if self.shape == "4d":
            return scores[:, :, None, None]
        return scores[:, :3]


@pytest.mark.parametrize(
    ("shape", "error", "match"),
    [
        ("tuple", TypeError, r"_Returns returned a tuple of 2 .*not a tensor \(N, num_classes\)"),
        ("dict", TypeError, r"_Returns returned a dict with keys \['logits'\].*\.logits"),
        ("4d", ValueError, r"float32 tensor \(1, 4, 1, 1\).*torch\.flatten\(x, 1\)"),
        ("three", ValueError, r"3 scores per image for 4 classes"),
    ],
    ids=["tuple", "dict", "N-C-1-1", "3 of 4"],
)
@pytest.mark.parametrize("door", ["grad_cam", "grad_cam_image"])
def test_what_the_network_returns_is_checked_as_at_every_door(
    shape: str, error: type[Exception], match: str, door: str
) -> None:
    # tuples and dicts gave AttributeError, (N, 4, 1, 1) "too many values to unpack", and 3
    # scores for 4 classes were explained without a word
    model = Classifier(
        _Returns(shape),
        classes=["A", "B", "C", "D"],
        preprocessing=Preprocessing(size=32),
        gradcam_layer="net.0",
    )
    explain: Callable[[], object] = (
        (lambda: grad_cam(model, torch.randn(1, 3, 32, 32)))
        if door == "grad_cam"
        else (lambda: grad_cam_image(model, SyntheticOCT(1, shape=(40, 48), seed=0).image(0)))
    )
    with pytest.raises(error, match=match):
        explain()


def test_a_bare_networks_scores_are_checked_but_for_their_number() -> None:
    net = _Returns("tuple")
    with pytest.raises(TypeError, match=r"_Returns returned a tuple"):
        grad_cam(net, torch.randn(1, 3, 32, 32), layer=net.net[0])
    three = _Returns("three")
    assert grad_cam(three, torch.randn(1, 3, 32, 32), layer=three.net[0]).shape == (1, 32, 32)


def test_a_prepared_input_given_to_grad_cam_image_is_told_to_go_to_grad_cam() -> None:
    # "a normalised tensor is a model input: call the model directly" named no door
    model = tiny_cnn(size=32)
    prepared = model.preprocessing.prepare(SyntheticOCT(1, shape=(40, 48), seed=0).image(0))
    with pytest.raises(ValueError, match=r"a normalised model input.*grad_cam\(model, x\[None\]\)"):
        grad_cam_image(model, prepared)
    assert grad_cam(model, prepared[None]).shape == (1, 32, 32)
