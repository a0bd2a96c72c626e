"""Tests for retinalnet.datasets._kermany: the Kermany OCT2017 folder layout as a data set."""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import default_collate

from retinalnet.datasets import (
    KERMANY_CLASSES,
    KermanyOCT,
    ManifestRow,
    UnreadableImageError,
    find_images,
    is_image_file,
    load_image,
    patient_id_from_name,
    write_manifest,
)
from retinalnet.datasets._files import class_named_in, patient_key
from retinalnet.transforms import Preprocessing


def _names(dataset: KermanyOCT) -> list[tuple[str, int]]:
    return [(Path(path).name, target) for path, target in dataset.samples]


def _quoted(path: Path) -> str:
    """A path as the error messages quote it, escaped for ``match=``."""
    return re.escape(repr(str(path)))


# --- class order and file discovery -------------------------------------------------------


def test_classes_follow_the_fixed_kermany_order(make_tree):
    root = make_tree(
        {
            "train/NORMAL": ["NORMAL-4-1.jpeg"],
            "train/DRUSEN": ["DRUSEN-3-1.jpeg"],
            "train/CNV": ["CNV-1-1.jpeg"],
            "train/DME": ["DME-2-1.jpeg"],
        }
    )
    data = KermanyOCT(root, "train")
    assert data.classes == ["CNV", "DME", "DRUSEN", "NORMAL"]
    assert data.class_to_idx == {"CNV": 0, "DME": 1, "DRUSEN": 2, "NORMAL": 3}
    assert _names(data) == [
        ("CNV-1-1.jpeg", 0),
        ("DME-2-1.jpeg", 1),
        ("DRUSEN-3-1.jpeg", 2),
        ("NORMAL-4-1.jpeg", 3),
    ]
    assert data.targets == [0, 1, 2, 3]


def test_class_indices_stay_fixed_when_only_some_class_folders_exist(make_tree):
    root = make_tree(
        {"test/NORMAL": ["NORMAL-9-1.jpeg", "NORMAL-9-2.jpeg"], "test/DME": ["DME-5-1.jpeg"]}
    )
    data = KermanyOCT(root, "test")
    assert data.classes == list(KERMANY_CLASSES)
    assert data.class_to_idx["DME"] == 1
    assert data.class_to_idx["NORMAL"] == 3
    assert _names(data) == [("DME-5-1.jpeg", 1), ("NORMAL-9-1.jpeg", 3), ("NORMAL-9-2.jpeg", 3)]
    assert data.targets == [1, 3, 3]


# --- a study of some of the classes (classes=) ---------------------------------------------

_FOUR_CLASSES = {
    "train/CNV": ["CNV-1-1.jpeg"],
    "train/DME": ["DME-2-1.jpeg"],
    "train/DRUSEN": ["DRUSEN-3-1.jpeg"],
    "train/NORMAL": ["NORMAL-4-1.jpeg", "NORMAL-4-2.jpeg"],
}


def test_a_study_of_some_classes_reads_only_their_folders_in_the_kermany_order(make_tree):
    root = make_tree(_FOUR_CLASSES)
    data = KermanyOCT(root, "train", classes=["NORMAL", "CNV"])  # any order given
    assert data.classes == ["CNV", "NORMAL"]
    assert data.class_to_idx == {"CNV": 0, "NORMAL": 1}
    assert _names(data) == [("CNV-1-1.jpeg", 0), ("NORMAL-4-1.jpeg", 1), ("NORMAL-4-2.jpeg", 1)]
    assert data.targets == [0, 1, 1]
    assert [label for _, label in data] == [0, 1, 1]
    assert "classes=['CNV', 'NORMAL']" in repr(data)
    assert KermanyOCT(root, "train", classes=list(KERMANY_CLASSES)).samples == (
        KermanyOCT(root, "train").samples
    )


def test_a_study_of_some_classes_from_a_manifest_leaves_the_other_rows_out(make_tree, tmp_path):
    root = make_tree(_FOUR_CLASSES)
    rows = [
        ManifestRow(f"{folder}/{name}", folder.split("/")[1], name.split("-")[1], "train")
        for folder, names in _FOUR_CLASSES.items()
        for name in reversed(names)
    ]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    every = KermanyOCT.from_manifest(manifest, "train", root=root)
    study = KermanyOCT.from_manifest(manifest, "train", root=root, classes=["NORMAL", "DME"])
    assert study.classes == ["DME", "NORMAL"]
    kept = [(path, every.classes[target]) for path, target in every.samples]
    assert [(path, study.classes[target]) for path, target in study.samples] == [
        (path, name) for path, name in kept if name in ("DME", "NORMAL")
    ]
    assert study.patient_ids == [
        patient
        for (_, name), patient in zip(kept, every.patient_ids, strict=True)
        if name in ("DME", "NORMAL")
    ]


def test_a_study_whose_classes_have_no_images_in_the_split_says_so(make_tree, tmp_path):
    root = make_tree({"test/CNV": ["CNV-1-1.jpeg"], "test/DME": ["DME-2-1.jpeg"]})
    with pytest.raises(ValueError, match=r"holds no images of DRUSEN, NORMAL \(\.bmp"):
        KermanyOCT(root, "test", classes=["DRUSEN", "NORMAL"])
    rows = [ManifestRow("test/CNV/CNV-1-1.jpeg", "CNV", "1", "test")]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    with pytest.raises(ValueError, match=r"no rows for split 'test' of DME, NORMAL \(it has: te"):
        KermanyOCT.from_manifest(manifest, "test", root=root, classes=["DME", "NORMAL"])


@pytest.mark.parametrize(
    ("classes", "error", "message"),
    [
        ("CNV", TypeError, r"classes must be a list of class names, got the string 'CNV'"),
        (["cnv", "NORMAL"], ValueError, r"class 'cnv' is not one of CNV, DME, DRUSEN, NORMAL"),
        (["CNV", "AMD"], ValueError, r"class 'AMD' is not one of"),
        (["CNV", "CNV"], ValueError, r"class 'CNV' is given twice in classes CNV CNV"),
        (["CNV"], ValueError, r"classes CNV keeps 1 class\(es\); a classifier needs at least two"),
        ([], ValueError, r"classes \(none\) keeps 0 class"),
    ],
)
def test_classes_that_are_not_a_study_of_kermany_classes_are_refused_by_name(
    make_tree, classes, error, message
):
    root = make_tree(_FOUR_CLASSES)
    with pytest.raises(error, match=message):
        KermanyOCT(root, "train", classes=classes)


def test_image_suffixes_are_accepted_in_any_case(make_tree):
    names = [
        "CNV-1-1.jpeg",
        "CNV-1-2.JPEG",
        "CNV-1-3.jpg",
        "CNV-1-4.JPG",
        "CNV-1-5.png",
        "CNV-1-6.PNG",
        "CNV-1-7.Jpeg",
    ]
    root = make_tree({"train/CNV": names})
    assert sorted(name for name, _ in _names(KermanyOCT(root, "train"))) == sorted(names)


def test_non_image_and_hidden_files_are_ignored(make_tree):
    root = make_tree(
        {
            "train/.DS_Store": None,
            "train/Thumbs.db": None,
            "train/notes.txt": None,
            "train/.cache": ["CNV-7-7.jpeg"],  # a hidden folder, even holding images
            "train/CNV": ["CNV-1-1.jpeg", "._CNV-1-1.jpeg", ".DS_Store", "Thumbs.db", "notes.txt"],
            "train/CNV/.thumbnails": ["CNV-1-1.jpeg"],
            "train/DME": ["DME-2-1.png", "DME-2-1.json"],
        }
    )
    assert _names(KermanyOCT(root, "train")) == [("CNV-1-1.jpeg", 0), ("DME-2-1.png", 1)]


