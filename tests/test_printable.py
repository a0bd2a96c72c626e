"""Names in a listing of one line per file: quoted when they would not print as themselves
on one line (a line break of any kind, a direction override), as they are otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from retinalnet._core.printable import hidden_character, one_line, shown_as_is
from retinalnet.checkpoint import save_checkpoint
from retinalnet.cli import main
from retinalnet.models import small_cnn
from retinalnet.transforms import Preprocessing


@pytest.mark.parametrize(
    ("name", "hidden"),
    [
        ("scans/new\nline.jpeg", "U+000A (a control character)"),
        ("scans/CNV-1-1\u2028NORMAL-2-2.jpeg", "U+2028 LINE SEPARATOR (a line separator)"),
        ("scans/a\u2029b.jpeg", "U+2029 PARAGRAPH SEPARATOR (a paragraph separator)"),
        ("scans/a\x85b.jpeg", "U+0085 (a control character)"),  # NEXT LINE
        (
            "scans/CNV-3-3\u202egepj.jpeg",
            "U+202E RIGHT-TO-LEFT OVERRIDE (an invisible format character)",
        ),
        ("scans/\u200bCNV.jpeg", "U+200B ZERO WIDTH SPACE (an invisible format character)"),
        ("scans/\x1b[2KCNV.jpeg", "U+001B (a control character)"),
    ],
)
def test_a_name_that_does_not_print_as_itself_on_one_line_is_quoted(name: str, hidden: str) -> None:
    # was: only control characters (category Cc) were quoted; U+2028 broke the line for
    # splitlines(), editors and JavaScript, U+202E mirrored the rest of it on screen
    assert not shown_as_is(name)
    assert hidden_character(name) == hidden
    assert one_line(name) == repr(name)
    assert len(one_line(name).splitlines()) == 1
    assert one_line(name).isascii() or one_line(name).isprintable()


@pytest.mark.parametrize(
    "name",
    [
        "scans/CNV-1-1.jpeg",
        "scans/Ödem 1.jpeg",
        "扫描/中文_1.jpeg",
        "scans/cafe\u0301.jpeg",  # NFD: e and a combining accent
        "scans/wet AMD, left.jpeg",
        "scans/a\xa0b\u3000c.jpeg",  # spaces other than U+0020
        "scans/\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.jpeg",  # Persian, a ZWNJ
        "scans/caf\udce9.jpeg",  # a name not UTF-8: printed with its own bytes
    ],
)
def test_ordinary_names_of_any_script_are_printed_as_they_are(name: str) -> None:
    assert shown_as_is(name)
    assert hidden_character(name) is None
    assert one_line(name) == name


def test_predict_prints_one_line_per_image_whatever_the_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: 2 images, 3 lines by str.splitlines(); the override's line printed raw
    checkpoint = save_checkpoint(
        tmp_path / "model.pt", small_cnn(width=4, preprocessing=Preprocessing(size=32))
    )
    scans = tmp_path / "scans"
    scans.mkdir()
    names = ["CNV-1-1\u2028NORMAL-2-2.jpeg", "CNV-3-3\u202egepj.jpeg", "Ödem 中文.jpeg"]
    for name in names:
        Image.linear_gradient("L").resize((64, 48)).save(scans / name, format="JPEG")

    assert main(["predict", str(scans), "--checkpoint", str(checkpoint), "-q"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    shown = sorted(line.split("  ")[0] for line in lines)
    assert shown == sorted(
        [repr(str(scans / names[0])), repr(str(scans / names[1])), str(scans / names[2])]
    )
