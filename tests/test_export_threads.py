"""``to_onnx`` inside a host's process with threads: it never swaps the process's streams,
and two exports at once take turns (torch's exporter is not thread-safe)."""

from __future__ import annotations

import functools
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch

from retinalnet.export import PARITY_TOLERANCE, to_onnx
from retinalnet.models import create_model
from retinalnet.transforms import Preprocessing

pytest.importorskip("onnxruntime")


def test_exports_in_two_threads_both_succeed_and_leave_the_streams_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host's thread printing while the export ran lost its lines (141 of 153) to the
    exporter's swapped sys.stdout; two exports at once left sys.stdout a StringIO for good
    in 4 of 5 runs, or failed blaming an operator of the network."""
    stdout, stderr = sys.stdout, sys.stderr
    streams: list[tuple[bool, bool]] = []
    real = torch.onnx.export

    @functools.wraps(real)  # its signature, which to_onnx reads
    def export(*args: Any, **kwargs: Any) -> Any:
        streams.append((sys.stdout is stdout, sys.stderr is stderr))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(create_model("small_cnn", weights=None, preprocessing=Preprocessing(32)))

    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda i: to_onnx(models[i], tmp_path / f"model-{i}.onnx"), range(2))
        )

    assert streams == [(True, True), (True, True)]
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    assert all(result.parity.max_abs_diff < PARITY_TOLERANCE for result in results)