def test_samples_are_sorted_by_class_then_path(make_tree):
    root = make_tree(
        {
            "train/DRUSEN": ["DRUSEN-5-1.jpeg", "DRUSEN-10-1.jpeg"],
            "train/CNV": ["CNV-9-3.jpeg", "CNV-9-1.jpeg", "CNV-10-2.jpeg"],
        }
    )
    data = KermanyOCT(root, "train")
    assert _names(data) == [
        ("CNV-10-2.jpeg", 0),
        ("CNV-9-1.jpeg", 0),
        ("CNV-9-3.jpeg", 0),
        ("DRUSEN-10-1.jpeg", 2),
        ("DRUSEN-5-1.jpeg", 2),
    ]
    assert [path for path, _ in data.samples] == sorted(path for path, _ in data.samples)


def test_class_folders_are_searched_recursively(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/CNV/batch2": ["CNV-2-1.jpeg"]})
    data = KermanyOCT(root, "train")
    assert [Path(path).relative_to(root).as_posix() for path, _ in data.samples] == [
        "train/CNV/CNV-1-1.jpeg",
        "train/CNV/batch2/CNV-2-1.jpeg",
    ]


# --- class folders inside class folders, file names naming another class ------------------


@pytest.mark.parametrize(
    ("subfolder", "named"),
    [("DME", "DME"), ("dme", "DME"), ("batch2/Drusen", "DRUSEN"), ("a/b/NORMAL", "NORMAL")],
)
def test_a_subfolder_named_like_another_class_is_refused(make_tree, subfolder, named):
    """The nested folder is named (at any depth, in any case), with where its images go."""
    root = make_tree(
        {"train/CNV": ["CNV-1-1.jpeg"], f"train/CNV/{subfolder}": ["X-2-1.jpeg", "X-2-2.jpeg"]}
    )
    where = root / "train" / "CNV" / subfolder
    message = (
        rf"{_quoted(where)} is a {named} folder inside the CNV class folder: its 2 image\(s\) "
        rf"would be labelled CNV; move them into {_quoted(root / 'train' / named)} if they "
        rf"are {named} scans, or rename the subfolder"
    )
    with pytest.raises(ValueError, match=message):
        KermanyOCT(root, "train")


def test_a_subfolder_named_like_its_own_class_is_read(make_tree, recwarn):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/CNV/cnv": ["CNV-2-1.jpeg"]})
    assert _names(KermanyOCT(root, "train")) == [("CNV-1-1.jpeg", 0), ("CNV-2-1.jpeg", 0)]
    assert len(recwarn) == 0


def test_names_of_another_class_warn_once_per_split_and_keep_the_folder_label(make_tree):
    root = make_tree(
        {
            "train/CNV": ["CNV-1-1.jpeg", "DME-123-1.jpeg", "dme_123_2.jpeg"],
            "train/CNV/batch2": ["NORMAL-7-1.jpeg"],
            "train/NORMAL": ["NORMAL-7-2.jpeg", "scan_01.png"],
        }
    )
    message = (
        r"3 image\(s\) in split 'train' under .* are named for another class than their "
        r"folder, e\.g\. 'train/CNV/DME-123-1\.jpeg' \(named DME, labelled CNV\): each is "
        r"mislabelled or misfiled"
    )
    with pytest.warns(UserWarning, match=message) as caught:
        data = KermanyOCT(root, "train")
    assert len(caught) == 1
    assert caught[0].filename == __file__  # points at the caller
    assert [target for _, target in data.samples] == [0, 0, 0, 0, 3, 3]


def test_a_clean_split_indexes_without_warnings(kermany_sample):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(KermanyOCT(kermany_sample, "train")) == 48


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CNV-1-1.jpeg", True),
        ("CNV-1-1.JPEG", True),
        ("scan.jpg", True),
        ("scan.JPG", True),
        ("scan.png", True),
        ("scan.Png", True),
        ("scan.tif", True),
        ("scan.TIFF", True),
        ("scan.bmp", True),
        ("scan.gif", True),
        ("scan.webp", True),
        ("scan.jfif", False),
        ("scan.jpeg.txt", False),
        ("notes.txt", False),
        ("Thumbs.db", False),
        (".DS_Store", False),
        ("._CNV-1-1.jpeg", False),
        (".hidden.png", False),
        ("jpeg", False),
    ],
)
def test_is_image_file(name, expected):
    assert is_image_file(name) is expected


def test_is_image_file_and_patient_id_take_a_path_by_its_file_name():
    assert is_image_file(Path("train/CNV/CNV-1-1.jpeg")) is True
    assert is_image_file(Path("train/.hidden.png")) is False
    assert patient_id_from_name(Path("train/CNV/CNV-1016042-1.jpeg")) == "1016042"


@pytest.mark.parametrize("function", [is_image_file, patient_id_from_name])
@pytest.mark.parametrize(("name", "shown"), [(None, "NoneType"), (b"CNV-1-1.jpeg", "bytes")])
def test_a_file_name_that_is_not_text_is_refused_by_name(function, name, shown):
    message = rf"{function.__name__} takes a file name \(a str or a path\), got {shown}"
    with pytest.raises(TypeError, match=message):
        function(name)


# --- patient ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CNV-1016042-1.jpeg", "1016042"),
        ("DRUSEN-9884539-2.jpeg", "9884539"),
        ("NORMAL-0012345-17.JPEG", "0012345"),  # leading zeros kept
        ("DME-00001-3.png", "00001"),
        ("CNV-1016042-1", "1016042"),  # no suffix
        ("/data/OCT2017/train/DME/DME-123-45.jpeg", "123"),
        ("train/NORMAL/NORMAL-9-1.jpeg", "9"),
        # copies and renames of one patient's scans: any case, - or _, a copy marker
        ("CNV_4370501_96.jpeg", "4370501"),
        ("CNV-4370501-7-copy.jpeg", "4370501"),
        ("cnv-4370501-55.JPEG", "4370501"),
        ("CNV-4370501_8.jpeg", "4370501"),
        ("CNV-4370501-9 (1).jpeg", "4370501"),
        ("CNV-4370501-9 - Copy.jpeg", "4370501"),
        ("CNV-4370501-9copy.png", "4370501"),
        ("CNV-4370501-9.jpeg.jpeg", "4370501"),
        ("Glaucoma-12-3.png", "12"),  # any word of letters: the prefix is not the patient
        # no patient id: refused by patient_split, counted by the audit
        ("scan_01.png", None),
        ("CNV-1016042.jpeg", None),
        ("CNV-abc-1.jpeg", None),
        ("1016042-1.jpeg", None),
        ("CNV-1-2-3.jpeg", None),  # a third number: which one is the patient?
        ("CNV_1-2_3.jpeg", None),
        ("CNV 4370501 9.jpeg", None),
        ("CNV--4370501-9.jpeg", None),
        ("Copy of CNV-4370501-9.jpeg", None),
        ("CNV-\uff14\uff13-1.jpeg", None),  # full-width digits
        ("CNV-4370501-\u0669.jpeg", None),  # Arabic-Indic digit
        ("DRUSEN2-1-1.jpeg", None),
        ("", None),
    ],
)
def test_patient_id_from_name(name, expected):
    assert patient_id_from_name(name) == expected


