"""Tests for retinalnet.datasets._audit: auditing a Kermany-layout folder."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retinalnet._core.files import file_digest
from retinalnet.datasets import AuditReport, DuplicateGroup, audit


def _noise_jpeg(path: Path, seed: int, mode: str = "L", fmt: str = "JPEG") -> None:
    shape = (24, 32) if mode == "L" else (24, 32, 3)
    pixels = np.random.default_rng(seed).integers(0, 256, shape, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path, format=fmt)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def messy_tree(tmp_path: Path) -> Path:
    """A tree with every problem the audit looks for, each planted once or twice."""
    root = tmp_path / "OCT2017"
    for seed, relative in enumerate(
        [
            "train/CNV/CNV-1-1.jpeg",
            "train/CNV/CNV-1-2.jpeg",
            "train/DME/DME-2-1.jpeg",
            "train/DRUSEN/DRUSEN-3-1.jpeg",
            "train/NORMAL/NORMAL-4-1.jpeg",
            "val/CNV/CNV-5-1.jpeg",
            "val/NORMAL/NORMAL-4-9.jpeg",  # patient 4 is also in train
            "test/DME/DME-6-1.jpeg",
            "test/DRUSEN/DRUSEN-7-1.jpeg",
        ]
    ):
        _noise_jpeg(root / relative, seed)
    # within train: a copy under another name; across splits: a train image in test
    shutil.copy(root / "train/CNV/CNV-1-1.jpeg", root / "train/CNV/CNV-1-3.jpeg")
    shutil.copy(root / "train/DME/DME-2-1.jpeg", root / "test/DME/DME-8-1.jpeg")
    _noise_jpeg(root / "test/NORMAL/NORMAL-9-1.jpeg", 99)
    _truncate(root / "test/NORMAL/NORMAL-9-1.jpeg")
    (root / "train/DRUSEN/DRUSEN-10-1.jpeg").write_text("not a scan")
    _noise_jpeg(root / "train/NORMAL/NORMAL-11-1.png", 11, mode="RGB", fmt="PNG")
    (root / "train/CNV/.DS_Store").write_bytes(b"\0")
    (root / "test/notes.txt").write_text("stray")
    (root / "README.md").write_text("about")
    return root


def test_audit_finds_exactly_what_was_planted(messy_tree: Path) -> None:
    report = audit(messy_tree)
    assert report.counts == {
        "train": {"CNV": 3, "DME": 1, "DRUSEN": 2, "NORMAL": 2},
        "val": {"CNV": 1, "DME": 0, "DRUSEN": 0, "NORMAL": 1},
        "test": {"CNV": 0, "DME": 2, "DRUSEN": 1, "NORMAL": 1},
    }
    assert report.total == 14
    assert set(report.unreadable) == {
        "test/NORMAL/NORMAL-9-1.jpeg",
        "train/DRUSEN/DRUSEN-10-1.jpeg",
    }
    assert report.unreadable["train/DRUSEN/DRUSEN-10-1.jpeg"] == "not a recognised image format"
    assert report.unreadable["test/NORMAL/NORMAL-9-1.jpeg"].startswith("corrupt or truncated")
    assert report.stray_files == ["README.md", "test/notes.txt", "train/CNV/.DS_Store"]
    cnv = hashlib.sha256((messy_tree / "train/CNV/CNV-1-1.jpeg").read_bytes()).hexdigest()
    dme = hashlib.sha256((messy_tree / "train/DME/DME-2-1.jpeg").read_bytes()).hexdigest()
    assert report.duplicates == [
        DuplicateGroup(dme, ("test/DME/DME-8-1.jpeg", "train/DME/DME-2-1.jpeg")),
        DuplicateGroup(cnv, ("train/CNV/CNV-1-1.jpeg", "train/CNV/CNV-1-3.jpeg")),
    ]
    assert [g.across_splits for g in report.duplicates] == [True, False]
    assert report.cross_split_duplicates == report.duplicates[:1]
    assert report.cross_split_patients == {"4": {"train": 1, "val": 1}}
    assert report.modes == {"L": 11, "RGB": 1}
    assert (report.grayscale, report.colour) == (11, 1)
    assert report.sizes == {"32x24": 12}
    assert report.has_leakage
    assert not report.ok


def test_a_clean_tree_is_ok(make_tree) -> None:
    root = make_tree(
        {"train/CNV": ["CNV-1-1.jpeg"], "val/DME": ["DME-2-1.png"], "test/NORMAL": []},
        size=(40, 36),
    )
    report = audit(root)
    assert report.duplicates == []  # the same gradient, but as a JPEG and as a PNG
    assert report.cross_split_patients == {}
    assert report.unreadable == {}
    assert report.ok
    assert report.sizes == {"40x36": 2}
    assert "OK" in str(report).splitlines()[-1]


def test_audit_of_the_real_sample(kermany_sample: Path) -> None:
    report = audit(kermany_sample)
    assert report.total == 80
    assert report.counts == {
        "train": dict.fromkeys(("CNV", "DME", "DRUSEN", "NORMAL"), 12),
        "val": dict.fromkeys(("CNV", "DME", "DRUSEN", "NORMAL"), 4),
        "test": dict.fromkeys(("CNV", "DME", "DRUSEN", "NORMAL"), 4),
    }
    assert report.unreadable == {}
    assert report.duplicates == []
    assert report.cross_split_patients == {}
    assert report.stray_files == ["README.md", "manifest.csv"]
    assert (report.grayscale, report.colour) == (80, 0)
    assert sum(report.sizes.values()) == 80
    assert report.ok


def test_audit_digests_match_the_samples_manifest(kermany_sample: Path) -> None:
    import csv

    with (kermany_sample / "manifest.csv").open() as file:
        row = next(csv.DictReader(file))
    path = kermany_sample / row["split"] / row["class"] / row["filename"]
    assert file_digest(path).hex() == row["sha256"]


def test_report_serialises_to_json_and_a_table(messy_tree: Path) -> None:
    report = audit(messy_tree)
    data = json.loads(report.to_json())
    assert data["total"] == 14
    assert data["has_leakage"] is True
    assert data["ok"] is False
    assert data["duplicates"][0]["across_splits"] is True
    assert data["cross_split_patients"] == {"4": {"train": 1, "val": 1}}
    table = str(report)
    assert "test/NORMAL/NORMAL-9-1.jpeg: corrupt or truncated" in table
    assert "patients in more than one split: 1" in table
    assert table.splitlines()[-1] == "PROBLEMS: leakage across splits, unreadable images"


def test_progress_callback_sees_every_file(messy_tree: Path) -> None:
    calls: list[tuple[int, int]] = []
    audit(messy_tree, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 14) for i in range(1, 15)]


@pytest.mark.parametrize(
    ("layout", "message"),
    [("missing", "does not exist"), ("no-splits", "no split folder")],
)
def test_audit_errors_name_the_root(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "data"
    if layout == "no-splits":
        (root / "CNV").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=message):
        audit(root)


def test_report_defaults_are_empty() -> None:
    report = AuditReport(root="x")
    assert report.total == 0
    assert report.ok
