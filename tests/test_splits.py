"""Tests for retinalnet.datasets._splits: patient-aware splits and manifest files."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retinalnet.datasets import (
    KERMANY_CLASSES,
    KermanyOCT,
    ManifestRow,
    patient_split,
    read_manifest,
    write_manifest,
)


def _scan(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32), np.uint8)  # smallest input
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "L").save(path, format="PNG")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """train: 40 CNV, 20 DME, 10 DRUSEN, 30 NORMAL patients with one image each, plus patient
    500 with three CNV images; test: 2 images per class from other patients."""
    root = tmp_path / "OCT2017"
    seed = 0
    counts = {"CNV": 40, "DME": 20, "DRUSEN": 10, "NORMAL": 30}
    patient = 1
    for name, count in counts.items():
        for _ in range(count):
            _scan(root / "train" / name / f"{name}-{patient}-1.png", seed := seed + 1)
            patient += 1
    for number in (1, 2, 3):
        _scan(root / "train" / "CNV" / f"CNV-500-{number}.png", seed := seed + 1)
    for name in KERMANY_CLASSES:
        for _ in range(2):
            _scan(root / "test" / name / f"{name}-{patient}-1.png", seed := seed + 1)
            patient += 1
    return root


def _patients(rows: list[ManifestRow], split: str) -> set[str | None]:
    return {row.patient for row in rows if row.split == split}


def test_no_patient_is_in_two_splits(tree: Path) -> None:
    rows = patient_split(tree, val_fraction=0.2, seed=0)
    assert _patients(rows, "train").isdisjoint(_patients(rows, "val"))
    assert _patients(rows, "train").isdisjoint(_patients(rows, "test"))
    assert {row.split for row in rows if row.patient == "500"} in ({"train"}, {"val"})


def test_validation_is_stratified_within_one_per_class(tree: Path) -> None:
    rows = patient_split(tree, val_fraction=0.2, seed=3)
    val = Counter(row.label for row in rows if row.split == "val" and row.patient != "500")
    for name, patients in {"CNV": 41, "DME": 20, "DRUSEN": 10, "NORMAL": 30}.items():
        assert abs(val[name] - 0.2 * patients) <= 1, name
    assert len(rows) == 103 + 8


def test_the_same_seed_gives_the_same_split(tree: Path) -> None:
    first = patient_split(tree, val_fraction=0.25, seed=7)
    assert patient_split(tree, val_fraction=0.25, seed=7) == first
    assert patient_split(tree, val_fraction=0.25, seed=8) != first


def test_the_test_split_is_untouched(tree: Path) -> None:
    rows = patient_split(tree, val_fraction=0.3, seed=0)
    test = KermanyOCT(tree, "test")
    assert [(str(tree / row.path), row.label) for row in rows if row.split == "test"] == [
        (path, test.classes[target]) for path, target in test.samples
    ]


def test_the_official_val_folder_joins_the_pool(tree: Path) -> None:
    _scan(tree / "val" / "DME" / "DME-900-1.png", 1000)
    rows = patient_split(tree, val_fraction=0.2, seed=0)
    assert [row.split for row in rows if row.patient == "900"] in (["train"], ["val"])
    assert not any(row.path.startswith("val/") and row.split == "test" for row in rows)


def test_a_misnamed_val_folder_left_out_of_the_pool_is_warned_of(tree: Path) -> None:
    """A ``valid/`` folder's images were left out of the split without a word (every other
    door names it: KermanyOCT, count_images, audit)."""
    _scan(tree / "valid" / "DME" / "DME-900-1.png", 1000)
    with pytest.warns(UserWarning, match=r"not in the split of .*'valid' \(1 image\) looks "):
        rows = patient_split(tree, val_fraction=0.2, seed=0)
    assert not any(row.patient == "900" for row in rows)


def test_drop_test_patients(tree: Path) -> None:
    _scan(tree / "train" / "DME" / "DME-101-7.png", 2000)  # patient 101 is a test patient
    kept = patient_split(tree, val_fraction=0.2, seed=0, drop_test_patients=True)
    assert "train/DME/DME-101-7.png" not in {row.path for row in kept}
    every = patient_split(tree, val_fraction=0.2, seed=0)
    assert "train/DME/DME-101-7.png" in {row.path for row in every}


def test_drop_duplicates_keeps_the_test_copy_and_the_first_train_copy(tree: Path) -> None:
    shutil.copy(tree / "train/CNV/CNV-1-1.png", tree / "train/CNV/CNV-1-2.png")
    shutil.copy(tree / "test/DME/DME-104-1.png", tree / "train/DME/DME-600-1.png")
    rows = patient_split(tree, val_fraction=0.2, seed=0, drop_duplicates=True)
    paths = {row.path for row in rows}
    assert "train/CNV/CNV-1-1.png" in paths
    assert "train/CNV/CNV-1-2.png" not in paths
    assert "train/DME/DME-600-1.png" not in paths
    assert "test/DME/DME-104-1.png" in paths
    assert len(rows) == 111


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_manifest_round_trip(tree: Path, tmp_path: Path, suffix: str) -> None:
    rows = patient_split(tree, val_fraction=0.2, seed=0)
    rows.append(ManifestRow("train/CNV/scan.png", "CNV", None, "train"))
    path = write_manifest(rows, tmp_path / "out" / f"split{suffix}")
    assert read_manifest(path) == rows


def test_csv_manifest_has_the_documented_columns(tmp_path: Path) -> None:
    rows = [ManifestRow("train/CNV/CNV-1-1.jpeg", "CNV", "1", "val")]
    path = write_manifest(rows, tmp_path / "split.csv")
    assert path.read_text().splitlines() == [
        "path,label,patient,split",
        "train/CNV/CNV-1-1.jpeg,CNV,1,val",
    ]
    json_path = write_manifest(rows, tmp_path / "split.json")
    assert json.loads(json_path.read_text()) == [
        {"path": "train/CNV/CNV-1-1.jpeg", "label": "CNV", "patient": "1", "split": "val"}
    ]


def test_a_manifest_edited_in_a_spreadsheet_on_windows_reads_as_written(
    tree: Path, tmp_path: Path
) -> None:
    rows = patient_split(tree, val_fraction=0.2, seed=0)
    written = write_manifest(rows, tmp_path / "split.csv").read_text().splitlines()
    _, *body = written
    edited = tmp_path / "edited.csv"
    edited.write_text(
        "\r\n".join(
            [
                "Path, Label ,PATIENT,split",  # another case, spaces around names
                *(line.replace("/", "\\") for line in body),  # Windows separators
                ",,,",  # a row the spreadsheet cleared
            ]
        )
    )
    # was: "label '' is not one of ...", then "missing column(s) path", then no such file
    # the paths as written: a `\` is read as `/` where the rows are matched to files (a name
    # may hold one)
    assert read_manifest(edited) == [
        ManifestRow(row.path.replace("/", "\\"), row.label, row.patient, row.split) for row in rows
    ]
    val = KermanyOCT.from_manifest(edited, "val", root=tree)
    assert all(Path(path).is_file() for path, _ in val.samples)


def test_dataset_from_manifest(tree: Path, tmp_path: Path) -> None:
    rows = patient_split(tree, val_fraction=0.2, seed=0)
    manifest = write_manifest(rows, tmp_path / "split.csv")
    val = KermanyOCT.from_manifest(manifest, "val", root=tree)
    expected = [row for row in rows if row.split == "val"]
    assert val.classes == list(KERMANY_CLASSES)
    assert val.samples == [(str(tree / row.path), val.class_to_idx[row.label]) for row in expected]
    assert val.targets == [val.class_to_idx[row.label] for row in expected]
    assert val.patient_ids == [row.patient for row in expected]
    image, target = val[0]
    assert isinstance(image, Image.Image)
    assert target == val.targets[0]


def test_manifest_paths_default_to_the_manifests_folder(tree: Path) -> None:
    manifest = write_manifest(patient_split(tree, seed=0), tree / "split.json")
    train = KermanyOCT.from_manifest(manifest, "train")
    assert Path(train.samples[0][0]).is_file()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": 0}, r"val_fraction must be a fraction in \(0, 1\).*got 0"),
        ({"val_fraction": 1.5}, r"got 1\.5"),
        (
            {"val_fraction": "0.1"},
            r"val_fraction must be a fraction in \(0, 1\), e\.g\. 0\.1, got '0\.1'$",
        ),
        ({"val_fraction": None}, r"val_fraction must be a fraction in \(0, 1\).*got None$"),
        ({"val_fraction": True}, r"val_fraction must be a fraction in \(0, 1\).*got True$"),
        ({"val_fraction": math.nan}, r"val_fraction must be a fraction in \(0, 1\).*got nan$"),
        ({"seed": "a"}, r"seed must be an int from 0 to 2\*\*32 - 1, got 'a'"),
        # was the split of seed 1: Python's random.Random folds the sign
        ({"seed": -1}, r"seed must be an int from 0 to 2\*\*32 - 1, got -1"),
    ],
)
def test_bad_split_arguments(tree: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        patient_split(tree, **kwargs)  # type: ignore[arg-type]


def test_bad_manifests_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end in \.csv or \.json"):
        write_manifest([], tmp_path / "split.txt")
    with pytest.raises(FileNotFoundError, match="retinalnet split"):
        read_manifest(tmp_path / "missing.csv")
    bad_label = tmp_path / "label.csv"
    bad_label.write_text("path,label,patient,split\na.png,GLAUCOMA,1,train\n")
    with pytest.raises(ValueError, match=r"row 1: label 'GLAUCOMA' is not one of CNV"):
        read_manifest(bad_label)
    missing = tmp_path / "missing-column.csv"
    missing.write_text("path,label\na.png,CNV\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) split \(found: 'path', 'label'\)"):
        read_manifest(missing)
    manifest = write_manifest([ManifestRow("a.png", "CNV", "1", "train")], tmp_path / "m.csv")
    with pytest.raises(ValueError, match=r"no rows for split 'val' \(it has: train\)"):
        KermanyOCT.from_manifest(manifest, "val")


# --- non-standard file names ----------------------------------------------------------------

_RENAMED = ["CNV_4370501_96.png", "CNV-4370501-7-copy.png", "cnv-4370501-55.PNG"]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("val_fraction", [0.1, 0.5])
def test_renamed_copies_of_one_patient_stay_in_one_split(
    tree: Path, seed: int, val_fraction: float
) -> None:
    """The three 0.1 leaks (``_``, a copy marker, lower case), leading zeros and a val-folder
    copy: one patient each time, and no patient in two splits for any seed."""
    for number, name in enumerate(_RENAMED):
        _scan(tree / "train" / "CNV" / name, 5000 + number)
    _scan(tree / "train" / "DME" / "DME-04370501-3.png", 5010)
    _scan(tree / "val" / "CNV" / "CNV-4370501-8 (1).png", 5011)
    rows = patient_split(tree, val_fraction=val_fraction, seed=seed)
    ours = [row for row in rows if row.patient is not None and row.patient.endswith("4370501")]
    assert len(ours) == 5
    assert len({row.split for row in ours}) == 1
    splits_of: dict[int, set[str]] = {}
    for row in rows:
        assert row.patient is not None
        if row.split != "test":
            splits_of.setdefault(int(row.patient), set()).add(row.split)
    assert all(len(splits) == 1 for splits in splits_of.values())


def test_names_without_a_patient_id_are_refused_by_default(tree: Path) -> None:
    for number in range(7):
        _scan(tree / "train" / "NORMAL" / f"scan_{number:02d}.png", 6000 + number)
    message = (
        r"7 image\(s\) under '.*' have no patient id in their file name "
        r"\('train/NORMAL/scan_00\.png', .*'train/NORMAL/scan_04\.png' and 2 more\), so their "
        r"patients could land in both train and val; name each file CLASS-PATIENT-N\.jpeg .*"
        r"or pass unparsed='own-group' \(CLI: --unparsed own-group\)"
    )
    with pytest.raises(ValueError, match=message):
        patient_split(tree, seed=0)


def test_own_group_splits_each_unnamed_file_alone_with_a_warning(tree: Path) -> None:
    _scan(tree / "train" / "NORMAL" / "scan_01.png", 6100)
    _scan(tree / "train" / "NORMAL" / "NORMAL-1-2-3.png", 6101)
    with pytest.warns(UserWarning, match=r"2 image\(s\) .* each is split as a patient of its own"):
        rows = patient_split(tree, val_fraction=0.2, seed=0, unparsed="own-group")
    unnamed = [row for row in rows if row.patient is None]
    assert sorted(row.path for row in unnamed) == [
        "train/NORMAL/NORMAL-1-2-3.png",
        "train/NORMAL/scan_01.png",
    ]


def test_unnamed_test_files_are_refused_only_when_test_patients_are_dropped(tree: Path) -> None:
    _scan(tree / "test" / "CNV" / "scan_01.png", 6200)
    assert len(patient_split(tree, seed=0)) == 112
    with pytest.raises(ValueError, match=r"1 image\(s\) .*'test/CNV/scan_01\.png'"):
        patient_split(tree, seed=0, drop_test_patients=True)


def test_drop_test_patients_matches_ids_despite_renaming(tree: Path) -> None:
    _scan(tree / "train" / "DME" / "dme_0101_7.png", 2000)  # patient 101 is a test patient
    kept = patient_split(tree, val_fraction=0.2, seed=0, drop_test_patients=True)
    assert "train/DME/dme_0101_7.png" not in {row.path for row in kept}


def test_unknown_unparsed_policy_is_refused(tree: Path) -> None:
    message = r"unparsed must be one of 'refuse', 'own-group', got 'ignore'"
    with pytest.raises(ValueError, match=message):
        patient_split(tree, unparsed="ignore")


# --- a manifest never puts one file, or one patient, in two places --------------------------


def _manifest_with(tree: Path, tmp_path: Path, extra: list[str], suffix: str = ".csv") -> Path:
    """``retinalnet split``'s manifest of ``tree``, with ``extra`` CSV rows appended."""
    path = write_manifest(patient_split(tree, val_fraction=0.2, seed=0), tmp_path / "split.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, *extra]) + "\n")
    if suffix == ".json":
        json_path = tmp_path / "split.json"
        json_path.write_text(json.dumps([r.__dict__ for r in _rows_of(path)]))
        return json_path
    return path


def _rows_of(csv_path: Path) -> list[ManifestRow]:
    import csv

    with csv_path.open(newline="") as file:
        return [
            ManifestRow(r["path"], r["label"], r["patient"] or None, r["split"])
            for r in csv.DictReader(file)
        ]


def _row_number(path: Path, file: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines()) if line.startswith(file))


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_a_file_in_train_and_val_is_refused(tree: Path, tmp_path: Path, suffix: str) -> None:
    """The auditor's leak: a copy of a train row with split val, appended."""
    rows = patient_split(tree, val_fraction=0.2, seed=0)
    leaked = next(row for row in rows if row.split == "train")
    line = f"{leaked.path},{leaked.label},{leaked.patient},val"
    manifest = _manifest_with(tree, tmp_path, [line], suffix)
    first = _row_number(tmp_path / "split.csv", leaked.path)
    message = (
        rf"^manifest '{re.escape(str(manifest))}': '{re.escape(leaked.path)}' is listed in split "
        rf"'train' and in split 'val' \(rows {first} and {len(rows) + 1}\); each image belongs to "
        r"one split.*delete one of the two rows"
    )
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)
    with pytest.raises(ValueError, match=message):
        KermanyOCT.from_manifest(manifest, "val", root=tree)
    with pytest.raises(ValueError, match=message):
        KermanyOCT.from_manifest(manifest, "train", root=tree)


