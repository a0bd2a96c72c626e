"""File names as UTF-8 text and back (retinalnet._core.utf_8_names), under this process's
file-system encoding and under the ASCII one of ``LANG=C``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from retinalnet._core.utf_8_names import named_here, utf_8_data, utf_8_text


@pytest.fixture
def lang_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """File names decoded as under ``LANG=C``: ASCII, the other bytes escaped."""
    monkeypatch.setattr(sys, "getfilesystemencodeerrors", lambda: "surrogateescape")
    monkeypatch.setattr(os, "fsencode", lambda name: name.encode("ascii", "surrogateescape"))
    monkeypatch.setattr(os, "fsdecode", lambda raw: raw.decode("ascii", "surrogateescape"))


@pytest.mark.usefixtures("lang_c")
@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("donn\udcc3\udca9es/split.csv", "données/split.csv", id="utf-8-name"),
        pytest.param("\udce4\udcb8\udcad.jpeg", "中.jpeg", id="utf-8-cjk-name"),
        pytest.param("caf\udce9.jpeg", "caf\udce9.jpeg", id="latin-1-bytes-kept-escaped"),
        pytest.param("CNV-1-1.jpeg", "CNV-1-1.jpeg", id="ascii"),
    ],
)
def test_a_name_under_lang_c_is_recorded_as_utf_8_text_and_found_again(
    name: str, text: str
) -> None:
    # was: recorded as decoded ('donn\udcc3\udca9es'); and 'données', recorded under UTF-8,
    # was looked up as such, which an ASCII file-system encoding cannot name
    assert utf_8_text(name) == text
    assert named_here(text) == name


@pytest.mark.usefixtures("lang_c")
def test_text_this_file_system_cannot_name_is_text_already() -> None:
    # 'données' recorded by a run under UTF-8, read under LANG=C: not re-read
    assert utf_8_text("données") == "données"


@pytest.mark.skipif(sys.platform == "win32", reason="names are Unicode on Windows")
def test_a_name_of_this_process_round_trips(tmp_path: Path) -> None:
    for raw in (b"donn\xc3\xa9es", b"caf\xe9", b"CNV"):  # UTF-8, Latin-1, ASCII bytes
        name = os.fsdecode(os.fsencode(tmp_path) + b"/" + raw)
        try:
            Path(name).mkdir()
        except OSError:  # a file system that takes UTF-8 names only (macOS)
            continue
        assert Path(named_here(utf_8_text(name))).is_dir()
    assert utf_8_text(os.fsdecode(b"donn\xc3\xa9es")) == "données"


def test_json_data_holds_no_lone_surrogate_and_keeps_text_as_it_is() -> None:
    data = {
        "source": os.fsdecode(b"donn\xc3\xa9es/scan.jpeg"),
        "classes": ["CNV", "Ödem"],
        ("d\udcc3\udca9"): [("x", 1.5, None)],
        "scores": {"NORMAL": 0.25},
    }
    written = json.dumps(utf_8_data(data), ensure_ascii=False)

    written.encode("utf-8")  # was: "surrogates not allowed" in d\udcc3\udca9
    assert json.loads(written) == {
        "source": "données/scan.jpeg",
        "classes": ["CNV", "Ödem"],
        "dé": [["x", 1.5, None]],
        "scores": {"NORMAL": 0.25},
    }
