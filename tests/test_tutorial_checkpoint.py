"""The tutorial's checkpoint brought into retinalnet by following what retinalnet says of it.

The tutorial's ``save_checkpoint`` writes ``class_to_idx``, ``idx_to_class``, ``epochs``, its
classifier (a pickled ``nn.Sequential``), the ``state_dict``, its optimizer (a pickled
``Adam``) and ``optimizer_state_dict``; a user who knows pickles are unsafe keeps the plain
entries only. The stand-ins here have that shape around a small network (or VGG16's keys
with one-element tensors), so they are kilobytes, not the real 541 MB.

Each message is followed as written: the Python in its backticks runs, and what it writes
loads, with the class order the file holds.
"""

from __future__ import annotations

import os
import re
import textwrap
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from retinalnet import Classifier, create_model
from retinalnet._core import pickled_objects
from retinalnet.checkpoint import load_checkpoint, save_checkpoint
from retinalnet.models._small_cnn import small_cnn_network
from retinalnet.models._state_dict import container_classes

ROOT = Path(__file__).resolve().parents[1]
# not alphabetical, and class_to_idx is written in another order than its indices: only the
# file's own order can give these names in output order
IDX_TO_CLASS = {0: "NORMAL", 1: "CNV", 2: "DRUSEN", 3: "DME"}
IN_ORDER = [IDX_TO_CLASS[index] for index in range(4)]


def _tutorial_head(features: int, hidden: int = 64) -> nn.Sequential:
    """The tutorial's ``classifier[6]``: Linear-ReLU-Dropout-Linear-LogSoftmax."""
    return nn.Sequential(
        nn.Linear(features, hidden),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(hidden, 4),
        nn.LogSoftmax(dim=1),
    )


def _small_tutorial_network(seed: int = 0) -> nn.Module:
    """small_cnn's network with the tutorial's head, as the tutorial puts one on VGG16."""
    torch.manual_seed(seed)
    network = small_cnn_network()
    network.classifier = _tutorial_head(128)
    return network.eval()


def _stepped_adam(module: nn.Module) -> torch.optim.Adam:
    """An Adam that took a step, as a trained tutorial model's optimizer has."""
    parameters = list(module.parameters())
    optimizer = torch.optim.Adam(parameters)
    sum(p.sum() for p in parameters).backward()  # type: ignore[union-attr]
    optimizer.step()
    return optimizer


def _tutorial_checkpoint(
    path: Path,
    state: Mapping[str, torch.Tensor],
    classifier: nn.Module,
    *,
    pickled: bool = True,
) -> Path:
    """What the tutorial's ``save_checkpoint`` writes (its VGG16 branch), around ``state``;
    without ``pickled``, the plain entries only."""
    optimizer = _stepped_adam(classifier)
    checkpoint: dict[str, Any] = {
        "class_to_idx": {name: index for index, name in sorted(IDX_TO_CLASS.items())[::-1]},
        "idx_to_class": dict(IDX_TO_CLASS),
        "epochs": 7,
    }
    if pickled:
        checkpoint["classifier"] = classifier
    checkpoint["state_dict"] = dict(state)
    if pickled:
        checkpoint["optimizer"] = optimizer
        checkpoint["optimizer_state_dict"] = optimizer.state_dict()
    torch.save(checkpoint, path)
    return path


def _code(message: str) -> list[str]:
    """The Python of a message: what it puts in backticks, but the commands it names."""
    return [code for code in re.findall(r"`([^`]*)`", message) if not code.startswith("retinal")]


def _refusal(path: str | Path) -> str:
    with pytest.raises(ValueError, match="checkpoint") as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def _run(code: str, scope: dict[str, Any]) -> dict[str, Any]:
    exec(code, scope)  # the advice, as written
    return scope


def _scope() -> dict[str, Any]:
    """What a user of the advice has imported: torch and retinalnet's names in it."""
    return {"torch": torch, "create_model": create_model, "Classifier": Classifier}


# ---------------------------------------------------------------------------------------------
# The checkpoint door: the two messages, followed, give a checkpoint in the file's class order