@pytest.mark.parametrize(
    ("patient", "key"), [("4370501", "4370501"), ("0042", "42"), ("42", "42"), ("000", "0")]
)
def test_patient_key_ignores_leading_zeros(patient, key):
    assert patient_key(patient) == key


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DME-123-1.jpeg", "DME"),
        ("dme_123_1.jpeg", "DME"),
        ("Drusen-5.png", "DRUSEN"),
        ("normal.png", "NORMAL"),
        ("NORMAL2.png", "NORMAL"),
        ("DMEscan.png", None),
        ("CNVV-1-1.jpeg", None),
        ("scan-1-1.jpeg", None),
        ("1-CNV.jpeg", None),
        ("", None),
    ],
)
def test_class_named_in(name, expected):
    assert class_named_in(name) == expected


def test_each_sample_knows_its_patient(make_tree):
    root = make_tree(
        {"val/CNV": ["CNV-1016042-1.jpeg", "CNV-0042-7.jpeg"], "val/NORMAL": ["scan_01.png"]}
    )
    data = KermanyOCT(root, "val")
    assert _names(data) == [("CNV-0042-7.jpeg", 0), ("CNV-1016042-1.jpeg", 0), ("scan_01.png", 3)]
    assert data.patient_ids == ["0042", "1016042", None]


# --- errors ---------------------------------------------------------------------------------


def test_missing_root_is_named(tmp_path):
    root = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError, match=rf"data root {_quoted(root)} does not exist"):
        KermanyOCT(root, "train")


def test_root_that_is_a_file_is_refused(tmp_path):
    root = tmp_path / "OCT2017.zip"
    root.write_bytes(b"PK")
    with pytest.raises(NotADirectoryError, match=rf"{_quoted(root)} is a file, not a folder"):
        KermanyOCT(root, "train")


@pytest.mark.parametrize("split", ["validation", "Train", "", "all"])
def test_unknown_split_name_is_refused(tmp_path, split):
    message = rf"split {re.escape(repr(split))} is not one of train, val, test"
    with pytest.raises(ValueError, match=message):
        KermanyOCT(tmp_path, split)


def test_missing_split_folder_lists_what_was_found(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "test/CNV": ["CNV-2-1.jpeg"]})
    message = (
        rf"no split folder 'val' under {_quoted(root)} \(found: test, train\); a download "
        r"without val/ gets a patient-aware one from train/: `retinalnet split ROOT"
    )
    with pytest.raises(FileNotFoundError, match=message):
        KermanyOCT(root, "val")


def test_missing_split_folder_in_an_empty_root(tmp_path):
    message = rf"no split folder 'train' under {_quoted(tmp_path)} \(found: nothing\)"
    with pytest.raises(FileNotFoundError, match=message):
        KermanyOCT(tmp_path, "train")


def test_root_one_level_too_deep_says_to_pass_the_folder_above(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/DME": ["DME-1-1.jpeg"]})
    too_deep = root / "train"
    message = (
        rf"{_quoted(too_deep)} holds class folders \(CNV, DME\) but no 'train' folder: "
        "pass the folder above it as root"
    )
    with pytest.raises(FileNotFoundError, match=message):
        KermanyOCT(too_deep, "train")


@pytest.mark.parametrize(
    ("folder", "hint"),
    [
        ("CNVV", r"rename it to 'CNV' if it holds CNV scans"),
        ("DRUSENS", r"rename it to 'DRUSEN' if it holds DRUSEN scans"),
        ("cnv", r"rename it to 'CNV' \(class names are upper case\)"),
        ("Normal", r"rename it to 'NORMAL' \(class names are upper case\)"),
        ("GLAUCOMA", r"KermanyOCT and retinalnet's commands read only the Kermany classes"),
    ],
)
def test_unknown_class_folder_is_named_with_a_fix(make_tree, folder, hint):
    root = make_tree({"train/DME": ["DME-1-1.jpeg"], f"train/{folder}": ["CNV-2-1.jpeg"]})
    message = (
        rf"class folder {folder!r} is not one of CNV, DME, DRUSEN, NORMAL under "
        rf"{_quoted(root / 'train')}: {hint}"
    )
    with pytest.raises(ValueError, match=message):
        KermanyOCT(root, "train")


def test_images_lying_directly_in_the_split_folder_are_refused(make_tree):
    root = make_tree({"train": ["CNV-1-1.jpeg", "DME-1-1.jpeg"], "train/CNV": ["CNV-2-1.jpeg"]})
    message = (
        rf"2 image\(s\) lie directly in {_quoted(root / 'train')} \(e.g. 'CNV-1-1.jpeg'\); "
        r"move each into its class folder \(CNV, DME, DRUSEN, NORMAL\)"
    )
    with pytest.raises(ValueError, match=message):
        KermanyOCT(root, "train")


def test_split_with_empty_class_folders_holds_no_images(make_tree):
    root = make_tree({"train/CNV": [], "train/DME": ["notes.txt"]})
    suffixes = r"\(.bmp, .dcm, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp\)"
    message = rf"split 'train' under {_quoted(root)} holds no images {suffixes}"
    with pytest.raises(ValueError, match=message):
        KermanyOCT(root, "train")


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".bmp", ".tif", ".JPG"])
def test_every_image_format_read_is_found_in_a_class_folder(make_tree, suffix):
    root = make_tree({"train/CNV": ["CNV-1-1.png", f"CNV-2-1{suffix}"], "train/DME": []})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left out, nothing to warn of
        data = KermanyOCT(root, "train")
    assert sorted(Path(path).name for path, _ in data.samples) == [
        "CNV-1-1.png",
        f"CNV-2-1{suffix}",
    ]
    assert data[1][0].size == (40, 36)


def test_files_that_may_be_scans_are_left_out_with_one_warning_naming_them(make_tree):
    root = make_tree(
        {
            "train/CNV": ["CNV-1-1.png", "CNV-2-1.jfif", "CNV-3-1.jp2", ".DS_Store", "Thumbs.db"],
            "train/DME": ["DME-1-1.png", "DME-2-1.e2e", "IM0001", "notes.txt", "desktop.ini"],
            # LICENSE: no suffix and no DICOM preamble; a report and weights: no scans either
            "train/NORMAL": ["._NORMAL-1-1.png", "labels.csv", "report.pdf", "w.h5", "LICENSE"],
        }
    )
    (root / "train" / "DME" / "IM0001").write_bytes(bytes(128) + b"DICM" + bytes(16))
    message = (
        rf"^4 file\(s\) under {_quoted(root / 'train')} may be scans but are not read "
        r"\(1 .e2e, 1 .jfif, 1 .jp2, 1 no suffix; "
        rf"e.g. {_quoted(root / 'train' / 'CNV' / 'CNV-2-1.jfif')}\): "
        r"the suffixes read are .bmp, .dcm, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp; "
        r"convert such scans to PNG and give a file without a suffix its format's "
        r"\(.dcm for DICOM, .png, .jpeg, ...\), or move the files out of the folder$"
    )
    with pytest.warns(UserWarning, match=message) as caught:
        data = KermanyOCT(root, "train")
    assert len(caught) == 1
    assert caught[0].filename == __file__  # the caller's line, not the library's
    assert len(data) == 2  # was: left out without a word
    with pytest.warns(UserWarning, match=r"^4 file\(s\) under .* may be scans") as caught:
        found = find_images(root)
    assert caught[0].filename == __file__
    assert [path.name for path in found] == ["CNV-1-1.png", "DME-1-1.png"]


def test_split_without_class_folders_is_refused(make_tree):
    root = make_tree({"train/.DS_Store": None, "train/notes.txt": None})
    with pytest.raises(ValueError, match=rf"no class folders under {_quoted(root / 'train')}"):
        KermanyOCT(root, "train")


