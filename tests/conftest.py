"""Fixtures shared by the test modules: the real Kermany sample, tiny generated trees, VGG16."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from PIL import Image

from _training_helpers import one_thread
from retinalnet.models import Classifier, vgg16_transfer

MakeTree = Callable[..., Path]

_FORMATS = {
    ".jpeg": "JPEG",
    ".jpg": "JPEG",
    ".png": "PNG",
    ".gif": "GIF",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
}


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread_for_fixtures() -> Iterator[None]:
    """Module and session fixtures run torch on one thread too (they run before a test's
    own fixtures): a run they train is compared bit for bit with runs the tests train, and
    two threads sum in another order."""
    with one_thread():
        yield


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Every test runs torch on one thread: as fast for tiny models, and steady when other
    processes keep the cores busy (see ``_training_helpers.one_thread``)."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def kermany_sample() -> Path:
    """The 80 real Kermany scans in ``../shared/data/kermany-sample`` (12/4/4 per class), or
    in the folder ``RETINALNET_SAMPLE`` names."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "kermany-sample"
    root = Path(os.environ.get("RETINALNET_SAMPLE", default))
    if not root.is_dir():
        pytest.skip(
            f"no real Kermany sample at {root}: these tests need real OCT2017 scans, 12 train, "
            "4 val and 4 test per class, in the Kermany layout (train/CNV/CNV-123-1.jpeg, ...), "
            "e.g. copied from the Kaggle download (kermany2018); put them there or point "
            "RETINALNET_SAMPLE at them"
        )
    return root


def _write_image(path: Path, size: tuple[int, int]) -> None:
    """Write a small grayscale gradient; the format follows the suffix (JPEG or PNG)."""
    Image.linear_gradient("L").resize(size).save(path, format=_FORMATS[path.suffix.lower()])


@pytest.fixture
def make_tree(tmp_path: Path) -> MakeTree:
    """Return ``make(files, *, size=(40, 36)) -> root`` writing a Kermany-layout tree.

    ``files`` maps a folder relative to the root to the file names to write in it, e.g.
    ``{"train/CNV": ["CNV-123-1.jpeg"], "val/DME": []}``; a key mapped to ``None`` is a single
    non-image file (``{"train/.DS_Store": None}``). Names with an image suffix that do not start
    with ``.`` become grayscale images of ``size`` (width, height); every other file gets a few
    bytes that are not an image. Calling it again adds to the same tree.
    """
    root = tmp_path / "OCT2017"

    def make(
        files: Mapping[str, Sequence[str] | None], *, size: tuple[int, int] = (40, 36)
    ) -> Path:
        root.mkdir(exist_ok=True)
        for folder, names in files.items():
            if names is None:
                target = root / folder
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"not an image\n")
                continue
            (root / folder).mkdir(parents=True, exist_ok=True)
            for name in names:
                path = root / folder / name
                if not name.startswith(".") and path.suffix.lower() in _FORMATS:
                    _write_image(path, size)
                else:
                    path.write_bytes(b"not an image\n")
        return root

    return make


@pytest.fixture(scope="session")
def vgg16_random() -> Classifier:
    """``vgg16_transfer(weights=None)``, built once per session: do not modify it."""
    return vgg16_transfer(weights=None)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is no retinalnet run: a lock naming its pid is held."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()
