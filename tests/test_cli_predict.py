"""``retinalnet predict``: which files it reads (a DICOM file named by its UID), and ``-k``
checked against the model's classes. Run in-process through main()."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from _cli_helpers import train_small_cnn
from retinalnet.cli import main
from retinalnet.cli._image_paths import image_paths
from retinalnet.datasets import make_synthetic_kermany

UID_NAME = "1.2.826.0.1.3680043.8.498.10254657"  # how PACS and scanner exports name files


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a one-epoch small CNN of the 4 Kermany classes (read only)."""
    root = tmp_path_factory.mktemp("cli-predict")
    data = make_synthetic_kermany(root / "data", train=3, val=2, test=1, shape=(48, 48), seed=5)
    assert train_small_cnn(data, root / "run", "--no-calibrate") == 0
    return root / "run" / "best.pt"


@pytest.fixture(scope="module")
def scan(checkpoint: Path) -> Path:
    path = checkpoint.parent.parent / "data" / "test" / "CNV"
    return next(path.iterdir())


def _volume(path: Path) -> Path:
    """A 3-page TIFF: a volume of 3 B-scans."""
    frame = Image.new("L", (48, 48), 90)
    frame.save(path, save_all=True, append_images=[frame, frame])
    return path


# ---------------------------------------------------------------------------------------------
# -k against the model's classes


@pytest.mark.parametrize("given", ["image", "volume"])
def test_k_above_the_models_classes_is_refused_as_a_bad_option_value(
    given: str,
    checkpoint: Path,
    scan: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # was: "k must be an int from 1 to 4, got 5" (the library's words, status 1) for an image,
    # and with only a volume given, -k 9 was accepted without a word
    path = scan if given == "image" else _volume(tmp_path / "volume.tif")
    argv = ["predict", "--checkpoint", str(checkpoint), str(path), "-k", "9", "-q"]

    assert main(argv) == 2  # docs/cli.rst: a value out of range

    captured = capsys.readouterr()
    assert captured.out == ""  # refused before any prediction
    assert captured.err == (
        "retinalnet predict: error: argument -k/--topk: must be at most 4, the number of "
        f"classes of the model in {str(checkpoint)!r}, got 9; pass -k 4 to list them all\n"
    )


def test_k_of_every_class_lists_them_all(
    checkpoint: Path, scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--checkpoint", str(checkpoint), str(scan), "-k", "4", "-q"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(scan))
    assert sorted(line.split()[1::2]) == ["CNV", "DME", "DRUSEN", "NORMAL"]


# ---------------------------------------------------------------------------------------------
# A file given by name is read when it starts like an image, whatever its name


def test_a_dicom_file_named_by_its_uid_or_bin_is_predicted_when_given_by_name(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from _dicom_helpers import scans, write

    # was: "left out 2 file(s) that are not images", then "no images found" (status 1),
    # while Predictor read the same files (docs/dicom.rst: read when given by name)
    uid = write(tmp_path / UID_NAME, scans(1)[0])
    binary = write(tmp_path / "IM0001.bin", scans(1, seed=1)[0])

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        assert main(["predict", "--checkpoint", str(checkpoint), str(uid), str(binary), "-q"]) == 0

    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == [str(uid), str(binary)]
    assert not [w for w in warned if "not images" in str(w.message)]


def test_named_files_are_kept_by_their_first_bytes_unless_the_name_is_an_images(
    tmp_path: Path,
) -> None:
    dicom = tmp_path / UID_NAME
    dicom.write_bytes(bytes(128) + b"DICM" + bytes(16))
    png = tmp_path / "scan.bin"
    Image.new("L", (8, 8)).save(png, format="PNG")
    notes = tmp_path / "notes.42"  # a suffix of digits, and not an image's first bytes
    notes.write_text("not a scan")

    with pytest.warns(UserWarning, match=r"left out 1 file\(s\) that are not images: .*notes"):
        assert image_paths([dicom, png, notes]) == [dicom, png]
