"""Tests for retinalnet.transforms: the tutorial's pipelines as presets."""

from __future__ import annotations

import pickle
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T  # noqa: N812 - torchvision's own alias

from retinalnet import transforms
from retinalnet.transforms import (
    AUGMENTATION_PRESETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
)


def _deprecated(name: str):
    """A 0.1 helper of retinalnet.transforms, checking that it warns."""
    with pytest.warns(
        DeprecationWarning, match=rf"transforms\.{name} is deprecated since retinalnet 0\.2"
    ):
        return getattr(transforms, name)


MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def tutorial_eval() -> T.Compose:
    """The tutorial's evaluation pipeline, written as it was."""
    return T.Compose(
        [
            T.Resize(size=256),
            T.CenterCrop(size=224),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ]
    )


def tutorial_train(*, with_color_jitter: bool = True) -> T.Compose:
    """The tutorial's training pipeline, written as it was."""
    steps = [
        T.RandomResizedCrop(size=256, scale=(0.8, 1.0)),
        T.RandomRotation(degrees=15),
        T.ColorJitter(),
        T.RandomHorizontalFlip(),
        T.CenterCrop(size=224),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ]
    if not with_color_jitter:
        steps = [step for step in steps if not isinstance(step, T.ColorJitter)]
    return T.Compose(steps)


def as_imagefolder_loaded(image: Image.Image) -> Image.Image:
    """What the tutorial's ImageFolder handed its transforms: the image converted to RGB."""
    return image.convert("RGB")


def colour_image(size: tuple[int, int] = (300, 260)) -> Image.Image:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


@pytest.fixture(scope="module")
def oct_scan(kermany_sample) -> Image.Image:
    """A real grayscale Kermany scan (mode "L")."""
    path = sorted((kermany_sample / "train" / "DME").glob("*.jpeg"))[0]
    with Image.open(path) as image:
        image.load()
        return image.copy()


def test_imagenet_constants():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)


def test_defaults_are_the_tutorials_sizes():
    prep = Preprocessing()
    assert (prep.size, prep.resize) == (224, 256)
    assert (prep.rotation, prep.scale, prep.hflip, prep.jitter) == (15.0, (0.8, 1.0), True, 0.0)


# --- equal to the tutorial ----------------------------------------------------------------


def test_eval_transform_equals_the_tutorials_on_a_real_scan(oct_scan):
    assert oct_scan.mode == "L"
    ours = Preprocessing().eval_transform()(oct_scan)
    theirs = tutorial_eval()(as_imagefolder_loaded(oct_scan))
    assert ours.shape == (3, 224, 224)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "LA", "I"])
def test_eval_transform_equals_the_tutorials_on_generated_images(mode):
    image = colour_image().convert(mode)
    ours = Preprocessing().eval_transform()(image)
    assert torch.equal(ours, tutorial_eval()(as_imagefolder_loaded(image)))


def _as_16_bit(image: Image.Image) -> Image.Image:
    """The same grey levels in a 16-bit image (times 257: 255 -> 65535), as an export holds."""
    values = np.asarray(image, dtype=np.uint32) * 257
    return Image.frombytes("I;16", image.size, values.astype("<u2").tobytes())


def test_eval_transform_reads_a_16_bit_scan_as_its_8_bit_twin(oct_scan):
    """0.1 converted I;16 with PIL's convert("RGB"): ~99% of the pixels clipped to white."""
    deep = _as_16_bit(oct_scan)
    pipeline = Preprocessing().eval_transform()
    assert torch.equal(pipeline(deep), pipeline(oct_scan))
    torch.manual_seed(0)
    augmented = Preprocessing().train_transform()(deep)
    torch.manual_seed(0)
    assert torch.equal(augmented, Preprocessing().train_transform()(oct_scan))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_the_mode_step_passes_gray_and_rgb_without_a_copy(mode):
    step = Preprocessing().eval_transform().transforms[0]
    image = colour_image((64, 48)).convert(mode)
    assert step(image) is image


def test_the_mode_step_refuses_nan_pixels():
    image = Image.fromarray(np.full((48, 64), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"^cannot use image: 3072 of its 3072 pixels are NaN"):
        Preprocessing().eval_transform()(image)


def test_the_tutorials_color_jitter_leaves_images_unchanged(oct_scan):
    for image in (as_imagefolder_loaded(oct_scan), colour_image()):
        jittered = T.ColorJitter()(image)
        assert np.array_equal(np.asarray(jittered), np.asarray(image))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 7])
