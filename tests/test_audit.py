"""Tests for retinalnet.datasets._audit: auditing a Kermany-layout folder."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import struct
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _image_files import png16
from retinalnet._core.files import file_digest
from retinalnet._core.read_failure import EMPTY_FILE
from retinalnet.datasets import (
    KERMANY_CLASSES,
    AuditReport,
    DuplicateGroup,
    KermanyOCT,
    UnreadableImageError,
    _audit_file,
    audit,
    load_image,
)
from retinalnet.datasets._audit_file import inspect_file
from retinalnet.datasets._audit_report import ProblemFiles, bit_depth


def _noise_jpeg(path: Path, seed: int, mode: str = "L", fmt: str = "JPEG") -> None:
    shape = (64, 80) if mode == "L" else (64, 80, 3)
    pixels = np.random.default_rng(seed).integers(0, 256, shape, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path, format=fmt)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def clean_tree(tmp_path: Path) -> Path:
    """One distinct 96 x 80 scan per split and class, each of its own patient."""
    root = tmp_path / "OCT2017"
    for seed, (split, name) in enumerate(
        (split, name) for split in ("train", "val", "test") for name in KERMANY_CLASSES
    ):
        _scan(root / split / name / f"{name}-{100 + seed}-1.jpeg", seed)
    return root


def _scan(
    path: Path, seed: int, size: tuple[int, int] = (96, 80), mode: str = "L", fmt: str = "JPEG"
) -> Path:
    """A distinct noise image of ``size`` (width, height), written with its parents."""
    width, height = size
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "L").convert(mode).save(path, format=fmt)
    return path


@pytest.fixture
def messy_tree(tmp_path: Path) -> Path:
    """A tree with every problem the audit looks for, each planted once or twice."""
    root = tmp_path / "OCT2017"
    for seed, relative in enumerate(
        [
            "train/CNV/CNV-1-1.jpeg",
            "train/CNV/CNV-1-2.jpeg",
            "train/DME/DME-2-1.jpeg",
            "train/DRUSEN/DRUSEN-3-1.jpeg",
            "train/NORMAL/NORMAL-4-1.jpeg",
            "val/CNV/CNV-5-1.jpeg",
            "val/NORMAL/NORMAL-4-9.jpeg",  # patient 4 is also in train
            "test/DME/DME-6-1.jpeg",
            "test/DRUSEN/DRUSEN-7-1.jpeg",
        ]
    ):
        _noise_jpeg(root / relative, seed)
    # within train: a copy under another name; across splits: a train image in test
    shutil.copy(root / "train/CNV/CNV-1-1.jpeg", root / "train/CNV/CNV-1-3.jpeg")
    shutil.copy(root / "train/DME/DME-2-1.jpeg", root / "test/DME/DME-8-1.jpeg")
    _noise_jpeg(root / "test/NORMAL/NORMAL-9-1.jpeg", 99)
    _truncate(root / "test/NORMAL/NORMAL-9-1.jpeg")
    (root / "train/DRUSEN/DRUSEN-10-1.jpeg").write_text("not a scan")
    _noise_jpeg(root / "train/NORMAL/NORMAL-11-1.png", 11, mode="RGB", fmt="PNG")
    (root / "train/CNV/.DS_Store").write_bytes(b"\0")
    (root / "test/notes.txt").write_text("stray")
    (root / "README.md").write_text("about")
    return root


def test_audit_finds_exactly_what_was_planted(messy_tree: Path) -> None:
    report = audit(messy_tree)
    assert report.counts == {
        "train": {"CNV": 3, "DME": 1, "DRUSEN": 2, "NORMAL": 2},
        "val": {"CNV": 1, "DME": 0, "DRUSEN": 0, "NORMAL": 1},
        "test": {"CNV": 0, "DME": 2, "DRUSEN": 1, "NORMAL": 1},
    }
    assert report.total == 14
    assert set(report.unreadable) == {
        "test/NORMAL/NORMAL-9-1.jpeg",
        "train/DRUSEN/DRUSEN-10-1.jpeg",
    }
    assert report.unreadable["train/DRUSEN/DRUSEN-10-1.jpeg"] == "not a recognised image format"
    assert report.unreadable["test/NORMAL/NORMAL-9-1.jpeg"].startswith("corrupt or truncated")
    assert report.stray_files == ["README.md", "test/notes.txt", "train/CNV/.DS_Store"]
    cnv = hashlib.sha256((messy_tree / "train/CNV/CNV-1-1.jpeg").read_bytes()).hexdigest()
    dme = hashlib.sha256((messy_tree / "train/DME/DME-2-1.jpeg").read_bytes()).hexdigest()
    assert report.duplicates == [
        DuplicateGroup(dme, ("test/DME/DME-8-1.jpeg", "train/DME/DME-2-1.jpeg")),
        DuplicateGroup(cnv, ("train/CNV/CNV-1-1.jpeg", "train/CNV/CNV-1-3.jpeg")),
    ]
    assert [g.across_splits for g in report.duplicates] == [True, False]
    assert report.cross_split_duplicates == report.duplicates[:1]
    assert report.cross_split_patients == {"4": {"train": 1, "val": 1}}
    assert report.modes == {"L": 11, "RGB": 1}
    assert (report.grayscale, report.colour) == (11, 1)
    assert report.sizes == {"80x64": 12}
    assert report.empty_classes == {
        "val/DME": "no folder",
        "val/DRUSEN": "no folder",
        "test/CNV": "no folder",
    }
    assert report.has_leakage
    assert not report.ok


def test_a_clean_tree_is_ok(clean_tree: Path) -> None:
    report = audit(clean_tree)
    assert report.duplicates == []
    assert report.cross_split_patients == {}
    assert report.unreadable == {}
    assert report.problems == []
    assert report.ok
    assert report.sizes == {"96x80": 12}
    assert report.bit_depths == {"8": 12}
    assert str(report).splitlines()[-1] == "OK"


def test_audit_of_the_real_sample(kermany_sample: Path) -> None:
    report = audit(kermany_sample)
    assert report.total == 80
    assert report.counts == {
        "train": dict.fromkeys(("CNV", "DME", "DRUSEN", "NORMAL"), 12),
        "val": dict.fromkeys(("CNV", "DME", "DRUSEN", "NORMAL"), 4),
        "test": dict.fromkeys(("CNV", "DME", "DRUSEN", "NORMAL"), 4),
    }
    assert report.unreadable == {}
    assert report.duplicates == []
    assert report.cross_split_patients == {}
    assert report.stray_files == ["README.md", "manifest.csv"]
    assert (report.grayscale, report.colour) == (80, 0)
    assert sum(report.sizes.values()) == 80
    assert report.flat_images.count == 0
    assert report.ok


def test_audit_digests_match_the_samples_manifest(kermany_sample: Path) -> None:
    import csv

    with (kermany_sample / "manifest.csv").open() as file:
        row = next(csv.DictReader(file))
    path = kermany_sample / row["split"] / row["class"] / row["filename"]
    assert file_digest(path).hex() == row["sha256"]


def test_report_serialises_to_json_and_a_table(messy_tree: Path) -> None:
    report = audit(messy_tree)
    data = json.loads(report.to_json())
    assert data["total"] == 14
    assert data["has_leakage"] is True
    assert data["ok"] is False
    assert data["duplicates"][0]["across_splits"] is True
    assert data["cross_split_patients"] == {"4": {"train": 1, "val": 1}}
    table = str(report)
    assert "test/NORMAL/NORMAL-9-1.jpeg: corrupt or truncated" in table
    assert "patients in more than one split: 1" in table
    assert table.splitlines()[-1] == (
        "PROBLEMS: leakage across splits, unreadable images, empty classes"
    )


def test_progress_callback_sees_every_file(messy_tree: Path) -> None:
    calls: list[tuple[int, int]] = []
    audit(messy_tree, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 14) for i in range(1, 15)]


def test_a_large_duplicate_group_shows_a_few_paths_and_its_split_crossing(
    tmp_path: Path,
) -> None:
    # was: every path of a group on one line (300 blank exports: 10,500 characters)
    root = tmp_path / "OCT2017"
    _noise_jpeg(root / "train" / "NORMAL" / "NORMAL-1-0.jpeg", seed=0)
    blank = (root / "train" / "NORMAL" / "NORMAL-1-0.jpeg").read_bytes()
    for i in range(1, 12):
        (root / "train" / "NORMAL" / f"NORMAL-1-{i}.jpeg").write_bytes(blank)
    (root / "val" / "NORMAL").mkdir(parents=True)
    (root / "val" / "NORMAL" / "NORMAL-2-0.jpeg").write_bytes(blank)
    report = audit(root)
    lines = str(report).splitlines()
    group = lines[lines.index(next(x for x in lines if x.startswith("duplicate groups"))) + 1]
    assert group == (
        "  train/NORMAL/NORMAL-1-0.jpeg, train/NORMAL/NORMAL-1-1.jpeg, "
        "train/NORMAL/NORMAL-1-10.jpeg, train/NORMAL/NORMAL-1-11.jpeg, "
        "val/NORMAL/NORMAL-2-0.jpeg, ... and 8 more (see --json)"
    )
    assert len(json.loads(report.to_json())["duplicates"][0]["paths"]) == 13  # all of them


def test_progress_is_reported_once_by_the_shared_reporter(
    messy_tree: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # was: a second reporter also logged "audit: 10000 of N files" every 10,000 files;
    # _LOG_EVERY (gone now, hence raising=False) is set low for a small tree to show it
    from retinalnet._core import progress as progress_module
    from retinalnet.datasets import _audit as audit_module

    ticks = iter(range(0, 10_000, 30))  # 30 s a file: past the quiet start at once
    monkeypatch.setattr(progress_module, "_now", lambda: float(next(ticks)))
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # no bar: plain lines
    monkeypatch.setattr(audit_module, "_LOG_EVERY", 2, raising=False)
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        audit(messy_tree, progress=True)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit:")]
    assert said  # the shared reporter's lines
    assert all(re.match(r"audit: [\d,]+/14 \(\d+%\), ", line) for line in said), said


@pytest.mark.parametrize(
    ("layout", "message"),
    [("missing", "does not exist"), ("no-splits", "no split folder")],
)
def test_audit_errors_name_the_root(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "data"
    if layout == "no-splits":
        (root / "CNV").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=message):
        audit(root)


def test_audit_names_the_split_folders_one_level_down(tmp_path: Path) -> None:
    (tmp_path / "data" / "OCT2017 " / "train" / "CNV").mkdir(parents=True)  # Kaggle's archive
    advice = r"the split folders are in .*OCT2017 ' \(its name ends in a space\): pass that"
    with pytest.raises(FileNotFoundError, match=advice):  # as KermanyOCT says it
        audit(tmp_path / "data")


def test_report_defaults_are_empty() -> None:
    report = AuditReport(root="x")
    assert report.total == 0
    assert report.ok


# --- each kind of bad input: found, named in the verdict, explained with a fix ---------------


def _only_problem(root: Path, problem: str) -> AuditReport:
    """Audit ``root``, check ``problem`` is the one problem found, return the report."""
    report = audit(root)
    assert report.problems == [problem]
    assert not report.ok
    assert str(report).splitlines()[-1] == f"PROBLEMS: {problem}"
    assert json.loads(report.to_json())["problems"] == [problem]
    return report


@pytest.mark.parametrize(
    ("folder", "fix"),
    [
        ("CNVV", "its name is like that of the 'CNV' folder beside it: if it holds CNV scans, "
                 "move into 'CNV' those not already there and remove it"),
        ("cnv", "it looks like a copy of the 'CNV' folder beside it (its name is in another "
                "case): remove it, or move into 'CNV' the images not already there"),
        ("Drusen", "it looks like a copy of the 'DRUSEN' folder beside it (its name is in "
                   "another case): remove it, or move into 'DRUSEN' the images"),
        ("GLAUCOMA", "KermanyOCT and retinalnet's commands read only the Kermany classes"),
    ],
)  # fmt: skip
def test_unknown_class_folders(clean_tree: Path, folder: str, fix: str) -> None:
    # each class has a folder in train: never "rename it to 'CNV'" (was: so for CNVV and cnv)
    for number in range(3):
        _scan(clean_tree / "train" / folder / f"CNV-900-{number}.jpeg", 900 + number)
    (clean_tree / "train" / folder / "notes.txt").write_text("x")
    report = _only_problem(clean_tree, "unknown class folders")
    assert report.unknown_class_folders == {f"train/{folder}": 3}
    assert report.counts["train"]["CNV"] == 1  # not counted as CNV
    assert report.stray_files == []  # the folder is reported as one, not file by file
    assert f"  train/{folder} (3 images): {fix}" in str(report)
    assert "rename" not in str(report)


@pytest.mark.parametrize(
    ("folder", "copy_of", "fix"),
    [
        ("NORMAL copy", "NORMAL", "it looks like a copy of the 'NORMAL' folder beside it: "),
        ("DME - Copy", "DME", "it looks like a copy of the 'DME' folder beside it: "),
        ("CNV (1)", "CNV", "it looks like a copy of the 'CNV' folder beside it: "),
        ("DRUSEN ", "DRUSEN", "it looks like a copy of the 'DRUSEN' folder beside it (its name "
                              "ends with a space): "),
    ],
)  # fmt: skip
def test_a_copy_of_a_class_folder_is_named_as_one_never_to_be_renamed(
    clean_tree: Path, folder: str, copy_of: str, fix: str
) -> None:
    # was: "train/NORMAL copy (1 image): rename it to 'NORMAL' if it holds NORMAL scans":
    # `mv 'NORMAL copy' NORMAL` puts it inside NORMAL, each scan read twice, and the audit OK
    shutil.copytree(clean_tree / "train" / copy_of, clean_tree / "train" / folder)
    report = _only_problem(clean_tree, "unknown class folders")
    where = repr(f"train/{folder}") if folder != folder.strip() else f"train/{folder}"
    line = f"  {where} (1 image): {fix}"
    assert f"{line}remove it, or move into {copy_of!r} the images not already there" in str(report)
    assert "rename" not in str(report)


def test_a_class_folder_ending_in_a_space_is_shown_quoted(clean_tree: Path) -> None:
    # was: "  test/DRUSEN  (1 image): ...", and "test/DRUSEN: no folder" below it
    (clean_tree / "test" / "DRUSEN").rename(clean_tree / "test" / "DRUSEN ")
    report = audit(clean_tree)
    assert "  'test/DRUSEN ' (1 image): rename it to 'DRUSEN' (its name ends with a space)" in (
        str(report)
    )


@pytest.mark.parametrize(
    ("folder", "split"),
    [
        ("Train", "train"),
        ("VAL", "val"),
        ("validation", "val"),
        # copies' names: were "stray" and a KermanyOCT without 'val' was told to re-split
        ("val (1)", "val"),
        ("val - Copy", "val"),
        ("test copy", "test"),
    ],
)
def test_split_folders_in_another_case_or_spelling(
    clean_tree: Path, folder: str, split: str
) -> None:
    # beside the split's folder: was "rename it to 'train'", which puts Train inside train
    _scan(clean_tree / folder / "CNV" / "CNV-901-1.jpeg", 901)
    report = _only_problem(clean_tree, "unknown split folders")
    assert report.unknown_split_folders == {folder: 1}
    fix = f"it is not read, {split!r} is: move its images into {split!r} or remove it"
    assert f"  {folder} (1 image): {fix}" in str(report)


def test_a_split_folder_in_another_spelling_without_the_split_is_renamed(
    clean_tree: Path,
) -> None:
    shutil.rmtree(clean_tree / "val")
    _scan(clean_tree / "valid" / "CNV" / "CNV-901-1.jpeg", 901)
    report = _only_problem(clean_tree, "unknown split folders")
    assert "  valid (1 image): rename it to 'val'" in str(report)


def test_a_split_folder_named_with_a_space_at_its_end_is_named_as_the_split(
    tmp_path: Path,
) -> None:
    _scan(tmp_path / "data" / "train" / "CNV" / "CNV-1-1.jpeg", 0)
    _scan(tmp_path / "data" / "val " / "CNV" / "CNV-2-1.jpeg", 1)  # from a zip
    report = audit(tmp_path / "data")
    assert report.unknown_split_folders == {"val ": 1}
    assert "  'val ' (1 image): rename it to 'val'" in str(report)
    with pytest.raises(FileNotFoundError, match=r"a folder 'val ' \(1 image\) looks like the val"):
        KermanyOCT(tmp_path / "data", "val")


def test_no_split_folder_but_one_in_another_case(tmp_path: Path) -> None:
    _scan(tmp_path / "data" / "Train" / "CNV" / "CNV-1-1.jpeg", 0)
    with pytest.raises(
        FileNotFoundError,
        match=r"\(found: Train\); a folder 'Train' \(1 image\) .* rename it to 'train'$",
    ):
        audit(tmp_path / "data")


@pytest.mark.parametrize(
    ("contents", "why"),
    [
        (None, "no folder"),
        ([], "empty folder"),
        (["notes.txt", ".DS_Store", "._DME-100-1.jpeg"], "only non-image files"),
    ],
)
def test_empty_classes(clean_tree: Path, contents: list[str] | None, why: str) -> None:
    folder = clean_tree / "val" / "DME"
    shutil.rmtree(folder)
    if contents is not None:
        folder.mkdir()
        for name in contents:
            (folder / name).write_text("not an image")
    report = _only_problem(clean_tree, "empty classes")
    assert report.empty_classes == {"val/DME": why}
    assert report.counts["val"]["DME"] == 0
    assert f"  val/DME: {why}" in str(report)


def test_images_lying_directly_in_a_split_folder(clean_tree: Path) -> None:
    _scan(clean_tree / "train" / "CNV-902-1.jpeg", 902)
    report = _only_problem(clean_tree, "images outside class folders")
    assert report.loose_images == ["train/CNV-902-1.jpeg"]
    assert "move each into its class folder" in str(report)


@pytest.mark.parametrize(
    ("relative", "target"),
    [
        ("train/CNV/DME/DME-903-1.jpeg", "train/DME/"),
        ("train/CNV/dme/scan-903-1.jpeg", "train/DME/"),
        ("test/NORMAL/batch2/Drusen/DRUSEN-903-1.jpeg", "test/DRUSEN/"),
    ],
)
def test_images_nested_under_another_class(clean_tree: Path, relative: str, target: str) -> None:
    _scan(clean_tree / relative, 903)
    report = _only_problem(clean_tree, "images nested under another class")
    assert report.nested_images == [relative]
    assert report.mismatched_prefix == []  # each file is reported once
    assert f"  {relative} -> {target}" in str(report)


def test_a_subfolder_of_the_same_class_is_fine(clean_tree: Path) -> None:
    _scan(clean_tree / "train" / "CNV" / "batch2" / "CNV-904-1.jpeg", 904)
    _scan(clean_tree / "train" / "CNV" / "cnv" / "CNV-904-2.jpeg", 905)
    report = audit(clean_tree)
    assert report.ok
    assert report.counts["train"]["CNV"] == 3


@pytest.mark.parametrize(
    ("relative", "named", "label"),
    [
        ("train/CNV/DME-905-1.jpeg", "DME", "CNV"),
        ("train/CNV/dme_905_1.jpeg", "DME", "CNV"),
        ("val/NORMAL/batch/Drusen-905-2.png", "DRUSEN", "NORMAL"),
    ],
)
def test_file_names_naming_another_class(
    clean_tree: Path, relative: str, named: str, label: str
) -> None:
    """Mislabelled or misfiled: either way a problem, with the name and the label."""
    _scan(clean_tree / relative, 905, fmt="PNG" if relative.endswith(".png") else "JPEG")
    report = _only_problem(clean_tree, "file names naming another class")
    assert report.mismatched_prefix == [relative]
    assert f"  {relative} (named {named}, labelled {label})" in str(report)


@pytest.mark.parametrize(
    "names",
    [
        ["scan_01.png"],
        ["CNV-1-2-3.jpeg", "CNV 905 1.jpeg", "IMG_0001.JPG", "CNV-905.jpeg", "Copy of CNV-9-1.png"],
    ],
)
def test_names_without_a_patient_id_are_counted_with_examples(
    clean_tree: Path, names: list[str]
) -> None:
    for number, name in enumerate(names):
        fmt = "PNG" if name.lower().endswith(".png") else "JPEG"
        _scan(clean_tree / "train" / "CNV" / name, 910 + number, fmt=fmt)
    report = _only_problem(clean_tree, "unparsed patient ids")
    assert report.unparsed_patient_ids.count == len(names)
    assert report.unparsed_patient_ids.examples == sorted(f"train/CNV/{n}" for n in names)
    assert "name each file CLASS-PATIENT-N.jpeg" in str(report)


def test_many_unparsed_names_keep_five_examples(clean_tree: Path) -> None:
    for number in range(8):
        _scan(clean_tree / "train" / "CNV" / f"scan_{number}.png", 920 + number, fmt="PNG")
    report = audit(clean_tree)
    assert report.unparsed_patient_ids.count == 8
    assert report.unparsed_patient_ids.examples == [f"train/CNV/scan_{n}.png" for n in range(5)]
    assert report.to_dict()["unparsed_patient_ids"]["count"] == 8
    table = str(report)
    assert "images without a patient id in their name: 8 (the leakage check" in table
    assert "  train/CNV/scan_4.png\n  ... and 3 more\n" in table


def test_renamed_copies_of_one_patient_are_seen_leaking(clean_tree: Path) -> None:
    """The 0.1 audit missed these three names: now they are one patient, in two splits."""
    _scan(clean_tree / "train" / "CNV" / "CNV_4370501_96.jpeg", 930)
    _scan(clean_tree / "train" / "CNV" / "CNV-4370501-7-copy.jpeg", 931)
    _scan(clean_tree / "val" / "CNV" / "cnv-4370501-55.JPEG", 932)
    _scan(clean_tree / "test" / "DME" / "DME-04370501-2.jpeg", 933)  # leading zero
    report = _only_problem(clean_tree, "leakage across splits")
    assert report.cross_split_patients == {"4370501": {"train": 2, "val": 1, "test": 1}}
    assert report.unparsed_patient_ids.count == 0


@pytest.mark.parametrize(
    ("size", "plausible"),
    [
        ((96, 80), True),
        ((64, 64), True),
        ((512, 64), True),  # 8:1 exactly
        ((4096, 512), True),
        ((63, 496), False),
        ((512, 16), False),
        ((4097, 600), False),
        ((520, 64), False),  # aspect 8.1
        ((64, 600), False),
    ],
)
def test_size_bounds(clean_tree: Path, size: tuple[int, int], plausible: bool) -> None:
    path = clean_tree / "train" / "CNV" / "CNV-940-1.png"
    Image.linear_gradient("L").resize(size).save(path)
    report = audit(clean_tree)
    if plausible:
        assert report.ok
        return
    assert report.problems == ["implausible sizes"]
    key = f"{size[0]}x{size[1]}"
    assert report.implausible_sizes == {key: ProblemFiles(1, ["train/CNV/CNV-940-1.png"])}
    assert f"  {key}: 1 (e.g. train/CNV/CNV-940-1.png)" in str(report)
    assert "each side must be 64-4096 px and the aspect ratio at most 8:1" in str(report)


@pytest.mark.parametrize(
    ("size", "why"),
    [((1, 1), "it is 1 x 1 pixels"), ((512, 8), "one side 64 times the other")],
)
def test_sizes_the_data_sets_refuse_are_unreadable(
    clean_tree: Path, size: tuple[int, int], why: str
) -> None:
    path = clean_tree / "train" / "CNV" / "CNV-940-1.png"
    Image.linear_gradient("L").resize(size).save(path)
    report = audit(clean_tree)
    assert report.problems == ["unreadable images"]
    assert why in str(report)
    with pytest.raises(UnreadableImageError, match=why):
        load_image(path)


def test_what_the_data_sets_refuse_the_audit_calls_unreadable(clean_tree: Path) -> None:
    folder = clean_tree / "train" / "CNV"
    twelve_bit = np.arange(96 * 80, dtype=np.uint16).reshape(80, 96) % 4081
    Image.fromarray(twelve_bit).save(folder / "CNV-950-1.png")  # 12-bit data in 16 bits
    frames = [Image.linear_gradient("L").resize((96, 80)) for _ in range(3)]
    frames[0].save(folder / "CNV-951-1.tif", save_all=True, append_images=frames[1:])
    report = audit(clean_tree)
    assert report.problems == ["unreadable images"]
    text = str(report)
    assert "brightest pixel is 4080 of 65535" in text
    assert "it holds 3 frames" in text
    for name in ("CNV-950-1.png", "CNV-951-1.tif"):
        with pytest.raises(UnreadableImageError):
            load_image(folder / name)


def test_size_bounds_can_be_set(clean_tree: Path) -> None:
    report = audit(clean_tree, min_side=81, max_side=200, max_aspect=1.1)
    assert list(report.implausible_sizes) == ["96x80"]
    assert report.implausible_sizes["96x80"].count == 12
    assert report.size_bounds == (81, 200, 1.1)
    assert "sides 81-200 px, aspect <= 1.1" in str(report)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_side": 0}, r"min_side must be a positive int \(pixels\), got 0"),
        ({"max_side": 64.5}, r"max_side must be a positive int \(pixels\), got 64\.5"),
        ({"min_side": 600, "max_side": 500}, r"min_side must be at most max_side"),
        ({"max_aspect": 0.5}, r"max_aspect must be a number >= 1"),
        ({"max_aspect": float("nan")}, r"max_aspect must be a number >= 1 and finite .* got nan"),
        ({"max_aspect": float("inf")}, r"max_aspect must be a number >= 1 and finite .* got inf"),
        ({"max_aspect": "8"}, r"max_aspect must be a number >= 1 .* got '8'"),
    ],
)
def test_bad_size_bounds_are_refused(
    clean_tree: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        audit(clean_tree, **kwargs)  # type: ignore[arg-type]


def test_an_empty_root_is_refused_not_read_as_the_current_folder(
    clean_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(clean_tree)  # a Kermany folder: '' would audit it
    with pytest.raises(ValueError, match=r"root is an empty path, which would mean the current"):
        audit("")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"root": None}, r"root must be a folder path \(str or path\), got NoneType"),
        ({"progress": "yes"}, r"progress must be True, False or a function .* got 'yes'"),
    ],
)
def test_a_root_or_progress_of_the_wrong_kind_is_refused(
    clean_tree: Path, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"root": clean_tree, **kwargs}
    with pytest.raises(TypeError, match=message):
        audit(**arguments)  # type: ignore[arg-type]


def test_bit_depths_are_reported_and_1_bit_is_implausible(clean_tree: Path) -> None:
    sixteen = np.arange(96 * 80, dtype=np.uint16).reshape(80, 96) * 8
    Image.fromarray(sixteen).save(clean_tree / "train" / "CNV" / "CNV-950-1.png")
    report = audit(clean_tree)
    assert report.ok  # 16-bit scans are plausible: the model converts them by bit depth
    assert report.bit_depths == {"8": 12, "16": 1}
    assert report.modes == {"I;16": 1, "L": 12}
    assert "bit depths: 8-bit 12, 16-bit 1" in str(report)
    _scan(clean_tree / "train" / "DME" / "DME-951-1.png", 951, mode="1", fmt="PNG")
    report = _only_problem(clean_tree, "implausible bit depths")
    assert report.implausible_bit_depths == {"1": ProblemFiles(1, ["train/DME/DME-951-1.png"])}
    assert report.bit_depths == {"1": 1, "8": 12, "16": 1}
    assert "  mode 1 (1-bit): 1 (e.g. train/DME/DME-951-1.png)" in str(report)


def _flat(value: int, size: tuple[int, int] = (96, 80), dtype: type = np.uint8) -> Image.Image:
    width, height = size
    return Image.fromarray(np.full((height, width), value, dtype))


@pytest.mark.parametrize(
    ("suffix", "image"),
    [
        (".png", _flat(0)),  # black
        (".jpeg", _flat(255)),  # white
        (".jpg", _flat(128).convert("RGB")),
        (".tif", _flat(40_000, dtype=np.uint16)),  # 16-bit
    ],
)
def test_flat_images_are_a_problem(clean_tree: Path, suffix: str, image: Image.Image) -> None:
    # an all-black or all-white export passed the audit: "OK", exit 0
    path = clean_tree / "train" / "DME" / f"DME-900-1{suffix}"
    image.save(path)
    report = _only_problem(clean_tree, "flat images")
    assert report.flat_images == ProblemFiles(1, [f"train/DME/{path.name}"])
    assert "flat images: 1 (every pixel one value" in str(report)
    assert json.loads(report.to_json())["flat_images"]["count"] == 1


def test_flatness_is_judged_on_the_grey_levels_the_model_gets(clean_tree: Path) -> None:
    # judged on the container's bit depth: a 32-bit TIFF of 8-bit levels (read on the 8-bit
    # scale) was "flat", and a blank float TIFF of levels 100 and 101 was not
    levels = np.random.default_rng(0).integers(0, 256, (80, 96)).astype(np.int32)
    Image.fromarray(levels, "I").save(clean_tree / "train" / "CNV" / "CNV-903-1.tif")
    blank = np.full((80, 96), 100.0, np.float32)
    blank[::2] = 101.0
    Image.fromarray(blank, "F").save(clean_tree / "train" / "DME" / "DME-904-1.tif")
    report = audit(clean_tree)
    assert report.problems == ["implausible bit depths", "flat images"]  # 32-bit: both
    assert report.flat_images == ProblemFiles(1, ["train/DME/DME-904-1.tif"])


def test_dark_or_faint_scans_are_not_flat(clean_tree: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 4, (80, 96)).astype(np.uint8)  # 4 levels
    Image.fromarray(pixels).save(clean_tree / "train" / "DME" / "DME-901-1.png")
    ramp = np.tile(np.arange(96, dtype=np.uint16) * 600, (80, 1))  # 16-bit, 0.9% per level
    Image.fromarray(ramp).save(clean_tree / "train" / "CNV" / "CNV-902-1.png")
    assert audit(clean_tree).ok


def test_16_bit_colour_is_counted_as_16_bit(clean_tree: Path) -> None:
    # PIL reads it as 8-bit "RGB": the audit called it 8-bit
    values = np.tile(np.arange(96, dtype=np.uint16) * 680, (80, 1))  # full 16-bit range
    png16(clean_tree / "train" / "CNV" / "CNV-950-1.png", values, colour_type=2)
    report = audit(clean_tree)
    assert report.ok
    assert report.modes == {"L": 12, "RGB;16": 1}
    assert report.bit_depths == {"8": 12, "16": 1}
    assert (report.grayscale, report.colour) == (12, 1)


@pytest.mark.parametrize(
    ("mode", "image_format", "bits"),
    [
        ("1", "PNG", 1),
        ("L", "JPEG", 8),
        ("P", "PNG", 8),
        ("RGB", "JPEG", 8),
        ("CMYK", "JPEG", 8),
        ("I;16", "PNG", 16),
        ("I;16B", "PNG", 16),
        ("I", "PNG", 16),
        ("I", "TIFF", 32),
        ("F", "TIFF", 32),
    ],
)
def test_bit_depth(mode: str, image_format: str, bits: int) -> None:
    assert bit_depth(mode, image_format) == bits


# --- files that cannot be read: recorded, and the audit goes on ------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` (its pixels are never there)."""
    data = io.BytesIO()
    Image.new("L", (1, 1)).save(data, format="PNG")
    png = bytearray(data.getvalue())
    png[16:24] = struct.pack(">II", width, height)  # the IHDR chunk's data starts at 16
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def test_a_decompression_bomb_is_unreadable_and_the_audit_goes_on(clean_tree: Path) -> None:
    bomb = clean_tree / "train" / "CNV" / "CNV-960-1.png"
    bomb.write_bytes(_png_claiming(100_000, 100_000))
    report = _only_problem(clean_tree, "unreadable images")
    assert list(report.unreadable) == ["train/CNV/CNV-960-1.png"]
    assert report.unreadable["train/CNV/CNV-960-1.png"] == (  # the loaders' words, with the fix
        "possible decompression bomb: its header claims 10,000,000,000 pixels, more than the "
        f"limit of {Image.MAX_IMAGE_PIXELS:,} pixels (PIL.Image.MAX_IMAGE_PIXELS); if the file "
        "is a genuine image, raise that limit before reading it"
    )
    assert report.total == 13
    assert sum(report.sizes.values()) == 12


