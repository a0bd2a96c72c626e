"""The splits a command reads from ``--manifest``: one reading of the file for all of them,
so a ``retinalnet split --out`` rewriting it meanwhile cannot give ``train`` and ``val``
two different splits, and the SHA-256 ``train`` records is that of the rows trained on."""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest

from _cli_helpers import train_small_cnn
from retinalnet.cli import main
from retinalnet.cli._resumed_options import TrainOptions
from retinalnet.datasets import KermanyOCT, _manifest, _sample_names, make_synthetic_kermany
from retinalnet.training import Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("split-data") / "data"
    return make_synthetic_kermany(root, train=6, val=1, test=1, shape=(32, 32), seed=2)


@pytest.fixture(scope="module")
def manifests(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two complete splits of ``data`` (seeds 0 and 1), as `retinalnet split` writes them."""
    folder = tmp_path_factory.mktemp("manifests")
    written = []
    for seed in (0, 1):
        path = folder / f"m{seed}.csv"
        argv = ["split", str(data), "--val-fraction", "0.5", "--seed", str(seed)]
        assert main([*argv, "--out", str(path), "-q"]) == 0
        written.append(path)
    assert _val_rows(written[0]) != _val_rows(written[1]), "the two splits must differ"
    return written[0], written[1]


def _val_rows(manifest: Path) -> set[str]:
    return {row.path for row in _manifest.read_manifest(manifest) if row.split == "val"}


def _replace(manifest: Path, other: Path) -> None:
    """Write ``other`` over ``manifest`` as `retinalnet split --out` does: a new file renamed
    over the path."""
    temporary = manifest.with_name(".split.tmp")
    shutil.copyfile(other, temporary)
    temporary.replace(manifest)


class _StopError(Exception):
    """Raised by the fit stand-in: the test has what the fit was given."""


def _what_the_fit_gets(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``Trainer.fit`` replaced by a stand-in that keeps its training and validation images
    and the run's recorded options, then stops the command."""
    seen: dict[str, Any] = {}

    def fit(self: Trainer, train: Any, val: Any, **_: Any) -> None:
        seen["train"] = {Path(path).name for path, _ in train.samples}
        seen["val"] = {Path(path).name for path, _ in val.samples}
        recorded = [c.options for c in self.callbacks if isinstance(c, TrainOptions)]
        seen["options"] = recorded[0]
        raise _StopError

    monkeypatch.setattr(Trainer, "fit", fit)
    return seen


def _train(data: Path, out: Path, manifest: Path) -> None:
    with pytest.raises(_StopError):
        train_small_cnn(data, out, "--manifest", str(manifest))


def test_a_split_rewriting_the_manifest_between_the_reads_never_gives_val_images_to_train(
    data: Path, manifests: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the file is rewritten with the other split right after its first reading (a
    # `retinalnet split --out split.csv` landing while train reads it): train was read from
    # one version and val from the other, 54 of 100 tries in the audit's race
    first, other = manifests
    manifest = tmp_path / "split.csv"
    shutil.copyfile(first, manifest)
    real, reads = _manifest.manifest_text, []

    def manifest_text(source: Path, name: str) -> str:
        text = real(source, name)
        if not reads:
            _replace(manifest, other)
        reads.append(source)
        return text

    monkeypatch.setattr(_manifest, "manifest_text", manifest_text)
    seen = _what_the_fit_gets(monkeypatch)

    _train(data, tmp_path / "run", manifest)

    assert seen["train"].isdisjoint(seen["val"])
    # both splits are those of one version of the file: the one there once it was read whole
    assert seen["val"] == {Path(path).name for path in _val_rows(other)}


def test_train_records_the_sha256_of_the_manifest_it_read_not_of_a_later_one(
    data: Path, manifests: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rewritten after the splits were read, before the run records its manifest: --resume
    # and evaluate find the run's manifest by this digest, and would take the new one
    first, other = manifests
    manifest = tmp_path / "split.csv"
    shutil.copyfile(first, manifest)
    real = _sample_names.sample_names_digest

    def sample_names_digest(data: Any) -> Any:
        _replace(manifest, other)
        return real(data)

    monkeypatch.setattr(_sample_names, "sample_names_digest", sample_names_digest)
    seen = _what_the_fit_gets(monkeypatch)

    _train(data, tmp_path / "run", manifest)

    assert seen["options"]["manifest"]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert seen["val"] == {Path(path).name for path in _val_rows(first)}


def test_a_manifest_rewritten_at_every_reading_is_refused_in_one_line(
    data: Path, manifests: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, other = manifests
    manifest = tmp_path / "split.csv"
    shutil.copyfile(first, manifest)
    real, versions = _manifest.manifest_text, [other, first]

    def manifest_text(source: Path, name: str) -> str:
        text = real(source, name)
        _replace(manifest, versions[0])
        versions.reverse()
        return text

    monkeypatch.setattr(_manifest, "manifest_text", manifest_text)
    from retinalnet.cli._split_data import read_splits

    with pytest.raises(RuntimeError, match=r"changed while it was read, 3 times") as info:
        read_splits(data, ("train", "val"), manifest)
    assert "\n" not in str(info.value)
    assert "retinalnet split --out" in str(info.value)


@pytest.mark.parametrize("spelling", ["same-path", "absolute-path"])
def test_a_manifest_listing_one_file_in_train_and_in_val_is_refused_by_train(
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spelling: str,
) -> None:
    image = sorted((data / "train" / "CNV").iterdir())[0]
    relative = image.relative_to(data).as_posix()
    again = relative if spelling == "same-path" else str(image)
    manifest = tmp_path / "split.csv"
    other = sorted((data / "train" / "DME").iterdir())[0].relative_to(data).as_posix()
    manifest.write_text(  # patients of their own: the file, not the patient, is in both
        f"path,label,patient,split\n{relative},CNV,1,train\n{other},DME,2,val\n{again},CNV,3,val\n"
    )
    capsys.readouterr()

    assert train_small_cnn(data, tmp_path / "run", "--manifest", str(manifest)) == 1

    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "is listed in split 'train' and in split 'val'" in err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.parametrize(
    ("classes", "on_error"),
    [(None, "raise"), (("CNV", "NORMAL"), "raise"), (None, "skip")],
    ids=["all-classes", "some-classes", "a-row-without-its-file-skipped"],
)
def test_each_split_read_once_is_the_split_from_manifest_reads(
    data: Path,
    manifests: tuple[Path, Path],
    tmp_path: Path,
    classes: tuple[str, ...] | None,
    on_error: str,
) -> None:
    manifest = tmp_path / "split.csv"
    text = manifests[0].read_text()
    if on_error == "skip":  # one val row whose file is gone: left out with a warning
        text += "val/CNV/CNV-999999-1.jpeg,CNV,999999,val\n"
    manifest.write_text(text)
    splits = ("train", "val", "test")
    from retinalnet.cli._split_data import read_splits

    with warnings.catch_warnings(record=True) as once:
        warnings.simplefilter("always")
        read = read_splits(data, splits, manifest, classes, on_error=on_error)
    with warnings.catch_warnings(record=True) as each:
        warnings.simplefilter("always")
        expected = [
            KermanyOCT.from_manifest(manifest, split, root=data, classes=classes, on_error=on_error)
            for split in splits
        ]

    assert read.manifest_sha256 == hashlib.sha256(manifest.read_bytes()).hexdigest()
    for got, want in zip(read.data, expected, strict=True):
        assert (got.split, got.root, got.classes) == (want.split, want.root, want.classes)
        assert (got.samples, got.patient_ids) == (want.samples, want.patient_ids)
        assert got.on_error == "raise"  # the command leaves unreadable images out itself
    assert [str(w.message) for w in once] == [str(w.message) for w in each]
    assert len(once) == (1 if on_error == "skip" else 0)


def test_the_folders_splits_have_no_manifest_digest(data: Path) -> None:
    from retinalnet.cli._split_data import read_splits

    read = read_splits(data, ("train", "val"), None)

    assert [split.split for split in read.data] == ["train", "val"]
    assert read.manifest_sha256 is None
