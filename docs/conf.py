"""Sphinx configuration for the retinalnet documentation.

Build as CI does (every warning is an error)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

After writing the pages, the build reads them back and warns (so fails with -W) about what
would render as an error box: see ``rendered_errors``.

The build needs no network: no intersphinx, and no pretrained weights are ever loaded.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

# The package is normally installed (pip install -e .); this also lets a bare checkout build.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import retinalnet

project = "retinalnet"
author = "retinalnet developers"
copyright = "retinalnet developers"
release = retinalnet.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build"]

# -- HTML --------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"retinalnet {release}"
html_static_path = ["_static"]

# -- autodoc -----------------------------------------------------------------------------------
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Overridden hooks such as EarlyStopping.on_epoch_end would otherwise repeat the docstrings
# of Callback (and Classifier.extra_repr that of torch.nn.Module).
autodoc_inherit_docstrings = False
# Show the public alias, not the long union it stands for. Only WeightsArg: aliases used
# inside unions or overloads (ImageInput) render as "TypeAliasForwardRef(...)" in Sphinx 9.
autodoc_type_aliases = {"WeightsArg": "retinalnet.models.WeightsArg"}

# -- napoleon (NumPy style only) ---------------------------------------------------------------
napoleon_google_docstring = False
napoleon_numpy_docstring = True

# Unresolved references to torch, numpy or PIL (no intersphinx offline) are not warnings.
nitpicky = False

# -- helpers -----------------------------------------------------------------------------------
# The API pages document each object once, under the public subpackage whose __all__ lists it
# (retinalnet.training.Trainer). Docstrings also use the top-level re-exports
# (:class:`~retinalnet.Predictor`, :meth:`retinalnet.Trainer.fit`); those are sent to the
# documented object here instead of being left as plain text.
_PUBLIC_MODULES = (
    "retinalnet.datasets",
    "retinalnet.transforms",
    "retinalnet.models",
    "retinalnet.training",
    "retinalnet.predictor",
    "retinalnet.metrics",
    "retinalnet.gradcam",
    "retinalnet.plots",
    "retinalnet.checkpoint",
    "retinalnet.engine",
    "retinalnet.precision",
    "retinalnet.demo",
)


def _top_level_targets() -> dict[str, str]:
    targets: dict[str, str] = {}
    for name in retinalnet.__all__:
        obj = getattr(retinalnet, name)
        for module_name in _PUBLIC_MODULES:
            module = importlib.import_module(module_name)
            if name in getattr(module, "__all__", ()) and getattr(module, name) is obj:
                targets[f"retinalnet.{name}"] = f"{module_name}.{name}"
                break
    return targets


_TOP_LEVEL_TARGETS = _top_level_targets()


def _resolve_top_level(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    for alias, canonical in _TOP_LEVEL_TARGETS.items():
        if target == alias or target.startswith(alias + "."):
            new_target = canonical + target[len(alias) :]
            return env.get_domain("py").resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], new_target, node, contnode
            )
    return None


def _check_public_names_documented(app: Any, env: Any) -> None:
    # Each name in a public module's __all__ must be documented on an API page, so a new
    # public name without documentation fails the (-W) build instead of going unnoticed.
    from sphinx.util import logging as sphinx_logging

    documented = set(env.get_domain("py").objects)
    log = sphinx_logging.getLogger(__name__)
    for module_name in _PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            if f"{module_name}.{name}" not in documented:
                log.warning(
                    "%s.%s is public (in __all__) but not documented; add it to docs/api/",
                    module_name,
                    name,
                )
    top_level_page = (Path(app.srcdir) / "api" / "retinalnet.rst").read_text(encoding="utf-8")
    for name in retinalnet.__all__:
        if name == "__version__":
            continue
        if f"retinalnet.{name}" not in _TOP_LEVEL_TARGETS:
            log.warning(
                "retinalnet.%s is re-exported but found in no public submodule's __all__", name
            )
        elif f"``{name}``" not in top_level_page:
            log.warning("retinalnet.%s is missing from the table in docs/api/retinalnet.rst", name)


def _drop_object_base(app: Any, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    # "Bases: object" on every plain class is noise.
    bases[:] = [base for base in bases if base is not object]


def _drop_empty_bases_line(app: Any, domain: str, objtype: str, content: Any) -> None:
    # autodoc still writes the "Bases:" label when _drop_object_base has emptied the list.
    from docutils import nodes

    for paragraph in list(content.findall(nodes.paragraph)):
        if paragraph.astext().strip() == "Bases:":
            paragraph.parent.remove(paragraph)


# What a page must never show. Sphinx's -W catches warnings while it reads and writes, but
# some errors only appear in the HTML: Furo paints any `.. contents::` table as a red "ERROR:
# Adding a table of contents in Furo-based documentation is unnecessary" box (with CSS, so no
# warning is ever logged), docutils leaves "system-message" and "problematic" nodes for markup
# it could not parse, and an emptied base-class list still renders as a bare "Bases:".
_FURO_ESCAPE = "this-will-duplicate-information-and-it-is-still-useful-here"
_CLASS_ATTRIBUTE = re.compile(r'class="([^"]*)"')


def rendered_errors(html: str) -> list[str]:
    """The error boxes and broken markup a built HTML page would show its readers."""
    html = re.sub(r"<noscript>.*?</noscript>", "", html, flags=re.DOTALL)  # search.html's
    problems = []
    for match in _CLASS_ATTRIBUTE.finditer(html):
        classes = match.group(1).split()
        if "contents" in classes and _FURO_ESCAPE not in classes:
            problems.append(
                "a `.. contents::` table, which Furo shows as a red ERROR box; remove it (the "
                "page's table of contents is in Furo's right sidebar)"
            )
        if "system-message" in classes or "problematic" in classes:
            problems.append("a docutils error message (markup it could not parse)")
        if "admonition" in classes and "error" in classes:
            problems.append("an `.. error::` box")
    if re.search(r"<p>Bases:\s*</p>", html):
        problems.append('an empty "Bases:" label')
    return sorted(set(problems))


def _check_rendered_pages(app: Any, exception: BaseException | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.util import logging as sphinx_logging

    log = sphinx_logging.getLogger(__name__)
    for page in sorted(Path(app.outdir).rglob("*.html")):
        if "_modules" in page.parts:  # viewcode's source listings
            continue
        for problem in rendered_errors(page.read_text(encoding="utf-8")):
            log.warning("%s shows %s", page.relative_to(app.outdir), problem)


def setup(app: Any) -> dict[str, Any]:
    app.connect("missing-reference", _resolve_top_level)
    app.connect("autodoc-process-bases", _drop_object_base)
    app.connect("object-description-transform", _drop_empty_bases_line)
    app.connect("build-finished", _check_rendered_pages)
    app.connect("env-check-consistency", _check_public_names_documented)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
