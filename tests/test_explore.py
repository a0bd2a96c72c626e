"""Tests for retinalnet.datasets._explore: image counts and image size statistics."""

from __future__ import annotations

import re

import pytest

from retinalnet.datasets import (
    ImageCounts,
    KermanyOCT,
    SizeStats,
    UnreadableImageError,
    count_images,
    image_size_stats,
)

SMALL_TREE = {
    "train/CNV": ["CNV-1-1.jpeg", "CNV-1-2.jpeg", "CNV-2-1.png"],
    "train/DRUSEN": ["DRUSEN-3-1.jpeg"],
    "train/NORMAL": ["NORMAL-4-1.jpeg", "NORMAL-4-2.JPG", "notes.txt"],
    "train/.DS_Store": None,
    "val/CNV": ["CNV-5-1.jpeg"],
    "val/DME": ["DME-6-1.jpeg", "DME-6-2.jpeg"],
}
SMALL_COUNTS = {
    "train": {"CNV": 3, "DME": 0, "DRUSEN": 1, "NORMAL": 2},
    "val": {"CNV": 1, "DME": 2, "DRUSEN": 0, "NORMAL": 0},
}


@pytest.fixture
def small_tree(make_tree):
    return make_tree(SMALL_TREE)


def test_count_images_counts_each_class_of_each_existing_split(small_tree):
    counts = count_images(small_tree)
    assert counts == ImageCounts(SMALL_COUNTS)
    assert list(counts.counts) == ["train", "val"]  # no test folder, so no test row
    assert counts.total == 9


def test_count_images_of_chosen_splits(small_tree):
    assert count_images(small_tree, splits=["val"]).counts == {"val": SMALL_COUNTS["val"]}
    assert count_images(str(small_tree), splits=("val", "train")).total == 9


def test_count_images_of_a_missing_chosen_split_names_it(small_tree):
    with pytest.raises(FileNotFoundError, match="no split folder 'test' under"):
        count_images(small_tree, splits=["test"])


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_count_images_without_any_split_folder(tmp_path, folder):
    root = tmp_path / folder
    if folder == "empty":
        root.mkdir()
    message = (
        rf"no split folder \(train, val, test\) under {re.escape(repr(str(root)))}; "
        r"expected ROOT/\{train,val,test\}/\{CNV,DME,DRUSEN,NORMAL\}/"
    )
    with pytest.raises(FileNotFoundError, match=message):
        count_images(root)


def test_to_records_has_one_row_per_split_and_class(small_tree):
    assert count_images(small_tree).to_records() == [
        {"split": "train", "class": "CNV", "count": 3},
        {"split": "train", "class": "DME", "count": 0},
        {"split": "train", "class": "DRUSEN", "count": 1},
        {"split": "train", "class": "NORMAL", "count": 2},
        {"split": "val", "class": "CNV", "count": 1},
        {"split": "val", "class": "DME", "count": 2},
        {"split": "val", "class": "DRUSEN", "count": 0},
        {"split": "val", "class": "NORMAL", "count": 0},
    ]


def test_to_dataframe_holds_the_records(small_tree):
    pd = pytest.importorskip("pandas")
    counts = count_images(small_tree)
    frame = counts.to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["split", "class", "count"]
    assert frame.to_dict("records") == counts.to_records()


def test_str_is_a_table_with_totals(small_tree):
    assert str(count_images(small_tree)).splitlines() == [
        "split      CNV     DME  DRUSEN  NORMAL   total",
        "train        3       0       1       2       6",
        "val          1       2       0       0       3",
    ]


def test_real_sample_counts(kermany_sample):
    counts = count_images(kermany_sample)
    per_split = {"train": 12, "val": 4, "test": 4}
    assert counts.counts == {
        split: dict.fromkeys(("CNV", "DME", "DRUSEN", "NORMAL"), n)
        for split, n in per_split.items()
    }
    assert counts.total == 80
    assert "train       12      12      12      12      48" in str(counts)


def test_image_size_stats_of_known_sizes(make_tree):
    make_tree({"train/CNV": ["CNV-1-1.jpeg"]}, size=(40, 30))
    make_tree({"train/CNV": ["CNV-1-2.png"]}, size=(50, 20))
    make_tree({"train/CNV": ["CNV-1-3.jpeg"]}, size=(70, 40))
    make_tree({"train/DME": ["DME-2-1.jpeg"]}, size=(40, 36))
    root = make_tree({"train/DME": ["DME-2-2.jpeg"]}, size=(60, 50))
    stats = image_size_stats(KermanyOCT(root, "train"))
    assert list(stats) == ["CNV", "DME"]  # classes without images have no entry
    assert stats["CNV"] == SizeStats(
        class_name="CNV",
        count=3,
        height_min=20,
        height_median=30,
        height_max=40,
        width_min=40,
        width_median=50,
        width_max=70,
        mean_height=30.0,
        mean_width=160 / 3,
    )
    assert stats["DME"].to_dict() == {
        "class_name": "DME",
        "count": 2,
        "height_min": 36,
        "height_median": 43.0,
        "height_max": 50,
        "width_min": 40,
        "width_median": 50.0,
        "width_max": 60,
        "mean_height": 43.0,
        "mean_width": 50.0,
    }


def test_image_size_stats_names_an_unreadable_file(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/DME": ["DME-2-1.jpeg"]})
    broken = root / "train" / "DME" / "DME-2-1.jpeg"
    broken.write_text("this is not a JPEG")
    message = rf"cannot read image {re.escape(repr(str(broken)))}: not a recognised image format"
    with pytest.raises(UnreadableImageError, match=message) as caught:
        image_size_stats(KermanyOCT(root, "train"))
    assert caught.value.path == broken


def test_image_size_stats_of_the_real_sample(kermany_sample):
    stats = image_size_stats(KermanyOCT(kermany_sample, "train"))
    assert list(stats) == ["CNV", "DME", "DRUSEN", "NORMAL"]
    for entry in stats.values():
        assert entry.count == 12
        assert 496 <= entry.height_min <= entry.height_median <= entry.height_max <= 512
        assert 512 <= entry.width_min <= entry.width_median <= entry.width_max <= 1536


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("OCT2017", r"got str; pass a split of it: image_size_stats\(KermanyOCT\('OCT2017', "),
        (None, r"got NoneType; pass e.g. KermanyOCT\(root, 'train'\)"),
        ([("a.jpeg", 0)], r"got list; pass e.g. KermanyOCT\(root, 'train'\)"),
    ],
)
def test_image_size_stats_of_a_folder_says_to_pass_a_data_set(argument, message):
    # was: AttributeError: 'str' object has no attribute 'samples'
    with pytest.raises(TypeError, match=rf"^image_size_stats takes a data set .*{message}"):
        image_size_stats(argument)


def test_count_images_of_a_data_set_says_to_pass_its_root(small_tree):
    # was: TypeError: expected str, bytes or os.PathLike object, not KermanyOCT
    data = KermanyOCT(small_tree, "train")
    message = r"^count_images takes the data root .*got KermanyOCT; pass its root: count_images\("
    with pytest.raises(TypeError, match=message):
        count_images(data)


def test_count_images_of_one_split_named_as_a_str(small_tree):
    # was: "split 't' is not one of train, val, test" (the str read as its letters)
    assert count_images(small_tree, "val").counts == {"val": SMALL_COUNTS["val"]}