def test_the_tutorial_s_checkpoint_comes_in_by_following_the_two_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the first advice allowed only the first class torch refused (Sequential; then
    Linear, ReLU, ... failed one by one), and the second said "no class names" and asked
    for them by hand, though the file holds idx_to_class."""
    monkeypatch.chdir(tmp_path)
    network = _small_tutorial_network()
    _tutorial_checkpoint(Path("tutorial.pth"), network.state_dict(), network.classifier)

    first = _refusal("tutorial.pth")
    for name in ("Sequential", "Linear", "ReLU", "Dropout", "LogSoftmax", "Adam", "defaultdict"):
        assert name in first, name
    assert first.endswith("`retinalnet info weights.pt` then says how to use it")
    session: dict[str, Any] = {"torch": torch}  # the user's Python session
    for code in _code(first):
        _run(code, session)
    assert sorted(torch.load("weights.pt", weights_only=True)) == [
        "class_to_idx",
        "idx_to_class",
        "state_dict",
    ]

    second = _refusal("weights.pt")
    assert "with its class names (its 'idx_to_class' entry) but no preprocessing" in second
    assert f"classes={IN_ORDER!r}" in second
    assert "(classes: in output order, from its 'idx_to_class' entry)" in second
    assert "no class names" not in second
    assert "classes=[...]" not in second
    (code,) = _code(second)
    model = _run(code, _scope())["model"]
    assert model.classes == tuple(IN_ORDER)

    save_checkpoint("model.pt", model)
    rebuilt = load_checkpoint("model.pt").build_model().eval()
    scans = torch.randn(3, 3, 32, 32)
    with torch.no_grad():  # the tutorial's network's outputs, class for class
        torch.testing.assert_close(rebuilt(scans), network(scans))


def test_the_advice_allows_every_class_where_torch_does_not_list_those_it_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's list of what its safe loading allows is private: without it, the advice
    lists more, never less."""
    network = _small_tutorial_network()
    path = _tutorial_checkpoint(tmp_path / "tutorial.pth", network.state_dict(), network.classifier)
    with monkeypatch.context() as patch:
        patch.setattr(pickled_objects, "_weights_only_unpickler", lambda: None)
        message = _refusal(path)
    monkeypatch.chdir(tmp_path)
    session: dict[str, Any] = {"torch": torch}
    for code in _code(message):
        _run(code, session)
    assert "state_dict" in torch.load("weights.pt", weights_only=True)


class _RunsCode:
    """An object whose unpickling runs a shell command (``os.system``)."""

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return (os.system, ("true",))


def test_a_pickle_that_also_names_code_to_run_is_not_advised_to_be_allowed(
    tmp_path: Path,
) -> None:
    """torch names the first class it refuses (Sequential); the advice to allow the classes
    it names must not follow when another entry would run a command."""
    path = tmp_path / "tutorial.pth"
    state = {"fc.weight": torch.zeros(2, 2)}
    torch.save({"state_dict": state, "classifier": nn.Sequential(), "hook": _RunsCode()}, path)
    message = _refusal(path)
    assert "torch.nn.modules.container.Sequential" in message
    assert "safe_globals" not in message
    assert "system" not in message


def test_the_tutorial_s_own_layout_is_loaded_into_vgg16_transfer_with_its_classes(
    tmp_path: Path,
) -> None:
    """The real file's keys (VGG16, its classifier.6 the tutorial's head), with one-element
    tensors: the advice is create_model('vgg16_transfer', ...) and the file's class order."""
    with torch.device("meta"):
        network = torchvision.models.vgg16(weights=None)
        network.classifier[6] = _tutorial_head(4096, hidden=256)
        shapes = {key: value.shape for key, value in network.state_dict().items()}
    state = {key: torch.zeros(()).expand(shape) for key, shape in shapes.items()}
    path = _tutorial_checkpoint(tmp_path / "plain.pth", state, _tutorial_head(8), pickled=False)
    message = _refusal(path)
    assert (
        f"`model = create_model('vgg16_transfer', weights=None, classes={IN_ORDER!r}); "
        f"model.network.load_state_dict(torch.load({str(path)!r}, weights_only=True)"
        "['state_dict'])` (classes: in output order, from its 'idx_to_class' entry)"
    ) in message


@pytest.mark.parametrize(
    ("loaded", "expected"),
    [
        ({"idx_to_class": {1: "B", 0: "A"}}, (["A", "B"], "idx_to_class")),
        ({"class_to_idx": {"A": 1, "B": 0}}, (["B", "A"], "class_to_idx")),
        (
            {"class_to_idx": {"A": 1, "B": 0}, "idx_to_class": {0: "B", 1: "A"}},
            (["B", "A"], "idx_to_class"),
        ),
        ({"class_to_idx": {"A": 0, "B": 1}, "idx_to_class": {0: "B", 1: "A"}}, None),
        ({"idx_to_class": {0: "A", 2: "B"}}, None),
        ({"idx_to_class": {"0": "A", "1": "B"}}, None),
        ({"idx_to_class": {False: "A", True: "B"}}, None),
        ({"idx_to_class": {0: "A", 1: "A"}}, None),
        ({"class_to_idx": {"A": 0, "B": 0}}, None),
        ({"idx_to_class": {}}, None),
        ({"state_dict": {}}, None),
        ([("A", 0)], None),
    ],
    ids=[
        "idx_to_class",
        "class_to_idx",
        "both-agree",
        "both-disagree",
        "gap",
        "str-indices",
        "bool-indices",
        "same-name-twice",
        "same-index-twice",
        "empty",
        "none",
        "not-a-dict",
    ],
)
def test_the_class_order_is_taken_from_a_file_only_where_it_is_whole_and_consistent(
    loaded: object, expected: tuple[list[str], str] | None
) -> None:
    assert container_classes(loaded) == expected