def test_train_transform_equals_the_tutorials_without_its_no_op(oct_scan, seed):
    # The tutorial's ColorJitter() changes no pixel (above) but does draw from the random
    # generator, so it is removed to keep both pipelines on the same random numbers.
    torch.manual_seed(seed)
    ours = Preprocessing().train_transform()(oct_scan)
    torch.manual_seed(seed)
    theirs = tutorial_train(with_color_jitter=False)(as_imagefolder_loaded(oct_scan))
    assert ours.shape == (3, 224, 224)
    assert torch.equal(ours, theirs)


def test_train_transform_is_random():
    image = colour_image()
    pipeline = Preprocessing().train_transform()
    torch.manual_seed(0)
    first = pipeline(image)
    second = pipeline(image)
    torch.manual_seed(0)
    assert not torch.equal(first, second)
    assert torch.equal(first, pipeline(image))


def test_train_transform_steps():
    steps = Preprocessing().train_transform().transforms
    assert [type(step).__name__ for step in steps] == [
        "_GrayOrRGB",  # a gray scan stays one channel ...
        "RandomResizedCrop",
        "RandomRotation",
        "RandomHorizontalFlip",
        "CenterCrop",
        "ToTensor",
        "_ThreeChannels",  # ... until it is a tensor
        "Normalize",
    ]
    assert steps[1].size == (256, 256)
    assert steps[1].scale == (0.8, 1.0)
    assert steps[2].degrees == [-15.0, 15.0]
    assert steps[4].size == (224, 224)


def test_hflip_false_drops_the_flip():
    steps = Preprocessing(hflip=False).train_transform().transforms
    assert not any(isinstance(step, T.RandomHorizontalFlip) for step in steps)


def test_jitter_adds_a_color_jitter_that_changes_the_image():
    steps = Preprocessing(jitter=0.4).train_transform().transforms
    assert [type(step) for step in steps[2:5]] == [
        T.RandomRotation,
        T.ColorJitter,
        T.RandomHorizontalFlip,
    ]
    jitter = steps[3]
    assert jitter.brightness == pytest.approx((0.6, 1.4))
    assert jitter.contrast == pytest.approx((0.6, 1.4))
    assert (jitter.saturation, jitter.hue) == (None, None)
    image = colour_image((64, 48))
    torch.manual_seed(0)
    assert not np.array_equal(np.asarray(jitter(image)), np.asarray(image))
    assert not any(
        isinstance(step, T.ColorJitter) for step in Preprocessing().train_transform().transforms
    )


@pytest.mark.parametrize("seed", [0, 5])
def test_jitter_on_a_gray_scan_equals_jitter_after_converting_it_to_rgb(oct_scan, seed):
    # Gray scans are augmented in one channel; with real jitter too, the numbers are those of
    # the RGB image the tutorial's loader made.
    pipeline = Preprocessing(jitter=0.4).train_transform()
    torch.manual_seed(seed)
    gray = pipeline(oct_scan)
    torch.manual_seed(seed)
    assert torch.equal(gray, pipeline(as_imagefolder_loaded(oct_scan)))


def test_a_gray_scan_is_resized_in_one_channel(oct_scan, monkeypatch):
    modes: list[str] = []
    resize = T.Resize.forward

    def spy(self, image):
        modes.append(image.mode)
        return resize(self, image)

    monkeypatch.setattr(T.Resize, "forward", spy)
    Preprocessing().eval_transform()(oct_scan)
    Preprocessing().eval_transform()(colour_image())
    assert modes == ["L", "RGB"]


# --- output shapes ------------------------------------------------------------------------


def test_grayscale_input_gives_three_equal_channels():
    image = Image.linear_gradient("L").resize((300, 250))
    mean = torch.tensor(MEAN)[:, None, None]
    std = torch.tensor(STD)[:, None, None]
    for pipeline in (Preprocessing().eval_transform(), Preprocessing().train_transform()):
        tensor = pipeline(image)
        assert (tensor.shape, tensor.dtype) == ((3, 224, 224), torch.float32)
        pixels = tensor * std + mean  # undo Normalize: the gray value, once per channel
        assert torch.allclose(pixels[0], pixels[1], atol=1e-6)
        assert torch.allclose(pixels[1], pixels[2], atol=1e-6)


