"""Checkpoints: plain data that loads with weights_only=True, atomic writes, clear errors."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import io
import os
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import retinalnet
from _checkpoint_swap import rename_over, sha256, two_checkpoints
from _training_helpers import (
    CLASSES,
    linear_classifier,
    quiet_trainer,
    same_state,
    separable_data,
    snapshot,
    tiny_cnn,
)
from retinalnet import checkpoint as checkpoint_module
from retinalnet._core import files
from retinalnet.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    CheckpointWriteError,
    checkpoint_epoch,
    load_checkpoint,
    save_checkpoint,
    set_checkpoint_temperature,
)
from retinalnet.models import Classifier, small_cnn
from retinalnet.predictor import Predictor
from retinalnet.training import EarlyStopping
from retinalnet.transforms import Preprocessing

HISTORY = [
    {
        "epoch": 1,
        "train_loss": 1.25,
        "train_accuracy": 0.5,
        "val_loss": 1.5,
        "val_accuracy": 0.25,
        "seconds": 0.5,
        "lr": 0.01,
    },
    {
        "epoch": 2,
        "train_loss": 1.0,
        "train_accuracy": 0.75,
        "val_loss": None,
        "val_accuracy": None,
        "seconds": 0.25,
        "lr": 0.01,
    },
]


def _trained_cnn() -> tuple[Classifier, torch.optim.Optimizer, Any]:
    """A tiny CNN after one optimiser and scheduler step, BatchNorm statistics moved."""
    model = tiny_cnn(width=4)
    model.preprocessing = Preprocessing(size=32, resize=40, hflip=False, jitter=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    inputs = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    loss = nn.functional.nll_loss(model(inputs), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimizer.step()
    scheduler.step()
    return model.eval(), optimizer, scheduler


def _inputs() -> torch.Tensor:
    return torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_checkpoint_file_is_plain_data_loadable_with_weights_only(tmp_path: Path) -> None:
    model, optimizer, scheduler = _trained_cnn()
    states = {"EarlyStopping": {"best_score": 0.5, "best_epoch": 1, "wait": 1}}

    path = save_checkpoint(
        tmp_path / "runs" / "ck.pt",
        model,
        epoch=2,
        history=HISTORY,
        optimizer_state=optimizer.state_dict(),
        scheduler_state=scheduler.state_dict(),
        callback_states=states,
    )

    assert path == tmp_path / "runs" / "ck.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT == "retinalnet-checkpoint"
    assert raw["format_version"] == 1
    assert raw["retinalnet_version"] == retinalnet.__version__
    assert raw["classes"] == list(CLASSES)
    assert raw["preprocessing"] == model.preprocessing.to_dict()
    assert raw["preprocessing"]["jitter"] == 0.1
    assert raw["model"]["arch"] == "small_cnn"
    assert raw["model"]["arch_kwargs"] == {
        "num_classes": 4,
        "width": 4,
        "hidden": 8,
        "dropout": 0.2,
        "freeze": False,
        "trainable_blocks": 0,
    }
    assert same_state(raw["model"]["state_dict"], model.state_dict())
    assert raw["epoch"] == 2
    assert raw["history"] == HISTORY
    assert raw["callbacks"] == states
    assert raw["optimizer"]["param_groups"][0]["lr"] == 0.005
    assert raw["scheduler"]["last_epoch"] == 1
    assert torch.equal(
        raw["optimizer"]["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )


def test_load_checkpoint_gives_back_what_was_saved(tmp_path: Path) -> None:
    model, optimizer, scheduler = _trained_cnn()
    save_checkpoint(
        tmp_path / "ck.pt",
        model,
        epoch=2,
        history=HISTORY,
        optimizer_state=optimizer.state_dict(),
        scheduler_state=scheduler.state_dict(),
        callback_states={"ModelCheckpoint": {"best_score": 1.5, "best_epoch": 1}},
    )

    checkpoint = load_checkpoint(tmp_path / "ck.pt")

    assert isinstance(checkpoint, Checkpoint)
    assert checkpoint.path == tmp_path / "ck.pt"
    assert checkpoint.arch == "small_cnn"
    assert checkpoint.classes == CLASSES
    assert checkpoint.preprocessing == model.preprocessing
    assert checkpoint.epoch == 2
    assert checkpoint.history == HISTORY
    assert checkpoint.callback_states == {"ModelCheckpoint": {"best_score": 1.5, "best_epoch": 1}}
    assert checkpoint.retinalnet_version == retinalnet.__version__
    assert same_state(checkpoint.state_dict, model.state_dict())
    resumed = torch.optim.Adam(model.parameters(), lr=0.5)
    assert checkpoint.optimizer_state is not None
    resumed.load_state_dict(checkpoint.optimizer_state)
    assert resumed.param_groups[0]["lr"] == 0.005
    assert checkpoint.scheduler_state == scheduler.state_dict()


def test_checkpoints_compare_by_value_and_are_not_hashable(tmp_path: Path) -> None:
    model, optimizer, _ = _trained_cnn()
    path = save_checkpoint(tmp_path / "ck.pt", model, optimizer_state=optimizer.state_dict())

    first, again = load_checkpoint(path), load_checkpoint(path)

    assert first == again  # the weights and the optimizer's tensors compared whole
    assert first != dataclasses.replace(first, temperature=2.0)
    weights = {**first.state_dict}
    name = next(iter(weights))
    weights[name] = weights[name] + 1
    assert first != dataclasses.replace(first, state_dict=weights)
    assert first != "ck.pt"
    with pytest.raises(TypeError, match="unhashable type: 'Checkpoint'"):
        hash(first)


def test_a_checkpoint_without_training_state_has_defaults(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck.pt", linear_classifier())

    checkpoint = load_checkpoint(tmp_path / "ck.pt")

    assert (checkpoint.epoch, checkpoint.history) == (0, [])
    assert checkpoint.optimizer_state is None
    assert checkpoint.scheduler_state is None
    assert checkpoint.callback_states == {}


def test_a_checkpoint_written_before_schedulers_existed_loads(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck.pt", linear_classifier())
    data = torch.load(tmp_path / "ck.pt", weights_only=True)
    del data["scheduler"]
    torch.save(data, tmp_path / "ck.pt")

    assert load_checkpoint(tmp_path / "ck.pt").scheduler_state is None


def test_build_model_rebuilds_small_cnn_with_identical_outputs(tmp_path: Path) -> None:
    model, _, _ = _trained_cnn()
    save_checkpoint(tmp_path / "ck.pt", model)

    rebuilt = load_checkpoint(tmp_path / "ck.pt").build_model().eval()

    assert rebuilt is not model
    assert (rebuilt.arch, rebuilt.arch_kwargs) == (model.arch, model.arch_kwargs)
    assert rebuilt.classes == model.classes
    assert rebuilt.preprocessing == model.preprocessing
    with torch.no_grad():
        expected = model(_inputs())
        assert torch.equal(rebuilt(_inputs()), expected)
        assert not torch.allclose(tiny_cnn(seed=5).eval()(_inputs()), expected)


def test_vgg16_transfer_is_rebuilt_from_a_checkpoint_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vgg16_random: Classifier
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    save_checkpoint(tmp_path / "vgg.pt", vgg16_random)

    rebuilt = load_checkpoint(tmp_path / "vgg.pt").build_model()

    assert rebuilt.arch == "vgg16_transfer"
    assert rebuilt.arch_kwargs == vgg16_random.arch_kwargs
    assert same_state(rebuilt.state_dict(), vgg16_random.state_dict())
    trainable = [name for name, p in rebuilt.named_parameters() if p.requires_grad]
    assert trainable == [name for name, p in vgg16_random.named_parameters() if p.requires_grad]
    assert all(name.startswith("network.classifier.6.") for name in trainable)


@pytest.mark.parametrize(
    ("error", "message"),
    [(OSError("disk full"), "disk full"), (KeyboardInterrupt(), None)],
    ids=["os-error", "keyboard-interrupt"],
)
def test_a_failed_write_leaves_the_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException, message: str | None
) -> None:
    path = save_checkpoint(tmp_path / "best.pt", linear_classifier(), epoch=1)
    before = path.read_bytes()

    def failing_save(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        stream.write(before[: len(before) // 2])  # half a file, then the failure
        raise error

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(type(error), match=message):
        save_checkpoint(path, linear_classifier(seed=1), epoch=2)
    with pytest.raises(type(error), match=message):
        save_checkpoint(tmp_path / "new.pt", linear_classifier(seed=1), epoch=2)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path).epoch == 1


class _FullDisk(io.FileIO):
    """A file on a disk with 4 KiB left: the write that passes it fails with ENOSPC."""

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > 4096:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: _FullDisk(fd, "wb"))


def _quoted(path: Path) -> str:
    return re.escape(repr(str(path)))


def test_a_full_disk_names_the_file_the_cause_and_the_epoch_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "last.pt", tiny_cnn(), epoch=6)
    before = path.read_bytes()
    _full_disk(monkeypatch)
    with pytest.raises(
        CheckpointWriteError,
        match=rf"^cannot write checkpoint {_quoted(path)} \(epoch 7\): no space left on device "
        r"\[ENOSPC\]; the checkpoint there before is untouched and holds epoch 6\. Free some "
        r"disk space or write elsewhere$",
    ) as info:
        save_checkpoint(path, tiny_cnn(seed=1), epoch=7)
    monkeypatch.undo()
    error = info.value
    assert isinstance(error, OSError)
    assert (error.errno, error.path, error.epoch, error.epoch_on_disk) == (
        errno.ENOSPC,
        path,
        7,
        6,
    )
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left
    assert load_checkpoint(path).epoch == 6


def test_a_full_disk_on_the_first_checkpoint_says_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_disk(monkeypatch)
    with pytest.raises(
        CheckpointWriteError,
        match=r"\(epoch 1\): no space left on device \[ENOSPC\]; there was no checkpoint there "
        r"before, and there is none now\.",
    ) as info:
        save_checkpoint(tmp_path / "best.pt", tiny_cnn(), epoch=1)
    assert info.value.epoch_on_disk is None
    assert list(tmp_path.iterdir()) == []


def test_a_file_there_that_is_no_checkpoint_is_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "best.pt"
    path.write_bytes(b"notes, not a checkpoint")
    _full_disk(monkeypatch)
    with pytest.raises(
        CheckpointWriteError, match=r"\[ENOSPC\]; the file there before is untouched\."
    ):
        save_checkpoint(path, tiny_cnn(), epoch=3)
    assert path.read_bytes() == b"notes, not a checkpoint"


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.EACCES, r"permission denied \[EACCES\]; the checkpoint there before is untouched "
      r"and holds epoch 2\. Check the folder's permissions or write elsewhere$"),
     (errno.EROFS, r"read-only file system \[EROFS\]; the checkpoint there before is "
      r"untouched and holds epoch 2\. Write to a writable file system$")],
    ids=["permission", "read-only-file-system"],
)  # fmt: skip
def test_a_refused_write_names_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    path = save_checkpoint(tmp_path / "best.pt", tiny_cnn(), epoch=2)

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.tempfile, "mkstemp", refused)
    with pytest.raises(CheckpointWriteError, match=rf"\(epoch 3\): {words}"):
        save_checkpoint(path, tiny_cnn(), epoch=3)


def test_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    path = save_checkpoint(folder / "best.pt", tiny_cnn(), epoch=4)
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a read-only folder does not stop writes here")
        with pytest.raises(
            CheckpointWriteError,
            match=rf"^cannot write checkpoint {_quoted(path)} \(epoch 5\): permission denied "
            r"\[EACCES\]; the checkpoint there before is untouched and holds epoch 4\.",
        ):
            save_checkpoint(path, tiny_cnn(), epoch=5)
    finally:
        folder.chmod(0o755)
    assert load_checkpoint(path).epoch == 4


def test_checkpoint_write_error_survives_pickling(tmp_path: Path) -> None:
    error = CheckpointWriteError(
        tmp_path / "b.pt", "no space left on device [ENOSPC]", 28, 7, True, 6
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CheckpointWriteError
    assert (str(copy), copy.errno, copy.path, copy.epoch, copy.epoch_on_disk) == (
        str(error),
        28,
        tmp_path / "b.pt",
        7,
        6,
    )


def test_save_checkpoint_needs_a_classifier(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"save_checkpoint needs a retinalnet Classifier \(got "):
        save_checkpoint(tmp_path / "ck.pt", nn.Linear(2, 2))  # type: ignore[arg-type]
    assert not (tmp_path / "ck.pt").exists()


def test_load_checkpoint_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no checkpoint file '.*missing\.pt'"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(IsADirectoryError, match="is a folder, not a checkpoint file"):
        load_checkpoint(tmp_path)  # tests/test_checkpoint_folder.py: what it says


def _pickled_module(path: Path) -> None:
    torch.save(nn.Linear(2, 2), path)  # the tutorial's way: a whole pickled module


def _lightning_checkpoint_with_a_namespace(path: Path) -> None:
    """Lightning's ``save_hyperparameters(args)`` keeps an ``argparse.Namespace``."""
    state = {f"model.{k}": v for k, v in linear_classifier().state_dict().items()}
    hyper = argparse.Namespace(lr=0.1)
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.4.0", "hp": hyper}, path)


