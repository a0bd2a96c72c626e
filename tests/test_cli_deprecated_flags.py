"""The 0.1 option names (``predict --topk``, ``train --image-size``) still work until 0.3 and
say so, in one line naming the new name (cli/_parser.py)."""

from __future__ import annotations

import pytest

from retinalnet.cli import main
from retinalnet.cli._parser import build_parser

_PREDICT = ["predict", "--checkpoint", "model.pt", "scan.jpeg"]
_TRAIN = ["train", "--data", "OCT2017"]


@pytest.mark.parametrize(
    ("argv", "dest", "value", "notice"),
    [
        (
            [*_PREDICT, "--topk", "3"],
            "k",
            3,
            "retinalnet predict: warning: --topk is deprecated since retinalnet 0.2 and will "
            "be removed in 0.3; use -k\n",
        ),
        ([*_PREDICT, "--topk=3"], "k", 3, "--topk is deprecated"),
        ([*_PREDICT, "--top", "3"], "k", 3, "--topk is deprecated"),  # an abbreviation
        (
            [*_TRAIN, "--image-size", "64"],
            "size",
            64,
            "retinalnet train: warning: --image-size is deprecated since retinalnet 0.2 and "
            "will be removed in 0.3; use --size\n",
        ),
    ],
)
def test_a_0_1_option_name_works_and_says_its_new_name(argv, dest, value, notice, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert notice in err  # was: nothing, though the CHANGELOG lists them as deprecated
    assert err.count("\n") == 1  # one line


@pytest.mark.parametrize(
    ("argv", "dest", "value"),
    [
        ([*_PREDICT, "-k", "3"], "k", 3),
        ([*_PREDICT, "-k3"], "k", 3),
        ([*_TRAIN, "--size", "64"], "size", 64),
        (_PREDICT, "k", 2),
    ],
)
def test_the_new_names_and_the_defaults_say_nothing(argv, dest, value, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    assert capsys.readouterr().err == ""


def test_a_wrong_value_under_the_old_name_is_still_refused(capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args([*_PREDICT, "--topk", "0"])
    assert stopped.value.code == 2
    assert "must be at least 1, got 0" in capsys.readouterr().err


def test_the_command_says_it_before_its_own_output(tmp_path, capsys):
    missing = tmp_path / "missing.pt"
    status = main(["predict", "--checkpoint", str(missing), str(tmp_path), "--topk", "2"])
    assert status != 0  # no checkpoint: the command stops, after the notice
    err = capsys.readouterr().err
    assert err.startswith(
        "retinalnet predict: warning: --topk is deprecated since retinalnet 0.2 and will be "
        "removed in 0.3; use -k\n"
    )
