"""Tests for retinalnet.cli._output_names: one file per output, also on a disk that takes
names differing only in case or in Unicode normalisation for one file (macOS, Windows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retinalnet.cli import _output_names
from retinalnet.cli._output_names import OutputNames, shown_names


@pytest.mark.parametrize(
    ("stems", "expected"),
    [
        (["scan", "scan"], ["scan_cam.png", "scan_2_cam.png"]),
        (["IMG_0001", "img_0001"], ["IMG_0001_cam.png", "img_0001_2_cam.png"]),
        (["img_0001", "IMG_0001", "Img_0001_2"], ["img_0001_cam.png", "IMG_0001_2_cam.png",
                                                  "Img_0001_2_2_cam.png"]),
        # composed (NFC: é) and decomposed (NFD: e and a combining accent), as macOS writes
        (["caf\u00e9", "cafe\u0301"], ["caf\u00e9_cam.png", "cafe\u0301_2_cam.png"]),
        (["STRASSE", "stra\u00dfe"], ["STRASSE_cam.png", "stra\u00dfe_2_cam.png"]),  # casefold
        (["scan", "other"], ["scan_cam.png", "other_cam.png"]),
    ],
)  # fmt: skip
def test_names_one_disk_may_take_for_one_file_are_numbered(
    stems: list[str], expected: list[str]
) -> None:
    """Before, only exact repeats were numbered: on macOS or Windows, deviceA's
    IMG_0001_cam.png was replaced by deviceB's img_0001_cam.png."""
    names = OutputNames()
    assert [names.take(Path("cams"), stem, "cam.png").name for stem in stems] == expected


def test_names_in_another_folder_are_their_own() -> None:
    names = OutputNames()
    assert names.take(Path("cams"), "scan", "cam.png") == Path("cams/scan_cam.png")
    assert names.take(Path("plots"), "SCAN", "cam.png") == Path("plots/SCAN_cam.png")


def test_a_name_is_kept_as_given_not_as_it_is_compared() -> None:
    """The key folds case and normalises; the file keeps the input's own spelling."""
    name = OutputNames().take(Path("cams"), "cafe\u0301", "cam.png").name
    assert name == "cafe\u0301_cam.png"


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["a/scan.jpeg", "b/scan.jpeg"], ["a/scan.jpeg", "b/scan.jpeg"]),
        (["a/IMG_1.jpeg", "b/img_1.jpeg"], ["a/IMG_1.jpeg", "b/img_1.jpeg"]),
        (["a/caf\u00e9.png", "b/cafe\u0301.png"], ["a/caf\u00e9.png", "b/cafe\u0301.png"]),
        (["a/scan.jpeg", "b/other.jpeg"], ["scan.jpeg", "other.jpeg"]),
        ([Path("v/volume.dcm"), Path("w/VOLUME.dcm")], ["v/volume.dcm", "w/VOLUME.dcm"]),
    ],
)
def test_titles_give_the_path_where_names_are_one_file_to_some_disk(
    paths: list[str | Path], expected: list[str]
) -> None:
    """An overlay titled ``img_1.jpeg`` beside one titled ``IMG_1.jpeg`` would not say
    which scanner's image each shows once the files are told apart by number."""
    assert shown_names(paths) == expected


def test_a_name_that_comes_again_is_numbered_on_without_trying_every_earlier_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 20,000 inputs named scan.jpeg (a folder per exam) tried every earlier number each time
    calls = 0
    key = _output_names.same_file_key

    def counted(name: str) -> str:
        nonlocal calls
        calls += 1
        return key(name)

    monkeypatch.setattr(_output_names, "same_file_key", counted)
    names = OutputNames()
    taken = [names.take(Path("cams"), "scan", "cam.png").name for _ in range(300)]
    assert taken[:3] == ["scan_cam.png", "scan_2_cam.png", "scan_3_cam.png"]
    assert taken[-1] == "scan_300_cam.png"
    assert names.take(Path("cams"), "scan_301", "cam.png").name == "scan_301_cam.png"
    assert names.take(Path("cams"), "scan", "cam.png").name == "scan_302_cam.png"
    assert calls < 6 * 302  # a few per name, not one per earlier number (45,000)
