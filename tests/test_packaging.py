"""The installed package and the wheel: version, typing marker, public names."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import retinalnet

ROOT = Path(__file__).resolve().parents[1]


def test_version_matches_installed_metadata() -> None:
    assert retinalnet.__version__ == importlib.metadata.version("retinalnet")


def test_top_level_exports_the_names_users_need() -> None:
    for name in ("Predictor", "Trainer", "EarlyStopping", "KermanyOCT", "vgg16_transfer"):
        assert name in retinalnet.__all__
        assert getattr(retinalnet, name) is not None
    assert retinalnet.KERMANY_CLASSES == ("CNV", "DME", "DRUSEN", "NORMAL")


def test_importing_the_package_and_its_command_line_waits_for_no_torch() -> None:
    # the public names are imported on first use: `retinalnet --help` and a Ctrl-C while it
    # starts do not wait for torch (seconds)
    code = (
        "import sys, retinalnet, retinalnet.cli; print('torch' in sys.modules); "
        "from retinalnet import Predictor; import retinalnet.predictor as p; "
        "print(Predictor is p.Predictor, retinalnet.models.create_model.__name__, "
        "'Trainer' in dir(retinalnet), hasattr(retinalnet, 'no_such_name'))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown == ["False", "True", "create_model", "True", "False"]
    with pytest.raises(AttributeError, match="module 'retinalnet' has no attribute 'Trainr'"):
        retinalnet.Trainr  # noqa: B018


def test_the_version_is_said_without_waiting_for_torch() -> None:
    # was: `retinalnet --version` built the parser, which imports torch: 3 s
    code = (
        "import atexit, sys; atexit.register(lambda: print('torch' in sys.modules)); "
        "from retinalnet.cli import main; main(['--version'])"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown == ["retinalnet", retinalnet.__version__, "False"]


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["train", "--help"], ["train", "--data", "x", "--no-such-option"]],
    ids=["help", "train-help", "mistyped-option"],
)
def test_help_and_usage_errors_wait_for_no_torch(argv: list[str]) -> None:
    # was: building the parser imported torch for the architectures' and presets' names (7 s
    # cold on a laptop before `--help` printed anything)
    code = (
        "import atexit, sys; atexit.register(lambda: print('torch' in sys.modules)); "
        f"from retinalnet.cli import main; main({argv!r})"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split()[-1] == "False"
    assert "usage: retinalnet" in done.stdout + done.stderr


def test_an_unknown_architecture_is_refused_with_the_closest_name() -> None:
    code = "from retinalnet.cli import main; main(['train', '--data', 'x', '--arch', 'resnet1'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "argument --arch: unknown architecture 'resnet1'; did you mean 'resnet18'?" in last
    assert "vgg16_transfer" in last


def test_console_script_is_declared() -> None:
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert any(ep.name == "retinalnet" and ep.value == "retinalnet.cli:main" for ep in scripts)


def test_core_dependencies_are_exactly_the_five() -> None:
    requires = importlib.metadata.requires("retinalnet") or []
    core = sorted(r.split(">")[0].split("=")[0].strip() for r in requires if "extra ==" not in r)
    assert core == ["numpy", "pillow", "torch", "torchvision", "typing-extensions"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    pytest.importorskip("build")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (built,) = out.glob("retinalnet-*.whl")
    return built


def test_wheel_carries_py_typed_and_the_version(wheel: Path) -> None:
    assert wheel.name.startswith(f"retinalnet-{retinalnet.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    assert "retinalnet/py.typed" in names
    assert "retinalnet/__init__.py" in names
    assert f"Version: {retinalnet.__version__}" in text
    assert "Classifier: Typing :: Typed" in text
    assert not any(name.startswith("tests/") for name in names)