def test_smaller_size_scales_the_resize():
    prep = Preprocessing(size=112)
    assert prep.resize == 128
    image = colour_image()
    assert prep.eval_transform()(image).shape == (3, 112, 112)
    assert prep.train_transform()(image).shape == (3, 112, 112)
    assert prep.eval_transform().transforms[1].size == 128


@pytest.mark.parametrize(("size", "resize"), [(32, 37), (224, 256), (299, 342), (384, 439)])
def test_default_resize_keeps_the_256_to_224_ratio(size, resize):
    assert Preprocessing(size=size).resize == resize


def test_explicit_resize_is_kept():
    prep = Preprocessing(size=64, resize=64)
    assert prep.resize == 64
    assert prep.eval_transform()(colour_image()).shape == (3, 64, 64)


def test_to_rgb_is_deprecated_and_still_converts():
    to_rgb = _deprecated("ToRGB")()
    gray = Image.new("L", (4, 3), 7)
    rgb = to_rgb(gray)
    assert (rgb.mode, rgb.getpixel((0, 0))) == ("RGB", (7, 7, 7))
    colour = colour_image((4, 3))
    assert to_rgb(colour) is colour
    # a DataLoader worker started by "spawn" (macOS, Windows) gets it pickled: was a lambda
    assert pickle.loads(pickle.dumps(to_rgb))(gray).mode == "RGB"


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        transforms.nothing  # noqa: B018


# --- to_dict / from_dict ------------------------------------------------------------------


def test_to_dict_is_plain_data():
    assert Preprocessing(size=112, jitter=0.2).to_dict() == {
        "size": 112,
        "resize": 128,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "rotation": 15.0,
        "scale": [0.8, 1.0],
        "hflip": True,
        "jitter": 0.2,
        "reduced_decode": False,
    }


@pytest.mark.parametrize(
    "prep",
    [
        Preprocessing(),
        Preprocessing(size=64, resize=80, rotation=5, scale=(0.5, 0.9), hflip=False, jitter=0.3),
        Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
    ],
)
def test_to_dict_from_dict_round_trip(prep):
    copy = Preprocessing.from_dict(prep.to_dict())
    assert copy == prep
    assert isinstance(copy.mean, tuple)
    assert isinstance(copy.scale, tuple)


def test_from_dict_refuses_unknown_settings():
    data = {**Preprocessing().to_dict(), "colour": True, "auto_contrast": 1}
    message = r"unknown preprocessing setting\(s\) \['auto_contrast', 'colour'\]; known: \["
    with pytest.raises(ValueError, match=message):
        Preprocessing.from_dict(data)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 31}, "size must be an int from 32 to 2048 (pixels), got 31"),
        ({"size": 0}, "size must be an int from 32 to 2048 (pixels), got 0"),
        ({"size": 224.0}, "size must be an int from 32 to 2048 (pixels), got 224.0"),
        ({"size": True}, "size must be an int from 32 to 2048 (pixels), got True"),
        # was accepted, and failed deep in PIL's crop (a decompression bomb) on the first image
        ({"size": 100_000}, "size must be an int from 32 to 2048 (pixels), got 100000"),
        ({"size": 64, "resize": 5000}, "resize must be an int from 32 to 4096 (pixels), got 5000"),
        ({"size": 64, "resize": 31}, "resize must be an int from 32 to 4096 (pixels), got 31"),
        ({"size": 224, "resize": 200}, "resize (200) must be >= size (224)"),
        ({"jitter": 1.0}, "jitter must be a number in [0, 1), got 1.0"),
        ({"jitter": -0.1}, "jitter must be a number in [0, 1), got -0.1"),
        (
            {"scale": (0.0, 1.0)},
            "scale must be 2 numbers (low, high) with 0 < low <= high <= 1, got (0.0, 1.0)",
        ),
        ({"scale": (0.9, 0.8)}, "with 0 < low <= high <= 1, got (0.9, 0.8)"),
        ({"scale": (0.5, 1.5)}, "with 0 < low <= high <= 1, got (0.5, 1.5)"),
        ({"mean": (0.5, 0.5)}, "mean must be 3 finite numbers (one per channel), got (0.5, 0.5)"),
        ({"std": (0.2, 0.2, 0.0)}, "std must be 3 finite numbers > 0 (one per channel), got"),
    ],
)
def test_invalid_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Preprocessing(**kwargs)


NAN, INF = float("nan"), float("inf")

