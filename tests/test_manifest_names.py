"""Tests for how a manifest's paths name their files (retinalnet.datasets._manifest and
_manifest_files): names under an ASCII file-system encoding, a ``\\`` in a name, rows all in
system folders, and one file listed through a linked folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from _manifest_doors import manifest_doors, small_scan
from retinalnet.datasets import KermanyOCT, ManifestRow, read_manifest, write_manifest

# --- a UTF-8 name under an ASCII file-system encoding (LANG=C) --------------------------

_UNDER_LANG_C = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from retinalnet.cli import main
    from retinalnet.cli._split_data import split_data
    from retinalnet.datasets import KermanyOCT, patient_split, write_manifest

    print(sys.getfilesystemencoding())
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = patient_split(root, val_fraction=0.5, seed=0)
    write_manifest(rows, out / "python.json")
    assert main(["split", str(root), "--val-fraction", "0.5", "--out", str(out / "cli.csv")]) == 0
    for name in ("python.json", "cli.csv"):
        for split in ("train", "val"):
            for data in (
                KermanyOCT.from_manifest(out / name, split, root=root),
                split_data(root, split, out / name),
            ):
                assert len(data) == 2 and all(os.path.isfile(p) for p, _ in data.samples)
    """
)


def test_utf_8_names_under_an_ascii_file_system_encoding_round_trip(tmp_path: Path) -> None:
    # was: "the file name 'train/CNV/CNV-1-1-caf\xe9.jpeg' is not UTF-8" for a UTF-8 name,
    # read by Python under LANG=C as 'caf\udcc3\udca9'
    root = tmp_path / "OCT2017"
    for split, patients in (("train", (1, 2, 3, 4)), ("test", (5,))):
        folder = root / split / "CNV"
        folder.mkdir(parents=True)
        for patient in patients:
            name = os.fsencode(folder) + f"/CNV-{patient}-1-café.jpeg".encode()
            Image.new("L", (8, 8)).save(os.fsdecode(name), format="JPEG")
    env = {
        **os.environ,
        "LANG": "C",
        "LC_ALL": "C",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
        "PYTHONIOENCODING": "utf-8",
    }
    ran = subprocess.run(
        [sys.executable, "-c", _UNDER_LANG_C, str(root), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    encoding = ran.stdout.split("\n", 1)[0].strip()
    if ran.returncode == 0 and encoding.replace("-", "") == "utf8":
        pytest.skip(f"LANG=C gives Python the file-system encoding {encoding!r} here, not ASCII")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert encoding.replace("-", "").lower() != "utf8"
    for name in ("python.json", "cli.csv"):
        paths = sorted(row.path for row in read_manifest(tmp_path / name))
        assert paths[0] == "test/CNV/CNV-5-1-café.jpeg"  # UTF-8 text, not escapes
        assert len(paths) == 5


def test_a_name_that_is_not_utf_8_is_still_refused(tmp_path: Path) -> None:
    latin_1 = os.fsdecode(b"train/CNV/CNV-1-1-caf\xe9.jpeg")  # 'caf\udce9' under UTF-8
    with pytest.raises(ValueError, match="is not UTF-8, and a manifest is UTF-8 text"):
        write_manifest([ManifestRow(latin_1, "CNV", "1", "train")], tmp_path / "m.csv")


# --- a backslash: a Windows-edited manifest, and a name with one ------------------------


@pytest.mark.skipif(os.sep != "/", reason="a name cannot hold a backslash on Windows")
@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
def test_a_name_with_a_backslash_round_trips(tmp_path: Path, door: str) -> None:
    # was: read back as 'train/CNV/a/CNV-3-1.jpeg', which names no file (a Windows zip
    # unpacked on Linux names a file 'a\CNV-3-1.jpeg')
    root = tmp_path / "OCT2017"
    named = small_scan(root / "train" / "CNV" / "a\\CNV-3-1.jpeg")
    small_scan(root / "train" / "CNV" / "CNV-1-1.jpeg")
    rows = [
        ManifestRow("train/CNV/a\\CNV-3-1.jpeg", "CNV", "3", "train"),
        ManifestRow("train/CNV/CNV-1-1.jpeg", "CNV", "1", "train"),
    ]
    for suffix in (".csv", ".json"):
        manifest = write_manifest(rows, tmp_path / f"m{suffix}")
        assert read_manifest(manifest) == rows
        data = manifest_doors()[door](manifest, root)
        assert [path for path, _ in data.samples] == [str(named), str(root / rows[1].path)]


@pytest.mark.skipif(os.sep != "/", reason="a backslash separates folders on Windows")
@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
def test_a_manifest_edited_on_windows_finds_its_files(tmp_path: Path, door: str) -> None:
    root = tmp_path / "OCT2017"
    scan = small_scan(root / "train" / "CNV" / "CNV-1-1.jpeg")
    small_scan(root / "train" / "CNV" / "@eaDir" / "CNV-1-1.jpeg")
    manifest = tmp_path / "edited.csv"
    manifest.write_text(
        "path,label,patient,split\r\n"
        "train\\CNV\\CNV-1-1.jpeg,CNV,,train\r\n"
        "train\\CNV\\@eaDir\\CNV-1-1.jpeg,CNV,,train\r\n",  # a NAS thumbnail: left out
        encoding="utf-8",
    )
    assert [row.patient for row in read_manifest(manifest)] == ["1", "1"]
    with pytest.warns(UserWarning, match=r"left out 1 row\(s\) .* \(@eaDir: "):
        data = manifest_doors()[door](manifest, root)
    assert data.samples == [(str(scan), 0)]


@pytest.mark.skipif(os.sep != "/", reason="a backslash separates folders on Windows")
def test_one_file_by_a_windows_path_and_a_posix_one_is_listed_twice(tmp_path: Path) -> None:
    root = tmp_path / "OCT2017"
    small_scan(root / "train" / "CNV" / "scan_01.jpeg")
    manifest = tmp_path / "edited.csv"
    manifest.write_text(
        "path,label,split\ntrain/CNV/scan_01.jpeg,CNV,train\ntrain\\CNV\\scan_01.jpeg,CNV,val\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"is listed in split 'train' and in split 'val'"):
        KermanyOCT.from_manifest(manifest, "train", root=root)


# --- every row of a manifest in a system folder ---------------------------------------------


@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
def test_a_manifest_whose_rows_all_lie_in_a_snapshot_says_so(tmp_path: Path, door: str) -> None:
    # was: "manifest '...' has no rows for split 'train' (it has: train)"
    inside = tmp_path / "mnt" / ".snapshot" / "daily" / "OCT2017"
    rows = [
        ManifestRow(
            str(small_scan(inside / "train" / "CNV" / f"CNV-{n}-1.jpeg")), "CNV", None, "train"
        )
        for n in (1, 2, 3)
    ]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    (tmp_path / "OCT2017").mkdir()
    message = (
        f"split 'train' of manifest {str(manifest)!r}: its 3 row(s) all name files in system "
        "folders, e.g. "
        f"{rows[0].path!r} (.snapshot: a file server's snapshots), which hold no scans and are "
        "left out, so no image would be read; if the data was restored there, pass its folder "
        f"as root (CLI: --data {str(inside)!r}), as only the folders below the root count; "
        "else write the manifest again with `retinalnet split`"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        manifest_doors()[door](manifest, tmp_path / "OCT2017")
    assert len(manifest_doors()[door](manifest, inside)) == 3  # the fix the error gives


def test_a_manifest_of_thumbnails_only_says_to_split_again(tmp_path: Path) -> None:
    root = tmp_path / "OCT2017"
    small_scan(root / "train" / "CNV" / "CNV-1-1.jpeg")
    thumb = "train/CNV/@eaDir/CNV-1-1.jpeg/SYNOFILE_THUMB_M.jpg"
    small_scan(root / thumb)
    rows = [
        ManifestRow(thumb, "CNV", "2", "val"),
        ManifestRow("train/CNV/@eaDir/CNV-1-1.jpeg/SYNOPHOTO_THUMB_S.jpg", "CNV", "2", "val"),
    ]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    message = (
        rf"its 2 row\(s\) all name files in system folders, e\.g\. "
        rf"{re.escape(repr(thumb))} \(@eaDir: .*; write the manifest again with `retinalnet "
        r"split`, which leaves them out$"
    )
    with pytest.raises(ValueError, match=message):
        KermanyOCT.from_manifest(manifest, "val", root=root)


def test_a_split_whose_rows_all_lie_in_system_folders_says_so_beside_a_good_one(
    tmp_path: Path,
) -> None:
    # was: "has no rows for split 'val' (it has: train, val)"; the train rows still read
    root = tmp_path / "OCT2017"
    small_scan(root / "train" / "CNV" / "CNV-1-1.jpeg")
    thumb = "train/CNV/@eaDir/CNV-1-1.jpeg/SYNOFILE_THUMB_M.jpg"
    small_scan(root / thumb)
    rows = [ManifestRow("train/CNV/CNV-1-1.jpeg", "CNV", "1", "train")]
    rows.append(ManifestRow(thumb, "CNV", "2", "val"))
    manifest = write_manifest(rows, tmp_path / "m.csv")
    with pytest.raises(ValueError, match=r"^split 'val' of manifest .*: its 1 row\(s\) all name"):
        KermanyOCT.from_manifest(manifest, "val", root=root)
    assert len(KermanyOCT.from_manifest(manifest, "train", root=root)) == 1


# --- one file listed through a linked folder ---------------------------------------------


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
@pytest.mark.parametrize("door", ["from_manifest", "cli --manifest"])
@pytest.mark.parametrize("absolute", [False, True])
def test_one_file_listed_through_a_linked_folder_is_refused(
    tmp_path: Path, door: str, absolute: bool
) -> None:
    # was: 'train/CNV/scan_01.jpeg' in train and 'link_to_train/CNV/scan_01.jpeg' in val
    # passed as two images: one image in both splits
    root = tmp_path / "OCT2017"
    small_scan(root / "train" / "CNV" / "scan_01.jpeg")
    small_scan(root / "train" / "CNV" / "scan_02.jpeg")
    try:
        (root / "link_to_train").symlink_to("train", target_is_directory=True)
    except OSError as error:  # Windows without the privilege
        pytest.skip(f"cannot make a symbolic link here: {error}")
    linked = "link_to_train/CNV/scan_01.jpeg"
    if absolute:
        linked = str(root / linked)
    rows = [
        ManifestRow("train/CNV/scan_01.jpeg", "CNV", None, "train"),
        ManifestRow("train/CNV/scan_02.jpeg", "CNV", None, "train"),
        ManifestRow(linked, "CNV", None, "val"),
    ]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    message = (
        rf"^manifest {re.escape(repr(str(manifest)))}: {re.escape(repr(linked))} is listed in "
        r"split 'train' and in split 'val' \(rows 1 and 3, row 1 as 'train/CNV/scan_01\.jpeg'\)"
    )
    with pytest.raises(ValueError, match=message):
        manifest_doors()[door](manifest, root)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_a_linked_file_and_its_target_are_one_file(tmp_path: Path) -> None:
    root = tmp_path / "OCT2017"
    small_scan(root / "train" / "CNV" / "scan_01.jpeg")
    try:
        (root / "train" / "CNV" / "scan_09.jpeg").symlink_to("scan_01.jpeg")
    except OSError as error:
        pytest.skip(f"cannot make a symbolic link here: {error}")
    rows = [
        ManifestRow("train/CNV/scan_01.jpeg", "CNV", None, "train"),
        ManifestRow("train/CNV/scan_09.jpeg", "CNV", None, "train"),
    ]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    with pytest.raises(ValueError, match=r"'train/CNV/scan_09\.jpeg' is listed twice in split"):
        KermanyOCT.from_manifest(manifest, "train", root=root)


# --- two files whose names differ only in Unicode normal form ----------------------------


def test_two_files_named_alike_but_in_two_normal_forms_are_two_rows(tmp_path: Path) -> None:
    # was: "... is listed twice in split 'train' (rows 1 and 2) ...: write the manifest
    # again with `retinalnet split`", which writes the same manifest again (both are files)
    import unicodedata

    root = tmp_path / "OCT2017"
    nfc = small_scan(root / "train" / "CNV" / "CNV-106-1\u00e9.jpeg")
    nfd = root / "train" / "CNV" / unicodedata.normalize("NFD", nfc.name)
    Image.new("L", (8, 8), color=255).save(nfd, format="JPEG")
    if len(list(nfc.parent.iterdir())) != 2:
        pytest.skip("this file system takes both normal forms of a name for one file")
    from retinalnet.cli import main
    from retinalnet.cli._split_data import split_data

    others = [small_scan(root / "train" / "CNV" / f"CNV-{n}-1.jpeg") for n in (7, 8, 9)]
    manifest = tmp_path / "split.csv"
    argv = ["split", str(root), "--val-fraction", "0.5", "--out", str(manifest), "-q"]
    assert main(argv) == 0
    rows = read_manifest(manifest)
    assert len(rows) == 5
    split = next(row.split for row in rows if "106" in row.path)  # one patient, one split
    for data in (
        KermanyOCT.from_manifest(manifest, split, root=root),
        split_data(root, split, manifest),
    ):
        read = {path for path, _ in data.samples}
        assert {str(nfc), str(nfd)} <= read
        assert read <= {str(nfc), str(nfd), *map(str, others)}


def test_a_name_in_the_other_normal_form_still_names_the_one_file_there(tmp_path: Path) -> None:
    import unicodedata

    root = tmp_path / "OCT2017"
    nfc = small_scan(root / "train" / "CNV" / "CNV-106-1\u00e9.jpeg")  # the only file
    as_nfd = unicodedata.normalize("NFD", "train/CNV/CNV-106-1\u00e9.jpeg")
    alone = write_manifest([ManifestRow(as_nfd, "CNV", None, "train")], tmp_path / "one.csv")
    assert KermanyOCT.from_manifest(alone, "train", root=root).samples == [(str(nfc), 0)]
    rows = [ManifestRow(nfc.relative_to(root).as_posix(), "CNV", None, "train")]
    both = write_manifest([*rows, ManifestRow(as_nfd, "CNV", None, "train")], tmp_path / "m.csv")
    with pytest.raises(ValueError, match=r"is listed twice in split 'train' \(rows 1 and 2, "):
        KermanyOCT.from_manifest(both, "train", root=root)  # one file, by two names


@pytest.mark.skipif(not hasattr(os, "link"), reason="no hard links")
def test_two_hard_links_of_one_scan_are_two_rows_as_in_the_folders(tmp_path: Path) -> None:
    # the folder walks list each name of a hard-linked file as an image; so does a manifest
    root = tmp_path / "OCT2017"
    first = small_scan(root / "train" / "CNV" / "CNV-1-1.jpeg")
    try:
        os.link(first, root / "train" / "CNV" / "CNV-1-2.jpeg")
    except OSError as error:  # a file system without hard links
        pytest.skip(f"cannot make a hard link here: {error}")
    rows = [ManifestRow(f"train/CNV/CNV-1-{n}.jpeg", "CNV", None, "train") for n in (1, 2)]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    assert len(KermanyOCT.from_manifest(manifest, "train", root=root)) == 2
    assert len(KermanyOCT(root, "train")) == 2
