"""The package's shape: every import points down a fixed order of layers, with no loop (lazy
imports inside functions included), and no module grows past ~400 lines without a reason."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "retinalnet"

# Bottom to top: a module may import from its own layer's package or from a lower layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("retinalnet._version", "retinalnet.precision", "retinalnet._core"),
    ("retinalnet.transforms", "retinalnet.metrics", "retinalnet.tensor_preprocessing"),
    ("retinalnet.datasets", "retinalnet.models"),
    ("retinalnet.checkpoint", "retinalnet.engine"),
    ("retinalnet.gradcam", "retinalnet.training"),
    ("retinalnet.predictor",),
    ("retinalnet.plots", "retinalnet.demo", "retinalnet.export"),
    ("retinalnet.volume", "retinalnet.plots_volume"),
    ("retinalnet.report",),  # draws with retinalnet.plots
    ("retinalnet.cli", "retinalnet.__main__", "retinalnet"),
)

LONG_MODULE = 400

# The one import allowed to point up, lazily, inside a function: ``Predictor.from_onnx`` is a
# constructor of the export layer's ONNX predictor, which itself imports the predictor's
# result types (Prediction, ClassProbability).
LAZY_UPWARD: frozenset[tuple[str, str]] = frozenset(
    {("retinalnet.predictor", "retinalnet.export._onnx_predictor")}
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    """The layer of a module: that of the longest entry of LAYERS it falls under."""
    best: tuple[int, int] | None = None
    for index, names in enumerate(LAYERS):
        for name in names:
            inside = module == name or module.startswith(f"{name}.")
            if inside and (best is None or len(name) > best[1]):
                best = (index, len(name))
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best[0]


def _imports(module: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported retinalnet module, line, under TYPE_CHECKING) for every import in a file."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for child in ast.walk(node))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names = [base]
        else:
            continue
        for name in names:
            if name == "retinalnet" or name.startswith("retinalnet."):
                yield name, node.lineno, id(node) in type_only


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The module an import refers to (``retinalnet.x.Y`` -> ``retinalnet.x``)."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def test_every_import_points_down() -> None:
    modules = _modules()
    upward = []
    for module, path in modules.items():
        for name, line, type_only in _imports(module, path):
            target = _resolve(name, modules)
            if type_only or target == module or (module, target) in LAZY_UPWARD:
                continue
            if _layer(target) > _layer(module):
                upward.append(f"{module}:{line} imports {target} (a higher layer)")
    assert upward == []


def test_no_import_loops_lazy_imports_included() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {
        module: {
            _resolve(name, modules)
            for name, _, type_only in _imports(module, path)
            if not type_only and (module, _resolve(name, modules)) not in LAZY_UPWARD
        }
        - {module}
        for module, path in modules.items()
    }
    # a package's __init__ re-exporting its own submodules is not a loop
    for module in graph:
        graph[module] = {
            target
            for target in graph[module]
            if not (module.startswith(f"{target}.") and target != "retinalnet")
        }
    visiting: list[str] = []
    done: set[str] = set()
    loops: list[str] = []

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            loops.append(" -> ".join([*visiting[visiting.index(module) :], module]))
            return
        visiting.append(module)
        for target in sorted(graph.get(module, ())):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert loops == []


@pytest.mark.parametrize("module", sorted(_modules()))
def test_long_modules_say_why(module: str) -> None:
    path = _modules()[module]
    lines = len(path.read_text().splitlines())
    if lines <= LONG_MODULE:
        return
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "Why this module is long" in docstring, (
        f"{module} has {lines} lines (> {LONG_MODULE}); split it, or say in its docstring "
        "('Why this module is long: ...') why it stays one module"
    )
