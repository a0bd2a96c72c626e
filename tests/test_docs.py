"""Every code example in README.md and docs/*.rst runs, offline, in seconds.

The Python blocks run against a small stand-in for the world the docs assume, set up by the
``docs_world`` fixture (the one place to look when a block fails here but not on a real
machine). Each substitution is there because the real thing costs minutes or a network:

- the working directory is a fresh folder (on tmpfs where there is one: a VGG16 checkpoint is
  528 MB) in which ``OCT2017`` is a tiny synthetic Kermany tree (``make_synthetic_kermany``,
  4/2/2 scans per class, 64 x 64 px) that also holds the file the README names;
- pretrained weights are random: torchvision's download returns a random state dict of the
  architecture, and ``retinalnet.models`` builds each architecture's network once per session
  and hands out copies (a VGG16 takes seconds to initialise);
- every :class:`~retinalnet.transforms.Preprocessing` is at most 32 px (VGG16 at 224 px is 49
  times the computation), and every ``Trainer`` runs a tenth of its ``max_epochs`` (at least
  one; each epoch writes two checkpoints);
- files and names that a block takes as given are provided on request (``GIVEN``).

Markers (RST comments, invisible in the built pages; ``<!-- ... -->`` in the README), on
the lines right before a block, or anywhere in a page for ``script``:

- ``.. docs-test: script``: the page's Python blocks follow on from each other and run in
  order as one script, in one folder;
- ``.. docs-test: given NAME ...``: the block uses these files or names from ``GIVEN``;
- ``.. docs-test: skip REASON``: the block is not run; the reason is required.
- ``.. docs-test: needs MODULE ...``: the block (in a script page: the page) needs these
  optional packages, and is skipped where one is not installed.

Blocks run with warnings as errors. Every ``retinalnet ...`` line of a console block must
parse with the command's own parser.
"""

from __future__ import annotations

import ast
import copy
import doctest
import importlib
import importlib.util
import io
import logging
import os
import pkgutil
import re
import shlex
import shutil
import tempfile
import textwrap
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision.models._api as torchvision_api
from PIL import Image

from retinalnet.checkpoint import save_checkpoint
from retinalnet.cli import build_parser
from retinalnet.datasets import make_synthetic_kermany
from retinalnet.models import _factory, _registry, _weights, small_cnn, vgg16_transfer
from retinalnet.predictor import Predictor
from retinalnet.training import Trainer
from retinalnet.transforms import Preprocessing

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]
MAX_SIZE = 32
_MARKER = re.compile(r"^\s*(?:\.\.|<!--)\s*docs-test:\s*(\w+)\s*(.*?)\s*(?:-->)?\s*$")


@dataclass
class Block:
    """One code block of a page."""

    page: str
    line: int
    language: str
    code: str
    given: list[str] = field(default_factory=list)
    skip: str | None = None
    needs: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def _markers(lines: list[str], before: int) -> dict[str, str]:
    """The ``docs-test`` markers on the lines just above line index ``before``."""
    found: dict[str, str] = {}
    index = before - 1
    while index >= 0 and (not lines[index].strip() or _MARKER.match(lines[index])):
        match = _MARKER.match(lines[index])
        if match:
            found[match.group(1)] = match.group(2)
        index -= 1
    return found


def _rst_blocks(page: Path, lines: list[str]) -> Iterator[tuple[int, str, str, dict[str, str]]]:
    directive = re.compile(r"^(\s*)\.\. code-block:: (\w+)\s*$")
    index = 0
    while index < len(lines):
        match = directive.match(lines[index])
        if not match:
            index += 1
            continue
        indent = len(match.group(1))
        end = index + 1
        while end < len(lines) and (
            not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
        ):
            end += 1
        body = textwrap.dedent("\n".join(lines[index + 1 : end])).strip("\n")
        yield index + 1, match.group(2), body, _markers(lines, index)
        index = end


def _markdown_blocks(lines: list[str]) -> Iterator[tuple[int, str, str, dict[str, str]]]:
    index = 0
    while index < len(lines):
        match = re.match(r"^```(\w+)\s*$", lines[index])
        if not match:
            index += 1
            continue
        end = lines.index("```", index + 1)
        yield index + 1, match.group(1), "\n".join(lines[index + 1 : end]), _markers(lines, index)
        index = end + 1