def test_images_over_pillows_warning_limit_are_not_decoded(
    clean_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between MAX_IMAGE_PIXELS and twice it Pillow only warns: the audit treats it as a bomb."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 96 * 80 - 1)
    report = audit(clean_tree)
    assert len(report.unreadable) == 12
    assert set(report.unreadable.values()) == {
        "possible decompression bomb: its header claims 7,680 pixels, more than the limit of "
        "7,679 pixels (PIL.Image.MAX_IMAGE_PIXELS); if the file is a genuine image, raise that "
        "limit before reading it"
    }


def test_any_decoder_failure_is_recorded_per_file(
    clean_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = Image.open

    def failing_open(source: object, *args: object, **kwargs: object) -> Image.Image:
        image = real_open(source, *args, **kwargs)  # type: ignore[arg-type]
        if image.size == (96, 80) and failing_open.calls == 0:  # type: ignore[attr-defined]
            failing_open.calls += 1  # type: ignore[attr-defined]
            raise ZeroDivisionError("a decoder bug")
        return image

    failing_open.calls = 0  # type: ignore[attr-defined]
    monkeypatch.setattr(Image, "open", failing_open)
    report = audit(clean_tree)
    assert list(report.unreadable.values()) == [
        "cannot be decoded (ZeroDivisionError: a decoder bug)"
    ]
    assert sum(report.sizes.values()) == 11


def test_a_broken_link_is_unreadable(clean_tree: Path) -> None:
    (clean_tree / "train" / "CNV" / "CNV-961-1.jpeg").symlink_to("nowhere.jpeg")
    report = _only_problem(clean_tree, "unreadable images")
    assert report.unreadable == {
        "train/CNV/CNV-961-1.jpeg": "no such file (a broken symbolic link to 'nowhere.jpeg', "
        "which does not exist): remove the link, or restore the file it leads to"
    }


# --- listed, not problems: hidden files, loops ----------------------------------------------


def test_hidden_files_are_stray_and_hidden_folders_skipped(clean_tree: Path) -> None:
    (clean_tree / "train" / "CNV" / ".DS_Store").write_bytes(b"\0")
    (clean_tree / "train" / "CNV" / "._CNV-100-1.jpeg").write_bytes(b"\0")
    _scan(clean_tree / "train" / "CNV" / ".thumbnails" / "DME-970-1.jpeg", 970)
    _scan(clean_tree / "train" / ".cache" / "CNV-971-1.jpeg", 971)
    report = audit(clean_tree)
    assert report.ok
    assert report.stray_files == ["train/CNV/.DS_Store", "train/CNV/._CNV-100-1.jpeg"]
    assert report.total == 12


def test_a_symlinked_folder_looping_back_is_listed_and_skipped(clean_tree: Path) -> None:
    (clean_tree / "train" / "CNV" / "again").symlink_to(clean_tree / "train")
    (clean_tree / "test" / "DME" / "root").symlink_to(clean_tree)
    report = audit(clean_tree)
    assert report.symlink_loops == ["test/DME/root", "train/CNV/again"]
    assert report.total == 12
    assert report.ok
    assert (
        "symbolic links that loop back or lead to a folder or image read anyway, skipped: 2 "
        "(remove the links)"
    ) in str(report)


def test_problem_lists_are_cut_at_ten_lines_in_the_table(clean_tree: Path) -> None:
    for number in range(13):
        _scan(clean_tree / "train" / "CNV" / f"DME-98{number:02d}-1.jpeg", 980 + number)
    report = audit(clean_tree)
    assert len(report.mismatched_prefix) == 13
    assert "  ... and 3 more (see --json)" in str(report)
    assert len(report.to_dict()["mismatched_prefix"]) == 13


def test_system_folders_are_listed_and_left_out_not_problems(clean_tree: Path) -> None:
    # a NAS's thumbnails were counted as scans; train/__MACOSX was "an unknown class folder"
    _scan(clean_tree / "train" / "CNV" / "@eaDir" / "CNV-100-1.jpeg" / "SYNOFILE_THUMB_M.jpg", 1)
    (clean_tree / "train" / "__MACOSX" / "CNV").mkdir(parents=True)
    (clean_tree / "train" / "__MACOSX" / "CNV" / "._CNV-100-1.jpeg").write_bytes(b"\0\5\26\7")
    (clean_tree / "#recycle").mkdir()
    report = audit(clean_tree)
    assert report.ok
    assert report.total == 12
    assert report.system_folders == ["#recycle", "train/CNV/@eaDir", "train/__MACOSX"]
    assert "system folders left out, not read: 3" in str(report)
    assert json.loads(report.to_json())["system_folders"] == report.system_folders


# --- empty files ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CNV-962-1.jpeg", "CNV-962-1.png", "CNV-962-1.dcm"])
def test_an_empty_file_is_said_to_be_empty(clean_tree: Path, name: str) -> None:
    (clean_tree / "train" / "CNV" / name).touch()
    report = _only_problem(clean_tree, "unreadable images")
    assert report.unreadable == {f"train/CNV/{name}": EMPTY_FILE}
    assert f"train/CNV/{name}: the file is empty, 0 bytes" in str(report)


def test_empty_files_in_two_splits_are_no_leakage(clean_tree: Path) -> None:
    """Two files cut short share their 0 bytes, not a scan: no duplicate group."""
    (clean_tree / "train" / "CNV" / "CNV-963-1.jpeg").touch()
    (clean_tree / "test" / "DME" / "DME-964-1.jpeg").touch()
    report = _only_problem(clean_tree, "unreadable images")
    assert report.duplicates == []
    assert set(report.unreadable.values()) == {EMPTY_FILE}


# --- EXIF orientation: listed, not a problem ------------------------------------------------


def _tag_orientation(path: Path, orientation: int, fmt: str = "JPEG") -> None:
    with Image.open(path) as image:
        image.load()
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(path, format=fmt, exif=exif)


def test_images_a_photo_viewer_turns_are_listed_not_problems(clean_tree: Path) -> None:
    """Windows Photos and macOS Preview "rotate" a JPEG by its EXIF tag alone: the pixels
    the model sees are not those the user saw."""
    _tag_orientation(clean_tree / "train" / "CNV" / "CNV-100-1.jpeg", 6)
    _tag_orientation(clean_tree / "test" / "DME" / "DME-109-1.jpeg", 3)
    _tag_orientation(clean_tree / "val" / "NORMAL" / "NORMAL-107-1.jpeg", 1)  # as stored
    png = _scan(clean_tree / "val" / "DME" / "DME-965-1.png", 965, fmt="PNG")
    _tag_orientation(png, 8, fmt="PNG")
    report = audit(clean_tree)
    assert report.ok
    assert report.exif_rotated == ProblemFiles(
        3, ["test/DME/DME-109-1.jpeg", "train/CNV/CNV-100-1.jpeg", "val/DME/DME-965-1.png"]
    )
    assert json.loads(report.to_json())["exif_rotated"] == report.exif_rotated.to_dict()
    table = str(report)
    assert (
        "images with an EXIF orientation tag (not a problem, but check): 3 (a photo viewer "
        "shows them rotated or mirrored; their pixels are used as stored, not as a photo "
        "viewer shows them: rotate the pixels (e.g. PIL.ImageOps.exif_transpose) if the "
        "rotation is meant)"
    ) in table
    assert "  train/CNV/CNV-100-1.jpeg" in table
    assert table.splitlines()[-1] == "OK"


def test_no_orientation_tag_lists_nothing(clean_tree: Path) -> None:
    report = audit(clean_tree)
    assert report.exif_rotated == ProblemFiles()
    assert "EXIF orientation tag (" not in str(report)
    assert json.loads(report.to_json())["exif_rotated"] == {"count": 0, "examples": []}


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # PIL's, as it opens the file
def test_a_malformed_exif_block_is_no_fault_of_the_pixels(clean_tree: Path) -> None:
    path = clean_tree / "train" / "CNV" / "CNV-100-1.jpeg"
    with Image.open(path) as image:
        image.load()
        image.save(path, format="JPEG", exif=b"Exif\x00\x00MM\x00*\xff\xff\xff\xff")
    report = audit(clean_tree)
    assert report.ok
    assert report.exif_rotated.count == 0


# --- names with control characters ------------------------------------------------------------


def test_names_with_control_characters_are_quoted_in_the_table_raw_in_json(
    clean_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a newline in a name split one finding over two lines of the table
    from retinalnet.cli import main

    planted = {
        "unreadable": "train/CNV/CNV-300-1\n.jpeg",
        "stray_files": "train/CNV/notes\t1.txt",
        "loose_images": "train/NORMAL-301-1\n.jpeg",
        "nested_images": "train/CNV/DME/DME-302\t-1.jpeg",
        "mismatched_prefix": "train/CNV/DME-303-1\t\n.jpeg",
        "unknown_class_folders": "train/CN\nV",
    }
    (clean_tree / planted["unreadable"]).write_text("not a scan")
    (clean_tree / planted["stray_files"]).write_text("stray")
    _scan(clean_tree / planted["loose_images"], 301)
    _scan(clean_tree / planted["nested_images"], 302)
    _scan(clean_tree / planted["mismatched_prefix"], 303)
    _scan(clean_tree / planted["unknown_class_folders"] / "CNV-304-1.jpeg", 304)
    unparsed = _scan(clean_tree / "train" / "CNV" / "scan\n305.jpeg", 305)
    shutil.copy(unparsed, clean_tree / "test" / "CNV" / "copy\t306.jpeg")  # a duplicate
    report = audit(clean_tree)
    data = report.to_dict()
    for key, name in planted.items():
        assert name in data[key], key
    assert "train/CNV/scan\n305.jpeg" in data["unparsed_patient_ids"]["examples"]

    assert main(["audit", str(clean_tree), "-q"]) == 1
    table = capsys.readouterr().out
    assert table.rstrip("\n") == str(report)
    for name in [*planted.values(), "train/CNV/scan\n305.jpeg", "test/CNV/copy\t306.jpeg"]:
        assert repr(name) in table, name
    assert "\t" not in table
    lines = table.splitlines()
    assert "  'train/CNV/CNV-300-1\\n.jpeg': not a recognised image format" in lines
    assert "  'train/CNV/DME/DME-302\\t-1.jpeg' -> train/DME/" in lines
    assert not [line for line in lines if line.startswith(".jpeg") or line.startswith("V ")]

    assert main(["audit", str(clean_tree), "-q", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == data  # the names as they are


def test_problem_files_quote_names_with_control_characters() -> None:
    files = ProblemFiles(2, ["train/CNV/new\nline.jpeg", "train/CNV/CNV-1-1.jpeg"])
    assert str(files) == "2 (e.g. 'train/CNV/new\\nline.jpeg', train/CNV/CNV-1-1.jpeg)"
    assert files.to_dict()["examples"][0] == "train/CNV/new\nline.jpeg"


# --- a study of some of the classes -------------------------------------------------------


def _without(root: Path, *classes: str) -> Path:
    """``root`` without the folders of ``classes`` in any split."""
    for split in ("train", "val", "test"):
        for name in classes:
            shutil.rmtree(root / split / name)
    return root


def test_classes_with_no_folder_in_any_split_are_a_note_not_a_problem(
    clean_tree: Path,
) -> None:
    # was: "PROBLEMS: empty classes" (train/DME: no folder, ...), exit 1, for the user
    # guide's study of some of the classes, which no option could audit
    report = audit(_without(clean_tree, "DME", "DRUSEN"))
    assert report.ok
    assert report.empty_classes == {}
    assert report.absent_classes == ["DME", "DRUSEN"]
    assert report.to_dict()["absent_classes"] == ["DME", "DRUSEN"]
    assert (
        "classes with no folder in any split: DME, DRUSEN (not a problem: a study of some of "
        "the classes; pass --classes CNV NORMAL, classes= in Python, to check only those)"
    ) in str(report)


def test_a_class_missing_from_some_splits_only_stays_a_problem(clean_tree: Path) -> None:
    _without(clean_tree, "DRUSEN")
    shutil.rmtree(clean_tree / "test" / "DME")
    report = _only_problem(clean_tree, "empty classes")
    assert report.empty_classes == {"test/DME": "no folder"}
    assert report.absent_classes == ["DRUSEN"]


def test_one_class_alone_is_no_study(clean_tree: Path) -> None:
    report = _only_problem(_without(clean_tree, "CNV", "DME", "DRUSEN"), "empty classes")
    assert report.absent_classes == []
    assert len(report.empty_classes) == 9


def test_audit_checks_only_the_classes_of_a_study(clean_tree: Path) -> None:
    shutil.rmtree(clean_tree / "val" / "DME")  # a class the study leaves out: not a problem
    _scan(clean_tree / "test" / "DRUSEN" / "DRUSEN-100-1.jpeg", 50)  # patient 100 of train/CNV
    report = audit(clean_tree, classes=["NORMAL", "CNV"])
    assert report.ok
    assert report.classes == ("CNV", "NORMAL")
    assert report.counts == {split: {"CNV": 1, "NORMAL": 1} for split in ("train", "val", "test")}
    assert report.cross_split_patients == {}  # the DRUSEN image is not read
    assert report.other_class_folders == {
        "train/DME": 1, "train/DRUSEN": 1, "val/DRUSEN": 1, "test/DME": 1, "test/DRUSEN": 2,
    }  # fmt: skip
    table = str(report)
    assert "class folders left out, not read: 5 (classes not among CNV, NORMAL" in table
    assert "checked (classes CNV, NORMAL): class folders" in table
    assert audit(clean_tree, classes=["CNV", "DRUSEN"]).cross_split_patients == {
        "100": {"train": 1, "test": 1}
    }


def test_a_class_of_the_study_without_a_folder_is_a_problem(clean_tree: Path) -> None:
    _without(clean_tree, "DME")
    report = audit(clean_tree, classes=["CNV", "DME"])
    assert report.problems == ["empty classes"]
    assert report.absent_classes == []
    assert set(report.empty_classes) == {"train/DME", "val/DME", "test/DME"}


@pytest.mark.parametrize(
    ("classes", "error", "match"),
    [
        ("CNV", TypeError, "classes must be a list of class names"),
        (["CNV"], ValueError, "keeps 1 class"),
        (["CNV", "AMD"], ValueError, "class 'AMD' is not one of CNV, DME, DRUSEN, NORMAL"),
    ],
)
def test_classes_that_are_no_study_are_refused_before_reading(
    tmp_path: Path, classes: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        audit(tmp_path / "not read", classes=classes)  # type: ignore[arg-type]


def test_the_audit_command_takes_classes(
    clean_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retinalnet.cli import main

    _without(clean_tree, "DME", "DRUSEN")
    assert main(["audit", str(clean_tree), "-q"]) == 0
    capsys.readouterr()
    assert main(["audit", str(clean_tree), "-q", "--classes", "NORMAL", "CNV", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["classes"], data["absent_classes"], data["ok"]) == (["CNV", "NORMAL"], [], True)
    assert main(["audit", str(clean_tree), "-q", "--classes", "CNV", "DME"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "PROBLEMS: empty classes"
    assert main(["audit", str(clean_tree), "-q", "--classes", "CNV"]) == 1
    assert capsys.readouterr().err == (
        "retinalnet audit: error: --classes CNV keeps 1 class(es); a classifier needs at "
        "least two, e.g. CNV NORMAL\n"
    )


def test_a_small_file_is_read_without_reserving_the_whole_file_limit(tmp_path: Path) -> None:
    # read(64 MiB + 1) reserves 64 MiB for each scan of a few kilobytes (bench_audit: 1,078
    # bytes per file at 84,484 files, 215 before)
    path = tmp_path / "CNV-1-1.jpeg"
    Image.new("L", (64, 64), 90).save(path)
    tracemalloc.start()
    try:
        digest = inspect_file(str(path))[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest == hashlib.sha256(path.read_bytes()).digest()
    assert peak < 2**20


def test_a_file_that_grows_while_read_is_read_to_the_limit_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "CNV-1-1.jpeg"
    path.write_bytes(bytes(100))
    monkeypatch.setattr(_audit_file, "_READ_WHOLE", 40)
    stat = os.fstat

    def shrunk(fd: int) -> os.stat_result:  # the size when stat'ed: 10 bytes
        values = list(stat(fd))
        values[6] = 10
        return os.stat_result(values)

    monkeypatch.setattr(_audit_file.os, "fstat", shrunk)
    with path.open("rb") as file:
        assert _audit_file._first_bytes(file) == bytes(41)
