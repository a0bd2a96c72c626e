"""The HTML report: one self-contained file whose tables hold the numbers of the JSON report.

The page is read back with Python's own ``html.parser``, as a browser would see it: every
picture must decode as a PNG, nothing may be loaded from elsewhere, and each number in a
table must be the JSON report's, formatted as shown.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from _checkpoint_swap import rename_over, sha256, two_checkpoints
from retinalnet import metrics, plots
from retinalnet.checkpoint import load_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.models import create_model
from retinalnet.report import render_html_report, write_html_report
from retinalnet.training import EvaluationResult
from retinalnet.transforms import Preprocessing

pytest.importorskip("matplotlib")


@dataclass
class Cell:
    text: str = ""  # the value shown
    interval: str = ""  # the grey confidence interval under it, if any
    html_class: str = ""


@dataclass
class Table:
    html_class: str
    rows: list[list[Cell]] = field(default_factory=list)

    def row(self, first: str) -> list[Cell]:
        """The body row whose first cell reads ``first``."""
        matches = [row for row in self.rows if row and row[0].text == first]
        assert len(matches) == 1, f"{first!r} in {[r[0].text for r in self.rows]}"
        return matches[0]


class Page(HTMLParser):
    """Tables (their cells' text, the interval apart), images, links and scripts of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self.images: list[dict[str, str]] = []
        self.attributes: list[tuple[str, str, str]] = []  # (tag, name, value)
        self.tags: set[str] = set()
        self.section_ids: list[str] = []
        self._cell: Cell | None = None
        self._in_interval = 0
        self._in_head = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags.add(tag)
        self.attributes += [(tag, name, value) for name, value in values.items()]
        if tag == "section":
            self.section_ids.append(values.get("id", ""))
        elif tag == "table":
            self.tables.append(Table(values.get("class", "")))
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr" and not self._in_head:
            self.tables[-1].rows.append([])
        elif tag == "td":
            self._cell = Cell(html_class=values.get("class", ""))
            self.tables[-1].rows[-1].append(self._cell)
        elif tag == "span" and "ci" in values.get("class", "").split():
            self._in_interval += 1
        elif tag == "img":
            self.images.append(values)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            assert self._cell is not None
            self._cell.text, self._cell.interval = self._cell.text.strip(), self._cell.interval
            self._cell = None
        elif tag == "span" and self._in_interval:
            self._in_interval -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is None:
            return
        if self._in_interval:
            self._cell.interval += data
        else:
            self._cell.text += data

    def table(self, html_class: str) -> Table:
        found = [t for t in self.tables if html_class in t.html_class.split()]
        assert len(found) == 1, f"{len(found)} tables of class {html_class!r}"
        return found[0]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(json_report: dict[str, Any], key: str, show: Any) -> str:
    low, high = json_report["intervals"][key]
    return f"{show(low)} to {show(high)}"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``retinalnet evaluate --report`` once on a small CNN trained for two epochs."""
    root = tmp_path_factory.mktemp("report")
    data = make_synthetic_kermany(root / "data", train=3, val=2, test=3, shape=(72, 96), seed=3)
    out = root / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--arch", "small_cnn",
                 "--size", "32", "--epochs", "2", "--batch-size", "8", "--seed", "0",
                 "-q"]) == 0  # fmt: skip
    page, json_file = root / "pages" / "report.html", root / "report.json"
    capture = io.StringIO()
    saved, sys.stdout = sys.stdout, capture
    try:
        code = main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(data),
                     "--report", str(page), "--out", str(json_file), "--bootstrap", "40",
                     "-q"])  # fmt: skip
    finally:
        sys.stdout = saved
    assert code == 0
    return {
        "html": page.read_text(encoding="utf-8"),
        "path": page,
        "json": json.loads(json_file.read_text()),
        "printed": capture.getvalue(),
        "checkpoint": out / "best.pt",
        "data": data,
    }


def test_evaluate_prints_where_the_report_is(evaluated: dict[str, Any]) -> None:
    assert evaluated["printed"].rstrip().splitlines()[-1] == f"report: {evaluated['path']}"


def test_every_picture_is_a_png_inside_the_page(evaluated: dict[str, Any]) -> None:
    page = Page(evaluated["html"])
    # confusion x2, ROC, precision-recall, history, the reliability diagram where this
    # version draws one, and the mistakes
    wrong = evaluated["json"]["num_samples"] - np.trace(evaluated["json"]["confusion_matrix"])
    reliability = hasattr(plots, "plot_reliability_diagram")
    assert len(page.images) == 5 + reliability + min(8, wrong)
    for image in page.images:
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        png = base64.b64decode(image["src"][len(prefix) :], validate=True)
        with Image.open(io.BytesIO(png)) as picture:
            assert picture.format == "PNG"
            picture.load()  # the whole stream decodes
            assert max(picture.size) <= 1000  # shrunk: no full-size figure or scan
        assert image["alt"]
    assert len(evaluated["html"].encode()) < 2_000_000


def test_nothing_is_loaded_from_elsewhere(evaluated: dict[str, Any]) -> None:
    text = evaluated["html"]
    page = Page(text)
    assert "http://" not in text
    assert "https://" not in text
    assert not page.tags & {"script", "link", "iframe", "object", "embed"}
    assert "@import" not in text
    assert "url(" not in text
    for tag, name, value in page.attributes:
        if name in {"src", "href"}:
            assert value.startswith(("data:", "#")), (tag, name, value[:40])
    # the sections the table of contents links to are there
    links = [value[1:] for _, name, value in page.attributes if name == "href"]
    assert links == page.section_ids


def test_the_metrics_tables_hold_the_json_numbers(evaluated: dict[str, Any]) -> None:
    page = Page(evaluated["html"])
    report = evaluated["json"]["report"]
    overall = page.table("overall")
    assert overall.row("Images")[1].text == str(report["num_samples"])
    accuracy = overall.row("Accuracy")[1]
    assert accuracy.text == _pct(report["accuracy"]) == _pct(evaluated["json"]["accuracy"])
    assert accuracy.interval == _interval(report, "accuracy", _pct)
    assert overall.row("Macro F1")[1].text == _pct(report["macro"]["f1"])
    assert overall.row("Macro AUC")[1].text == _num(report["macro"]["auc"])

    per_class = page.table("per-class")
    for name, values in report["per_class"].items():
        row = per_class.row(name)
        shown = [cell.text for cell in row[1:]]
        assert shown == [
            _pct(values["recall"]),
            _pct(values["specificity"]),
            _pct(values["precision"]),
            _pct(values["f1"]),
            _num(values["auc"]),
            str(values["support"]),
        ]
        if f"sensitivity[{name}]" in report["intervals"]:
            assert row[1].interval == _interval(report, f"sensitivity[{name}]", _pct)
        assert row[1].text == _pct(evaluated["json"]["per_class_accuracy"][name])
    for label, key in (("macro average", "macro"), ("weighted average", "weighted")):
        row = per_class.row(label)
        assert row[1].text == _pct(report[key]["recall"])
        assert row[5].text == _num(report[key]["auc"])

    topk = page.table("topk")
    for k, values in report["topk"].items():
        assert [c.text for c in topk.row(f"top-{k}")[1:]] == [_pct(v) for v in values.values()]


def test_the_referral_and_confusion_tables_hold_the_json_counts(
    evaluated: dict[str, Any],
) -> None:
    page = Page(evaluated["html"])
    report = evaluated["json"]["report"]
    referral = report["referral"]
    measures = page.table("referral")
    assert measures.row("Sensitivity")[1].text == _pct(referral["sensitivity"])
    assert measures.row("Specificity")[1].text == _pct(referral["specificity"])
    assert measures.row("AUC")[1].text == _num(referral["auc"])
    assert measures.row("Sensitivity")[1].interval == _interval(
        report, "referral_sensitivity", _pct
    )
    counts = page.table("referral-counts")
    (not_urgent_no, not_urgent_yes), (urgent_no, urgent_yes) = referral["confusion_matrix"]
    assert [c.text for c in counts.row("urgent (CNV, DME)")[1:]] == [
        str(urgent_yes),
        str(urgent_no),
    ]
    assert [c.text for c in counts.row("not urgent (DRUSEN, NORMAL)")[1:]] == [
        str(not_urgent_yes),
        str(not_urgent_no),
    ]

    matrix = evaluated["json"]["confusion_matrix"]
    confusion = page.table("confusion")
    for name, row in zip(evaluated["json"]["classes"], matrix, strict=True):
        assert [int(c.text) for c in confusion.row(name)[1:]] == [*row, sum(row)]
    class_counts = page.table("class-counts")
    for name, row in zip(evaluated["json"]["classes"], matrix, strict=True):
        assert class_counts.row(name)[1].text == str(sum(row))
    assert class_counts.row("all")[1].text == str(evaluated["json"]["num_samples"])


def test_the_summary_names_the_checkpoint_by_its_sha256(evaluated: dict[str, Any]) -> None:
    page = Page(evaluated["html"])
    summary = page.table("summary")
    digest = hashlib.sha256(evaluated["checkpoint"].read_bytes()).hexdigest()
    assert summary.row("Checkpoint SHA-256")[1].text == digest
    assert summary.row("Checkpoint")[1].text == str(evaluated["checkpoint"])
    assert summary.row("Model")[1].text == "small_cnn"
    assert summary.row("Split")[1].text == "test"
    assert summary.row("Data folder")[1].text == str(evaluated["data"])
    # the software the numbers were computed with, as evaluate --json records it
    for name, version in evaluated["json"]["software"].items():
        assert summary.row(name)[1].text == version
    history = load_checkpoint(evaluated["checkpoint"]).history
    epochs = page.table("history")
    assert [c[0].text for c in epochs.rows] == [str(r["epoch"]) for r in history]


def test_the_summary_names_the_checkpoint_evaluated_when_a_run_replaced_the_file(
    tmp_path: Path,
) -> None:
    """Was: the SHA-256 of the file at report time (the run's next epoch) beside the epoch of
    the checkpoint evaluated, two files in two rows."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "best.pt"
    rename_over(first, best)
    checkpoint = load_checkpoint(best)
    rename_over(newer, best)  # a run writes its next epoch while the model is evaluated
    result = _result([0, 1, 2, 3], np.eye(4).tolist())

    summary = Page(render_html_report(result, checkpoint=checkpoint, mistakes=0)).table("summary")

    assert summary.row("Checkpoint SHA-256")[1].text == sha256(first)
    assert summary.row("Checkpoint epoch")[1].text == "1"


def _result(targets: list[int], probabilities: list[list[float]]) -> EvaluationResult:
    scores = np.asarray(probabilities, dtype=np.float64)
    true = np.asarray(targets, dtype=np.int64)
    matrix = metrics.confusion_matrix(true, scores.argmax(axis=1), scores.shape[1])
    return EvaluationResult(
        classes=("CNV", "DME", "DRUSEN", "NORMAL"),
        loss=1.0,
        accuracy=float(np.trace(matrix) / len(true)),
        confusion_matrix=matrix,
        probabilities=scores,
        targets=true,
    )


def test_the_page_names_how_each_interval_was_computed_and_its_level_unrounded() -> None:
    # 20 scans of each class, all right but one NORMAL called DRUSEN
    targets = [c for c in range(4) for _ in range(20)]
    probabilities = np.full((80, 4), 0.1)
    probabilities[np.arange(80), targets] = 0.7
    probabilities[60] = [0.1, 0.1, 0.7, 0.1]
    result = _result(targets, probabilities.tolist())
    report = result.report(bootstrap=80, confidence=0.975)
    data = report.to_dict()

    text = render_html_report(result, report=report, mistakes=0)
    page = Page(text)

    # was: "98% intervals from 80 resamples", and 100.0% to 100.0% under CNV's sensitivity
    summary = page.table("summary").row("Confidence intervals")[1].text
    assert summary == report.interval_note
    assert summary.startswith("97.5% intervals: Wilson score for proportions")
    cnv = page.table("per-class").row("CNV")
    assert cnv[1].interval == _interval(data, "sensitivity[CNV]", _pct)
    assert not cnv[1].interval.startswith("100.0%")
    assert cnv[3].interval == _interval(data, "precision[CNV]", _pct)
    assert cnv[4].interval == "no interval*"  # F1 of 1 in every resample
    assert cnv[5].interval == "no interval*"  # AUC of 1: perfectly separated
    normal = page.table("per-class").row("NORMAL")
    assert normal[5].interval == _interval(data, "auc[NORMAL]", _num)
    assert page.table("referral").row("AUC")[1].interval == "no interval*"
    assert "like these. 97.5% intervals: Wilson score for proportions" in text
    assert "*No interval: every resample scored the same, e.g. an AUC of 1 on" in text
    assert "lower bound of the uncertainty" in text


@pytest.fixture
def odd_names(tmp_path: Path) -> KermanyOCT:
    """Four test scans, two with file names full of HTML."""
    names = {
        "CNV": "CNV-1-1.jpeg",
        "DME": 'DME-<img src=x onerror="alert(1)">-1.jpeg',
        "DRUSEN": "DRUSEN-a&b-1.jpeg",
        "NORMAL": "NORMAL-4-1.jpeg",
    }
    for name, file in names.items():
        folder = tmp_path / "data" / "test" / name
        folder.mkdir(parents=True)
        Image.linear_gradient("L").resize((60, 40)).save(folder / file, format="JPEG")
    return KermanyOCT(tmp_path / "data", "test")


def test_the_gallery_shows_the_surest_mistakes_first_with_escaped_names(
    odd_names: KermanyOCT, tmp_path: Path
) -> None:
    # CNV right; DME called CNV at 0.9; DRUSEN called NORMAL at 0.6; NORMAL called DME at 0.7
    result = _result(
        [0, 1, 2, 3],
        [[0.7, 0.1, 0.1, 0.1], [0.9, 0.05, 0.03, 0.02], [0.1, 0.1, 0.2, 0.6], [0.1, 0.7, 0.1, 0.1]],
    )
    written = write_html_report(tmp_path / "r.html", result, data=odd_names, mistakes=2)
    text = written.read_text(encoding="utf-8")

    assert "<img src=x" not in text
    assert "DME-&lt;img src=x onerror=&quot;alert(1)&quot;&gt;-1.jpeg" in text
    assert "DRUSEN-a&amp;b-1.jpeg" not in text  # only the two surest mistakes are shown
    page = Page(text)
    scans = [image["alt"] for image in page.images if image["alt"].startswith("scan ")]
    assert scans == ['scan DME-<img src=x onerror="alert(1)">-1.jpeg', "scan NORMAL-4-1.jpeg"]
    assert "3 wrongly classified scans" in text


def test_every_string_from_the_data_is_escaped(tmp_path: Path) -> None:
    result = _result([0, 1], [[0.6, 0.4, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    result = EvaluationResult(
        classes=("<b>CNV</b>", "D&ME", "DRUSEN", "NORMAL"),
        loss=result.loss,
        accuracy=result.accuracy,
        confusion_matrix=result.confusion_matrix,
        probabilities=result.probabilities,
        targets=result.targets,
    )
    text = render_html_report(result, title="<script>x</script>")
    # calibration is there when this version computes it (retinalnet.metrics)
    has_ece = hasattr(metrics, "expected_calibration_error")
    assert ("calibration" in Page(text).section_ids) == has_ece
    assert "<b>CNV</b>" not in text
    assert "&lt;b&gt;CNV&lt;/b&gt;" in text
    assert "D&ME" not in text
    assert "<script>" not in text
    assert "No image was classified wrongly" not in text  # one mistake, no file names
    assert "their files were not given" in text


def test_calibration_is_shown_when_the_library_computes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from matplotlib.figure import Figure

    result = _result([0, 1, 2, 3], [[0.7, 0.1, 0.1, 0.1], [0.2, 0.6, 0.1, 0.1],
                                    [0.1, 0.1, 0.5, 0.3], [0.3, 0.1, 0.1, 0.5]])  # fmt: skip

    def curve(*, probabilities: Any, targets: Any) -> tuple[Any, Any, Any]:
        return np.array([np.nan, 0.55, 0.7]), np.array([np.nan, 0.5, 1.0]), np.array([0, 2, 2])

    def diagram(result: EvaluationResult, *, title: str) -> Figure:
        figure = Figure(figsize=(2, 2))
        figure.subplots().plot([0, 1], [0, 1])
        return figure

    monkeypatch.setattr(metrics, "reliability_curve", curve, raising=False)
    monkeypatch.setattr(plots, "plot_reliability_diagram", diagram, raising=False)
    page = Page(render_html_report(result, mistakes=0))
    assert "calibration" in page.section_ids
    bins = next(t for t in page.tables if t.rows and t.rows[0][0].text.endswith("to 67%"))
    assert [[c.text for c in row] for row in bins.rows] == [
        ["33% to 67%", "55.0%", "50.0%", "2"],
        ["67% to 100%", "70.0%", "100.0%", "2"],
    ]
    assert [image["alt"] for image in page.images][-1] == "reliability diagram"
    ece = getattr(result.report(), "ece", None)  # once the library computes it
    if ece is not None:
        row = page.table("calibration").row("Expected calibration error (ECE)")
        assert row[1].text == f"{ece:.1%}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mistakes": -1}, "mistakes must be an int >= 0"),
        ({"data": "mismatch"}, "data holds 4 images but the result 2"),
        ({"no_probabilities": True}, "holds no per-image probabilities"),
    ],
)
def test_bad_arguments_are_refused_with_what_to_do(
    change: dict[str, Any], message: str, odd_names: KermanyOCT
) -> None:
    result = _result([0, 1], [[0.6, 0.4, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    kwargs: dict[str, Any] = {}
    if change.get("no_probabilities"):
        result = EvaluationResult(result.classes, 1.0, 0.5, result.confusion_matrix)
    if "mistakes" in change:
        kwargs["mistakes"] = change["mistakes"]
    if change.get("data") == "mismatch":
        kwargs["data"] = odd_names
    with pytest.raises(ValueError, match=message):
        render_html_report(result, **kwargs)


def test_report_without_matplotlib_stops_before_any_work(
    evaluated: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    page = tmp_path / "report.html"
    argv = ["evaluate", "--checkpoint", str(evaluated["checkpoint"]),
            "--data", str(evaluated["data"]), "--report", str(page), "-q"]  # fmt: skip

    assert main(argv) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "retinalnet evaluate: error: --report draws with matplotlib, which is not installed: "
        "pip install matplotlib (or leave --report out)\n"
    )
    assert not page.exists()


def test_a_model_without_a_usable_grad_cam_gets_its_mistakes_shown_without_heatmaps(
    odd_names: KermanyOCT, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Grad-CAM refuses a 1 x 1 map (resnet18 at 32 px): the report stopped at its very end
    model = create_model("resnet18", weights=None, preprocessing=Preprocessing(size=32))
    result = _result(
        [0, 1, 2, 3],
        [[0.7, 0.1, 0.1, 0.1], [0.9, 0.05, 0.03, 0.02], [0.1, 0.1, 0.2, 0.6], [0.1, 0.7, 0.1, 0.1]],
    )
    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        written = write_html_report(
            tmp_path / "r.html", result, data=odd_names, mistakes=2, model=model
        )
    text = written.read_text(encoding="utf-8")
    assert "No Grad-CAM heatmaps: Grad-CAM of resnet18 on 32 x 32 inputs" in text
    assert "the mistakes are shown without Grad-CAM" in caplog.text
    scans = [image["alt"] for image in Page(text).images if image["alt"].startswith("scan ")]
    assert len(scans) == 2


def test_the_page_says_which_classes_the_macro_average_covers() -> None:
    # a test set without DRUSEN that the model calls DRUSEN: the notes of the text and the
    # JSON were missing from the page, which showed the macro average without them
    targets = [0, 0, 1, 1, 3, 3]
    probabilities = np.full((6, 4), 0.1)
    probabilities[np.arange(6), [0, 2, 1, 1, 3, 2]] = 0.7
    result = _result(targets, probabilities.tolist())
    report = result.report()
    assert report.notes  # DRUSEN: no images, predicted twice
    text = render_html_report(result, report=report, mistakes=0)
    for note in report.notes:
        assert html.escape(note) in text


def test_the_page_records_the_bootstrap_seed_and_reads_the_averages_apart() -> None:
    targets = [c for c in range(4) for _ in range(20)]
    probabilities = np.full((80, 4), 0.1)
    probabilities[np.arange(80), targets] = 0.7
    probabilities[60] = [0.1, 0.1, 0.7, 0.1]
    result = _result(targets, probabilities.tolist())
    report = result.report(bootstrap=40, seed=7)

    text = render_html_report(result, report=report, mistakes=0)

    # the bootstrap settings: was the level and the resamples without the seed
    summary = Page(text).table("summary").row("Confidence intervals")[1].text
    assert summary.endswith("(40 resamples) for F1 and AUC; bootstrap seed 7")
    # was: "Macro averages the classes equally, weighted by their number of images"
    assert (
        "<b>Macro</b> averages weigh the classes equally; <b>weighted</b> averages weigh each "
        "class by its number of images."
    ) in text


# ---------------------------------------------------------------------------------------------
# Another class set: a torchvision ImageFolder as data=, and no guessed referral headline
# ---------------------------------------------------------------------------------------------


def _image_folder(root: Path, classes: tuple[str, ...]) -> Any:
    """A torchvision ImageFolder of one scan per class, in a folder named ``test``."""
    from torchvision.datasets import ImageFolder

    for name in classes:
        folder = root / "test" / name
        folder.mkdir(parents=True)
        Image.linear_gradient("L").resize((60, 40)).save(folder / f"{name}-scan.png")
    return ImageFolder(str(root / "test"))


def test_an_image_folder_of_other_classes_gets_its_folder_gallery_and_no_guessed_referral(
    tmp_path: Path,
) -> None:
    classes = ("AMD", "CNV", "DME", "DRUSEN", "NORMAL")
    data = _image_folder(tmp_path / "amd", classes)
    probabilities = np.full((5, 5), 0.05)
    probabilities[np.arange(5), [1, 1, 2, 3, 4]] = 0.8  # the AMD scan called CNV
    matrix = metrics.confusion_matrix(np.arange(5), probabilities.argmax(axis=1), 5)
    result = EvaluationResult(
        classes=classes, loss=1.0, accuracy=0.8, confusion_matrix=matrix,
        probabilities=probabilities, targets=np.arange(5),
    )  # fmt: skip

    # was: AttributeError: 'ImageFolder' object has no attribute 'split'
    text = write_html_report(tmp_path / "r.html", result, data=data, mistakes=2).read_text()

    page = Page(text)
    assert "test, 5 images" in text  # the folder, in the subtitle and the figures' titles
    folder = page.table("summary").row("Data folder")[1].text
    assert folder == str((tmp_path / "amd" / "test").absolute())
    scans = [image["alt"] for image in page.images if image["alt"].startswith("scan ")]
    assert scans == ["scan AMD-scan.png"]
    # was: "urgent-referral sensitivity" at the top, AMD counted as not urgent
    assert "urgent-referral" not in text.split('<section id="metrics"')[0]
    assert "referral" not in page.section_ids
    assert html.escape(result.report().referral_note) in text


@pytest.mark.parametrize("writer", [render_html_report, write_html_report])
def test_data_without_samples_is_refused_in_one_line(writer: Any, tmp_path: Path) -> None:
    import torch
    from torch.utils.data import TensorDataset

    result = _result([0, 1], [[0.6, 0.4, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    data = TensorDataset(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]))
    arguments = (result,) if writer is render_html_report else (tmp_path / "r.html", result)
    with pytest.raises(TypeError, match=r"^data must be the data set that was evaluated, with "
                       r"samples of \(file, class\) pairs \(KermanyOCT, torchvision's "
                       r"ImageFolder\), got TensorDataset; pass that data set, or leave data "
                       r"out \(the report then names no file\)$"):  # fmt: skip
        writer(*arguments, data=data)


def _open_directions(text: str) -> list[str]:
    """The direction embeddings and isolates still open at the end of ``text``, as the
    Unicode bidirectional algorithm pairs them (X1-X8, BD9): what would turn the text that
    follows on its line."""
    opened: list[str] = []
    for character in text:
        if character in "\u202a\u202b\u202d\u202e":  # LRE RLE LRO RLO
            opened.append(character)
        elif character == "\u202c" and opened and opened[-1] != "isolate":  # PDF
            opened.pop()
        elif character in "\u2066\u2067\u2068":  # LRI RLI FSI
            opened.append("isolate")
        elif character == "\u2069" and "isolate" in opened:  # PDI closes what it holds
            while opened.pop() != "isolate":
                pass
        elif character in "\n\r\x1c\x1d\x1e\x85\u2029":  # a new paragraph starts anew
            opened.clear()
    return opened


@pytest.mark.parametrize(
    "name",
    [
        "CNV-3-3\u202egepj.jpeg",  # RIGHT-TO-LEFT OVERRIDE: 'CNV-3-3jpeg.jpeg' on screen
        "CNV-3-3\u2069\u202egepj.jpeg",  # a stray POP DIRECTIONAL ISOLATE first
        "CNV-3-3\u2067\u202egepj.jpeg",  # an isolate it opens and never closes
        "CNV-3-3\u2029\u202egepj.jpeg",  # the override after a paragraph separator
        "\u0645\u0633\u062d-3.jpeg",  # Arabic letters
    ],
    ids=["override", "stray-pop", "open-isolate", "paragraph", "arabic"],
)
def test_a_name_that_turns_text_right_to_left_turns_only_itself(
    odd_names: KermanyOCT, tmp_path: Path, name: str
) -> None:
    # was: "<span class="mono">...\u202egepj.jpeg</span>: the file is empty" with the
    # reason mirrored on screen, the override open until the end of the line
    from retinalnet.predictor import SkippedImage

    result = _result([0, 1, 2, 3], [[0.1, 0.7, 0.1, 0.1]] * 4)
    skipped = [SkippedImage(f"scans/{name}", "the file is empty, 0 bytes")]
    text = write_html_report(
        tmp_path / "r.html", result, data=odd_names, mistakes=1, skipped=skipped
    ).read_text(encoding="utf-8")

    item = next(line for line in text.split("<li>") if "the file is empty" in line)
    before_reason = html.unescape(item.split("</span>: the file is empty")[0])
    isolates = str.maketrans("", "", "\u2068\u2069")
    assert name.translate(isolates) in before_reason.translate(isolates)  # shown as it is
    assert "\u2068scans/" in before_reason  # an isolate, as <bdi> makes, from its start
    assert _open_directions(before_reason) == []  # closed before the reason
    assert _open_directions(html.unescape(text)) == []  # and nowhere left open
    assert "\u2068" not in render_html_report(result)  # plain names are as they were


def test_one_missed_scan_of_2000_never_reads_as_100_percent_on_the_page() -> None:
    # was: the referral sensitivity and CNV's (0.9995) "100.0%", its AUC "1.000", and the
    # accuracy (0.99975) "100.0%" in the subtitle: the page of a model that missed no one
    targets = [0] * 2000 + [3] * 2000
    probabilities = np.zeros((4000, 4))
    probabilities[np.arange(4000), targets] = 0.9
    probabilities[:2000, 3] = probabilities[2000:, 0] = 0.1
    probabilities[0] = [0.05, 0.0, 0.0, 0.95]  # one CNV scan called NORMAL
    result = _result(targets, probabilities.tolist())
    report = result.report(bootstrap=40)

    text = render_html_report(result, report=report, mistakes=0)
    page = Page(text)

    cnv = page.table("per-class").row("CNV")
    assert (cnv[1].text, cnv[5].text) == (">99.9%", ">0.999")  # sensitivity, AUC
    assert cnv[1].interval == "99.7% to >99.9%"  # a Wilson upper end of 0.99991
    assert page.table("referral").row("Sensitivity")[1].text == ">99.9%"
    assert page.table("referral").row("AUC")[1].text == ">0.999"
    assert "accuracy &gt;99.9%;" in text  # the subtitle
    assert "100.0%" not in cnv[1].text + page.table("referral").row("Sensitivity")[1].text
