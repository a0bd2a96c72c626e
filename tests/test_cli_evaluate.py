"""``retinalnet evaluate`` names the weights its numbers are of, also while a training run
writes the checkpoint it was given."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from _checkpoint_swap import rename_over, replaced_after_load, sha256, two_checkpoints
from retinalnet.cli import main
from retinalnet.datasets import make_synthetic_kermany


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaluate") / "data"
    return make_synthetic_kermany(root, train=1, val=1, test=2, shape=(40, 40), seed=0)


def _evaluate(checkpoint: Path, data: Path, out: Path) -> dict[str, object]:
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out)]
    assert main([*argv, "-q"]) == 0
    loaded: dict[str, object] = json.loads(out.read_text())
    return loaded


def test_the_sha256_is_of_the_checkpoint_evaluated_when_a_run_replaced_the_file(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the sha256 of the file once the evaluation was done (the run's next best.pt),
    beside the numbers of the one evaluated."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "best.pt"
    rename_over(first, best)
    replaced_after_load(monkeypatch, "retinalnet.checkpoint.load_checkpoint", best, newer)

    printed = _evaluate(best, data, tmp_path / "r.json")
    monkeypatch.undo()

    assert printed["checkpoint"] == str(best)
    assert printed["checkpoint_sha256"] == sha256(first)
    assert printed["loss"] == _evaluate(first, data, tmp_path / "first.json")["loss"]
    assert printed["loss"] != _evaluate(newer, data, tmp_path / "newer.json")["loss"]


def test_predict_names_the_checkpoint_it_predicted_with_when_a_run_replaced_the_file(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: ``predict --json`` hashed the file again after predicting (the run's next
    best.pt), beside the probabilities of the one loaded."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "best.pt"
    rename_over(first, best)
    replaced_after_load(monkeypatch, "retinalnet.checkpoint.load_checkpoint", best, newer)
    scan = next((data / "test").rglob("*.jpeg"))

    assert main(["predict", "--checkpoint", str(best), str(scan), "--json", "-q"]) == 0
    printed = json.loads(capsys.readouterr().out)
    entries = printed if isinstance(printed, list) else printed["predictions"]
    assert entries[0]["checkpoint_sha256"] == sha256(first)


def test_the_json_records_when_and_with_which_software_the_numbers_were_computed(
    data: Path, tmp_path: Path
) -> None:
    import platform

    import torch
    import torchvision

    import retinalnet

    first, _ = two_checkpoints(tmp_path / "epochs")
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

    printed = _evaluate(first, data, tmp_path / "r.json")

    when = datetime.datetime.fromisoformat(str(printed["evaluated_at"]))
    assert when.utcoffset() == datetime.timedelta(0)
    assert before <= when <= datetime.datetime.now(datetime.timezone.utc)
    assert printed["software"] == {
        "retinalnet": retinalnet.__version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
    }


def test_with_no_stdout_evaluate_still_writes_its_report_plots_and_json(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started with stdout closed (``>&-``, pythonw), Python has ``sys.stdout = None``: was a
    raw AttributeError from ``sys.stdout.flush()`` after the tables, before the report and
    the plots were written."""
    pytest.importorskip("matplotlib")
    checkpoint, _ = two_checkpoints(tmp_path / "epochs")
    out = tmp_path / "outputs"
    monkeypatch.setattr("sys.stdout", None)

    code = main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data),
                 "--out", str(out / "ev.json"), "--report", str(out / "report.html"),
                 "--plots", str(out / "plots"), "-q"])  # fmt: skip

    monkeypatch.undo()
    assert code == 0
    assert json.loads((out / "ev.json").read_text())["num_samples"] == 8
    assert (out / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.suffix for p in (out / "plots").iterdir())[0] == ".png"


# ---------------------------------------------------------------------------------------------
# --plots DIR shows one evaluation; --out comes last


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a one-epoch small CNN on ``data``: a checkpoint with a training history."""
    from _cli_helpers import train_small_cnn

    out = tmp_path_factory.mktemp("trained") / "run"
    assert train_small_cnn(data, out, "--no-calibrate") == 0
    return out / "best.pt"


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_plots_of_a_checkpoint_without_history_name_the_history_plot_left_there(
    data: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: the first model's history.png stayed beside the second model's five plots
    without a word; it is left (it may be the user's own, R16) and named in a warning."""
    pytest.importorskip("matplotlib")
    no_history, _ = two_checkpoints(tmp_path / "epochs")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "notes.txt").write_text("mine")  # never touched: not a name evaluate draws
    argv = ["evaluate", "--data", str(data), "--plots", str(plots), "-q"]
    assert main([*argv, "--checkpoint", str(trained)]) == 0
    with pytest.warns(UserWarning, match=r"history\.png' is not of this evaluation \(the "):
        assert main([*argv, "--checkpoint", str(no_history)]) == 0

    drawn = capsys.readouterr().out.splitlines()[-1].removeprefix("plots: ").split(", ")
    assert len(drawn) == 5
    assert sorted(Path(path).name for path in drawn) == sorted(
        name for name in _folder_bytes(plots) if name not in ("notes.txt", "history.png")
    )
    assert (plots / "history.png").exists()
    assert (plots / "notes.txt").read_text() == "mine"


def test_evaluate_stopped_while_drawing_leaves_the_earlier_plots_and_json(
    data: Path, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: --out was written first (the second model's numbers), and the plots drawn before
    Ctrl-C replaced the first model's: a complete-looking folder of two evaluations."""
    pytest.importorskip("matplotlib")
    import retinalnet.plots

    other, _ = two_checkpoints(tmp_path / "epochs")
    plots, out = tmp_path / "plots", tmp_path / "e.json"
    outputs = ["--data", str(data), "--plots", str(plots), "--out", str(out), "-q"]
    assert main(["evaluate", "--checkpoint", str(trained), *outputs]) == 0
    before = out.read_bytes(), _folder_bytes(plots)

    def stopped(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(retinalnet.plots, "plot_roc_curves", stopped)  # the third one drawn

    try:
        code = main(["evaluate", "--checkpoint", str(other), *outputs])
    except KeyboardInterrupt:  # passed on to a caller that is a program of its own
        code = 130
    assert code == 130
    assert (out.read_bytes(), _folder_bytes(plots)) == before