# Every setting, with values of the wrong type, not finite, of the wrong length, or out of
# range: each is a ValueError naming the setting and the value, whichever door it comes by
# (the constructor, from_dict for a checkpoint or an export, dataclasses.replace).
BAD_SETTINGS = [
    ("size", [32.0, "64", None, True, 31, NAN]),
    ("resize", [40.0, "40", False, None, 31]),
    ("mean", [[NAN] * 3, [INF, 0.5, 0.5], [0.5], [0.5] * 4, "abc", 0.5, None, [True] * 3,
              ["0.5"] * 3, {"r": 0.5, "g": 0.5, "b": 0.5}]),
    ("std", [[INF] * 3, [NAN] * 3, [0.2, 0.2, -0.1], [0.0] * 3, [0.2], "xyz", 0.2, None]),
    ("rotation", ["5", NAN, INF, -1.0, 181.0, None, True, [5.0]]),
    ("scale", [[0.5], [0.5, 0.9, 1.0], 0.5, "ab", [NAN, 1.0], [0.5, INF], [0.0, 1.0], None,
               [True, True]]),
    ("hflip", ["no", "false", 1, 0, None, 1.0]),
    ("jitter", ["0.2", NAN, INF, 1.0, -0.1, None, False]),
    ("reduced_decode", ["false", "true", 0, 1, None]),
    ("translate", ["0.1", NAN, 0.5, -0.1, None]),
    ("gamma", ["0.1", NAN, INF, 1.0, None]),
    ("speckle", ["0.1", NAN, -0.1, 1.0, None]),
]  # fmt: skip


def test_every_setting_is_checked():
    assert [name for name, _ in BAD_SETTINGS] == list(Preprocessing.__dataclass_fields__)


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in BAD_SETTINGS for value in values],
    ids=lambda item: repr(item)[:20],
)
def test_a_bad_setting_is_refused_naming_it_and_the_value(name, value):
    message = rf"^{name} must be .*, got {re.escape(repr(value))}$"
    with pytest.raises(ValueError, match=message):
        Preprocessing(**{name: value})
    data = {**Preprocessing(size=64).to_dict(), name: value}
    with pytest.raises(ValueError, match=message):
        Preprocessing.from_dict(data)  # a checkpoint's or an export's settings
    with pytest.raises(ValueError, match=message):
        replace(Preprocessing(size=64), **{name: value})


def test_from_dict_refuses_what_is_not_a_mapping():
    with pytest.raises(ValueError, match=r"must be a mapping .*, got list \[224\]"):
        Preprocessing.from_dict([224])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown preprocessing setting\(s\) \[0, 'x'\]"):
        Preprocessing.from_dict({0: 1, "x": 2})


def test_numbers_of_any_kind_become_plain_ints_floats_and_tuples():
    prep = Preprocessing(
        size=np.int64(64),
        resize=np.int32(80),
        mean=np.array([0.5, 0.5, 0.5]),
        std=[np.float32(0.25)] * 3,
        rotation=5,
        scale=[np.float64(0.5), 1],
        jitter=np.float32(0.25),
    )
    assert (type(prep.size), type(prep.resize), type(prep.rotation)) == (int, int, float)
    assert (prep.mean, prep.std) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert (prep.scale, prep.jitter) == ((0.5, 1.0), 0.25)
    assert all(type(v) is float for v in (*prep.mean, *prep.std, *prep.scale, prep.jitter))
    assert Preprocessing.from_dict(prep.to_dict()) == prep


# --- helpers ------------------------------------------------------------------------------


def test_eval_transforms_helper_is_the_preset():
    image = colour_image()
    eval_transforms = _deprecated("eval_transforms")
    assert torch.equal(eval_transforms()(image), Preprocessing().eval_transform()(image))
    assert eval_transforms(112)(image).shape == (3, 112, 112)


@pytest.mark.parametrize(("size", "jitter"), [(224, 0.0), (112, 0.3)])
def test_train_transforms_helper_is_the_preset(size, jitter):
    image = colour_image()
    torch.manual_seed(5)
    ours = _deprecated("train_transforms")(size, jitter=jitter)(image)
    torch.manual_seed(5)
    preset = Preprocessing(size=size, jitter=jitter).train_transform()(image)
    assert ours.shape == (3, size, size)
    assert torch.equal(ours, preset)


# --- one path from file to model input ------------------------------------------------------


def test_a_dict_from_before_0_2_decodes_at_full_size():
    old = Preprocessing().to_dict()
    del old["reduced_decode"]
    assert Preprocessing.from_dict(old).reduced_decode is False
    fast = Preprocessing(reduced_decode=True)
    assert Preprocessing.from_dict(fast.to_dict()) == fast


