"""Tests for retinalnet.datasets._manifest_files: rows naming a file the folder walks never
read (a macOS ``._`` AppleDouble file), and rows labelled another class than their folder
gives, in any case."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from _manifest_doors import manifest_doors, small_scan
from retinalnet.datasets import KermanyOCT, ManifestRow, write_manifest


def _appledouble(path: Path) -> Path:
    """What a Mac writes beside a file it copies to an exFAT or network disk: not an image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64))
    return path


def _read(door: str, manifest: Path, root: Path) -> tuple[KermanyOCT, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = manifest_doors()[door](manifest, root)
    return data, [str(warning.message) for warning in caught]


# --- rows naming macOS AppleDouble files -----------------------------------------------------


@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
def test_rows_naming_appledouble_files_are_left_out_with_one_warning(
    tmp_path: Path, door: str
) -> None:
    # was: `find train -name '*.jpeg'` listed ._CNV-1-1.jpeg beside each scan, and training
    # stopped inside epoch 1 ("cannot read image ...: not a recognised image format")
    root = tmp_path / "OCT2017"
    rows = []
    for number in (1, 2):
        scan = small_scan(root / "train" / "CNV" / f"CNV-{number}-1.jpeg")
        _appledouble(scan.with_name(f"._{scan.name}"))
        rows += [
            ManifestRow(f"train/CNV/CNV-{number}-1.jpeg", "CNV", str(number), "train"),
            ManifestRow(f"train/CNV/._CNV-{number}-1.jpeg", "CNV", str(number), "train"),
        ]
    manifest = write_manifest(rows, tmp_path / "found.csv")
    data, said = _read(door, manifest, root)
    assert [Path(path).name for path, _ in data.samples] == ["CNV-1-1.jpeg", "CNV-2-1.jpeg"]
    assert said == [
        f"left out 2 row(s) of split 'train' of manifest {str(manifest)!r} that name a hidden "
        "file, e.g. 'train/CNV/._CNV-1-1.jpeg' (a macOS AppleDouble file: the metadata a Mac "
        "writes beside 'CNV-1-1.jpeg' on a disk that cannot keep it): hidden files are never "
        "scans, and the folder walks leave them out; run `retinalnet split` again to write the "
        "manifest without them"
    ]
    assert len(data) == len(KermanyOCT(root, "train"))  # as the folder walk reads it


def test_hidden_files_and_system_folders_are_left_out_in_one_warning(tmp_path: Path) -> None:
    root = tmp_path / "OCT2017"
    small_scan(root / "train" / "DME" / "DME-1-1.jpeg")
    _appledouble(root / "train" / "DME" / "._DME-1-1.jpeg")
    small_scan(root / "train" / "DME" / "@eaDir" / "DME-1-1.jpeg")
    rows = [
        ManifestRow("train/DME/DME-1-1.jpeg", "DME", "1", "train"),
        ManifestRow("train/DME/@eaDir/DME-1-1.jpeg", "DME", "1", "train"),
        ManifestRow("train/DME/._DME-1-1.jpeg", "DME", "1", "train"),
    ]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    data, said = _read("from_manifest", manifest, root)
    assert len(data) == 1
    assert len(said) == 1
    assert said[0].startswith(
        "left out 2 row(s) of split 'train' of manifest "
        f"{str(manifest)!r} whose file lies in a system folder or is hidden, e.g. "
        "'train/DME/@eaDir/DME-1-1.jpeg' (@eaDir: "
    )
    assert "such folders and hidden files never hold scans" in said[0]


@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
def test_a_split_of_appledouble_rows_only_is_refused_saying_so(tmp_path: Path, door: str) -> None:
    # was: each row read as a scan, and the run stopped at the first batch
    root = tmp_path / "OCT2017"
    small_scan(root / "train" / "CNV" / "CNV-1-1.jpeg")
    _appledouble(root / "train" / "CNV" / "._CNV-1-1.jpeg")
    rows = [ManifestRow("train/CNV/._CNV-1-1.jpeg", "CNV", "1", "train")]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    message = (
        f"split 'train' of manifest {str(manifest)!r}: its 1 row(s) all name hidden files, e.g. "
        "'train/CNV/._CNV-1-1.jpeg' (a macOS AppleDouble file: the metadata a Mac writes beside "
        "'CNV-1-1.jpeg' on a disk that cannot keep it), which hold no scans and are left out, "
        "so no image would be read; write the manifest again with `retinalnet split`, which "
        "leaves them out"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        manifest_doors()[door](manifest, root)


# --- rows labelled another class than their folder, in any case ------------------------------


@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
@pytest.mark.parametrize("folder", ["dme", "Dme", "DME"])
def test_a_row_in_a_class_folder_of_any_case_labelled_another_class_is_warned_of(
    tmp_path: Path, door: str, folder: str
) -> None:
    # was: `train/dme/scan_1.jpeg,CNV` read without a word, where `train/DME/...` was warned
    # of, and the folder walks read `CNV/dme/` as a DME folder
    root = tmp_path / "OCT2017"
    rows = [
        ManifestRow(f"train/{folder}/scan_{number}.jpeg", "CNV", str(number), "train")
        for number in (1, 2)
    ]
    for row in rows:
        small_scan(root / row.path)
    manifest = write_manifest(rows, tmp_path / "m.csv")
    data, said = _read(door, manifest, root)
    assert [data.classes[target] for target in data.targets] == ["CNV", "CNV"]
    assert said == [
        f"2 row(s) of split 'train' of manifest {str(manifest)!r} are named for another class "
        f"than their label in the manifest, e.g. 'train/{folder}/scan_1.jpeg' (named DME by "
        "its folder, labelled CNV): each is mislabelled or misfiled; they are read with the "
        "manifest's label. Check each scan and correct its label, or write the manifest again "
        "with `retinalnet split`"
    ]


def test_a_row_in_a_lower_case_folder_of_its_own_class_is_not_warned_of(tmp_path: Path) -> None:
    root = tmp_path / "OCT2017"
    row = ManifestRow("train/dme/scan_1.jpeg", "DME", "1", "train")
    small_scan(root / row.path)
    manifest = write_manifest([row], tmp_path / "m.csv")
    data, said = _read("from_manifest", manifest, root)
    assert len(data) == 1
    assert said == []