# ---------------------------------------------------------------------------------------------
# The weights door (weights=FILE) gives the checkpoint door's advice, which works as written


def _resnet18_with_retinalnet_s_head(hidden: int) -> dict[str, torch.Tensor]:
    """The state dict of create_model('resnet18', hidden=...)'s network, each tensor one
    value (its index) expanded, so the file is small and each tensor tells which it is."""
    with torch.device("meta"):
        network = create_model("resnet18", weights=None, hidden=hidden).network
    return {
        key: torch.full((), index, dtype=value.dtype).expand(value.shape)
        for index, (key, value) in enumerate(network.state_dict().items())
    }


def _plain(state: dict[str, torch.Tensor]) -> object:
    return state


def _tutorial_plain(state: dict[str, torch.Tensor]) -> object:
    return {
        "class_to_idx": {name: index for index, name in IDX_TO_CLASS.items()},
        "idx_to_class": dict(IDX_TO_CLASS),
        "epochs": 7,
        "state_dict": state,
    }


def _lightning(state: dict[str, torch.Tensor]) -> object:
    return {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3}


@pytest.mark.parametrize(
    ("hidden", "wrap", "names"),
    [
        (0, _plain, None),  # torch.save(create_model("resnet18").network.state_dict())
        (256, _tutorial_plain, IN_ORDER),  # the tutorial's head on a ResNet-18
        (0, _lightning, None),
    ],
    ids=["retinalnet-network", "tutorial-container", "lightning"],
)
def test_a_weights_file_s_trained_head_is_warned_about_with_advice_that_works(
    tmp_path: Path,
    hidden: int,
    wrap: Callable[[dict[str, torch.Tensor]], object],
    names: list[str] | None,
) -> None:
    """Was: "load the file into torchvision.models.resnet18(num_classes=4)", which fails for
    a head retinalnet (or the tutorial) built: missing keys "fc.weight", and the
    'state_dict' entry unnamed; the checkpoint door gave working advice for the same file."""
    state = _resnet18_with_retinalnet_s_head(hidden)
    path = tmp_path / "trained.pth"
    torch.save(wrap(state), path)
    with pytest.warns(UserWarning, match="a head trained for some task") as caught:
        create_model("resnet18", weights=path)
    warned = next(str(w.message) for w in caught if "head trained" in str(w.message))
    assert "\n" not in warned
    (code,) = _code(warned)
    assert [code] == _code(_refusal(path))  # one advice, from both doors
    if names is None:
        assert "classes=[...]" in code
        code = code.replace("classes=[...]", f"classes={IN_ORDER!r}")
    else:
        assert "hidden=256" in code
    model = _run(code, _scope())["model"]
    assert model.classes == tuple(IN_ORDER)
    loaded = model.network.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


# ---------------------------------------------------------------------------------------------
# The user guide's "Bringing a model trained with the tutorial", run on a stand-in


def _guide_blocks() -> list[str]:
    """The Python blocks of the user guide's section on the tutorial's checkpoint."""
    text = (ROOT / "docs" / "user_guide.rst").read_text(encoding="utf-8")
    section = text.split("Bringing a model trained with the tutorial\n", 1)[1]
    section = re.split(r"\n[^\n]+\n-{4,}\n", section, maxsplit=1)[0]  # up to the next one
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:(?:   [^\n]*)?\n)+)", section)
    return [textwrap.dedent(block) for block in blocks]


def _names(allowed: list[Any]) -> set[str]:
    """The globals a ``safe_globals`` list allows: ``module.name`` of each, or the name a
    ``(stand-in, name)`` pair gives."""
    return {
        entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"
        for entry in allowed
    }


def test_the_user_guide_s_steps_bring_the_tutorial_s_checkpoint_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with torch.device("meta"):
        vgg16 = torchvision.models.vgg16(weights=None)
        vgg16.classifier[6] = _tutorial_head(4096, hidden=256)
        shapes = {key: value.shape for key, value in vgg16.state_dict().items()}
    state = {
        key: torch.full((), index / 1000).expand(shape)
        for index, (key, shape) in enumerate(shapes.items())
    }
    # the tutorial pickles model.classifier: VGG16's, its last layer the tutorial's head
    classifier = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Dropout(), _tutorial_head(8))
    _tutorial_checkpoint(Path("vgg16-transfer-4.pth"), state, classifier)

    allow, convert = _guide_blocks()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scope = _run(allow, {})
        _run(convert, scope)

    # the guide's list is what retinalnet says of the file
    imports, allowed = _code(_refusal("vgg16-transfer-4.pth"))
    said = _run(imports, {"torch": torch})
    listed = re.search(r"safe_globals\((\[[^]]*\])\)", allowed)
    assert listed is not None
    assert _names(eval(listed.group(1), said)) == _names(scope["pickled"])

    checkpoint = load_checkpoint("tutorial.pt")
    assert checkpoint.classes == tuple(IN_ORDER)
    network = checkpoint.build_model().network
    for key, value in network.state_dict().items():
        assert torch.equal(value, state[key]), key