def page_blocks(page: Path) -> list[Block]:
    """The code blocks of a page, with the markers right above each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = _markdown_blocks(lines) if page.suffix == ".md" else _rst_blocks(page, lines)
    blocks = []
    for line, language, code, markers in found:
        given = markers.get("given", "").split()
        needs = markers.get("needs", "").split()
        blocks.append(Block(page.name, line, language, code, given, markers.get("skip"), needs))
    return blocks


def is_script(page: Path) -> bool:
    """Whether the page says its Python blocks run as one script."""
    return any(
        (m := _MARKER.match(line)) and m.group(1) == "script"
        for line in page.read_text(encoding="utf-8").splitlines()
    )


def _python_cases() -> list[Any]:
    cases = []
    for page in PAGES:
        blocks = [b for b in page_blocks(page) if b.language == "python"]
        if not blocks:
            continue
        if is_script(page):
            cases.append(pytest.param(blocks, id=page.name))
            continue
        for block in blocks:
            marks = [pytest.mark.skip(reason=f"{block.where}: {block.skip}")] if block.skip else []
            cases.append(pytest.param([block], id=block.where, marks=marks))
    return cases


# --- the stand-in world ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_oct2017(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic tree that ``OCT2017`` points to in every block's folder."""
    root = make_synthetic_kermany(
        tmp_path_factory.mktemp("docs-data") / "OCT2017",
        train=4,
        val=2,
        test=2,
        shape=(64, 64),
        seed=0,
    )
    drusen = sorted((root / "test" / "DRUSEN").iterdir())[0]
    (root / "test" / "DRUSEN" / "DRUSEN-1193659-1.jpeg").write_bytes(drusen.read_bytes())
    return root


_NETWORKS: dict[tuple[str, str], torch.nn.Module] = {}