def test_load_decodes_at_the_scale_the_preprocessing_says(tmp_path):
    path = tmp_path / "scan.jpeg"
    Image.linear_gradient("L").resize((512, 496)).save(path)
    assert Preprocessing(reduced_decode=True).load(path).size == (256, 248)  # libjpeg's 1/2
    assert Preprocessing().load(path).size == (512, 496)  # full decode by default
    big = Preprocessing(size=448, reduced_decode=True)
    assert big.load(path).size == (512, 496)  # resize 512: no reduction


def test_prepare_gives_the_same_input_for_a_path_a_pil_image_and_a_tensor(tmp_path):
    path = tmp_path / "scan.png"
    gray = Image.linear_gradient("L").resize((80, 64))
    gray.save(path)
    prep = Preprocessing(size=32)
    from_path = prep.prepare(path)
    assert from_path.shape == (3, 32, 32)
    assert torch.equal(from_path, prep.prepare(gray))
    as_tensor = torch.from_numpy(np.array(gray))
    assert torch.equal(from_path, prep.prepare(as_tensor))
    assert torch.equal(from_path, prep.eval_transform()(gray))


@pytest.mark.parametrize("image_size", [(512, 496), (496, 512), (1536, 496), (300, 300)])
@pytest.mark.parametrize("size", [224, 64])
def test_crop_box_is_where_the_eval_pipeline_crops(image_size, size):
    """Mark the crop box's corners in an image: the eval pipeline keeps them at its edges."""
    prep = Preprocessing(size=size, mean=(0, 0, 0), std=(1, 1, 1))
    left, top, right, bottom = prep.crop_box(image_size)
    width, height = image_size
    assert 0 <= left < right <= width
    assert 0 <= top < bottom <= height
    # the box has the model's aspect (square) and the scale of the resize
    scale = min(width, height) / prep.resize
    assert (right - left) == pytest.approx(size * scale, rel=0.02)
    assert (bottom - top) == pytest.approx(size * scale, rel=0.02)
    inside = Image.new("L", image_size, 0)
    inside.paste(255, (round(left), round(top), round(right), round(bottom)))
    prepared = prep.eval_transform()(inside)
    assert float(prepared.mean()) > 0.97  # the crop lies inside the box


# -- augmentation presets ------------------------------------------------------------------


@pytest.mark.parametrize("preset", list(transforms.AUGMENTATION_PRESETS))
def test_presets_are_seeded_and_keep_shape_dtype_and_range(preset, oct_scan):
    prep = Preprocessing(size=64).with_augmentation(preset)
    pipeline = prep.train_transform()
    torch.manual_seed(3)
    first = pipeline(oct_scan)
    torch.manual_seed(3)
    again = pipeline(oct_scan)
    assert torch.equal(first, again)
    assert first.shape == (3, 64, 64)
    assert first.dtype == torch.float32
    low = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    high = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert (first.amin(dim=(1, 2)) >= low - 1e-5).all()
    assert (first.amax(dim=(1, 2)) <= high + 1e-5).all()


@pytest.mark.parametrize("preset", ["light", "tutorial", "oct", "oct-shift-gamma", "oct-strong"])
def test_augmenting_presets_draw_different_images(preset, oct_scan):
    pipeline = Preprocessing(size=64).with_augmentation(preset).train_transform()
    torch.manual_seed(0)
    assert not torch.equal(pipeline(oct_scan), pipeline(oct_scan))


def test_the_none_preset_trains_on_the_evaluation_pipeline(oct_scan):
    prep = Preprocessing(size=64).with_augmentation("none")
    assert prep.augments is False
    assert torch.equal(prep.train_transform()(oct_scan), prep.eval_transform()(oct_scan))


def test_the_tutorial_preset_is_the_default():
    assert Preprocessing().with_augmentation("tutorial") == Preprocessing()


def test_the_oct_preset_crops_rotates_flips_and_jitters():
    prep = Preprocessing(size=64).with_augmentation("oct")
    names = [type(step).__name__ for step in prep.train_transform().transforms]
    assert names == [
        "_GrayOrRGB", "RandomResizedCrop", "RandomRotation", "ColorJitter",
        "RandomHorizontalFlip", "CenterCrop", "ToTensor", "_ThreeChannels", "Normalize",
    ]  # fmt: skip
    assert (prep.scale, prep.rotation, prep.jitter) == ((0.6, 1.0), 8.0, 0.2)
    assert prep.eval_transform().transforms[1].size == Preprocessing(size=64).resize


