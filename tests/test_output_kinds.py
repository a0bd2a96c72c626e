"""The Python writers (to_onnx, write_html_report, save_checkpoint, a figure's save=) refuse,
as the CLI does, a name whose suffix says another kind of file and an existing checkpoint or
scan they would replace (also through a link), and replace a file of their own kind freely."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from _training_helpers import tiny_cnn
from retinalnet._core.files import atomic_write_text
from retinalnet._core.output_kinds import output_path
from retinalnet._core.printable import save_figure
from retinalnet.checkpoint import checkpoint_epoch, save_checkpoint
from retinalnet.datasets import ManifestRow, write_manifest
from retinalnet.export import to_onnx
from retinalnet.report import write_html_report
from retinalnet.training import EvaluationResult


def _scan(path: Path) -> Path:
    """A grey OCT-like scan, in the format its suffix says (PNG when it has none)."""
    pixels = (np.random.default_rng(0).random((40, 48)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format=None if path.suffix else "PNG")
    return path


def _figure() -> Figure:
    figure = Figure(figsize=(2, 2))  # not pyplot's: no figure left open
    figure.gca().plot([0, 1], [1, 0])
    return figure


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """best.pt (a checkpoint of epoch 7), a copy named ``model``, history.csv, a scan."""
    save_checkpoint(tmp_path / "best.pt", tiny_cnn(), epoch=7)
    (tmp_path / "model").write_bytes((tmp_path / "best.pt").read_bytes())
    (tmp_path / "history.csv").write_text("epoch,loss\n1,0.5\n")
    _scan(tmp_path / "scan.png")
    (tmp_path / "fig.png").symlink_to(tmp_path / "scan.png")
    return tmp_path


def _no_result() -> Any:
    return cast(Any, None)  # the refusal comes before the result is read


WRITERS = {
    "to_onnx": lambda path: to_onnx(tiny_cnn(), path),
    "to_onnx-of-itself": lambda path: to_onnx(path, path),
    "write_html_report": lambda path: write_html_report(path, _no_result()),
    "save_checkpoint": lambda path: save_checkpoint(path, tiny_cnn()),
    "save_figure": lambda path: save_figure(_figure(), path, format="png"),
}


@pytest.mark.parametrize(
    ("writer", "name", "error", "said"),
    [
        ("to_onnx-of-itself", "best.pt", ValueError,
         "best.pt' names a checkpoint file (.pt), but to_onnx writes an ONNX file there; "
         "pass a name ending in .onnx"),
        ("to_onnx", "history.csv", ValueError, "names a CSV file (.csv), but to_onnx writes"),
        ("to_onnx", "model", FileExistsError,
         "model' is a retinalnet checkpoint (trained for 7 epoch(s)): to_onnx would replace it "
         "with an ONNX file; pass another path, or delete the file first to replace it"),
        ("to_onnx-of-itself", "model", FileExistsError, "is a retinalnet checkpoint"),
        ("write_html_report", "best.pt", ValueError,
         "but write_html_report writes an HTML file there; pass a name ending in .html"),
        ("write_html_report", "model", FileExistsError,
         "write_html_report would replace it with an HTML file"),
        ("write_html_report", "fig.png", ValueError, "(a link to "),
        ("save_checkpoint", "fig.png", ValueError,
         "names an image file (.png), but save_checkpoint writes a checkpoint file there"),
        ("save_checkpoint", "history.csv", ValueError, "pass a name ending in .pt"),
        ("save_checkpoint", "model.onnx", ValueError, "names an ONNX file (.onnx)"),
        ("save_figure", "fig.png", FileExistsError,
         "(a link to '{run}/scan.png') is an image: saving the figure would replace it"),
        ("save_figure", "scan.png", FileExistsError, "is an image"),
        ("save_figure", "best.pt", ValueError, "names a checkpoint file (.pt)"),
        ("save_figure", "model", FileExistsError, "is a PyTorch file (torch.save)"),
    ],
)  # fmt: skip
def test_a_writer_refuses_another_kind_or_a_checkpoint_or_scan(
    run: Path, writer: str, name: str, error: type[Exception], said: str
) -> None:
    target = run / name
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(error) as raised:
        WRITERS[writer](target)
    assert said.format(run=run) in str(raised.value)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def _evaluated() -> EvaluationResult:
    return EvaluationResult(
        classes=("CNV", "NORMAL"),
        loss=0.5,
        accuracy=1.0,
        confusion_matrix=np.eye(2, dtype=np.int64),
        probabilities=np.eye(2),
        targets=np.arange(2),
    )


SWAPPED = {
    "to_onnx": lambda out: to_onnx(str(out / "model.onnx"), tiny_cnn()),
    "write_manifest": lambda out: write_manifest(
        str(out / "split.csv"), [ManifestRow("train/CNV/CNV-1-1.jpeg", "CNV", "1", "train")]
    ),
    "write_html_report": lambda out: write_html_report(_evaluated(), str(out / "report.html")),
}


@pytest.mark.parametrize(
    ("writer", "said"),
    [
        ("to_onnx", "to_onnx: path must be a file path (str or os.PathLike), got a "
         "Classifier; the order is to_onnx(model, path)"),
        ("write_manifest", "write_manifest: path must be a file path (str or os.PathLike), "
         "got a list; the order is write_manifest(rows, path)"),
        ("write_html_report", "write_html_report: path must be a file path (str or "
         "os.PathLike), got an EvaluationResult; the order is write_html_report(path, "
         "result, ...)"),
    ],
)  # fmt: skip
def test_a_writer_given_its_arguments_swapped_names_its_order(
    tmp_path: Path, writer: str, said: str
) -> None:
    # was pathlib's "expected str, bytes or os.PathLike object, not Classifier", naming
    # neither the writer nor its order: writers differ in where the path goes
    with pytest.raises(TypeError) as raised:
        SWAPPED[writer](tmp_path)
    assert str(raised.value) == said
    assert list(tmp_path.iterdir()) == []  # refused before any work


class _BytesPath:
    def __fspath__(self) -> bytes:
        return b"model.onnx"


@pytest.mark.parametrize(
    ("path", "got"), [(None, "got None"), (b"model.onnx", "got a bytes"), (_BytesPath(), "got a")]
)
def test_only_a_text_path_is_a_path_to_write(path: object, got: str) -> None:
    with pytest.raises(TypeError, match=rf"^to_onnx: path must be a file path .*, {got}"):
        output_path(path, writer="to_onnx")
    assert output_path("a/model.onnx", writer="to_onnx") == Path("a/model.onnx")


def test_a_suffixless_scan_is_not_replaced_by_a_checkpoint(tmp_path: Path) -> None:
    scan = _scan(tmp_path / "b-scan")
    with pytest.raises(FileExistsError, match="is an image: save_checkpoint would replace it"):
        save_checkpoint(scan, tiny_cnn())
    assert Image.open(scan).size == (48, 40)


def test_a_pytorch_file_is_refused_by_other_writers_but_replaced_by_a_checkpoint(
    tmp_path: Path,
) -> None:
    weights = tmp_path / "weights"
    torch.save({"w": torch.zeros(2)}, weights)
    with pytest.raises(FileExistsError, match=r"is a PyTorch file \(torch.save\)"):
        to_onnx(tiny_cnn(), weights)
    save_checkpoint(weights, tiny_cnn(), epoch=2)  # torch.save's freedom: it is replaced
    save_checkpoint(weights, tiny_cnn(), epoch=3)  # a checkpoint over a checkpoint
    assert checkpoint_epoch(weights) == 3


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".pdf", ".svg"])
def test_a_figure_replaces_an_older_figure(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"confusion{suffix}"
    save_figure(_figure(), path)
    first = path.read_bytes()
    figure = _figure()
    figure.gca().set_title("again")
    save_figure(figure, path)
    assert path.read_bytes() != first


def test_a_figure_does_not_replace_a_grey_jpeg_scan(tmp_path: Path) -> None:
    scan = _scan(tmp_path / "CNV-1-1.jpeg")
    with pytest.raises(FileExistsError, match="is an image"):
        save_figure(_figure(), scan)


@pytest.mark.parametrize("spelled", ["hist/", "runs/.", "runs/.."])
def test_a_path_spelled_as_a_folder_is_refused_by_every_python_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelled: str
) -> None:
    # Path drops the "/": History.to_csv("hist/") and save_checkpoint("ckpt/", m) wrote files
    # named hist and ckpt
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match="names a folder, where a file is expected"):
        atomic_write_text(spelled, "epoch\n")
    with pytest.raises(ValueError, match=r"save_checkpoint: .* names a folder"):
        save_checkpoint(spelled, tiny_cnn())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["runs"]
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_checkpoint_writer_given_its_arguments_swapped_names_its_order(tmp_path: Path) -> None:
    model = tiny_cnn()
    with pytest.raises(TypeError, match=r"the order is save_checkpoint\(path, model\)"):
        save_checkpoint(model, tmp_path / "best.pt")  # type: ignore[arg-type]