def _random_download(url: str, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
    """torchvision's download, offline: a random state dict of the architecture of ``url``."""
    for name in _registry.list_models():
        spec = _registry.model_spec(name)
        if spec.weights is not None and any(w.url == url for w in spec.weights):
            state: dict[str, torch.Tensor] = _cached_network(spec, {}).state_dict()
            return state
    raise AssertionError(f"a docs block downloads {url}, which no registered model uses")


def _cached_network(spec: _registry.ModelSpec, options: dict[str, object]) -> torch.nn.Module:
    key = (spec.name, repr(sorted(options.items())))
    if key not in _NETWORKS:
        _NETWORKS[key] = spec.builder(weights=None, progress=False, **options)
    return _NETWORKS[key]


def _fast_load_network(
    arch: str | _registry.ModelSpec,
    weights: _weights.WeightsArg,
    *,
    progress: bool = True,
    **options: object,
) -> torch.nn.Module:
    """``load_network`` with random weights for any weights name, built once and copied."""
    spec = arch if isinstance(arch, _registry.ModelSpec) else _registry.model_spec(arch)
    if isinstance(_weights.resolve_weights(weights, spec), Path):
        return _weights.load_network(spec, weights, progress=progress, **options)
    return copy.deepcopy(_cached_network(spec, options))


_original_post_init = Preprocessing.__post_init__


def _small_post_init(self: Preprocessing) -> None:
    if self.size > MAX_SIZE:
        object.__setattr__(self, "size", MAX_SIZE)
        object.__setattr__(self, "resize", 0)
    _original_post_init(self)


@pytest.fixture(scope="session")
def vgg16_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``runs/vgg16/best.pt`` of a block that takes it as given: VGG16, random, 32 px."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_factory, "load_network", _fast_load_network)
        model = vgg16_transfer(preprocessing=Preprocessing(size=MAX_SIZE))
    return save_checkpoint(tmp_path_factory.mktemp("docs-checkpoint") / "best.pt", model)


@dataclass
class World:
    """Where a block runs: its folder and the names it starts with."""

    cwd: Path
    names: dict[str, Any]
    request: pytest.FixtureRequest


def _checkpoint(world: World) -> None:
    path = world.cwd / "runs" / "vgg16" / "best.pt"
    path.parent.mkdir(parents=True)
    path.symlink_to(world.request.getfixturevalue("vgg16_checkpoint"))


def _scan(world: World) -> None:
    data = make_synthetic_kermany(world.cwd / ".scan", train=1, val=0, test=0, shape=(96, 128))
    source = sorted((data / "train" / "CNV").iterdir())[0]
    (world.cwd / "CNV-1016042-1.jpeg").write_bytes(source.read_bytes())


def _twelve_bit_png(world: World) -> None:
    values = np.linspace(0, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(values).save(world.cwd / "export.png")  # mode "I;16"


def _group_norm_resnet18(world: World) -> None:
    """The state dict of the GroupNorm ResNet-18 that backbones.rst registers."""
    from torchvision.models import resnet18

    network = resnet18(norm_layer=lambda channels: torch.nn.GroupNorm(32, channels))
    torch.save(network.state_dict(), world.cwd / "resnet18_gn.pth")


def _predictor(world: World) -> None:
    model = small_cnn(preprocessing=Preprocessing(size=MAX_SIZE))
    world.names["predictor"] = Predictor(model, device="cpu")


GIVEN: dict[str, Callable[[World], None]] = {
    "runs/vgg16/best.pt": _checkpoint,  # what the user guide trains: VGG16, here random
    "CNV-1016042-1.jpeg": _scan,  # a synthetic CNV scan
    "export.png": _twelve_bit_png,  # a 16-bit PNG holding 12-bit values
    "resnet18_gn.pth": _group_norm_resnet18,
    "predictor": _predictor,  # a Predictor (small CNN, random)
}


_original_trainer_init = Trainer.__init__


def _short_trainer_init(self: Trainer, *args: Any, max_epochs: int = 20, **kwargs: Any) -> None:
    _original_trainer_init(self, *args, max_epochs=max(1, max_epochs // 10), **kwargs)


@pytest.fixture
def docs_world(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_oct2017: Path,
) -> Iterator[Path]:
    """A fresh folder holding ``OCT2017``, with random weights and small preprocessing."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        tmp_path = Path(tempfile.mkdtemp(prefix="retinalnet-docs-", dir=shm))
        request_cleanup = True
    else:
        request_cleanup = False
    monkeypatch.chdir(tmp_path)
    (tmp_path / "OCT2017").symlink_to(tiny_oct2017, target_is_directory=True)
    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", _random_download)
    monkeypatch.setattr(_factory, "load_network", _fast_load_network)
    monkeypatch.setattr(Preprocessing, "__post_init__", _small_post_init)
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))  # register_model
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    monkeypatch.setattr(Trainer, "__init__", _short_trainer_init)
    root_logger = logging.getLogger()
    saved = (root_logger.handlers[:], root_logger.level)
    try:
        yield tmp_path
    finally:
        root_logger.handlers[:], root_logger.level = saved
        if request_cleanup:
            shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize("blocks", _python_cases())
def test_python_blocks_run(
    blocks: list[Block], docs_world: Path, request: pytest.FixtureRequest
) -> None:
    for module in dict.fromkeys(name for block in blocks for name in block.needs):
        pytest.importorskip(module)
    world = World(docs_world, {"__name__": "__docs__"}, request)
    givens = dict.fromkeys(given for block in blocks for given in block.given)  # in order, once
    for given in givens:
        assert given in GIVEN, f"{blocks[0].page}: unknown 'given {given}'; known: {list(GIVEN)}"
        GIVEN[given](world)
    for block in blocks:
        if block.skip:
            continue
        code = compile(block.code, block.where, "exec")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                exec(code, world.names)
            except Exception as error:
                raise AssertionError(f"{block.where} fails: {error!r}") from error


# --- the docstring examples of the API pages --------------------------------------------------


def _modules() -> list[str]:
    import retinalnet

    return sorted(
        info.name
        for info in pkgutil.walk_packages(retinalnet.__path__, "retinalnet.")
        if not info.name.endswith("__main__")
    )


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples_run(
    module_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``>>>`` examples of the API pages pass as doctests (``+SKIP`` ones excepted), with
    random weights and a fresh working folder; sizes and outputs are the real ones."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", _random_download)
    monkeypatch.setattr(_factory, "load_network", _fast_load_network)
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    output = io.StringIO()
    for test in doctest.DocTestFinder().find(module, module_name):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            runner.run(test, out=output.write)
    assert runner.failures == 0, output.getvalue()


# --- the parts that are not run -------------------------------------------------------------


def test_every_skip_says_why_and_every_page_is_read() -> None:
    blocks = [block for page in PAGES for block in page_blocks(page)]
    python = [b for b in blocks if b.language == "python"]
    assert len(python) >= 25  # the parser found the blocks
    for block in blocks:
        assert block.skip is None or len(block.skip) > 10, f"{block.where}: skip without reason"
        unknown = set(block.given) - set(GIVEN)
        assert not unknown, f"{block.where}: unknown given {unknown}"


def _command_lines(block: Block) -> Iterator[str]:
    """The ``retinalnet ...`` command lines of a console or bash block."""
    text = block.code.replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.strip().removeprefix("$ ").strip()
        for command in re.split(r"&&|\|\||;", line):
            command = command.split(" #")[0].strip()
            if command.startswith("retinalnet "):
                yield command


def _console_cases() -> list[Any]:
    return [
        pytest.param(command, id=f"{block.where}:{command[:40]}")
        for page in PAGES
        for block in page_blocks(page)
        if block.language in ("console", "bash")
        for command in _command_lines(block)
    ]


@pytest.mark.parametrize("command", _console_cases())
def test_console_commands_parse(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = shlex.split(command)[1:]
    if argv in (["-h"], ["--help"]) or "--help" in argv:
        return
    try:
        build_parser().parse_args(argv)
    except SystemExit as error:
        raise AssertionError(f"{command!r}: {capsys.readouterr().err.strip()}") from error


# --- what the built pages must not show -----------------------------------------------------


def _docs_conf() -> Any:
    spec = importlib.util.spec_from_file_location("docs_conf", ROOT / "docs" / "conf.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<nav class="contents local" id="on-this-page">', "`.. contents::` table"),
        ('<div class="admonition error"><p>x</p></div>', "`.. error::` box"),
        ('<div class="system-message">', "docutils error message"),
        ('<span class="problematic">`x`</span>', "docutils error message"),
        ("<dd><p>Bases:</p>\n</dd>", 'empty "Bases:" label'),
    ],
)
def test_the_docs_build_refuses_pages_that_show_errors(html: str, expected: str) -> None:
    problems = _docs_conf().rendered_errors(html)
    assert len(problems) == 1
    assert expected in problems[0]


@pytest.mark.parametrize(
    "html",
    [
        '<nav class="contents this-will-duplicate-information-and-it-is-still-useful-here">',
        '<noscript><div class="admonition error">enable JavaScript</div></noscript>',
        '<p>Bases: <a href="#">Callback</a></p><div class="content">',
    ],
)
def test_the_docs_build_accepts_what_renders_well(html: str) -> None:
    assert _docs_conf().rendered_errors(html) == []


# --- the values the API pages state ----------------------------------------------------------


def _stated_values() -> list[Any]:
    """Each ``.. py:data::`` of docs/api that states a ``:value:``, with the module its page
    documents (its ``currentmodule``): a value written by hand, which can drift."""
    cases = []
    for page in sorted((ROOT / "docs" / "api").glob("*.rst")):
        module = None
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            current = re.match(r"\.\. (?:currentmodule|module|automodule):: (\S+)", line)
            if current:
                module = current[1]
            data = re.match(r"\.\. py:data:: (\w+)", line)
            if data is None:
                continue
            for option in lines[number + 1 :]:
                if not option.startswith("   :"):
                    break
                if option.startswith("   :value: "):
                    stated = option.removeprefix("   :value: ")
                    where = f"{page.name}:{data[1]}"
                    cases.append(pytest.param(module, data[1], stated, id=where))
    return cases


def _stated(text: str) -> object:
    """A ``:value:`` read as Python: a literal, or ``frozenset({...})`` of one."""
    tree = ast.parse(text, mode="eval").body
    if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name):
        assert tree.func.id == "frozenset", f"{text}: not a literal"
        (argument,) = tree.args
        return frozenset(ast.literal_eval(argument))
    return ast.literal_eval(tree)


def test_the_api_pages_state_values() -> None:
    assert len(_stated_values()) >= 5  # the parser found the constants of the pages


@pytest.mark.parametrize(("module", "name", "stated"), _stated_values())
def test_each_value_an_api_page_states_is_the_codes(module: str, name: str, stated: str) -> None:
    # was: IMAGE_EXTENSIONS stated without .gif and .webp, which every reader took
    value = getattr(importlib.import_module(module), name)
    assert _stated(stated) == value, f"docs/api states {name} = {stated}; it is {value!r}"
