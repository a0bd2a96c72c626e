"""A manifest's rows against the data root's split folders: each split read as listed (a
pooled re-split too), a row outside the root logged once; and the manifest file's own
faults name the right place."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from retinalnet.datasets import KermanyOCT, make_synthetic_kermany, read_manifest


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("splits") / "data"
    return make_synthetic_kermany(folder, train=2, val=1, test=1, shape=(32, 32), seed=3)


def _one(root: Path, split: str) -> str:
    """A file of ``split`` under ``root``, relative to it."""
    found = sorted((root / split / "CNV").iterdir())[0]
    return found.relative_to(root).as_posix()


def _manifest(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = ["path,label,patient,split"]
    lines += [f"{file},CNV,{number},{split}" for number, (file, split) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_pooled_re_split_reads_each_split_as_listed(root: Path, tmp_path: Path) -> None:
    # a patient-aware re-split of all the images puts test rows in train/ and train rows in
    # test/: the manifest is the split (a refusal of such rows refused the benchmark's own
    # test set of all 80 sample scans)
    rows = [
        (_one(root, "test"), "train"),
        (_one(root, "val"), "val"),
        (_one(root, "train"), "test"),
    ]
    manifest = _manifest(tmp_path / "m.csv", rows)
    for split, (file, _) in zip(("train", "val", "test"), rows, strict=True):
        data = KermanyOCT.from_manifest(manifest, split, root=root)
        assert [Path(path) for path, _ in data.samples] == [root / file]


def test_rows_outside_the_root_are_read_and_logged_once(
    root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    files = []
    for index in range(3):
        file = elsewhere / f"CNV-{90 + index}-1.jpeg"
        file.write_bytes((root / _one(root, "train")).read_bytes())
        files.append(str(file))
    manifest = _manifest(tmp_path / "m.csv", [(file, "train") for file in files])

    with caplog.at_level(logging.INFO, logger="retinalnet"):
        data = KermanyOCT.from_manifest(manifest, "train", root=root)

    assert len(data) == 3
    said = [m for m in caplog.messages if "outside the data root" in m]
    assert said == [
        f"split 'train' of manifest {str(manifest)!r}: 3 row(s) name files outside the data "
        f"root {str(root)!r} (e.g. {files[0]!r}): read as listed"
    ]


def test_a_manifest_nested_too_deeply_is_not_valid_json(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)

    with pytest.raises(
        ValueError, match=rf"^manifest {re.escape(repr(str(deep)))} is not valid JSON \(nested "
        r"too deeply\); a manifest is a list of objects",
    ):  # fmt: skip
        read_manifest(deep)


def test_a_field_over_the_csv_limit_is_said_on_its_own_line(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    lines = ["path,label,split", "a.jpeg,CNV,train", "b.jpeg,CNV,train", "c.jpeg,CNV,train"]
    lines.append(f'"{"x" * 200_000}",CNV,train')  # line 5
    manifest.write_text("\n".join(lines) + "\n")

    with pytest.raises(ValueError, match=r"field larger than field limit \(131072\) on line 5\);"):
        read_manifest(manifest)
