"""Figure files (``plots.*(save=...)``, ``plot_volume(save=...)``, ``evaluate --plots``,
``predict --cam``): written whole or not at all, names shown as given (a pair of ``$`` is no
mathtext), long titles in lines inside the figure."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure
from matplotlib.text import Text

from _cli_helpers import train_small_cnn
from _file_limits import file_size_limit
from retinalnet.cli import main
from retinalnet.datasets import make_synthetic_kermany
from retinalnet.plots import plot_confusion_matrix, plot_gradcam, plot_history
from retinalnet.plots_volume import plot_volume
from retinalnet.report._images import figure_png
from retinalnet.training import EpochRecord, History, LRFinderResult
from retinalnet.volume import VolumeSummary, summarise_volume

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
LONG_NAME = "OCT_2024-05-17_patient-000123_left-eye_macular-cube_512x128_scan.jp2"
LONG_PATH = (
    "/data/clinic/exports/2024/05/17/patient-000123/left_eye/macular_cube_512x128_"
    "spectralis_follow-up_visit_3/OD_macula_cube_512x128_raw_export.dcm"
)


def _history() -> History:
    history = History()
    for epoch in (1, 2, 3):
        history.append(EpochRecord(epoch, 1.0 / epoch, 0.5, 1.1 / epoch, 0.45, 1e-3, 1.0))
    return history


def _summary(source: str = LONG_PATH) -> VolumeSummary:
    probabilities = np.random.default_rng(0).dirichlet([1, 1, 1, 3], 49)
    return summarise_volume(probabilities, CLASSES, source=source)


def _suptitle(figure: Figure) -> Text:
    """The figure's title: matplotlib has no public handle on its Text."""
    title = figure._suptitle  # type: ignore[attr-defined]
    assert isinstance(title, Text)
    return title


def _gradcam(title: str, save: Path | None = None) -> Figure:
    image = Image.fromarray(np.full((48, 48), 90, dtype=np.uint8))
    heatmap = np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48)
    return plot_gradcam(image, heatmap, title=title, save=save)


_DOORS: dict[str, Callable[[Path], object]] = {
    "plot_history": lambda path: plot_history(_history(), save=path),
    "plot_gradcam": lambda path: _gradcam("ok.jpeg: CNV 97.0%", save=path),
    "plot_volume": lambda path: plot_volume(_summary(), save=path),
    "LRFinderResult.plot": lambda path: LRFinderResult(
        tuple(np.geomspace(1e-6, 1, 40)), (1.0,) * 40, (1.0,) * 40
    ).plot(save=path),
}


# --- a failed write leaves the file there before, and names it ------------------------


@pytest.mark.parametrize("door", list(_DOORS))
def test_a_write_cut_short_leaves_the_previous_png_byte_for_byte(tmp_path: Path, door: str) -> None:
    target = tmp_path / "figure.png"
    _DOORS[door](target)
    before = target.read_bytes()
    with (
        file_size_limit(2000),  # each PNG is larger: the write fails part of the way
        pytest.raises(OSError, match=r"^cannot write ") as raised,
    ):
        _DOORS[door](target)
    assert target.read_bytes() == before  # was: a truncated PNG over the good one
    message = str(raised.value)
    assert message == (
        f"cannot write {str(target)!r}: file too large [EFBIG]; the file there before is "
        "untouched. Check the path and the disk"
    )
    assert sorted(tmp_path.iterdir()) == [target]  # no temporary file left


def test_a_full_disk_names_the_figure_file_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "history.png"
    plot_history(_history(), save=target)
    before = target.read_bytes()

    def full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)  # as a full disk refuses it (NFS, quotas)
    with pytest.raises(OSError, match=r"^cannot write ") as raised:
        plot_history(_history(), save=target)
    assert str(raised.value) == (
        f"cannot write {str(target)!r}: no space left on device [ENOSPC]; the file there "
        "before is untouched. Free some disk space or write elsewhere"
    )  # was: no error at all, or a bare "[Errno 28] No space left on device"
    assert target.read_bytes() == before


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("figure_files")
    data = make_synthetic_kermany(root / "data", train=3, val=2, test=2, shape=(40, 40), seed=0)
    assert train_small_cnn(data, root / "run") == 0
    return root / "run" / "best.pt", data


def test_predict_cam_on_a_full_disk_says_which_overlay_in_one_line(
    checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    best, data = checkpoint
    image = next((data / "test" / "CNV").iterdir())
    cams = tmp_path / "cams"
    argv = ["predict", str(image), "--checkpoint", str(best), "--cam", str(cams), "-q"]
    assert main(argv) == 0
    overlay = cams / f"{image.stem}_cam.png"
    before = overlay.read_bytes()
    capsys.readouterr()

    def full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)  # as a full disk refuses it (NFS, quotas)
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert error == (
        f"retinalnet predict: error: cannot write {str(overlay)!r}: no space left on device "
        "[ENOSPC]; the file there before is untouched. Free some disk space or write "
        "elsewhere\n"
    )
    assert overlay.read_bytes() == before


