"""The rows of a feature-cache build: one allocation, filled in place, and with a cache
folder a ``.npy`` file written as they come, whole or removed."""

from __future__ import annotations

import errno
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from retinalnet.training import _feature_rows
from retinalnet.training._feature_rows import FeatureRows


def _batches(rows: int, width: int = 3, size: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    features = torch.arange(rows * width, dtype=torch.float32).reshape(rows, width)
    targets = torch.arange(rows) % 4
    return [
        (features[start : start + size], targets[start : start + size])
        for start in range(0, rows, size)
    ]


def _fill(rows: FeatureRows, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    place = 0
    for features, targets in batches:
        rows.put(place, features, targets)
        place += len(features)


def _files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.is_file())


def test_the_file_is_the_npy_file_numpy_saves_and_appears_only_when_published(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "cache"
    batches = _batches(7)
    rows = FeatureRows(7, folder=folder)
    _fill(rows, batches)
    (building,) = _files(folder)
    assert re.fullmatch(r"\.features\.npy\.[0-9a-f]{8}\.tmp", building)

    rows.publish(folder / "features.npy")

    expected = io.BytesIO()
    np.save(expected, torch.cat([f for f, _ in batches]).numpy())
    assert (folder / "features.npy").read_bytes() == expected.getvalue()
    assert _files(folder) == ["features.npy"]
    assert torch.equal(rows.targets(), torch.cat([t for _, t in batches]))


def test_a_disk_that_refuses_a_write_mid_build_is_said_once_and_the_rows_go_on_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[int] = []
    write = _feature_rows._RowFile.write

    def full_after_one(self: _feature_rows._RowFile, row: int, rows: torch.Tensor) -> None:
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(row)
        write(self, row, rows)

    monkeypatch.setattr(_feature_rows._RowFile, "write", full_after_one)
    refusals: list[OSError] = []
    folder = tmp_path / "cache"
    rows = FeatureRows(8, folder=folder, refused=refusals.append)
    batches = _batches(8)
    _fill(rows, batches)

    assert [error.errno for error in refusals] == [errno.ENOSPC]
    assert not rows.on_disk
    assert not folder.exists()  # made for the file, removed with it
    assert torch.equal(rows.features(), torch.cat([f for f, _ in batches]))


def test_a_folder_that_refuses_the_file_keeps_the_rows_in_memory(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    refusals: list[OSError] = []
    rows = FeatureRows(4, folder=afile / "cache", refused=refusals.append)
    _fill(rows, _batches(4))
    assert len(refusals) == 1
    assert not rows.on_disk
    assert len(rows.features()) == 4


def test_rows_of_a_loader_grow_past_its_estimate(tmp_path: Path) -> None:
    batches = _batches(9, size=4)
    rows = FeatureRows(2, grow=True)
    _fill(rows, batches)
    assert torch.equal(rows.features(), torch.cat([f for f, _ in batches]))
    assert torch.equal(rows.targets(), torch.cat([t for _, t in batches]))


@pytest.mark.parametrize("folder", [False, True], ids=["memory", "disk"])
def test_more_rows_than_a_data_set_promised_are_refused(tmp_path: Path, folder: bool) -> None:
    rows = FeatureRows(3, folder=tmp_path / "cache" if folder else None, grow=folder)
    with pytest.raises(ValueError, match=r"more than the 3 feature rows its length promised"):
        _fill(rows, _batches(4))


def test_a_short_file_is_never_published(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    rows = FeatureRows(6, folder=folder)
    _fill(rows, _batches(4))
    with pytest.raises(ValueError, match=r"gave 4 feature rows where its length promised 6"):
        rows.publish(folder / "features.npy")
    rows.discard()
    assert not folder.exists()