# --- reading samples -------------------------------------------------------------------------


def test_getitem_returns_the_decoded_image_and_class_index(make_tree):
    root = make_tree({"train/DRUSEN": ["DRUSEN-3-1.png"]}, size=(40, 36))
    data = KermanyOCT(root, "train")
    image, target = data[0]
    assert isinstance(image, Image.Image)
    assert (image.mode, image.size) == ("L", (40, 36))
    assert target == 2
    assert len(data) == 1


def test_getitem_applies_transform_and_target_transform(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/NORMAL": ["NORMAL-2-1.jpeg"]})
    data = KermanyOCT(
        root,
        "train",
        transform=lambda image: ("transformed", image.size),
        target_transform=lambda target: target * 10,
    )
    assert [data[i] for i in range(len(data))] == [
        (("transformed", (40, 36)), 0),
        (("transformed", (40, 36)), 30),
    ]


@pytest.mark.parametrize("door", ["folders", "manifest"])
def test_a_preprocessing_given_as_transform_is_refused_when_the_data_set_is_made(
    make_tree, tmp_path, door
):
    """Was: accepted, then "'Preprocessing' object is not callable" at the first read."""
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/NORMAL": ["NORMAL-2-1.jpeg"]})
    manifest = write_manifest(
        [ManifestRow(str(p), p.parent.name, None, "train") for p in find_images(root)],
        tmp_path / "m.csv",
    )

    def make(**kwargs):
        if door == "folders":
            return KermanyOCT(root, "train", **kwargs)
        return KermanyOCT.from_manifest(manifest, "train", **kwargs)

    with pytest.raises(
        TypeError,
        match=r"^KermanyOCT\(transform=Preprocessing\(\.\.\.\)\): a Preprocessing is not "
        r"itself a transform\. Leave transform out for the Trainer.*pass "
        r"preprocessing\.train_transform\(\) \(training data, augmented\) or "
        r"preprocessing\.eval_transform\(\)$",
    ):
        make(transform=Preprocessing(size=32))
    with pytest.raises(TypeError, match=r"target_transform must be a callable .* got a dict"):
        make(target_transform={0: 1})
    assert make(transform=Preprocessing(size=32).train_transform())[0][0].shape == (3, 32, 32)


def test_getitem_reads_with_the_given_loader(make_tree):
    root = make_tree({"train/DME": ["DME-1-1.jpeg"]})
    data = KermanyOCT(root, "train", loader=lambda path: f"read {Path(path).name}")
    assert data[0] == ("read DME-1-1.jpeg", 1)


def test_repr_names_root_split_and_size(make_tree):
    root = make_tree({"val/CNV": ["CNV-1-1.jpeg", "CNV-1-2.jpeg"]})
    assert repr(KermanyOCT(root, "val")) == f"KermanyOCT(root={str(root)!r}, split='val', images=2)"


def test_batches_through_a_dataloader_with_default_collate(make_tree):
    root = make_tree(
        {
            "train/CNV": ["CNV-1-1.jpeg", "CNV-1-2.jpeg"],
            "train/DRUSEN": ["DRUSEN-2-1.png"],
            "train/NORMAL": ["NORMAL-3-1.jpeg"],
        }
    )
    data = KermanyOCT(root, "train", transform=Preprocessing(size=32).eval_transform())
    batches = list(DataLoader(data, batch_size=3, collate_fn=default_collate))
    assert [images.shape for images, _ in batches] == [(3, 3, 32, 32), (1, 3, 32, 32)]
    assert all(images.dtype == torch.float32 for images, _ in batches)
    assert torch.equal(torch.cat([labels for _, labels in batches]), torch.tensor([0, 0, 2, 3]))


# --- find_images -----------------------------------------------------------------------------


def test_find_images_is_recursive_sorted_and_skips_hidden_files(make_tree):
    root = make_tree(
        {
            "b": ["scan_2.PNG", "notes.txt", ".DS_Store"],
            "a/deeper": ["scan_1.jpg", "._scan_1.jpg"],
            "a/.hidden": ["scan_3.jpeg"],
            "c": ["scan_0.jpeg"],
        }
    )
    found = find_images(root)
    assert all(isinstance(path, Path) for path in found)
    assert [path.relative_to(root).as_posix() for path in found] == [
        "a/deeper/scan_1.jpg",
        "b/scan_2.PNG",
        "c/scan_0.jpeg",
    ]
    assert find_images(str(root / "c")) == [root / "c" / "scan_0.jpeg"]


def test_find_images_needs_a_folder(tmp_path):
    file = tmp_path / "scan.jpeg"
    file.write_bytes(b"x")
    for path in (file, tmp_path / "missing"):
        with pytest.raises(NotADirectoryError, match=rf"{_quoted(path)} is not a folder"):
            find_images(path)


def test_symlinked_folders_that_loop_back_are_skipped_with_a_warning(make_tree):
    root = make_tree({"a": ["scan_1.jpg"], "a/b": ["scan_2.jpg"], "p": ["scan_3.png"], "q": []})
    (root / "a" / "b" / "up").symlink_to(root / "a", target_is_directory=True)
    (root / "p" / "to-q").symlink_to(root / "q", target_is_directory=True)
    (root / "q" / "to-p").symlink_to(root / "p", target_is_directory=True)  # p <-> q
    (root / "a" / "self.jpg").symlink_to("self.jpg")  # a link to itself: not a folder
    (root / "c").symlink_to(root / "a" / "b", target_is_directory=True)  # listed as a/b
    loop = r"skipping the link '.*': it leads back to .*\(a loop\)"
    listed = r"skipping the link '.*/c': it leads to .*, a folder under .* whose files are listed"
    with pytest.warns(RuntimeWarning) as caught:
        found = find_images(root)
    said = [str(warning.message) for warning in caught]
    assert any(re.match(loop, text) for text in said)
    assert any(re.match(listed, text) for text in said)
    assert [path.relative_to(root).as_posix() for path in found] == [
        "a/b/scan_2.jpg",
        "a/scan_1.jpg",
        "a/self.jpg",  # an image by name; reading it fails, naming the file
        "p/scan_3.png",  # once: not again through the links p/to-q/to-p or q/to-p
    ]


def test_a_class_folder_linked_to_its_own_subfolder_reads_each_file_once(make_tree):
    # was: the file read twice, once through the link (double weight in training), and
    # `retinalnet split` wrote both paths into a manifest that from_manifest then refused
    root = make_tree(
        {"train/CNV/batch1": ["CNV-1-1.jpeg"], "train/CNV": ["CNV-2-1.jpeg"], "train/NORMAL": []}
    )
    (root / "train" / "CNV" / "latest").symlink_to("batch1", target_is_directory=True)
    with pytest.warns(RuntimeWarning, match=r"skipping the link .*latest"):
        data = KermanyOCT(root, "train", classes=["CNV", "NORMAL"])
    assert sorted(Path(path).name for path, _ in data.samples) == ["CNV-1-1.jpeg", "CNV-2-1.jpeg"]


# --- the real Kermany sample -----------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest(kermany_sample) -> dict[tuple[str, str, str], str]:
    """``(split, class, filename) -> patient_id`` from the sample's manifest.csv."""
    with open(kermany_sample / "manifest.csv", newline="") as file:
        return {
            (row["split"], row["class"], row["filename"]): row["patient_id"]
            for row in csv.DictReader(file)
        }


def test_real_sample_train_split(kermany_sample):
    data = KermanyOCT(kermany_sample, "train")
    assert len(data) == 48
    assert data.classes == ["CNV", "DME", "DRUSEN", "NORMAL"]
    assert data.targets == [0] * 12 + [1] * 12 + [2] * 12 + [3] * 12
    assert all(Path(path).parent.name == data.classes[t] for path, t in data.samples)


@pytest.mark.parametrize(("split", "per_class"), [("train", 12), ("val", 4), ("test", 4)])
def test_real_sample_patient_ids_match_the_manifest(kermany_sample, manifest, split, per_class):
    data = KermanyOCT(kermany_sample, split)
    found = {
        (split, data.classes[target], Path(path).name): patient
        for (path, target), patient in zip(data.samples, data.patient_ids, strict=True)
    }
    assert found == {key: value for key, value in manifest.items() if key[0] == split}
    assert len(found) == 4 * per_class
    assert None not in found.values()


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_real_sample_images_are_grayscale_oct_scans(kermany_sample, split):
    data = KermanyOCT(kermany_sample, split)
    images = [load_image(path) for path, _ in data.samples]
    assert {image.mode for image in images} == {"L"}
    assert all(496 <= image.height <= 512 for image in images)
    image, target = data[0]
    assert image.mode == "L"
    assert target == 0


# --- unreadable images: the on_error policy -------------------------------------------------


@pytest.fixture
def tree_with_broken_file(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg", "CNV-1-2.jpeg"], "train/DME": ["DME-2-1.jpeg"]})
    (root / "train" / "CNV" / "CNV-1-2.jpeg").write_text("not a scan")
    return root


def test_on_error_raise_is_the_default_and_names_the_file(tree_with_broken_file):
    data = KermanyOCT(tree_with_broken_file, "train")
    assert data.on_error == "raise"
    with pytest.raises(UnreadableImageError, match=r"CNV-1-2\.jpeg'?: not a recognised"):
        data[1]


def test_on_error_skip_warns_naming_the_file_and_returns_the_next_sample(tree_with_broken_file):
    data = KermanyOCT(tree_with_broken_file, "train", on_error="skip")
    with pytest.warns(RuntimeWarning, match=r"skipping unreadable image '.*CNV-1-2\.jpeg'"):
        image, target = data[1]
    assert isinstance(image, Image.Image)
    assert target == 1  # the DME scan that follows
    assert len(data) == 3  # the index is unchanged: the substitute keeps batches full


@pytest.mark.filterwarnings("ignore:skipping unreadable image")
def test_on_error_skip_in_a_dataloader_worker(tree_with_broken_file):
    data = KermanyOCT(
        tree_with_broken_file,
        "train",
        transform=Preprocessing(size=32).eval_transform(),
        on_error="skip",
    )
    batches = list(DataLoader(data, batch_size=3, num_workers=1))
    assert len(batches) == 1
    images, targets = batches[0]
    assert images.shape == (3, 3, 32, 32)
    assert targets.tolist() == [0, 1, 1]


def test_on_error_skip_decodes_and_warns_of_each_unreadable_file_once(make_tree):
    # was: each index of a run of K unreadable files walked forward over the rest of the
    # run, so K files cost K(K+1)/2 decodes and warnings every epoch
    names = ["CNV-1-1.jpeg", "CNV-1-2.jpeg", "CNV-1-3.jpeg", "CNV-1-4.jpeg"]
    root = make_tree({"train/CNV": names, "train/DME": ["DME-2-1.jpeg"]})
    for name in names[1:]:
        (root / "train" / "CNV" / name).write_text("cut short")
    decoded: list[str] = []

    def counting(path: str) -> Image.Image:
        decoded.append(Path(path).name)
        return load_image(path)

    data = KermanyOCT(root, "train", loader=counting, on_error="skip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        epochs = [[data[i][1] for i in range(len(data))] for _ in range(2)]
    assert epochs == [[0, 1, 1, 1, 1]] * 2  # each bad one replaced by the next readable
    assert sorted(set(decoded) - {"CNV-1-1.jpeg", "DME-2-1.jpeg"}) == names[1:]
    assert len(decoded) == 5 + 3 + 5  # two epochs of 5 reads, each bad file tried once
    said = [str(w.message) for w in caught if "skipping unreadable image" in str(w.message)]
    assert len(said) == 3
    assert {name for name in names[1:] if any(name in line for line in said)} == set(names[1:])
    decoded.clear()
    again = data.with_loader(counting)  # another loader: tried afresh
    with pytest.warns(RuntimeWarning, match="skipping unreadable image"):
        again[1]
    assert decoded == [*names[1:], "DME-2-1.jpeg"]


def test_unreadable_files_are_remembered_by_path_whatever_samples_become(make_tree):
    # remembered by position, a filtered ``samples`` (ImageFolder's pattern) had a good scan
    # passed over in silence, its neighbour read twice
    normal = ["NORMAL-0-1.jpeg", "NORMAL-0-2.jpeg"]
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/NORMAL": normal})
    (root / "train" / "CNV" / "CNV-1-1.jpeg").write_text("cut short")
    read: list[str] = []

    def noting(path: str) -> Image.Image:
        image = load_image(path)
        read.append(Path(path).name)
        return image

    data = KermanyOCT(root, "train", loader=noting, on_error="skip")
    with pytest.warns(RuntimeWarning, match="skipping unreadable image"):
        data[0]
    read.clear()
    data.samples = [sample for sample in data.samples if sample[1] == 3]  # NORMAL only
    data[0], data[1]
    assert read == normal
    data.__dict__.pop("_unreadable")  # as a data set pickled before it remembered files
    data[0]
    assert read == [*normal, normal[0]]


def test_on_error_skip_raises_when_nothing_is_readable(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"]})
    (root / "train" / "CNV" / "CNV-1-1.jpeg").write_text("not a scan")
    data = KermanyOCT(root, "train", on_error="skip")
    with (
        pytest.warns(RuntimeWarning),
        pytest.raises(UnreadableImageError, match="no readable image in the whole 'train' split"),
    ):
        data[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_error": "ignore"}, r"on_error must be one of 'raise', 'skip', got 'ignore'"),
    ],
)
def test_bad_loading_options_fail_at_construction(make_tree, kwargs, message):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"]})
    with pytest.raises(ValueError, match=message):
        KermanyOCT(root, "train", **kwargs)


def test_with_loader_reads_with_the_preprocessing_decoder(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/DME": ["DME-2-1.png"]}, size=(512, 496))
    data = KermanyOCT(root, "train")
    fast = data.with_loader(Preprocessing(reduced_decode=True).load)
    assert fast[0][0].size == (256, 248)  # JPEG: libjpeg's 1/2 scale
    assert fast[1][0].size == (512, 496)  # PNG: always full size
    assert data[0][0].size == (512, 496)  # the original is unchanged
    assert fast.samples == data.samples


def test_without_leaves_files_out_of_a_copy(make_tree):
    root = make_tree({"test/CNV": ["CNV-1-1.jpeg", "CNV-1-2.jpeg"], "test/DME": ["DME-2-1.jpeg"]})
    data = KermanyOCT(root, "test")
    gone = data.samples[1][0]

    kept = data.without([Path(gone), root / "test" / "DME" / "not-there.jpeg"])

    assert [path for path, _ in kept.samples] == [data.samples[0][0], data.samples[2][0]]
    assert kept.targets == [0, 1]
    assert kept.patient_ids == ["1", "2"]
    assert len(data) == 3  # the original is unchanged
    assert kept[1][1] == 1


def test_indexing_opens_no_file(make_tree, monkeypatch):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg", "CNV-1-2.jpeg"], "train/DME": ["DME-2-1.jpeg"]})
    opened: list[str] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    data = KermanyOCT(root, "train")
    assert len(data) == 3
    assert opened == []


# --- readable_split: what evaluation scores of a data set with on_error="skip" --------------


def test_readable_split_leaves_unreadable_files_out_and_reads_with_raise(tree_with_broken_file):
    from retinalnet.datasets._readable import readable_split

    data = KermanyOCT(tree_with_broken_file, "train", on_error="skip")
    broken = str(tree_with_broken_file / "train" / "CNV" / "CNV-1-2.jpeg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no substitute is read, so no "skipping" warning
        readable, skipped = readable_split(data, Preprocessing(size=32).load)
    assert [path for path, _ in skipped] == [broken]
    assert skipped[0][1].startswith("not a recognised")
    assert _names(readable) == [("CNV-1-1.jpeg", 0), ("DME-2-1.jpeg", 1)]
    assert readable.patient_ids == ["1", "2"]
    assert readable.on_error == "raise"  # a file broken later stops, it is not replaced
    assert data.on_error == "skip"
    assert len(data) == 3  # the original is unchanged
    with_workers, again = readable_split(data, num_workers=1)
    assert (with_workers.samples, again) == (readable.samples, skipped)


def test_readable_split_refuses_a_split_with_no_readable_image(make_tree):
    from retinalnet.datasets._readable import readable_split

    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"]})
    (root / "train" / "CNV" / "CNV-1-1.jpeg").write_text("not a scan")
    with pytest.raises(ValueError, match=r"none of the 1 images of '.*train' can be read"):
        readable_split(KermanyOCT(root, "train", on_error="skip"))


def test_data_that_reads_through_a_skipping_data_set_is_found(tree_with_broken_file):
    from torch.utils.data import ConcatDataset, Subset

    from retinalnet.datasets._readable import refuse_substitution, substituting_dataset

    skipping = KermanyOCT(tree_with_broken_file, "train", on_error="skip")
    raising = KermanyOCT(tree_with_broken_file, "train")
    for wrapped in (
        skipping,
        DataLoader(skipping),
        Subset(skipping, [0, 1]),
        ConcatDataset([raising, Subset(skipping, [2])]),
    ):
        assert substituting_dataset(wrapped) is skipping
        with pytest.raises(ValueError, match=r"^evaluate\(\): KermanyOCT\(.*on_error='skip'"):
            refuse_substitution(wrapped, where="evaluate()")
    for plain in (raising, DataLoader(raising), Subset(raising, [0]), torch.zeros(2)):
        assert substituting_dataset(plain) is None


def test_an_empty_root_is_refused_at_every_door_that_reads_a_folder(
    make_tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Path("") is the current folder: find_images("") searched it without a word, and the
    # others named "." in their errors; audit and the synthetic writers refused it already
    from retinalnet.datasets import count_images, patient_split

    root = make_tree(_FOUR_CLASSES)
    manifest = write_manifest(
        [ManifestRow("train/CNV/CNV-1-1.jpeg", "CNV", "1", "train")], tmp_path / "m.csv"
    )
    monkeypatch.chdir(root)  # a Kermany folder: '' would read it
    doors = {
        "KermanyOCT": lambda: KermanyOCT("", "train"),
        "from_manifest": lambda: KermanyOCT.from_manifest(manifest, "train", root=""),
        "find_images": lambda: find_images(""),
        "count_images": lambda: count_images(""),
        "patient_split": lambda: patient_split(""),
    }
    for door in doors.values():
        with pytest.raises(ValueError, match=r"is an empty path, which would mean the current"):
            door()


# --- system folders, folders that cannot be read, images without a suffix ------------------

# What a NAS, macOS's zip and Windows leave in the folders of a copied download: thumbnails
# (real JPEGs), a recycle bin with a deleted scan of another class, metadata, snapshots.
_SYSTEM_LITTER = {
    "train/CNV/@eaDir/CNV-1-1.jpeg": ["SYNOFILE_THUMB_M.jpg", "SYNOFILE_THUMB_S.jpg"],
    "train/CNV/#recycle": ["DME-9-1.jpeg"],
    "train/DME/#snapshot/GMT+01-2026.12.01": ["DME-2-1.jpeg"],
    "train/DME/__MACOSX": ["._DME-2-1.jpeg", "DME-2-1.jpeg"],
    "train/NORMAL/$RECYCLE.BIN": ["NORMAL-8-1.jpeg"],
    "train/NORMAL/System Volume Information": ["tracking.log"],
    "train/__MACOSX/CNV": ["._CNV-1-1.jpeg"],  # a zip of the split's contents, made on a Mac
    "train/@eaDir/CNV": ["SYNOFILE_THUMB_M.jpg"],
    "test/DRUSEN/@eaDir/DRUSEN-5-1.jpeg": ["SYNOFILE_THUMB_M.jpg"],
    "test/NORMAL/#Recycle": ["NORMAL-6-9.jpeg"],  # any case
}
_SCANS = {
    "train/CNV": ["CNV-1-1.jpeg", "CNV-3-1.jpeg"],
    "train/DME": ["DME-2-1.jpeg", "DME-7-1.jpeg"],
    "train/DRUSEN": ["DRUSEN-12-1.jpeg", "DRUSEN-10-1.jpeg"],
    "train/NORMAL": ["NORMAL-4-1.jpeg", "NORMAL-11-1.jpeg"],
    "test/DRUSEN": ["DRUSEN-5-1.jpeg"],
    "test/NORMAL": ["NORMAL-6-1.jpeg"],
}


def _system_folder_doors(root: Path) -> dict[str, Callable[[], object]]:
    """The relative paths of the images each door that lists a folder finds under ``root``."""
    from retinalnet.datasets import audit, count_images, patient_split

    def relative(paths: Iterable[str | Path]) -> list[str]:
        return sorted(Path(path).relative_to(root).as_posix() for path in paths)

    return {
        "KermanyOCT": lambda: relative(
            path for split in ("train", "test") for path, _ in KermanyOCT(root, split).samples
        ),
        "find_images": lambda: relative(find_images(root)),
        "patient_split": lambda: sorted(row.path for row in patient_split(root, val_fraction=0.5)),
        "count_images": lambda: count_images(root).total,
        "audit": lambda: sum(sum(per.values()) for per in audit(root).counts.values()),
    }


@pytest.mark.parametrize(
    "door", ["KermanyOCT", "find_images", "patient_split", "count_images", "audit"]
)
def test_system_folders_are_left_out_at_every_door_that_lists_files(make_tree, door, caplog):
    # a Synology NAS's @eaDir thumbnails were read as scans (36 test images for 12), a
    # recycle bin's deleted DME scan as a CNV one, and __MACOSX in a split folder refused
    root = make_tree({**_SCANS, **_SYSTEM_LITTER})
    scans = sorted(f"{folder}/{name}" for folder, names in _SCANS.items() for name in names)
    caplog.set_level("INFO", logger="retinalnet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn of: the folders are said in the log
        found = _system_folder_doors(root)[door]()
    assert found == (scans if isinstance(found, list) else len(scans))
    if door != "audit":  # audit reports what it leaves out in its own table
        assert "@eaDir" in caplog.text
        assert "files are not read" in caplog.text
    if door in ("find_images", "patient_split", "count_images"):  # one line, not one a folder
        assert caplog.messages == [
            f"left out 10 system folders under {str(root)!r} (e.g. "
            f"{str(root / 'test' / 'DRUSEN' / '@eaDir')!r}, a Synology NAS's thumbnails and "
            "metadata): their files are not read"
        ]


@pytest.mark.parametrize(
    "name", ["@eaDir", "__MACOSX", "#recycle", "#snapshot", "$RECYCLE.BIN", "$Recycle.Bin",
             "System Volume Information", "@Recycle", "lost+found", ".@__thumb", ".AppleDouble"]
)  # fmt: skip
def test_a_system_folder_is_named_as_such_and_never_a_class(name):
    from retinalnet.datasets._files import class_folder_hint
    from retinalnet.datasets._system_folders import system_folder

    assert system_folder(name) is not None
    assert class_folder_hint(name).startswith(f"it is {system_folder(name)}, not scans")
    assert system_folder("CNV") is None
    assert system_folder("eaDir") is None


def test_the_system_folders_of_a_split_are_said_in_one_log_line(make_tree, caplog):
    # was: one "left out ..." line per class folder (5 for one split)
    root = make_tree({**_SCANS, **_SYSTEM_LITTER})
    caplog.set_level("INFO", logger="retinalnet")
    assert len(KermanyOCT(root, "train")) == 8
    assert caplog.messages == [
        f"left out 8 system folders under {str(root / 'train')!r} (e.g. "
        f"{str(root / 'train' / '@eaDir')!r}, a Synology NAS's thumbnails and metadata): "
        "their files are not read"
    ]


def _from_manifest_doors() -> dict[str, Callable[[Path, Path], KermanyOCT]]:
    """Every door that reads one split of a manifest: Python's, and the CLI's (train,
    evaluate and calibrate take ``--manifest`` through ``split_data``)."""
    from retinalnet.cli._split_data import split_data

    return {
        "from_manifest": lambda manifest, root, on_error="raise": KermanyOCT.from_manifest(
            manifest, "train", root=root, on_error=on_error
        ),
        "cli --manifest": lambda manifest, root, on_error="raise": split_data(
            root, "train", manifest, on_error=on_error
        ),
    }


@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
def test_manifest_rows_in_system_folders_are_left_out_with_one_warning(make_tree, tmp_path, door):
    # was: a NAS thumbnail listed by an older `retinalnet split` read as a training scan,
    # without a word
    root = make_tree({**_SCANS, **_SYSTEM_LITTER})
    thumb = "train/CNV/@eaDir/CNV-1-1.jpeg/SYNOFILE_THUMB_M.jpg"
    rows = [
        ManifestRow("train/CNV/CNV-1-1.jpeg", "CNV", "1", "train"),
        ManifestRow(thumb, "CNV", "1", "train"),
        ManifestRow(str(root / "train/CNV/#recycle/DME-9-1.jpeg"), "CNV", "9", "train"),
        ManifestRow("train/DME/__MACOSX/DME-2-1.jpeg", "DME", "2", "train"),
        ManifestRow("train/DME/DME-7-1.jpeg", "DME", "7", "val"),
        ManifestRow("test/NORMAL/#Recycle/NORMAL-6-9.jpeg", "NORMAL", "6", "test"),
        # hidden ones, which the walks leave out as hidden: a QNAP's thumbnails, netatalk's
        # resource forks named like the scans
        ManifestRow("train/CNV/.@__thumb/s100CNV-1-1.jpeg", "CNV", "1", "train"),
        ManifestRow("train/CNV/.AppleDouble/CNV-1-1.jpeg", "CNV", "1", "train"),
    ]
    manifest = write_manifest(rows, tmp_path / "old.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = _from_manifest_doors()[door](manifest, root)
    assert _names(data) == [("CNV-1-1.jpeg", 0)]
    assert [str(warning.message) for warning in caught] == [
        f"left out 5 row(s) of split 'train' of manifest {str(manifest)!r} whose file lies "
        f"in a system folder, e.g. {thumb!r} (@eaDir: a Synology NAS's thumbnails and "
        "metadata): such folders hold thumbnails, metadata, deleted files or snapshots, "
        "never scans, and the folder walks leave them out; run `retinalnet split` again to "
        "write the manifest without them"
    ]


def test_a_root_inside_a_system_folder_is_read_from_a_manifest(tmp_path, recwarn):
    # only the folders between the root and a file count: data restored into a snapshot
    root = tmp_path / "#snapshot" / "OCT2017"
    for split in ("train", "test"):
        (root / split / "CNV").mkdir(parents=True)
        Image.new("L", (8, 8)).save(root / split / "CNV" / "CNV-1-1.jpeg")
    rows = [
        ManifestRow("train/CNV/CNV-1-1.jpeg", "CNV", "1", "train"),
        ManifestRow(str(root / "test/CNV/CNV-1-1.jpeg"), "CNV", "1", "test"),
    ]
    manifest = write_manifest(rows, tmp_path / "split.csv")
    for split in ("train", "test"):
        assert _names(KermanyOCT.from_manifest(manifest, split, root=root)) == [("CNV-1-1.jpeg", 0)]
    assert not [warning for warning in recwarn if "system folder" in str(warning.message)]


@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
def test_rows_labelled_another_class_than_their_folder_or_name_warn_once(make_tree, tmp_path, door):
    # was: `train/CNV/CNV-7565927-117.jpeg,DME` (a label column sorted on its own in a
    # spreadsheet) read as DME without a word, where the folders warn of a misnamed file
    root = make_tree(
        {
            "train/CNV": ["CNV-1-1.jpeg", "CNV-2-1.jpeg"],
            "train/DME": ["DME-3-1.jpeg"],
            "train/NORMAL": ["scan_01.jpeg"],
            "train/batch": ["DRUSEN-5-1.jpeg"],
        }
    )
    rows = [
        ManifestRow("train/CNV/CNV-1-1.jpeg", "DME", "1", "train"),  # folder and name: CNV
        ManifestRow("train/CNV/CNV-2-1.jpeg", "CNV", "2", "train"),
        ManifestRow("train/DME/DME-3-1.jpeg", "CNV", "3", "train"),
        ManifestRow("train/NORMAL/scan_01.jpeg", "DME", "4", "train"),  # its folder only
        ManifestRow("train/batch/DRUSEN-5-1.jpeg", "NORMAL", "5", "train"),  # its name only
    ]
    manifest = write_manifest(rows, tmp_path / "shifted.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = _from_manifest_doors()[door](manifest, root)
    assert [str(warning.message) for warning in caught] == [
        f"4 row(s) of split 'train' of manifest {str(manifest)!r} are named for another class "
        "than their label in the manifest, e.g. 'train/CNV/CNV-1-1.jpeg' (named CNV by its "
        "folder and file name, labelled DME): each is mislabelled or misfiled; they are read "
        "with the manifest's label. Check each scan and correct its label, or write the "
        "manifest again with `retinalnet split`"
    ]
    assert [data.classes[target] for target in data.targets] == [row.label for row in rows]


@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
def test_one_image_listed_relatively_and_absolutely_is_refused(
    make_tree, tmp_path, monkeypatch, door
):
    # was: `train/CNV/x.jpeg` in train and `/abs/root/train/CNV/x.jpeg` in val passed the
    # "listed twice" check: one image in both splits
    root = make_tree({"train/CNV": ["scan_01.jpeg", "scan_02.jpeg"]})
    listed = str(root / "train" / "CNV" / "scan_01.jpeg")
    rows = [
        ManifestRow("train/CNV/scan_01.jpeg", "CNV", None, "train"),
        ManifestRow("train/CNV/scan_02.jpeg", "CNV", None, "train"),
        ManifestRow(listed, "CNV", None, "val"),
    ]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    monkeypatch.chdir(root.parent)  # a relative root, as --data OCT2017 gives it
    message = (
        rf"^manifest {_quoted(manifest)}: {re.escape(repr(listed))} is listed in split 'train' "
        r"and in split 'val' \(rows 1 and 3, row 1 as 'train/CNV/scan_01\.jpeg'\); each image "
        r"belongs to one split, or it is scored on what it was trained on: delete one of the two "
        r"rows, or write the manifest again with `retinalnet split`$"
    )
    with pytest.raises(ValueError, match=message):
        _from_manifest_doors()[door](manifest, Path(root.name))


@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
def test_rows_naming_no_file_are_refused_or_left_out_on_skip_and_refused_when_most(
    make_tree, tmp_path, door
):
    # was: each missing file said at its first read, one at a time (and --on-error skip
    # skipped every image of a manifest read under the wrong root)
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg", "CNV-2-1.jpeg"]})
    broken = root / "train" / "CNV" / "CNV-4-1.jpeg"
    broken.symlink_to(tmp_path / "gone.jpeg")  # kept, as the folders keep it
    rows = [
        ManifestRow(f"train/CNV/CNV-{number}-1.jpeg", "CNV", str(number), "train")
        for number in (1, 2, 3, 4)
    ]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    said = (
        f"of 4 row(s) of split 'train' of manifest {str(manifest)!r} name no file under "
        f"{{root!r}} (e.g. 'train/CNV/CNV-{{number}}-1.jpeg'); relative paths start at "
        "{root!r}, absolute ones are used as they are"
    )
    # by default refused, in one line: a report on fewer images is the user's to choose
    refused = (
        "1 " + said.format(root=str(root), number=3) + ": restore the files, write the "
        "manifest again with `retinalnet split`, or pass on_error='skip' to leave them out"
    )
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(refused)}$"):
        _from_manifest_doors()[door](manifest, root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = _from_manifest_doors()[door](manifest, root, on_error="skip")
    assert [str(warning.message) for warning in caught] == [
        "1 " + said.format(root=str(root), number=3) + ": they are left out; restore the "
        "files, or write the manifest again with `retinalnet split`"
    ]
    assert _names(data) == [("CNV-1-1.jpeg", 0), ("CNV-2-1.jpeg", 0), ("CNV-4-1.jpeg", 0)]
    message = (
        "4 " + said.format(root=str(root.parent), number=1) + ": pass the folder the "
        "manifest's paths start from as root (CLI: --data), or write the manifest again with "
        "`retinalnet split`"
    )
    for on_error in ("raise", "skip"):  # most rows missing: the wrong root, whatever on_error
        with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
            _from_manifest_doors()[door](manifest, root.parent, on_error=on_error)


@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
def test_a_path_with_spaces_around_it_or_in_the_other_unicode_form_names_its_file(
    make_tree, tmp_path, door, recwarn
):
    # was: "no such file" at the first read, for a name that looks the same: a space left
    # by a spreadsheet, or an NFC name in the manifest for the NFD one macOS wrote
    import unicodedata

    muller = "CNV-3-1-M\u00fcller.jpeg"  # NFC, as typed
    root = make_tree(
        {"train/CNV": ["CNV-1-1.jpeg", "CNV-2-1.jpeg", unicodedata.normalize("NFD", muller)]}
    )
    rows = [
        ManifestRow("train/CNV/CNV-1-1.jpeg ", "CNV", "1", "train"),
        ManifestRow(" train/CNV/CNV-2-1.jpeg", "CNV", "2", "train"),
        ManifestRow(f"train/CNV/{muller}", "CNV", "3", "train"),
    ]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    data = _from_manifest_doors()[door](manifest, root)
    on_disk = sorted((root / "train" / "CNV").iterdir())
    assert sorted(Path(path) for path, _ in data.samples) == on_disk
    assert [image.size for image, _ in data] == [(40, 36)] * 3
    assert not recwarn.list


def test_a_system_folder_in_a_split_folder_is_left_out_in_one_log_line(make_tree, caplog):
    # was: "class folder '__MACOSX' is not one of ...: move its images into the class folders"
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/__MACOSX/CNV": ["._CNV-1-1.jpeg"]})
    caplog.set_level("INFO", logger="retinalnet")
    assert _names(KermanyOCT(root, "train")) == [("CNV-1-1.jpeg", 0)]
    assert caplog.messages == [
        f"left out {str(root / 'train' / '__MACOSX')!r} (macOS's metadata from a zip file): "
        "its files are not read"
    ]


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``os.scandir`` of ``folder`` fail as a folder without read permission does (the
    tests may run as root, whom permission bits do not stop)."""
    import errno
    import os

    real = os.scandir

    def scandir(path: str | os.PathLike[str] = ".") -> object:
        if Path(path).absolute() == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.parametrize("denied", ["train/DME", "train", "train/CNV/visit2"])
@pytest.mark.parametrize(
    "door", ["KermanyOCT", "find_images", "patient_split", "count_images", "audit"]
)
def test_a_folder_that_cannot_be_read_is_named_at_every_door(make_tree, monkeypatch, door, denied):
    # was: PermissionError: [Errno 13] Permission denied: '.../train/DME', raw from os.scandir
    from retinalnet.datasets import audit, count_images, patient_split

    root = make_tree({**_FOUR_CLASSES, "train/CNV/visit2": ["CNV-1-2.jpeg"], "test/CNV": []})
    folder = root / denied
    _deny(monkeypatch, folder)
    doors = {
        "KermanyOCT": lambda: KermanyOCT(root, "train"),
        "find_images": lambda: find_images(root / "train"),
        "patient_split": lambda: patient_split(root),
        "count_images": lambda: count_images(root),
        "audit": lambda: audit(root),
    }
    message = (
        rf"^cannot read the folder {_quoted(folder)}: permission denied \[EACCES\]; "
        r"check its permissions: the user running this must be able to read and enter it$"
    )
    with pytest.raises(PermissionError, match=message):
        doors[door]()


def _no_suffix_image(path: Path, kind: str) -> None:
    image = Image.new("L", (40, 36), 90)
    image.save(path, format=kind)


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"])
def test_an_image_without_a_suffix_is_left_out_with_the_warning_of_files_not_read(make_tree, kind):
    # was: left out without a word (only DICOM's preamble was looked for)
    root = make_tree({"train/CNV": ["CNV-1-1.png", "LICENSE"], "train/DME": ["DME-2-1.png"]})
    _no_suffix_image(root / "train" / "CNV" / "CNV-100-7", kind)
    (root / "train" / "DME" / "README").write_bytes(b"BM is not a bitmap: " + bytes(40))
    unread = _quoted(root / "train" / "CNV" / "CNV-100-7")
    said = rf"^1 file\(s\) under .* may be scans but are not read \(1 no suffix; e.g. {unread}\)"
    fix = r"give a file without a suffix its format's \(.dcm for DICOM, .png, .jpeg, ...\)"
    for door in (lambda: KermanyOCT(root, "train"), lambda: find_images(root)):
        with pytest.warns(UserWarning, match=said) as caught:
            found = door()
        assert len(caught) == 1
        assert re.search(fix, str(caught[0].message))
        assert len(found) == 2  # still read by suffix only


def test_an_appledouble_file_never_looks_like_a_scan(tmp_path):
    from retinalnet.datasets._files_not_read import looks_like_a_scan

    apple = tmp_path / "._CNV-1-1.jpeg"
    apple.write_bytes(b"\x00\x05\x16\x07" + bytes(80))  # AppleDouble's magic number
    assert not looks_like_a_scan(str(apple))
    assert looks_like_a_scan(str(tmp_path / "CNV-1-1.jfif"))