# --- a pair of $ in a name is text, not mathtext ------------------------------------------


def _literal_width(figure: Figure, text: Text) -> float:
    """The width in pixels of ``text``'s string drawn as plain text, with its font."""
    plain = figure.text(0, 0, text.get_text(), fontproperties=text.get_fontproperties())
    plain.set_parse_math(False)
    width = float(plain.get_window_extent().width)
    plain.remove()
    return width


@pytest.mark.parametrize("name", [r"d$\foo$", "d$x^2$"])
def test_a_pair_of_dollars_in_a_title_is_drawn_as_written(tmp_path: Path, name: str) -> None:
    # was: ValueError "Unknown symbol: \foo" (no file), or x squared in the title
    figure = _gradcam(f"{name}: CNV 97.0%", save=tmp_path / "cam.png")
    title = _suptitle(figure)
    assert title.get_text() == f"{name}: CNV 97.0%"
    assert title.get_window_extent().width == pytest.approx(_literal_width(figure, title))

    volume = plot_volume(_summary(f"scans/{name}.dcm"), save=tmp_path / "volume.png")
    assert _suptitle(volume).get_text().startswith(f"scans/{name}.dcm: ")


def test_class_names_and_titles_with_dollars_are_text_in_files_and_the_report(
    tmp_path: Path,
) -> None:
    classes = ["a$x$", r"b$\foo$"]
    figure = plot_confusion_matrix(np.array([[3, 1], [0, 4]]), classes, title=r"d$\foo$")
    plot_confusion_matrix(
        np.array([[3, 1], [0, 4]]), classes, title=r"d$\foo$", save=tmp_path / "m.png"
    )
    png = figure_png(figure)  # the HTML report's door: bytes in memory
    assert png.startswith(b"\x89PNG")
    figure.draw_without_rendering()  # measured at the figure's dpi, not the report's
    labels = [label for label in figure.axes[0].get_yticklabels() if label.get_text()]
    assert [label.get_text() for label in labels] == classes
    for label in labels:
        assert label.get_window_extent().width == pytest.approx(_literal_width(figure, label))


def test_numbers_matplotlib_writes_as_mathtext_stay_so(tmp_path: Path) -> None:
    lrs = tuple(float(rate) for rate in np.geomspace(1e-6, 1, 40))
    figure = LRFinderResult(lrs, (1.0,) * 40, (1.0,) * 40).plot(save=tmp_path / "lr.png")
    ticks = [label for label in figure.axes[0].get_xticklabels() if label.get_text()]
    assert ticks
    assert all("10^{" in label.get_text() for label in ticks)
    # drawn as 10 with a raised exponent, narrower than the text of the formula
    assert all(label.get_window_extent().width < _literal_width(figure, label) for label in ticks)


# --- a long title is broken into lines inside the figure ----------------------------------


def _inside(figure: Figure, text: Text) -> bool:
    box = text.get_window_extent()
    return bool(box.x0 >= 0 and box.x1 <= figure.bbox.width)


def test_a_long_file_name_in_a_gradcam_title_stays_inside_the_figure(tmp_path: Path) -> None:
    assert len(LONG_NAME) == 68
    title = f"{LONG_NAME}: CNV 97.3%"
    shown = _gradcam(title)
    shown.draw_without_rendering()
    assert _inside(shown, _suptitle(shown))  # was: cut off on both sides
    assert "".join(_suptitle(shown).get_text().split()) == "".join(title.split())
    saved = _gradcam(title, save=tmp_path / "cam.png")
    assert _inside(saved, _suptitle(saved))


def test_a_long_volume_path_in_the_volume_title_stays_inside_the_figure(tmp_path: Path) -> None:
    for count in (6, 49, 128):  # the figure widens with the B-scans
        probabilities = np.random.default_rng(count).dirichlet([1, 1, 1, 3], count)
        summary = summarise_volume(probabilities, CLASSES, source=LONG_PATH)
        figure = plot_volume(summary, save=tmp_path / f"volume{count}.png")
        assert _inside(figure, _suptitle(figure)), count
        assert "".join(_suptitle(figure).get_text().split()).startswith("".join(LONG_PATH.split()))


def test_a_long_title_of_any_saved_figure_stays_inside_it(tmp_path: Path) -> None:
    title = f"test split of {LONG_NAME}, 1,000 images"
    figure = plot_confusion_matrix(
        np.array([[3, 1], [0, 4]]), ["a", "b"], title=title, save=tmp_path / "m.png"
    )
    assert _inside(figure, figure.axes[0].title)


def test_a_title_that_fits_is_left_as_it_is(tmp_path: Path) -> None:
    figure = _gradcam("ok.jpeg: CNV 97.0%", save=tmp_path / "cam.png")
    assert _suptitle(figure).get_text() == "ok.jpeg: CNV 97.0%"
    assert figure.axes[1].title.get_text() == "Grad-CAM"