def _truncated(path: Path) -> None:
    save_checkpoint(path, linear_classifier())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _plain_state_dict(path: Path) -> None:
    torch.save(linear_classifier().state_dict(), path)


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _tampered(**changes: Any) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        save_checkpoint(path, tiny_cnn())
        data = torch.load(path, weights_only=True)
        for key, value in changes.items():
            section, _, field = key.partition("__")
            if field:
                data[section][field] = value
            else:
                data[section] = value
        torch.save(data, path)

    return write


@pytest.mark.parametrize(
    ("write", "message"),
    [
        pytest.param(
            _pickled_module,
            r"is not a retinalnet checkpoint: it holds pickled Python objects .*unpickling can "
            r"run arbitrary code\. Save model\.state_dict\(\) instead",
            id="pickled-module",
        ),
        pytest.param(
            _lightning_checkpoint_with_a_namespace,
            # its state dict is usable: the advice is to save it alone, not "state_dict()"
            r"'.*bad\.pt' is a PyTorch Lightning checkpoint whose entries beside its 'state_dict' "
            r"hold pickled Python objects \(argparse\.Namespace; .*\['state_dict'\], "
            r"'weights\.pt'\)`; `retinalnet info weights\.pt` then says how to use it$",
            id="lightning-namespace",
        ),
        pytest.param(
            _truncated,
            r"checkpoint '.*bad\.pt' is incomplete: it starts as the zip archive torch\.save "
            r"writes but has no zip directory at its end",
            id="half",
        ),
        pytest.param(
            lambda path: path.write_bytes(b""), r"cannot read checkpoint '.*bad\.pt'", id="empty"
        ),
        pytest.param(_random_bytes, r"'.*bad\.pt'", id="random-bytes"),
        pytest.param(
            _plain_state_dict,
            # a Classifier's own state dict ('network.' keys): loaded into a Classifier
            r"'.*bad\.pt' is not a retinalnet checkpoint \(no 'retinalnet-checkpoint' marker\) "
            r"but a Classifier's state dict \(2 tensors, of no registered architecture\): "
            r"weights only, with no class names or preprocessing\. For its backbone weights use "
            r"create_model\(ARCH, weights='.*bad\.pt'\); to use the whole trained network in "
            r"Python: `model = Classifier\(net, classes=\[\.\.\.\]\); model\.load_state_dict"
            r"\(torch\.load\('.*bad\.pt', weights_only=True\)\)`, net being the untrained "
            r"network it was built on \(classes: its class names in output order\), then "
            r"save_checkpoint\('model\.pt', model\) writes it as a checkpoint$",
            id="plain-state-dict",
        ),
        pytest.param(
            lambda path: torch.save([1, 2], path), "no 'retinalnet-checkpoint' marker", id="list"
        ),
        pytest.param(
            _tampered(format="something-else"),
            "no 'retinalnet-checkpoint' marker",
            id="other-format",
        ),
        pytest.param(
            _tampered(format_version=3, retinalnet_version="9.0"),
            r"written by retinalnet 9\.0 in checkpoint format 3; this is retinalnet .* \(format 2\)"
            r": upgrade with pip install -U retinalnet",
            id="newer-format",
        ),
        pytest.param(
            _tampered(preprocessing={**Preprocessing().to_dict(), "sharpen": 2.0}),
            r"unknown preprocessing setting\(s\) \['sharpen'\].*upgrade",
            id="newer-preprocessing",
        ),
    ],
)
def test_load_checkpoint_rejects_what_is_not_a_checkpoint(
    tmp_path: Path, write: Callable[[Path], None], message: str
) -> None:
    path = tmp_path / "bad.pt"
    write(path)

    with pytest.raises(ValueError, match=message):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [b"hello world\n", b"epoch,train_loss\n1,0.5\n"],
    ids=["text-file", "history-csv"],
)
def test_load_checkpoint_of_a_text_file_is_a_value_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "history.pt"
    path.write_bytes(content)

    with pytest.raises(ValueError, match=r"'.*history\.pt'"):
        load_checkpoint(path)


def test_load_checkpoint_of_an_image_does_not_blame_a_pickled_model(tmp_path: Path) -> None:
    path = tmp_path / "scan.pt"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64))

    with pytest.raises(ValueError, match=r"scan\.pt") as caught:
        load_checkpoint(path)
    assert "torch.save(model)" not in str(caught.value)