def test_a_file_twice_in_one_split_is_refused(tree: Path, tmp_path: Path) -> None:
    first = next(r for r in patient_split(tree, val_fraction=0.2, seed=0) if r.patient == "500")
    again = first.path.replace("train/", "train/./", 1)  # the same file, spelled otherwise
    manifest = _manifest_with(tree, tmp_path, [f"{again},CNV,500,{first.split}"])
    message = rf"'train/\./CNV/CNV-500-\d\.png' is listed twice in split '{first.split}' \(rows"
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)


def test_writing_a_file_twice_is_refused(tmp_path: Path) -> None:
    rows = [ManifestRow("a.png", "CNV", None, "train"), ManifestRow("a.png", "CNV", None, "test")]
    with pytest.raises(
        ValueError, match=r"'a\.png' is listed in split 'train' and in split 'test'"
    ):
        write_manifest(rows, tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()


def test_a_patient_in_train_and_val_is_refused(tree: Path, tmp_path: Path) -> None:
    rows = patient_split(tree, val_fraction=0.2, seed=0)
    train_patient = next(row for row in rows if row.split == "train")
    assert train_patient.patient is not None
    # the same patient, written with a leading zero, with a new scan in val
    other = f"train/{train_patient.label}/{train_patient.label}-0{train_patient.patient}-9.png"
    manifest = _manifest_with(
        tree, tmp_path, [f"{other},{train_patient.label},0{train_patient.patient},val"]
    )
    message = (
        rf"^manifest '.*split\.csv': patient '0{train_patient.patient}' is in split 'train' "
        rf"\(row \d+, '.*'\) and in split 'val' \(row {len(rows) + 1}, '{re.escape(other)}'\); a "
        r"patient's images must all be in one split.*retinalnet split"
    )
    with pytest.raises(ValueError, match=message):
        KermanyOCT.from_manifest(manifest, "val", root=tree)
    # train and test may share patients: Kermany's own folders do (drop_test_patients drops them)
    test_patient = next(row for row in rows if row.split == "test")
    shared = f"train/{test_patient.label}/{test_patient.label}-{test_patient.patient}-9.png"
    fine = _manifest_with(
        tree, tmp_path, [f"{shared},{test_patient.label},{test_patient.patient},train"]
    )
    _scan(tree / shared, 9000)  # a row naming no file would be left out, with a warning
    assert (
        len(KermanyOCT.from_manifest(fine, "train", root=tree))
        == sum(row.split == "train" for row in rows) + 1
    )


# --- manifest encodings and syntax ----------------------------------------------------------


def test_a_csv_with_a_byte_order_mark_is_read(tree: Path, tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a BOM, which used to hide the ``path`` column."""
    rows = patient_split(tree, val_fraction=0.2, seed=0)
    text = write_manifest(rows, tmp_path / "split.csv").read_text()
    excel = tmp_path / "excel.csv"
    excel.write_text(text.replace("\n", "\r\n"), encoding="utf-8-sig", newline="")
    assert read_manifest(excel) == rows
    assert len(KermanyOCT.from_manifest(excel, "train", root=tree)) == sum(
        row.split == "train" for row in rows
    )
    excel_json = tmp_path / "excel.json"
    excel_json.write_text(json.dumps([row.__dict__ for row in rows]), encoding="utf-8-sig")
    assert read_manifest(excel_json) == rows


def test_a_latin_1_csv_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    manifest = tmp_path / "latin1.csv"
    manifest.write_bytes(
        "path,label,patient,split\ntrain/CNV/\xe9.jpeg,CNV,1,train\n".encode("latin-1")
    )
    message = (
        rf"^manifest '{re.escape(str(manifest))}' is not UTF-8 text \(byte 0xe9 on line 2, "
        r"invalid continuation byte\); save it as UTF-8 \(in Excel: 'CSV UTF-8'\)"
    )
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)


def test_malformed_json_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.json"
    manifest.write_text('[\n {"path": "a.png",\n]\n')
    message = (
        rf"^manifest '{re.escape(str(manifest))}' is not valid JSON \(.* on line 3, column 1\); "
        r"fix that line"
    )
    with pytest.raises(ValueError, match=message):
        KermanyOCT.from_manifest(manifest, "train")


@pytest.mark.parametrize(
    ("separator", "saved"),
    [(";", "';' as separator, as Excel does in some locales"),
     ("\t", "tabs as separator (as tab-separated text)")],
)  # fmt: skip
def test_a_csv_with_another_separator_names_it_and_the_fix(
    tmp_path: Path, separator: str, saved: str
) -> None:
    manifest = tmp_path / "other.csv"
    header = separator.join(["path", "label", "patient", "split"])
    manifest.write_text(f"{header}\n" + separator.join(["a.png", "CNV", "1", "train"]) + "\n")
    # was: "row 1: missing column(s) ... comma-separated", the separator left to guess
    message = (
        rf"other\.csv': missing column\(s\) path, label, split \(found: {re.escape(repr(header))}"
        rf"\): it was saved with {re.escape(saved)}; save it as 'CSV UTF-8 \(Comma delimited\)' "
        r"\(a manifest has the columns path, label, split and, optionally, patient, "
        r"comma-separated\)$"
    )
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)


@pytest.mark.parametrize(
    ("line", "values"), [("train/CNV/x.jpeg,CNV", 2), ("a.png,CNV,1,train,extra", 5)]
)
def test_a_csv_row_with_too_few_or_too_many_values_is_named(
    tmp_path: Path, line: str, values: int
) -> None:
    manifest = tmp_path / "short.csv"
    manifest.write_text(f"path,label,patient,split\nb.png,DME,2,train\n{line}\n")
    message = (
        rf"^manifest '.*short\.csv', row 2 \(line 3\) has {values} value\(s\) for the 4 "
        r"column\(s\) path, label, patient, split; fix that line"
    )
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)


# --- manifests edited by hand: columns, cells, labels and patients ------------------------


@pytest.mark.parametrize(
    ("header", "first", "second"),
    [("path,label,patient,split,Label", "2 ('label')", "5 ('Label')"),
     ("label,path,patient,split,label", "1 ('label')", "5 ('label')"),
     ("path,label,Patient,split, patient", "3 ('Patient')", "5 (' patient')")],
)  # fmt: skip
def test_two_columns_read_as_one_are_refused(
    tmp_path: Path, header: str, first: str, second: str
) -> None:
    # was: the last of the two read, the other ignored without a word
    manifest = tmp_path / "two.csv"
    manifest.write_text(f"{header}\ntrain/CNV/CNV-1-1.png,CNV,1,train,NORMAL\n")
    column = re.search(r"'\s*(\w+)'", first).group(1).lower()  # type: ignore[union-attr]
    message = (
        rf"^manifest '.*two\.csv': columns {re.escape(first)} and {re.escape(second)} are both "
        rf"read as {column}; delete one$"
    )
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)


def test_two_json_keys_read_as_one_are_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "two.json"
    manifest.write_text(
        '[{"path": "a.png", "label": "CNV", "split": "train", "Label": "DME"}]', encoding="utf-8"
    )
    message = r"two\.json', row 1: keys 2 \('label'\) and 4 \('Label'\) are both read as label"
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)


@pytest.mark.parametrize(
    ("column", "value", "hint"),
    [("label", "cnv", "class names are upper case, write 'CNV'"),
     ("label", "Drusen", "class names are upper case, write 'DRUSEN'"),
     ("label", "NORMALL", "write 'NORMAL' if you mean NORMAL"),
     ("split", "Train", "split names are lower case, write 'train'"),
     ("split", "VAL", "split names are lower case, write 'val'")],
)  # fmt: skip
def test_a_label_or_split_in_another_case_names_the_fix(
    tmp_path: Path, column: str, value: str, hint: str
) -> None:
    # was: "label 'cnv' is not one of CNV, DME, DRUSEN, NORMAL", without the folders' hint
    cells = {"path": "a.png", "label": "CNV", "patient": "1", "split": "train", column: value}
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,patient,split\n" + ",".join(cells.values()) + "\n")
    allowed = "CNV, DME, DRUSEN, NORMAL" if column == "label" else "train, val, test"
    message = rf"row 1: {column} '{value}' is not one of {allowed}: {re.escape(hint)}$"
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_an_empty_or_missing_patient_is_the_one_in_the_file_name(
    tmp_path: Path, suffix: str
) -> None:
    # was: an empty patient turned the leakage check off (and patient-level metrics), and a
    # manifest without the patient column was refused
    rows = [
        {"path": "train/CNV/CNV-42-1.png", "label": "CNV", "patient": "", "split": "train"},
        {"path": "train/NORMAL/NORMAL-7-1.png", "label": "NORMAL", "split": "train"},
        {"path": "train/CNV/scan_01.png", "label": "CNV", "patient": None, "split": "val"},
        {"path": "train/NORMAL/NORMAL-8-1.png", "label": "NORMAL", "patient": "9", "split": "val"},
    ]
    manifest = tmp_path / f"m{suffix}"
    if suffix == ".json":
        manifest.write_text(json.dumps(rows))
    else:  # a plain path,label,split file
        manifest.write_text(
            "path,label,split\n" + "".join(f"{r['path']},{r['label']},{r['split']}\n" for r in rows)
        )
    patients = [row.patient for row in read_manifest(manifest)]
    assert patients == ["42", "7", None, "9" if suffix == ".json" else "8"]
    rows.append({"path": "train/CNV/CNV-042-2.png", "label": "CNV", "split": "val"})
    if suffix == ".json":
        manifest.write_text(json.dumps(rows))
    else:
        manifest.write_text(
            "path,label,patient,split\n"
            + "".join(f"{r['path']},{r['label']},,{r['split']}\n" for r in rows)
        )
    message = (
        r"patient '042' is in split 'train' \(row 1, 'train/CNV/CNV-42-1\.png'\) and in split "
        r"'val' \(row 5, 'train/CNV/CNV-042-2\.png'\); a patient's images must all be in one"
    )
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)


def test_json_cells_are_read_as_csv_cells_are(tmp_path: Path) -> None:
    # was: keys in another case refused as "missing column(s) ... comma-separated", a NaN
    # patient read as patient 'nan', pandas' 42.0 as '42.0', a null path as the path 'None'
    manifest = tmp_path / "pandas.json"
    manifest.write_text(
        '[{"Path": "train/CNV/CNV-5-1.png", "Label": "CNV", "Patient": NaN, "Split": "train"},'
        ' {"path": "train/DME/DME-6-1.png", "label": "DME", "patient": 60.0, "split": "val"}]'
    )
    assert read_manifest(manifest) == [
        ManifestRow("train/CNV/CNV-5-1.png", "CNV", "5", "train"),
        ManifestRow("train/DME/DME-6-1.png", "DME", "60", "val"),
    ]
    manifest.write_text('[{"path": null, "label": "CNV", "split": "train"}]')
    with pytest.raises(ValueError, match=r"row 1: the path is empty; each row names one image"):
        read_manifest(manifest)
    manifest.write_text('[{"file": "a.png", "label": "CNV", "split": "train"}]')
    message = (
        r"pandas\.json', row 1: missing key\(s\) path \(found: 'file', 'label', 'split'\); a "
        r"JSON manifest is a list of objects with the keys path, label, split and, optionally, "
        r"patient$"
    )
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)
    manifest.write_text('{"path": {"0": "a.png"}, "label": {"0": "CNV"}, "split": {"0": "val"}}')
    message = r"must hold a JSON list of rows, got an object of columns, .*orient='records'\)$"
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)


# --- a val_fraction that gives a split no patient -------------------------------------------


def test_a_fraction_giving_no_validation_patient_is_refused(tree: Path) -> None:
    """101 training patients, at most 41 in one class: round(0.001 * 41) is 0."""
    message = (
        r"^val_fraction=0\.001 gives the validation split no patient: each class sends "
        r"round\(0\.001 \* its patients\) there, 0 in every class \(101 patients, at most 41 in "
        r"CNV\); the smallest fraction that gives one is 0\.013: pass val_fraction=0\.013 or more"
    )
    with pytest.raises(ValueError, match=message):
        patient_split(tree, val_fraction=0.001)
    with pytest.warns(UserWarning, match="validation split no image of DME, DRUSEN, NORMAL"):
        rows = patient_split(tree, val_fraction=0.013)  # one CNV patient: round(0.533)
    assert len(_patients(rows, "val")) == 1


def test_a_fraction_giving_no_training_patient_is_refused(tree: Path) -> None:
    message = (
        r"^val_fraction=0\.999 gives the training split no patient: .* the largest fraction "
        r"that leaves one for training is 0\.987: pass val_fraction=0\.987 or less"
    )
    with pytest.raises(ValueError, match=message):
        patient_split(tree, val_fraction=0.999)
    with pytest.warns(UserWarning, match="gives the training split no image of DME, DRUSEN"):
        rows = patient_split(tree, val_fraction=0.987)
    assert _patients(rows, "train")


def test_a_class_without_validation_patients_is_warned_about(tree: Path) -> None:
    message = (
        r"^val_fraction=0\.04 with seed=0 gives the validation split no image of DRUSEN: all are "
        r"in training \(DRUSEN: 10 image\(s\) of 10 patient\(s\)\), so validation cannot score "
        r"that class; pass another val_fraction or seed .* or add patients of that class$"
    )
    with pytest.warns(UserWarning, match=message):
        rows = patient_split(tree, val_fraction=0.04)
    assert "DRUSEN" not in {row.label for row in rows if row.split == "val"}


@pytest.fixture
def mixed_tree(tmp_path: Path) -> Path:
    """The auditor's case: 4 CNV patients with 2 scans each, patient 1 also with a DRUSEN and
    a NORMAL scan (main class CNV); 4 DME patients; 1 NORMAL patient."""
    root = tmp_path / "mixed"
    names = [f"CNV/CNV-{p}-{n}.png" for p in range(1, 5) for n in (1, 2)]
    names += ["DRUSEN/DRUSEN-1-3.png", "NORMAL/NORMAL-1-4.png", "NORMAL/NORMAL-9-1.png"]
    names += [f"DME/DME-{p}-1.png" for p in range(5, 9)]
    for seed, name in enumerate(names):
        _scan(root / "train" / name, seed)
    return root


def _classes_warned_of(caught: list[warnings.WarningMessage], split: str) -> set[str]:
    found: set[str] = set()
    for warning in caught:
        match = re.search(rf"gives the {split} split no image of ([A-Z, ]+):", str(warning.message))
        if match:
            found.update(match.group(1).split(", "))
    return found


@pytest.mark.parametrize("seed", range(8))
def test_the_classes_warned_of_are_those_a_split_has_no_image_of(
    mixed_tree: Path, seed: int
) -> None:
    """Was: NORMAL (its only main patient is never drawn) at every seed, also when patient 1
    brought a NORMAL scan to validation, and never DRUSEN, which only patient 1 has."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = patient_split(mixed_tree, val_fraction=0.25, seed=seed)

    for split, words in (("val", "validation"), ("train", "training")):
        absent = set(KERMANY_CLASSES) - {row.label for row in rows if row.split == split}
        assert _classes_warned_of(caught, words) == absent


def test_a_class_only_another_class_s_patient_has_is_warned_of_in_either_split(
    mixed_tree: Path,
) -> None:
    """Both draws happen: patient 1 (and with it DRUSEN) stays in training at seed 0, goes to
    validation at seed 5, leaving training without DRUSEN."""
    with pytest.warns(UserWarning, match="validation split no image") as caught:
        rows = patient_split(mixed_tree, val_fraction=0.25, seed=0)
    assert "DRUSEN" not in {row.label for row in rows if row.split == "val"}
    assert _classes_warned_of(caught.list, "validation") == {"DRUSEN", "NORMAL"}
    message = (
        r"^val_fraction=0\.25 with seed=5 gives the training split no image of DRUSEN: all are "
        r"in validation \(DRUSEN: 1 image\(s\) of 1 patient\(s\)\), so the model never learns "
        r"that class; pass another val_fraction or seed"
    )
    with pytest.warns(UserWarning, match=message) as caught:
        rows = patient_split(mixed_tree, val_fraction=0.25, seed=5)
    assert {row.label for row in rows if row.split == "val"} == set(KERMANY_CLASSES)
    assert _classes_warned_of(caught.list, "validation") == set()


def test_the_split_command_warns_of_the_classes_its_table_shows_missing(
    mixed_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retinalnet.cli import main

    argv = ["split", str(mixed_tree), "--val-fraction", "0.25", "--seed", "5"]
    with pytest.warns(UserWarning, match="split no image") as caught:  # printed on stderr
        assert main([*argv, "--out", str(tmp_path / "s5.csv"), "-q"]) == 0
    printed = capsys.readouterr().out
    table = {line.split()[0]: line.split()[1:] for line in printed.splitlines()[1:3]}
    assert table == {"train": ["6", "3", "0", "1", "7"], "val": ["2", "1", "1", "1", "2"]}
    assert _classes_warned_of(caught.list, "training") == {"DRUSEN"}
    assert _classes_warned_of(caught.list, "validation") == set()  # was: NORMAL


def test_the_split_command_refuses_a_fraction_giving_no_validation_patient(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retinalnet.cli import main

    manifest = tmp_path / "split.csv"
    argv = ["split", str(tree), "--val-fraction", "0.001", "--out", str(manifest), "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "val_fraction=0.001 gives the validation split no patient" in err
    assert "--val-fraction 0.013" in err
    assert not manifest.exists()


def test_a_file_name_that_is_not_utf_8_is_refused_before_a_manifest_is_written(
    tmp_path: Path,
) -> None:
    rows = [ManifestRow(os.fsdecode(b"train/CNV/CNV-1-1 caf\xe9.jpeg"), "CNV", "1", "train")]
    target = tmp_path / "split.csv"
    # was: written with the name's own bytes, then refused by read_manifest as not UTF-8
    with pytest.raises(ValueError, match=r"the file name .*caf\ufffd\.jpeg' is not UTF-8"):
        write_manifest(rows, target)
    assert not target.exists()


def test_drop_duplicates_names_a_broken_link_and_the_fix(tree: Path) -> None:
    # was: FileNotFoundError: [Errno 2] No such file or directory, raw from the digest
    from retinalnet.datasets import UnreadableImageError

    link = tree / "train" / "CNV" / "CNV-104-1.png"
    link.symlink_to("/nonexistent/CNV-104-1.png")
    message = (
        rf"^cannot read image {re.escape(repr(str(link)))}: no such file \(a broken symbolic "
        r"link to '/nonexistent/CNV-104-1.png', which does not exist\): remove the link, or "
        r"restore the file it leads to \(finding duplicates reads every file\)$"
    )
    with pytest.raises(UnreadableImageError, match=message):
        patient_split(tree, drop_duplicates=True)


def test_drop_duplicates_names_a_file_that_cannot_be_read(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # was: PermissionError: [Errno 13] Permission denied, raw (the tests may run as root,
    # whom permission bits do not stop: the digest is made to fail as it would)
    import errno

    from retinalnet.datasets import UnreadableImageError, _splits

    denied = tree / "train" / "DME" / "DME-41-1.png"
    real = _splits.file_digest

    def digest(path: str | os.PathLike[str]) -> bytes:
        if Path(path) == denied:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path)

    monkeypatch.setattr(_splits, "file_digest", digest)
    message = (
        rf"^cannot read image {re.escape(repr(str(denied)))}: permission denied \[EACCES\]: "
        r"check its permissions \(finding duplicates reads every file\)$"
    )
    with pytest.raises(UnreadableImageError, match=message):
        patient_split(tree, drop_duplicates=True)


def test_a_broken_link_is_kept_in_the_split_as_kermany_oct_keeps_it_with_a_warning(
    tree: Path,
) -> None:
    # was: written into the manifest without a word
    link = tree / "train" / "CNV" / "CNV-104-1.png"
    link.symlink_to("/nonexistent/CNV-104-1.png")
    assert str(link) in [path for path, _ in KermanyOCT(tree, "train").samples]
    message = (
        r"^1 image\(s\) under .* are broken symbolic links \('train/CNV/CNV-104-1.png'\): they "
        r"are kept in the split, as KermanyOCT keeps them, and reading one fails "
        r"\(on_error='skip' skips it\); remove each link, or restore the file it leads to, then "
        r"split again$"
    )
    with pytest.warns(UserWarning, match=message):
        rows = patient_split(tree, val_fraction=0.2)
    assert "train/CNV/CNV-104-1.png" in [row.path for row in rows]