def test_the_oct_strong_preset_is_oct_with_shifts_gamma_and_speckle():
    strong = Preprocessing(size=64).with_augmentation("oct-strong")
    names = [type(step).__name__ for step in strong.train_transform().transforms]
    assert names == [
        "_GrayOrRGB", "RandomResizedCrop", "RandomAffine", "ColorJitter",
        "RandomHorizontalFlip", "CenterCrop", "ToTensor", "_RandomGamma", "_Speckle",
        "_ThreeChannels", "Normalize",
    ]  # fmt: skip
    assert (strong.translate, strong.gamma, strong.speckle) == (0.05, 0.2, 0.1)
    assert replace(strong, translate=0.0, gamma=0.0, speckle=0.0) == (
        Preprocessing(size=64).with_augmentation("oct")
    )


def test_the_oct_shift_gamma_preset_is_oct_strong_without_speckle():
    shifted = Preprocessing(size=64).with_augmentation("oct-shift-gamma")
    names = [type(step).__name__ for step in shifted.train_transform().transforms]
    assert "_Speckle" not in names
    assert {"RandomAffine", "_RandomGamma"} <= set(names)
    assert (shifted.translate, shifted.gamma, shifted.speckle) == (0.05, 0.2, 0.0)
    assert replace(shifted, speckle=0.1) == Preprocessing(size=64).with_augmentation("oct-strong")


def test_speckle_is_multiplicative_and_gamma_keeps_black_and_white():
    prep = Preprocessing(size=32, speckle=0.5, gamma=0.5)
    steps = {type(s).__name__: s for s in prep.train_transform().transforms}
    image = torch.zeros(1, 8, 8)
    image[0, :, 4:] = 1.0
    torch.manual_seed(0)
    speckled = steps["_Speckle"](image)
    assert torch.equal(speckled[:, :, :4], image[:, :, :4])  # black stays black
    assert not torch.equal(speckled[:, :, 4:], image[:, :, 4:])
    assert torch.equal(steps["_RandomGamma"](image), image)  # 0 and 1 are fixed points


def test_an_unknown_preset_is_refused_with_the_known_names():
    with pytest.raises(
        ValueError, match=r"unknown augmentation preset 'heavy'; choose one of 'none'"
    ):
        Preprocessing().with_augmentation("heavy")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"translate": 0.5}, r"translate must be a number in \[0, 0.5\)"),
        ({"gamma": -0.1}, r"gamma must be a number in \[0, 1\)"),
        ({"speckle": 1.0}, r"speckle must be a number in \[0, 1\)"),
    ],
)
def test_new_augmentation_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Preprocessing(**kwargs)


@pytest.mark.parametrize("preset", list(AUGMENTATION_PRESETS))
def test_a_preset_round_trips_through_to_dict(preset):
    prep = Preprocessing(size=64).with_augmentation(preset)
    assert Preprocessing.from_dict(prep.to_dict()) == prep


@pytest.mark.parametrize("pipeline", ["eval_transform", "train_transform"])
def test_the_pipelines_take_image_tensors_as_prepare_does(pipeline: str) -> None:
    preprocessing = Preprocessing(size=32, rotation=0.0, scale=(1.0, 1.0), hflip=False)
    image = torch.arange(40 * 48, dtype=torch.int64).reshape(1, 40, 48).remainder(256)
    image = image.to(torch.uint8)

    prepared = getattr(preprocessing, pipeline)()(image)

    assert torch.equal(prepared, preprocessing.prepare(image))
    augmenting = Preprocessing(size=32, jitter=0.2, gamma=0.2, speckle=0.1)
    assert getattr(augmenting, pipeline)()(image).shape == (3, 32, 32)


def test_the_pipelines_refuse_a_path_in_one_line() -> None:
    with pytest.raises(TypeError, match=r"takes an image, not the path 'scan\.png'.*load"):
        Preprocessing(size=32).eval_transform()("scan.png")


def test_the_pipelines_know_their_preprocessing_and_read_as_compose() -> None:
    preprocessing = Preprocessing(size=32)
    for pipeline in (preprocessing.eval_transform(), preprocessing.train_transform()):
        assert pipeline.preprocessing is preprocessing
        assert repr(pipeline).startswith("Compose(")
        assert pickle.loads(pickle.dumps(pipeline)).preprocessing == preprocessing