def test_weights_that_do_not_fit_list_the_shapes(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck.pt", tiny_cnn(width=8))
    checkpoint = load_checkpoint(tmp_path / "ck.pt")
    wider = tiny_cnn(width=16)
    expected = snapshot(wider)

    with pytest.raises(
        ValueError,
        match=r"the weights in '.*ck\.pt' do not fit the model: wrong shapes \["
        r"'network\.classifier\.0\.weight: checkpoint \(8, 64\) vs model \(8, 128\)', "
        r"'network\.features\.0\.weight: checkpoint \(8, 3, 3, 3\) vs model \(16, 3, 3, 3\)', "
        r".*\] and \d+ more\. Build the model with the same architecture",
    ):
        checkpoint.build_model(wider)
    assert same_state(wider.state_dict(), expected)  # nothing half-loaded


def test_a_checkpoint_whose_config_does_not_fit_its_weights(tmp_path: Path) -> None:
    _tampered(model__arch_kwargs={"num_classes": 4, "width": 16, "hidden": 8})(tmp_path / "x.pt")

    with pytest.raises(ValueError, match=r"do not fit the model: wrong shapes"):
        load_checkpoint(tmp_path / "x.pt").build_model()


def test_an_unknown_architecture_needs_the_network(tmp_path: Path) -> None:
    _tampered(model__arch="resnet9000")(tmp_path / "x.pt")

    with pytest.raises(
        ValueError,
        match=r"unknown architecture 'resnet9000'; .*known: .*small_cnn, .*vgg16_transfer, "
        r".*\. For a network built by hand, pass it as model=",
    ):
        load_checkpoint(tmp_path / "x.pt").build_model()


def test_a_hand_built_network_needs_model_to_be_rebuilt(tmp_path: Path) -> None:
    model = linear_classifier(seed=3)
    model.preprocessing = Preprocessing(size=48)
    save_checkpoint(tmp_path / "ck.pt", model)
    checkpoint = load_checkpoint(tmp_path / "ck.pt")
    assert checkpoint.arch is None

    with pytest.raises(
        ValueError,
        match=r"holds a network built by hand; pass that untrained network as model=",
    ):
        checkpoint.build_model()

    network = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.LogSoftmax(dim=1))
    rebuilt = checkpoint.build_model(network)
    assert rebuilt.network is network
    assert rebuilt.classes == CLASSES
    assert rebuilt.preprocessing == Preprocessing(size=48)
    inputs = torch.randn(3, 8)
    assert torch.equal(rebuilt(inputs), model(inputs))

    classifier = linear_classifier(seed=4)
    classifier.preprocessing = Preprocessing(size=48).with_augmentation("oct")  # may differ
    assert checkpoint.build_model(classifier) is classifier
    assert torch.equal(classifier(inputs), model(inputs))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param({"size": 40}, "size=48 there, 40 now", id="size"),
        pytest.param({"std": (1.0, 1.0, 1.0)}, "std=", id="normalisation"),
        pytest.param({"reduced_decode": True}, "reduced_decode=False there, True now", id="decode"),
    ],
)
def test_a_classifier_that_prepares_images_otherwise_is_refused(
    tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    """Its weights would see other inputs than in training: a silently wrong answer."""
    model = linear_classifier(seed=3)
    model.preprocessing = Preprocessing(size=48)
    save_checkpoint(tmp_path / "ck.pt", model)
    classifier = linear_classifier(seed=4)
    classifier.preprocessing = dataclasses.replace(Preprocessing(size=48), **change)
    expected = snapshot(classifier)

    for door in (
        lambda: load_checkpoint(tmp_path / "ck.pt").build_model(classifier),
        lambda: Predictor.from_checkpoint(tmp_path / "ck.pt", model=classifier),
    ):
        with pytest.raises(ValueError, match="trained on images prepared otherwise") as info:
            door()
        assert named in str(info.value)
        assert "preprocessing=checkpoint.preprocessing" in str(info.value)
    assert same_state(classifier.state_dict(), expected)  # nothing loaded


def test_a_network_with_other_layers_lists_missing_and_unexpected_keys(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck.pt", linear_classifier())

    with pytest.raises(
        ValueError,
        match=re.escape(
            "missing keys ['network.0.bias', 'network.0.weight']; "
            "unexpected keys ['network.1.bias', 'network.1.weight']"
        ),
    ):
        load_checkpoint(tmp_path / "ck.pt").build_model(nn.Sequential(nn.Linear(8, 4)))


def test_a_model_with_other_classes_is_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck.pt", small_cnn(width=4, hidden=8))
    other = small_cnn(width=4, hidden=8, classes=["NORMAL", "CNV", "DME", "DRUSEN"])

    with pytest.raises(
        ValueError,
        match=re.escape(
            "was trained for classes ['CNV', 'DME', 'DRUSEN', 'NORMAL'] but the model has "
            "['NORMAL', 'CNV', 'DME', 'DRUSEN']"
        ),
    ):
        load_checkpoint(tmp_path / "ck.pt").build_model(other)


# ---------------------------------------------------------------------------------------------
# Every malformed field is a ValueError naming the file and the field, never a KeyError or a
# TypeError from deep inside


def _edited(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        save_checkpoint(path, tiny_cnn(), epoch=2, history=HISTORY)
        data = torch.load(path, weights_only=True)
        edit(data)
        torch.save(data, path)

    return write


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    section, _, name = key.rpartition(".")
    return lambda data: (data[section] if section else data).pop(name)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    section, _, name = key.rpartition(".")
    return lambda data: (data[section] if section else data).__setitem__(name, value)


def _nonfinite_weight(name: str, value: float) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["model"]["state_dict"][name].view(-1)[-1] = value

    return edit


_PREPROCESSING = Preprocessing().to_dict()

MALFORMED = [
    *[
        pytest.param(_without(key), key, "is missing", id=f"missing-{key}")
        for key in (
            "model",
            "model.arch",
            "model.arch_kwargs",
            "model.state_dict",
            "classes",
            "preprocessing",
            "epoch",
            "history",
            "optimizer",
            "callbacks",
            "retinalnet_version",
        )
    ],
    pytest.param(_set("epoch", "3"), "epoch", r"must be an int >= 0, got str '3'", id="epoch-str"),
    pytest.param(_set("epoch", 2.0), "epoch", r"must be an int >= 0, got float 2\.0", id="float"),
    pytest.param(_set("epoch", True), "epoch", "must be an int >= 0, got bool True", id="bool"),
    pytest.param(_set("epoch", -1), "epoch", "must be an int >= 0, got -1", id="epoch-negative"),
    pytest.param(_set("epoch", None), "epoch", "got NoneType None", id="epoch-none"),
    pytest.param(_set("history", {}), "history", "must be a list of epoch records", id="dict"),
    pytest.param(_set("history", "1,0.5"), "history", "got str '1,0.5'", id="history-str"),
    pytest.param(
        _set("history", [1.5]), "history", "must hold a dict per epoch", id="history-of-numbers"
    ),
    pytest.param(
        _set("history", [{1: 0.5}]), r"history\[0\]", "must have str keys", id="history-keys"
    ),
    pytest.param(_set("classes", [0, 1, 2, 3]), "classes", "non-empty strings", id="class-ints"),
    pytest.param(_set("classes", "CNV"), "classes", "must be a list of class names", id="str"),
    pytest.param(_set("classes", []), "classes", "non-empty list", id="no-classes"),
    pytest.param(_set("classes", ["CNV", ""]), "classes", "non-empty strings", id="empty-name"),
    pytest.param(
        _set("classes", ["CNV", "CNV", "DME", "NORMAL"]), "classes", "repeated", id="repeated"
    ),
    pytest.param(
        _set("preprocessing", "imagenet"), "preprocessing", "must be a dict", id="prep-str"
    ),
    pytest.param(
        _set("preprocessing", {**_PREPROCESSING, "size": "big"}),
        "preprocessing",
        "is not valid: size must be an int from 32 to 2048",
        id="prep-bad-size",
    ),
    pytest.param(
        _set("preprocessing", {**_PREPROCESSING, "mean": [1]}),
        "preprocessing",
        r"is not valid: mean must be 3 finite numbers \(one per channel\), got \[1\]",
        id="prep-bad-mean",
    ),
    # settings that loaded before and gave answers from the wrong numbers, or crashed
    *[
        pytest.param(
            _set("preprocessing", {**_PREPROCESSING, name: value}),
            "preprocessing",
            rf"is not valid: {name} must be .*, got {re.escape(repr(value))}$",
            id=f"prep-{name}-{value!r}",
        )
        for name, value in (
            ("mean", [float("nan")] * 3),
            ("std", [float("inf")] * 3),
            ("scale", [0.5]),
            ("reduced_decode", "false"),
            ("hflip", "no"),
            ("rotation", "5"),
            ("size", 32.0),
        )
    ],
    *[
        pytest.param(
            _nonfinite_weight(name, value),
            "model.state_dict",
            rf"holds NaN or infinite weights in '{re.escape(name)}'",
            id=f"weights-{value}-{name}",
        )
        for name, value in (
            ("network.features.0.weight", float("nan")),
            ("network.classifier.3.bias", float("-inf")),
            ("network.features.1.running_var", float("inf")),  # a buffer
        )
    ],
    pytest.param(
        _set("preprocessing", {0: 1}), "preprocessing", "must have str keys", id="prep-keys"
    ),
    pytest.param(_set("model", []), "model", "must be a dict", id="model-list"),
    pytest.param(_set("model.arch", 3), "model.arch", "a str or None", id="arch-int"),
    pytest.param(_set("model.arch_kwargs", [1]), "model.arch_kwargs", "a dict", id="kwargs"),
    pytest.param(
        _set("model.state_dict", {"w": [1.0]}), "model.state_dict", "must hold tensors", id="sd"
    ),
    pytest.param(_set("optimizer", "adam"), "optimizer", "a dict or None", id="optimizer-str"),
    pytest.param(_set("scheduler", 5), "scheduler", "a dict or None", id="scheduler-int"),
    pytest.param(_set("callbacks", []), "callbacks", "must be a dict", id="callbacks-list"),
    pytest.param(_set("callbacks", {1: {}}), "callbacks", "str keys", id="callbacks-keys"),
    pytest.param(_set("loop", 3), "loop", "must be a dict", id="loop-int"),
    pytest.param(_set("format_version", "1"), "format_version", "an int", id="version-str"),
    pytest.param(_set("retinalnet_version", 2), "retinalnet_version", "a str", id="version"),
]


@pytest.mark.parametrize(("edit", "field", "problem"), MALFORMED)
def test_a_malformed_field_is_named_with_the_file(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], field: str, problem: str
) -> None:
    path = tmp_path / "bad.pt"
    _edited(edit)(path)

    with pytest.raises(ValueError, match=r"^cannot load checkpoint '.*bad\.pt': field ") as info:
        load_checkpoint(path)

    assert re.search(rf"field '{field}' .*{problem}", str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_weights_that_are_not_finite_are_refused_naming_the_tensor(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    _edited(_nonfinite_weight("network.features.0.weight", float("nan")))(path)

    with pytest.raises(
        ValueError,
        match=r"^cannot load checkpoint '.*best\.pt': field 'model\.state_dict' holds NaN or "
        r"infinite weights in 'network\.features\.0\.weight': the model would give no valid "
        r"predictions; use another checkpoint of the run \(last\.pt or best\.pt\)$",
    ):
        Predictor.from_checkpoint(path, device="cpu")


# the fields every write sets itself (the writing version, the format its fields need)
_STAMPED = ("retinalnet_version", "format_version")


@pytest.mark.parametrize(
    ("edit", "field", "problem"), [p for p in MALFORMED if p.values[1] not in _STAMPED]
)
def test_what_would_not_load_is_never_written(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], field: str, problem: str
) -> None:
    """One set of rules: every writer of checkpoints (save_checkpoint, the Trainer's
    ModelCheckpoint, set_checkpoint_temperature) writes through the check load_checkpoint
    reads with, before a byte is written."""
    path = tmp_path / "good.pt"
    save_checkpoint(path, tiny_cnn(), epoch=2, history=HISTORY)
    before = path.read_bytes()
    data = torch.load(path, weights_only=True)
    edit(data)

    with pytest.raises(ValueError, match=r"^cannot write checkpoint '.*good\.pt': field ") as info:
        checkpoint_module._write(path, data, 2)

    message = str(info.value)
    assert re.search(rf"field '{field}' .*{problem.removesuffix('$')}", message), message
    assert message.endswith("; nothing was written")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["good.pt"]  # no temporary file left


@pytest.mark.parametrize(
    ("epoch", "shown"),
    [(-1, "-1"), ("3", "str '3'"), (2.0, r"float 2\.0"), (True, "bool True"), (None, "NoneType")],
)
def test_save_checkpoint_refuses_an_epoch_load_would_refuse(
    tmp_path: Path, epoch: Any, shown: str
) -> None:
    path = save_checkpoint(tmp_path / "good.pt", tiny_cnn(), epoch=3)
    before = path.read_bytes()

    with pytest.raises(
        ValueError,
        match=rf"^cannot write checkpoint '.*good\.pt': field 'epoch' must be an int >= 0, "
        rf"got {shown}.*; nothing was written$",
    ):
        save_checkpoint(path, tiny_cnn(), epoch=epoch)

    assert path.read_bytes() == before
    assert load_checkpoint(path).epoch == 3


def test_save_checkpoint_refuses_weights_that_are_not_finite(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "best.pt", tiny_cnn(), epoch=1)
    before = path.read_bytes()
    broken = tiny_cnn()
    with torch.no_grad():
        broken.network.features[0].weight[0, 0, 0, 0] = float("nan")

    with pytest.raises(
        ValueError,
        match=r"^cannot write checkpoint '.*best\.pt': field 'model\.state_dict' holds NaN or "
        r"infinite weights in 'network\.features\.0\.weight' \(did training diverge\?\); "
        r"nothing was written$",
    ):
        save_checkpoint(path, broken, epoch=2)
    assert path.read_bytes() == before


def test_integer_weights_for_floating_point_ones_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ints.pt"
    save_checkpoint(path, tiny_cnn())
    data = torch.load(path, weights_only=True)
    data["model"]["state_dict"] = {
        k: v.long() if v.is_floating_point() else v for k, v in data["model"]["state_dict"].items()
    }
    torch.save(data, path)

    with pytest.raises(
        ValueError,
        match=r"the weights in '.*ints\.pt' are integers where the model's are floating-point "
        r"numbers: \['network\.classifier\.0\.bias: checkpoint torch\.int64 vs model "
        r"torch\.float32', .*\] and \d+ more; .*Use a checkpoint written by retinalnet",
    ):
        load_checkpoint(path).build_model()


# ---------------------------------------------------------------------------------------------
# A damaged file (its bytes changed after it was written) is refused: torch.load checks no
# CRC, and read a damaged weight as another number


def _members(path: Path) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as archive:
        return archive.infolist()


def _flip(path: Path, start: int, count: int = 1) -> None:
    data = bytearray(path.read_bytes())
    for index in range(start, start + count):
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))


def _data_offset(path: Path, member: zipfile.ZipInfo) -> int:
    """Where ``member``'s bytes start: after its local header and that header's extra field."""
    with open(path, "rb") as handle:
        handle.seek(member.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", handle.read(4))
    return member.header_offset + 30 + name_length + extra_length


def _directory_entry(path: Path, name: str) -> int:
    """Where the zip directory's entry for the member ``name`` starts."""
    data = path.read_bytes()
    end = data.rindex(b"PK\x05\x06")  # the end of the directory says where it starts
    offset = struct.unpack("<I", data[end + 16 : end + 20])[0]
    while data[offset : offset + 4] == b"PK\x01\x02":
        lengths = struct.unpack("<HHH", data[offset + 28 : offset + 34])
        if data[offset + 46 : offset + 46 + lengths[0]] == name.encode():
            return offset
        offset += 46 + sum(lengths)
    raise AssertionError(f"no {name} in {path}")


def test_a_damaged_checkpoint_is_refused_by_every_door(tmp_path: Path) -> None:
    """The auditor's case: 200 bytes in the middle of the file changed."""
    path = save_checkpoint(tmp_path / "best.pt", small_cnn(width=4, hidden=8), epoch=2)
    _flip(path, path.stat().st_size // 2, 200)
    damaged = path.read_bytes()
    message = (
        r"^checkpoint '.*best\.pt' is damaged: '[^']*/data/\d+' fails its CRC-32 check, so its "
        r"bytes changed after it was written \(a bad copy or download, a failing disk\)\. Copy "
        r"it again from where it came from, or use another checkpoint of the run \(last\.pt "
        r"or best\.pt\)$"
    )
    for door in (
        lambda: load_checkpoint(path),
        lambda: Predictor.from_checkpoint(path, device="cpu"),
        lambda: set_checkpoint_temperature(path, 1.5),
    ):
        with pytest.raises(ValueError, match=message):
            door()
    assert path.read_bytes() == damaged  # not rewritten


def test_a_changed_byte_in_any_part_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint(path, tiny_cnn(), history=HISTORY)
    good = path.read_bytes()
    members = [m for m in _members(path) if m.file_size]
    assert {m.filename.split("/", 1)[1] for m in members} >= {"data.pkl", "version"}
    for member in members:
        path.write_bytes(good)
        _flip(path, _data_offset(path, member) + member.file_size // 2)
        with pytest.raises(ValueError, match=rf"is damaged: '{member.filename}' fails its CRC"):
            load_checkpoint(path)


def test_a_damaged_header_inside_the_file_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "best.pt", tiny_cnn())
    _flip(path, _members(path)[-1].header_offset)  # the signature of a local header

    with pytest.raises(ValueError, match=r"is damaged: '.*' cannot be read \(Bad magic number"):
        load_checkpoint(path)


def test_a_part_marked_as_a_folder_is_refused(tmp_path: Path) -> None:
    """torch reads no bytes for a folder and keeps whatever memory held, while the part's
    own bytes still pass their CRC: one bit of the zip directory would change the weights."""
    path = save_checkpoint(tmp_path / "best.pt", tiny_cnn())
    name = next(m.filename for m in _members(path) if m.filename.endswith("/data/0"))
    _flip(path, _directory_entry(path, name) + 38)  # its attributes, the folder bit among them

    with pytest.raises(ValueError, match=rf"is damaged: '{name}' is marked as a folder"):
        load_checkpoint(path)


def test_a_zip_archive_torch_did_not_write_is_no_damaged_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "scans.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("scans/", "")
        archive.writestr("scans/a.txt", "not a checkpoint")

    message = (
        r"^checkpoint '.*scans\.pt' is a zip archive that torch\.save did not write \(it holds "
        r"'scans/', 'scans/a\.txt'\), not a PyTorch file; pass a checkpoint written by "
        r"retinalnet \(best\.pt or last\.pt\)$"
    )
    with pytest.raises(ValueError, match=message) as info:
        load_checkpoint(path)
    assert "damaged" not in str(info.value)


def test_a_checkpoint_in_the_legacy_format_loads_with_a_warning(tmp_path: Path) -> None:
    """retinalnet never writes it; it has no checksums to check, which the warning says."""
    path = save_checkpoint(tmp_path / "old.pt", tiny_cnn(), epoch=4)
    legacy = tmp_path / "legacy.pt"
    torch.save(torch.load(path, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(legacy)

    with pytest.warns(
        UserWarning,
        match=r"checkpoint '.*legacy\.pt' is in PyTorch's legacy file format, which has no "
        r"checksums: damage to it cannot be detected\. Write it again",
    ):
        checkpoint = load_checkpoint(legacy)
    assert checkpoint.epoch == 4
    assert same_state(checkpoint.state_dict, load_checkpoint(path).state_dict)


def test_the_crc_check_reads_each_part_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "best.pt", tiny_cnn())
    sizes: list[int] = []
    read = zipfile.ZipExtFile.read

    def counting(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        chunk = read(self, n)
        sizes.append(len(chunk))
        return chunk

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting)
    load_checkpoint(path)
    assert sum(sizes) == sum(m.file_size for m in _members(path))


# ---------------------------------------------------------------------------------------------
# Writing through a symbolic link updates the file it points to, and keeps the link


@pytest.mark.parametrize("relative", [True, False])
def test_saving_through_a_link_updates_its_target(tmp_path: Path, relative: bool) -> None:
    target = save_checkpoint(tmp_path / "models" / "v3.pt", tiny_cnn(), epoch=3)
    link = tmp_path / "ck" / "best.pt"
    link.parent.mkdir()
    link.symlink_to(Path("..") / "models" / "v3.pt" if relative else target)

    assert save_checkpoint(link, tiny_cnn(), epoch=4) == link
    assert link.is_symlink()
    assert load_checkpoint(target).epoch == 4

    set_checkpoint_temperature(link, 1.5)
    assert link.is_symlink()
    assert load_checkpoint(target).temperature == 1.5
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["v3.pt"]
    assert sorted(p.name for p in link.parent.iterdir()) == ["best.pt"]


def test_a_fit_writes_checkpoints_that_pass_the_check_through_a_link(tmp_path: Path) -> None:
    """What a fit writes (history, optimizer, scheduler, callback and loop states) passes
    the write check, and ModelCheckpoint writes through a link in its folder."""
    out = tmp_path / "run"
    out.mkdir()
    kept = tmp_path / "kept" / "last.pt"
    (out / "last.pt").symlink_to(kept)
    trainer = quiet_trainer(linear_classifier(), max_epochs=2, batch_size=4, out_dir=out)

    trainer.fit(separable_data(16), separable_data(4, seed=1))

    assert (out / "last.pt").is_symlink()
    assert load_checkpoint(kept).epoch == 2
    assert load_checkpoint(out / "best.pt").epoch in (1, 2)


def test_architecture_settings_that_do_not_fit_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    _edited(_set("model.arch_kwargs", {"width": 4, "bogus": 1}))(path)
    checkpoint = load_checkpoint(path)

    with pytest.raises(
        ValueError, match=r"cannot load checkpoint '.*bad\.pt': field 'model.arch_kwargs' does "
        r"not fit 'small_cnn': .*bogus",
    ):  # fmt: skip
        checkpoint.build_model()


def test_the_epoch_on_disk_of_a_malformed_file_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    _edited(_set("epoch", "3"))(path)
    assert checkpoint_epoch(path) is None
    assert checkpoint_epoch(tmp_path / "missing.pt") is None
    assert checkpoint_epoch(tmp_path) is None
    good = save_checkpoint(tmp_path / "good.pt", linear_classifier(), epoch=4)
    assert checkpoint_epoch(good) == 4


def _raw_pickle(path: Path) -> None:
    with open(path, "wb") as handle:
        pickle.dump({"weights": {1, 2}}, handle, protocol=4)


def _numpy_inside(path: Path) -> None:
    torch.save({"format": CHECKPOINT_FORMAT, "epoch": np.zeros(3)}, path)


@pytest.mark.parametrize(
    ("write", "names"),
    [
        pytest.param(_pickled_module, "torch.nn.modules.linear.Linear", id="pickled-module"),
        pytest.param(_numpy_inside, "numpy", id="numpy-array"),
        pytest.param(_raw_pickle, "Unsupported operand", id="plain-pickle"),
    ],
)
def test_the_safe_load_refusal_never_suggests_loading_unsafely(
    tmp_path: Path, write: Callable[[Path], None], names: str
) -> None:
    path = tmp_path / "unsafe.pt"
    write(path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on the pickle protocol
        with pytest.raises(ValueError, match=r"'.*unsafe\.pt'") as info:
            load_checkpoint(path)

    message = str(info.value)
    assert names in message
    assert "weights_only" not in message
    assert "safe_globals" not in message
    assert "\n" not in message


# ---------------------------------------------------------------------------------------------
# A hand-built model's declared parts (head, feature blocks, Grad-CAM layer) travel with it


class _TwoBlocks(nn.Module):
    """A network built by hand, whose parts no structure guess finds as declared."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.block1 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.fc(self.pool(self.block2(self.block1(x)))), dim=1)


def _declared(**declarations: Any) -> Classifier:
    return Classifier(
        _TwoBlocks(), classes=CLASSES, preprocessing=Preprocessing(size=32), **declarations
    )


_DECLARATIONS = {"head": "fc", "feature_blocks": ["block1", "block2"], "gradcam_layer": "block1"}


def _parts(model: Classifier) -> tuple[str, list[str], str]:
    names = {id(module): name for name, module in model.network.named_modules()}
    blocks = [names[id(block)] for block in model.feature_block_modules()]
    return model.head_module()[0], blocks, names[id(model.gradcam_target().module)]


@pytest.mark.parametrize(
    "door",
    [
        pytest.param(
            lambda path: load_checkpoint(path).build_model(_TwoBlocks()), id="build_model"
        ),
        pytest.param(
            lambda path: Predictor.from_checkpoint(path, model=_TwoBlocks(), device="cpu").model,
            id="Predictor.from_checkpoint",
        ),
        pytest.param(
            lambda path: load_checkpoint(path).build_model(
                Classifier(_TwoBlocks(), classes=CLASSES, preprocessing=Preprocessing(size=32))
            ),
            id="undeclared-Classifier",
        ),
    ],
)
def test_a_hand_built_models_declarations_survive_every_reload(
    tmp_path: Path, door: Callable[[Path], Classifier]
) -> None:
    """The auditor's case: Grad-CAM moved from the declared layer to a guess, silently."""
    path = save_checkpoint(tmp_path / "ck.pt", _declared(**_DECLARATIONS))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: every declaration is stored
        loaded = door(path)

    assert _parts(loaded) == ("fc", ["block1", "block2"], "block1")
    assert load_checkpoint(path).declarations == _DECLARATIONS


def test_a_registered_models_own_declarations_survive_the_rebuild(tmp_path: Path) -> None:
    built = small_cnn(width=4, hidden=8)
    model = Classifier(
        built.network,
        classes=built.classes,
        preprocessing=built.preprocessing,
        arch=built.arch,
        arch_kwargs=built.arch_kwargs,
        gradcam_layer="features.2",  # not the registered "features.14"
    )
    path = save_checkpoint(tmp_path / "ck.pt", model)

    rebuilt = load_checkpoint(path).build_model()

    assert rebuilt.gradcam_target().module is rebuilt.network.get_submodule("features.2")
    plain = save_checkpoint(tmp_path / "plain.pt", built)  # declares nothing of its own
    assert load_checkpoint(plain).declarations == {}


def test_a_classifier_passed_keeps_the_declarations_it_makes_itself(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", _declared(**_DECLARATIONS))
    own = _declared(gradcam_layer="block2")

    loaded = load_checkpoint(path).build_model(own)

    assert loaded is own
    assert _parts(loaded) == ("fc", ["block1", "block2"], "block2")


@pytest.mark.parametrize(
    ("declarations", "named"),
    [
        pytest.param(
            {"feature_blocks": lambda network: [network.block2]}, "its feature blocks", id="blocks"
        ),
        pytest.param(
            {"gradcam_layer": "block1", "gradcam_reshape": lambda output: output},
            "its Grad-CAM layer",
            id="gradcam-reshape",
        ),
    ],
)
def test_a_declaration_made_by_a_function_is_warned_about_when_it_is_lost(
    tmp_path: Path, declarations: dict[str, Any], named: str
) -> None:
    """A function cannot be stored: the reload says that it falls back, not silently."""
    path = save_checkpoint(tmp_path / "ck.pt", _declared(head="fc", **declarations))
    checkpoint = load_checkpoint(path)

    with pytest.warns(
        UserWarning,
        match=rf"declared {named} with a function, which a checkpoint cannot hold: the model "
        r"loaded uses a guess",
    ) as caught:
        loaded = checkpoint.build_model(_TwoBlocks())
    assert "model=Classifier(network, classes=..., " in str(caught[0].message)
    assert loaded.head_module()[0] == "fc"  # what could be stored is

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # given again by the caller: nothing is lost
        checkpoint.build_model(_declared(**declarations))


def test_a_checkpoint_without_declarations_loads_as_before(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", _declared(**_DECLARATIONS))
    data = torch.load(path, weights_only=True)
    del data["model"]["declarations"]  # as 0.2 wrote it before declarations were stored
    torch.save(data, path)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_checkpoint(path).build_model(_TwoBlocks())

    assert loaded.gradcam_target().module is loaded.network.block2[0]  # the 0.1 guess


@pytest.mark.parametrize(
    ("declarations", "field", "problem"),
    [
        ("fc", "model.declarations", "must be a dict, got str 'fc'"),
        ({"head": 3}, "model.declarations.head", "must be a module path (a str), got int 3"),
        ({"gradcam_layer": None}, "model.declarations.gradcam_layer", "must be a module path"),
        (
            {"feature_blocks": "block1"},
            "model.declarations.feature_blocks",
            "must be a list of module paths",
        ),
        (
            {"feature_blocks": [1]},
            "model.declarations.feature_blocks",
            "must be a list of module paths",
        ),
        ({"unstored": ["head"]}, "model.declarations.unstored", "must be a list of the names"),
    ],
)
def test_malformed_declarations_are_refused_naming_the_field(
    tmp_path: Path, declarations: object, field: str, problem: str
) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", _declared(**_DECLARATIONS))
    data = torch.load(path, weights_only=True)
    data["model"]["declarations"] = declarations
    torch.save(data, path)

    with pytest.raises(
        ValueError,
        match=rf"cannot load checkpoint '.*ck\.pt': field {field!r} {re.escape(problem)}",
    ):
        load_checkpoint(path)


def test_a_declared_part_the_network_lacks_is_refused_before_loading(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", _declared(**_DECLARATIONS))
    data = torch.load(path, weights_only=True)
    data["model"]["declarations"]["gradcam_layer"] = "block9"
    torch.save(data, path)
    network = _TwoBlocks()
    before = snapshot(network)

    with pytest.raises(
        ValueError,
        match=r"declares gradcam_layer 'block9' \(field 'model\.declarations\.gradcam_layer'\), "
        r"which is not a module of the _TwoBlocks network",
    ):
        load_checkpoint(path).build_model(network)
    assert same_state(network.state_dict(), before)


# ---------------------------------------------------------------------------------------------
# A checkpoint of one architecture is not loaded into a model of another


def _relabelled(model: Classifier, arch: str) -> Classifier:
    """The same network under another architecture's name: identical state-dict keys."""
    return Classifier(
        model.network,
        classes=model.classes,
        preprocessing=model.preprocessing,
        arch=arch,
        arch_kwargs=model.arch_kwargs,
    )


@pytest.mark.parametrize(
    "door",
    [
        pytest.param(
            lambda path, model: load_checkpoint(path).build_model(model), id="build_model"
        ),
        pytest.param(
            lambda path, model: Predictor.from_checkpoint(path, model=model, device="cpu"),
            id="Predictor.from_checkpoint",
        ),
    ],
)
def test_a_classifier_of_another_architecture_is_refused(
    tmp_path: Path, door: Callable[[Path, Classifier], object]
) -> None:
    """The auditor's case: resnet18 weights in a resnet18_eps model, same keys, other numbers."""
    path = save_checkpoint(tmp_path / "ck.pt", small_cnn(width=4, hidden=8))
    other = _relabelled(small_cnn(width=4, hidden=8), "small_cnn_eps")
    before = snapshot(other)

    with pytest.raises(
        ValueError,
        match=r"checkpoint '.*ck\.pt' was trained as arch 'small_cnn' but the model is arch "
        r"'small_cnn_eps'; build it with create_model\('small_cnn', \.\.\.\), or pass no model",
    ):
        door(path, other)
    assert same_state(other.state_dict(), before)


@pytest.mark.parametrize(
    ("model", "archs"),
    [
        pytest.param(
            lambda: _relabelled(tiny_cnn(width=16), "small_cnn"),
            # was "arch 'small_cnn' there, arch 'small_cnn' here": as if nothing differed
            "arch 'small_cnn' on both sides, with other settings: width 4 there, 16 here",
            id="Classifier",
        ),
        pytest.param(
            lambda: nn.Sequential(nn.Linear(8, 4)),
            "arch 'small_cnn' there, the Sequential network given here",
            id="bare-network",
        ),
    ],
)
def test_weights_that_do_not_fit_name_both_architectures(
    tmp_path: Path, model: Callable[[], nn.Module], archs: str
) -> None:
    saved = small_cnn(width=4, hidden=8)
    saved.preprocessing = tiny_cnn().preprocessing
    path = save_checkpoint(tmp_path / "ck.pt", saved)

    with pytest.raises(ValueError, match=r"do not fit the model: ") as info:
        load_checkpoint(path).build_model(model())
    assert str(info.value).endswith(
        f"Build the model with the same architecture and settings as the checkpoint: {archs}"
    )


# ---------------------------------------------------------------------------------------------
# A file torch.save did not write is named as such, by every door, in one line


@pytest.mark.parametrize(
    ("content", "shown"),
    [
        pytest.param(b"hi\n", r"this file starts with b'hi\\n'", id="text"),
        pytest.param(b"", r"the file is empty, 0 bytes", id="empty"),
        pytest.param(
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64),
            r"this file starts with b'\\xff\\xd8",
            id="jpeg",
        ),
    ],
)
def test_a_file_torch_did_not_write_is_named_so_by_every_door(
    tmp_path: Path, content: bytes, shown: str
) -> None:
    """The auditor's case: ``KeyError: 105``, the unpickler's memo key, was the reason."""
    from retinalnet.export import describe

    path = tmp_path / "notck.pt"
    path.write_bytes(content)
    message = (
        rf"^cannot read checkpoint '.*notck\.pt': it is not a PyTorch checkpoint file "
        rf"\(torch\.save writes a zip archive; {shown}.*\); pass a checkpoint written by "
        r"retinalnet \(best\.pt or last\.pt\)$"
        if content
        else rf"^cannot read checkpoint '.*notck\.pt': it is not a PyTorch checkpoint file "
        rf"\({shown}"
    )
    for door in (
        lambda: load_checkpoint(path),
        lambda: Predictor.from_checkpoint(path, device="cpu"),
        lambda: set_checkpoint_temperature(path, 1.5),
        lambda: describe(path),
    ):
        with pytest.raises(ValueError, match=message) as info:
            door()
        assert "KeyError" not in str(info.value)
        assert "\n" not in str(info.value)
    assert path.read_bytes() == content


# ---------------------------------------------------------------------------------------------
# A checkpoint given as backbone weights points to the loader that is not deprecated


@pytest.mark.parametrize(
    "door",
    [
        pytest.param(
            lambda path: retinalnet.models.vgg16_transfer(weights=path), id="vgg16_transfer"
        ),
        pytest.param(
            lambda path: retinalnet.models.create_model("resnet18", weights=path), id="resnet18"
        ),
        pytest.param(
            lambda path: retinalnet.models.create_model("small_cnn", weights=path), id="small_cnn"
        ),
    ],
)
def test_a_checkpoint_as_backbone_weights_names_the_current_loader(
    tmp_path: Path, door: Callable[[Path], object]
) -> None:
    path = save_checkpoint(tmp_path / "best.pt", small_cnn(width=4, hidden=8))

    with (
        torch.device("meta"),
        pytest.raises(ValueError, match="is a retinalnet checkpoint") as info,
    ):
        door(path)
    network = path.with_name("best_network.pth")
    assert str(info.value) == (
        f"{str(path)!r} is a retinalnet checkpoint, not backbone weights: to continue its run "
        f"(same data and settings) use fit(..., resume_from={str(path)!r}); to predict with it "
        f"use Predictor.from_checkpoint({str(path)!r}); to start a new run from its weights "
        "(other data or classes), write its network's weights as a state-dict file in Python, "
        f"`torch.save(load_checkpoint({str(path)!r}).build_model().network.state_dict(), "
        f"{str(network)!r})`, and use create_model('small_cnn', weights={str(network)!r})"
    )
    assert "retinalnet.training.load_checkpoint" not in str(info.value)  # deprecated


# ---------------------------------------------------------------------------------------------
# A bare state dict where a checkpoint belongs: which architecture it fits, and how to use it


def _resnet18_file(path: Path, wrap: Callable[[dict[str, Any]], object]) -> Path:
    with torch.device("meta"):
        import torchvision

        state = torchvision.models.resnet18(weights=None, num_classes=4).state_dict()
    torch.save(wrap({k: torch.zeros(()).expand(v.shape) for k, v in state.items()}), path)
    return path


_NET = "torchvision.models.resnet18(num_classes=4)"


@pytest.mark.parametrize(
    ("wrap", "what", "whole"),
    [
        (
            lambda sd: sd,
            "a bare resnet18 state dict (its fc has 4 outputs)",
            ", load the file into that network and wrap it in Python: Classifier(net, "
            f"classes=[...]), net being {_NET} with the file loaded, which save_checkpoint() "
            "writes as a checkpoint",
        ),
        (
            lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3},
            "a bare resnet18 state dict (under its 'state_dict' key; every key prefixed "
            "'model.'; its fc has 4 outputs)",
            f" in Python: `net = {_NET}; net.load_state_dict({{k.removeprefix('model.'): v for "
            "k, v in torch.load({path!r}, weights_only=True)['state_dict'].items()}); model = "
            "Classifier(net, classes=[...])` (classes: its class names in output order), then "
            "save_checkpoint('model.pt', model) writes it as a checkpoint",
        ),
    ],
    ids=["torch.save(state_dict)", "lightning"],
)
def test_a_bare_state_dict_names_its_architecture_and_the_calls_that_use_it(
    tmp_path: Path, wrap: Callable[[dict[str, Any]], object], what: str, whole: str
) -> None:
    from retinalnet.export import describe

    path = _resnet18_file(tmp_path / "my_oct_resnet18.pth", wrap)
    expected = (
        f"{str(path)!r} is not a retinalnet checkpoint (no 'retinalnet-checkpoint' marker) "
        f"but {what}: weights only, with no class names or preprocessing. For its backbone "
        f"weights use create_model('resnet18', weights={str(path)!r}); to use the whole "
        f"trained network{whole.replace('{path!r}', repr(str(path)))}"
    )
    for door in (
        lambda: load_checkpoint(path),
        lambda: Predictor.from_checkpoint(path, device="cpu"),
        lambda: describe(path),
    ):
        with pytest.raises(ValueError, match="is not a retinalnet checkpoint") as info:
            door()
        assert str(info.value) == expected


# ---------------------------------------------------------------------------------------------
# Other formats a model comes in are named, by the checkpoint and the weights doors alike


def _torchscript(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.9+: "torch.jit is deprecated"
        torch.jit.save(torch.jit.script(nn.Linear(2, 2)), path)


def _npz(path: Path) -> None:
    with open(path, "wb") as stream:
        np.savez(stream, a=np.zeros(3))


def _safetensors(path: Path) -> None:
    header = b'{"fc.bias":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))


def _npy(path: Path) -> None:
    with open(path, "wb") as stream:  # np.save(path) would add ".npy" to the name
        np.save(stream, np.zeros(3))


def _gzip(path: Path) -> None:
    import gzip

    buffer = io.BytesIO()
    torch.save({"fc.bias": torch.zeros(4)}, buffer)
    path.write_bytes(gzip.compress(buffer.getvalue()))


_FORMATS = [
    pytest.param(
        _torchscript,
        r"is a TorchScript model \(torch\.jit\.save\), not a",
        id="torchscript",
    ),
    pytest.param(
        _npz, r"is a NumPy archive \(numpy\.savez: 'a\.npy'\), not a PyTorch file", id="npz"
    ),
    pytest.param(
        # the header torch.onnx.export writes: ir_version, then the producer's name
        lambda path: path.write_bytes(b"\x08\t\x12\x07pytorch\x1a\x062.14.1:\xc1" + bytes(64)),
        r"it is an ONNX model, as retinalnet export writes: Predictor\.from_onnx\(path\) "
        r"predicts with it; the commands take the checkpoint it was exported from",
        id="onnx",
    ),
    pytest.param(
        _safetensors,
        r"it is a safetensors file: torch\.save\(safetensors\.torch\.load_file\(path\), "
        r"'weights\.pth'\) writes its tensors as a state-dict file to pass instead",
        id="safetensors",
    ),
    pytest.param(_gzip, r"it is gzip-compressed: decompress it \(gunzip\)", id="gzip"),
    pytest.param(_npy, r"it is a NumPy array \(numpy\.save\)", id="npy"),
    pytest.param(
        lambda path: path.write_bytes(
            b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n"
        ),
        r"it is a Git LFS pointer, not the file itself: git lfs pull fetches the file",
        id="git-lfs",
    ),
]


@pytest.mark.parametrize(("write", "said"), _FORMATS)
def test_another_format_is_named_by_every_door(
    tmp_path: Path, write: Callable[[Path], None], said: str
) -> None:
    """Named by its first bytes or members, not torch's ``RuntimeError: RuntimeError``, its
    C++ line (``[enforce fail at inline_container.cc:180]``) or the bytes themselves."""
    from retinalnet.export import describe

    path = tmp_path / "model.pt"
    write(path)
    doors = {
        "checkpoint": (
            lambda: load_checkpoint(path),
            lambda: Predictor.from_checkpoint(path, device="cpu"),
            # describe reads an ONNX model by its content (this one is cut short)
            *(() if "ONNX" in said else (lambda: describe(path),)),
        ),
        "weights file": (lambda: retinalnet.models.create_model("resnet18", weights=path),),
    }
    for kind, calls in doors.items():
        for door in calls:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # not torch's "dispatching to torch.jit.load"
                with pytest.raises(ValueError, match=said) as info:
                    door()
            message = str(info.value)
            assert str(path) in message
            assert "\n" not in message
            assert "RuntimeError" not in message
            assert "enforce fail" not in message
            assert "starts with" not in message
            if "TorchScript" in message:
                ending = (
                    "not a state dict: torch.save(torch.jit.load(path).state_dict(), "
                    "'weights.pth') writes its weights as one to pass instead"
                    if kind == "weights file"
                    else "not a checkpoint retinalnet loads: torch.jit.load(path) runs it; "
                    "pass a checkpoint written by retinalnet (best.pt or last.pt)"
                )
                assert message.endswith(ending), message


def test_a_bare_state_dict_is_named_by_its_shapes_as_well_as_its_keys() -> None:
    # EfficientNet-B1 and -B2 share every key: a B2 file was named B1, whose weights=
    # then refused it for its shapes
    from retinalnet.models import list_models
    from retinalnet.models._bare_state_dict import guess_architecture
    from retinalnet.models._registry import find_spec

    for name in ("efficientnet_b1", "efficientnet_b2", "resnet18", "resnet34"):
        spec = find_spec(name)
        assert spec is not None
        assert name in list_models()
        with torch.device("meta"):
            state = spec.builder(weights=None, progress=False).state_dict()
        assert guess_architecture(state) == name


def test_early_stoppings_copy_of_the_weights_is_written_once(tmp_path: Path) -> None:
    """In the epoch that improved, EarlyStopping's copy of the best weights is the
    checkpoint's own weights: ``best.pt`` holds them once (it held them twice), and the
    copy still loads, every entry equal to the weights."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Flatten(), nn.Linear(16, 1024), nn.Linear(1024, 4), nn.LogSoftmax(1))
    model = Classifier(network, classes=CLASSES)
    trainer = quiet_trainer(
        model, max_epochs=1, out_dir=tmp_path / "run", callbacks=[EarlyStopping()]
    )
    trainer.fit(separable_data(16, features=16), separable_data(8, seed=1, features=16))
    save_checkpoint(tmp_path / "weights_only.pt", model)
    best = tmp_path / "run" / "best.pt"
    weights_bytes = (tmp_path / "weights_only.pt").stat().st_size
    # the weights and Adam's two moments: three times the weights (four before)
    assert best.stat().st_size < 3.5 * weights_bytes

    stored = load_checkpoint(best)
    copy = stored.callback_states["EarlyStopping"]["best_weights"]
    assert copy.keys() == stored.state_dict.keys()
    assert same_state(copy, stored.state_dict)


def test_a_callbacks_tensor_that_differs_from_the_weights_is_kept(tmp_path: Path) -> None:
    """Only exact copies are shared: an older epoch's weights are written as they are."""
    model = linear_classifier()
    older = {name: value + 1 for name, value in model.state_dict().items()}
    save_checkpoint(tmp_path / "c.pt", model, callback_states={"EarlyStopping": {"w": older}})
    stored = load_checkpoint(tmp_path / "c.pt").callback_states["EarlyStopping"]["w"]
    assert same_state(stored, older)
    assert not same_state(stored, model.state_dict())


# ---------------------------------------------------------------------------------------------
# The format a file needs, the versions that wrote it, and fields a newer retinalnet wrote


def _as_written_by_0_1(path: Path) -> Path:
    """A checkpoint as retinalnet 0.1.0 wrote it: format 1, no temperature, declarations,
    loop or written_by."""
    save_checkpoint(path, small_cnn(width=4, hidden=8), epoch=1)
    data = torch.load(path, weights_only=True)
    for key in ("loop", "written_by"):
        data.pop(key, None)
    for key in ("temperature", "declarations"):
        data["model"].pop(key, None)
    data.update(format_version=1, retinalnet_version="0.1.0")
    torch.save(data, path)
    return path


def test_a_temperature_written_into_a_0_1_checkpoint_is_format_2_by_this_version(
    tmp_path: Path,
) -> None:
    # was: "written by 0.1.0" in format 1, which retinalnet 0.1.0 loaded without the
    # temperature (other probabilities, without a word)
    old = _as_written_by_0_1(tmp_path / "old.pt")
    assert load_checkpoint(old).written_by == ("0.1.0",)  # recorded before: its version

    calibrated = set_checkpoint_temperature(old, 3.0, out=tmp_path / "calibrated.pt")
    raw = torch.load(calibrated, weights_only=True)
    assert raw["format_version"] == 2  # retinalnet 0.1.0 refuses it: "upgrade"
    assert raw["retinalnet_version"] == retinalnet.__version__
    assert raw["written_by"] == ["0.1.0", retinalnet.__version__]
    loaded = load_checkpoint(calibrated)
    assert (loaded.temperature, loaded.retinalnet_version) == (3.0, retinalnet.__version__)
    assert loaded.written_by == ("0.1.0", retinalnet.__version__)

    again = set_checkpoint_temperature(calibrated, 2.0)  # the same version once in the list
    assert load_checkpoint(again).written_by == ("0.1.0", retinalnet.__version__)
    uncalibrated = set_checkpoint_temperature(old, 1.0, out=tmp_path / "t1.pt")
    raw = torch.load(uncalibrated, weights_only=True)
    assert raw["format_version"] == 1  # nothing a format-1 reader would answer otherwise without
    assert raw["written_by"] == ["0.1.0", retinalnet.__version__]


@pytest.mark.parametrize(
    ("model", "temperature", "version"),
    [
        pytest.param(lambda: small_cnn(width=4, hidden=8), 1.0, 1, id="plain"),
        pytest.param(lambda: small_cnn(width=4, hidden=8), 1.5, 2, id="calibrated"),
        pytest.param(lambda: _declared(**_DECLARATIONS), 1.0, 2, id="declared"),
    ],
)
def test_a_checkpoint_is_written_in_the_format_its_fields_need(
    tmp_path: Path, model: Callable[[], Classifier], temperature: float, version: int
) -> None:
    classifier = model()
    classifier.temperature = temperature
    path = save_checkpoint(tmp_path / "ck.pt", classifier)
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == version
    assert raw["written_by"] == [retinalnet.__version__]


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        pytest.param(
            lambda data: data["model"].update(logit_bias=torch.zeros(4)),
            r"it holds 'model\.logit_bias', which retinalnet .* does not know \(written by "
            r"retinalnet 0\.3\.0\): loaded without, the model would answer otherwise; upgrade "
            r"with pip install -U retinalnet$",
            id="model-field",
        ),
        pytest.param(
            lambda data: data["model"].update(declarations={"pooling": "pool"}),
            r"field 'model\.declarations' holds \['pooling'\], which retinalnet .* does not know "
            r"\(written by retinalnet 0\.3\.0\): upgrade with pip install -U retinalnet$",
            id="declaration",
        ),
    ],
)
def test_a_field_of_a_newer_retinalnet_is_refused_by_every_door(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], said: str
) -> None:
    # was: loaded without a word, the model answering otherwise than its writer's
    from retinalnet.export import describe

    path = save_checkpoint(tmp_path / "future.pt", small_cnn(width=4, hidden=8))
    data = torch.load(path, weights_only=True)
    edit(data)
    data["retinalnet_version"] = "0.3.0"
    torch.save(data, path)
    for door in (
        lambda: load_checkpoint(path),
        lambda: Predictor.from_checkpoint(path, device="cpu"),
        lambda: set_checkpoint_temperature(path, 1.5),
        lambda: describe(path),
    ):
        with pytest.raises(ValueError, match=rf"checkpoint '.*future\.pt'.*{said}") as info:
            door()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("written_by", [[], "0.1.0", [1]])
def test_a_malformed_written_by_is_refused_naming_the_field(
    tmp_path: Path, written_by: object
) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", small_cnn(width=4, hidden=8))
    data = torch.load(path, weights_only=True)
    data["written_by"] = written_by
    torch.save(data, path)
    with pytest.raises(ValueError, match=r"field 'written_by' must be a list of versions"):
        load_checkpoint(path)


@pytest.mark.parametrize("cut", ["half", "tail"])
def test_a_checkpoint_cut_short_is_said_incomplete_by_every_door(tmp_path: Path, cut: str) -> None:
    # was: torch's "PytorchStreamReader failed reading zip archive: failed finding central
    # directory (is it a checkpoint written by retinalnet, and is the file complete?)"
    from retinalnet.export import describe

    path = save_checkpoint(tmp_path / "best.pt", small_cnn(width=4, hidden=8))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2] if cut == "half" else whole[:-100])
    message = (
        rf"^checkpoint '.*best\.pt' is incomplete: it starts as the zip archive torch\.save "
        rf"writes but has no zip directory at its end \({path.stat().st_size:,} bytes; a copy "
        r"or download cut short\?\)\. Copy it again from where it came from, or use another "
        r"checkpoint of the run \(last\.pt or best\.pt\)$"
    )
    for door in (
        lambda: load_checkpoint(path),
        lambda: Predictor.from_checkpoint(path, device="cpu"),
        lambda: set_checkpoint_temperature(path, 1.5),
        lambda: describe(path),
    ):
        with pytest.raises(ValueError, match=message):
            door()


def test_rebuilding_a_model_leaves_the_global_torch_rng_as_it_was(tmp_path: Path) -> None:
    # was: build_model drew the random init (then overwritten) from the host's generator
    path = save_checkpoint(tmp_path / "best.pt", small_cnn(width=4, hidden=8))
    for door in (
        lambda: load_checkpoint(path).build_model(),
        lambda: Predictor.from_checkpoint(path, device="cpu"),
    ):
        torch.manual_seed(0)
        expected = torch.rand(3)
        torch.manual_seed(0)
        door()
        assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("record", "said"),
    [
        ({"epoch": 1, "train_loss": "0.5"}, r"'train_loss' must be a number or None, got str"),
        ({"epoch": "1"}, r"'epoch' must be an int, got str"),
        ({"epoch": 1, "lr": [0.1]}, r"'lr' must be a number or None, got list"),
    ],
)
def test_a_history_value_that_is_no_number_is_refused_when_loaded_and_when_written(
    tmp_path: Path, record: dict[str, Any], said: str
) -> None:
    """It loaded, and ``evaluate --report`` failed on it after all its work, naming no file."""
    path = save_checkpoint(tmp_path / "a.pt", tiny_cnn(), history=[{"epoch": 1}])  # by hand: fine
    data = torch.load(path, weights_only=True)
    data["history"] = [record]
    torch.save(data, path)
    with pytest.raises(ValueError, match=rf"'.*a\.pt': field 'history' is malformed: .*{said}"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=rf"cannot write checkpoint .*{said}.*nothing was written"):
        save_checkpoint(tmp_path / "b.pt", tiny_cnn(), history=[record])
    assert not (tmp_path / "b.pt").exists()


@pytest.mark.parametrize("where", ["meta", "xpu", "cuda:7"])
def test_load_checkpoint_takes_the_devices_device_takes(tmp_path: Path, where: str) -> None:
    """``map_location`` went to torch.load as given: ``meta`` escaped as a raw
    NotImplementedError, ``cpu:1`` blamed the file ("is the file complete?")."""
    path = save_checkpoint(tmp_path / "a.pt", tiny_cnn())
    with pytest.raises(ValueError, match=r"^device '.*' (is not supported|asks for CUDA|is not)"):
        load_checkpoint(path, map_location=where)
    assert load_checkpoint(path, map_location="cpu:1").state_dict
    assert load_checkpoint(path, map_location=torch.device("cpu")).state_dict


@pytest.mark.parametrize("name", ["NORMAL\nfake.jpeg  NORMAL  99.0%", "DRUSEN\r\x1b[2K", " "])
def test_class_names_that_would_forge_or_blank_a_line_are_refused_at_load(
    tmp_path: Path, name: str
) -> None:
    """``predict`` and ``info`` printed them raw: a forged result line, an erased one."""
    path = save_checkpoint(tmp_path / "a.pt", small_cnn(classes=["CNV", "NORMAL"], width=4))
    data = torch.load(path, weights_only=True)
    data["classes"] = ["CNV", name]
    torch.save(data, path)
    with pytest.raises(ValueError, match=r"'.*a\.pt': field 'classes' is not valid \(classes"):
        load_checkpoint(path)


def test_load_checkpoint_passes_torch_s_own_map_locations_on(tmp_path: Path) -> None:
    """A function or a dict, torch.load's idioms, were refused by the device check."""
    path = save_checkpoint(tmp_path / "a.pt", tiny_cnn())
    assert load_checkpoint(path, map_location=lambda storage, location: storage).state_dict
    assert load_checkpoint(path, map_location={"cuda:1": "cpu"}).state_dict  # type: ignore[arg-type]


# --- read once: the weights and the sha256 that names them are of the same bytes ---------------


def test_a_checkpoint_carries_the_sha256_of_the_bytes_it_was_read_from(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", tiny_cnn())
    checkpoint = load_checkpoint(path)

    assert checkpoint.sha256 == sha256(path)
    assert load_checkpoint(path) == checkpoint  # loaded twice: equal
    assert pickle.loads(pickle.dumps(checkpoint)).sha256 == checkpoint.sha256
    other = save_checkpoint(tmp_path / "b.pt", tiny_cnn(seed=1))
    assert load_checkpoint(other).sha256 == sha256(other) != checkpoint.sha256


def test_the_sha256_names_the_weights_loaded_when_a_run_replaces_the_file_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run renames its next best.pt over the file while it loads: was, a digest taken from
    the path afterwards named the new file, beside the old one's weights."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "best.pt"
    rename_over(first, best)
    real_load = torch.load

    def and_a_run_writes(*args: Any, **kwargs: Any) -> Any:
        data = real_load(*args, **kwargs)
        rename_over(newer, best)
        return data

    monkeypatch.setattr(torch, "load", and_a_run_writes)
    checkpoint = load_checkpoint(best)
    monkeypatch.undo()

    assert checkpoint.epoch == 1  # the weights of the file as it was
    assert checkpoint.sha256 == sha256(first)
    assert same_state(checkpoint.state_dict, load_checkpoint(first).state_dict)


def test_a_checkpoint_written_in_place_while_it_is_loaded_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy over the file (``cp``, the same file written anew) while it loads: the weights
    and the digest are both taken again, of what the file holds then."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "best.pt"
    rename_over(first, best)
    real_load = torch.load
    loads: list[int] = []

    def and_a_copy_writes(*args: Any, **kwargs: Any) -> Any:
        data = real_load(*args, **kwargs)
        if not loads:
            with best.open("r+b") as stream:  # the same file, its bytes replaced
                stream.write(newer.read_bytes())
                stream.truncate()
        loads.append(data["epoch"])
        return data

    monkeypatch.setattr(torch, "load", and_a_copy_writes)
    checkpoint = load_checkpoint(best)

    assert loads == [1, 2]
    assert (checkpoint.epoch, checkpoint.sha256) == (2, sha256(newer))


def test_the_archive_checked_is_the_one_loaded_when_a_run_replaces_the_file_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaced between the CRC check and the read: both are made again, on the new file."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "best.pt"
    rename_over(first, best)
    real_check = checkpoint_module.check_archive
    checked: list[str] = []

    def and_a_run_writes(file: Path, kind: str) -> str:
        found = real_check(file, kind)
        checked.append(sha256(file))
        if len(checked) == 1:
            rename_over(newer, best)
        return found

    monkeypatch.setattr(checkpoint_module, "check_archive", and_a_run_writes)
    checkpoint = load_checkpoint(best)

    assert checked == [sha256(first), sha256(newer)]
    assert (checkpoint.epoch, checkpoint.sha256) == (2, sha256(newer))


def test_a_file_that_keeps_changing_while_it_is_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "best.pt"
    rename_over(first, best)
    real_check = checkpoint_module.check_archive
    turns = iter([newer, first] * 3)  # a new file each time it is read

    def and_a_run_writes(file: Path, kind: str) -> str:
        found = real_check(file, kind)
        rename_over(next(turns), best)
        return found

    monkeypatch.setattr(checkpoint_module, "check_archive", and_a_run_writes)
    with pytest.raises(
        ValueError, match=r"best\.pt' was replaced or written to each of the 5 times"
    ):
        load_checkpoint(best)


def test_a_temperature_never_replaces_a_checkpoint_a_run_wrote_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run renames its next best.pt over the file while the calibrated one is written:
    was, the older weights renamed back over the run's newer best.pt."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "run" / "best.pt"
    best.parent.mkdir()
    rename_over(first, best)
    real_save = torch.save

    def and_a_run_writes(*args: Any, **kwargs: Any) -> None:
        real_save(*args, **kwargs)
        rename_over(newer, best)

    monkeypatch.setattr(torch, "save", and_a_run_writes)
    with pytest.raises(ValueError, match=r"best\.pt' was replaced while its temperature was"):
        set_checkpoint_temperature(best, 1.5, expected_sha256=sha256(first))
    monkeypatch.undo()

    assert best.read_bytes() == newer.read_bytes()  # the run's file, untouched
    assert sorted(p.name for p in best.parent.iterdir()) == ["best.pt"]  # no temporary left


def test_a_temperature_is_written_on_the_bytes_its_digest_was_checked_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is read once: a run writing between the digest check and the read of the
    weights to write no longer gets the temperature fitted on the epoch before."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "best.pt"
    rename_over(first, best)
    calibrated = tmp_path / "calibrated.pt"
    real_load = torch.load

    def and_a_run_writes(*args: Any, **kwargs: Any) -> Any:
        data = real_load(*args, **kwargs)
        rename_over(newer, best)
        return data

    monkeypatch.setattr(torch, "load", and_a_run_writes)
    set_checkpoint_temperature(best, 1.5, expected_sha256=sha256(first), out=calibrated)
    monkeypatch.undo()

    written = load_checkpoint(calibrated)
    assert (written.epoch, written.temperature) == (1, 1.5)
    assert same_state(written.state_dict, load_checkpoint(first).state_dict)
