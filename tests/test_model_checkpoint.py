"""ModelCheckpoint when things go wrong: a disk that refuses a write and an interrupted fit
are reported with the epochs the files really hold, and the files are left whole.

Faults by class: a full disk mid-write and a refused write (no permission, a read-only file
system), on best.pt and on last.pt, at the first epoch and after good ones; Ctrl-C at the start
of an epoch, in a training step, and while best.pt or last.pt is being written.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional

from _training_helpers import (
    InterruptAt,
    Recorder,
    ScriptedValidationLoss,
    linear_classifier,
    quiet_trainer,
    separable_data,
)
from retinalnet._core import files
from retinalnet.checkpoint import CheckpointWriteError, checkpoint_epoch, load_checkpoint
from retinalnet.training import (
    Callback,
    ClassificationTask,
    EarlyStopping,
    ModelCheckpoint,
    Trainer,
)

IMPROVING = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]  # best.pt is written after every epoch


def _trainer(
    out: Path, *callbacks: Callback, max_epochs: int = 5, losses: list[float] = IMPROVING
) -> Trainer:
    """A fit into ``out`` whose validation losses are ``losses``, epoch by epoch."""
    return quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=ScriptedValidationLoss(losses), lr=0.05),
        max_epochs=max_epochs,
        batch_size=4,
        out_dir=out,
        callbacks=list(callbacks),
    )


def _data() -> tuple[Any, Any]:
    return separable_data(16), separable_data(4, seed=1)


class _FullDisk(io.FileIO):
    """A file on a disk with 512 bytes left: the write that passes them fails (ENOSPC)."""

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > 512:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


class FailWrites(Callback):
    """From the start of epoch ``epoch`` on, the disk refuses writes of the file ``name``.

    ``code=None`` is a full disk found mid-write (the temporary file is half written);
    otherwise the temporary file cannot even be created, with that ``errno``. The bytes of
    every checkpoint file as the epoch starts are kept in ``before``.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, epoch: int, code: int | None):
        self.monkeypatch = monkeypatch
        self.name, self.epoch, self.code = name, epoch, code
        self.before: dict[str, bytes] = {}

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if epoch != self.epoch:
            return
        assert trainer.out_dir is not None
        self.before = {p.name: p.read_bytes() for p in trainer.out_dir.glob("*.pt")}
        real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen
        target = {"open": False}

        def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
            ours = kwargs.get("prefix") == f".{self.name}."
            if ours and self.code is not None:
                raise OSError(self.code, os.strerror(self.code))
            target["open"] = ours
            return real_mkstemp(*args, **kwargs)

        def fdopen(handle: int, mode: str, *args: Any, **kwargs: Any) -> Any:
            if target["open"]:
                return _FullDisk(handle, "wb")
            return real_fdopen(handle, mode, *args, **kwargs)

        self.monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
        self.monkeypatch.setattr(files.os, "fdopen", fdopen)


_WORDS = {
    None: (r"no space left on device \[ENOSPC\]", "Free some disk space or write elsewhere"),
    errno.ENOSPC: (r"no space left on device \[ENOSPC\]", "Free some disk space"),
    errno.EACCES: (r"permission denied \[EACCES\]", "Check the folder's permissions"),
    errno.EROFS: (r"read-only file system \[EROFS\]", "Write to a writable file system"),
}


@pytest.mark.parametrize(
    ("name", "epoch", "code"),
    [
        pytest.param("best.pt", 1, None, id="best-full-disk-first-epoch"),
        pytest.param("best.pt", 3, None, id="best-full-disk-after-good-epochs"),
        pytest.param("best.pt", 3, errno.EACCES, id="best-permission"),
        pytest.param("last.pt", 1, errno.ENOSPC, id="last-full-disk-at-open-first-epoch"),
        pytest.param("last.pt", 3, None, id="last-full-disk-after-good-epochs"),
        pytest.param("last.pt", 2, errno.EACCES, id="last-permission"),
        pytest.param("last.pt", 4, errno.EROFS, id="last-read-only-file-system"),
    ],
)
def test_a_refused_checkpoint_write_stops_the_fit_with_one_line_naming_the_epoch_on_disk(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    epoch: int,
    code: int | None,
) -> None:
    fail, recorder = FailWrites(monkeypatch, name, epoch, code), Recorder()
    trainer = _trainer(tmp_path, fail, recorder)

    with caplog.at_level(logging.WARNING), pytest.raises(CheckpointWriteError) as info:
        trainer.fit(*_data())
    monkeypatch.undo()

    words, hint = _WORDS[code]
    if epoch == 1:
        kept = "there was no checkpoint there before, and there is none now"
    else:
        kept = f"the checkpoint there before is untouched and holds epoch {epoch - 1}"
    path = tmp_path / name
    assert re.fullmatch(
        rf"cannot write checkpoint {re.escape(repr(str(path)))} \(epoch {epoch}\): {words}; "
        rf"{kept}\. {hint}.*",
        str(info.value),
    ), str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.epoch_on_disk == (None if epoch == 1 else epoch - 1)
    # the file there before is whole and untouched, and no temporary file is left
    assert (path.read_bytes() if path.exists() else None) == fail.before.get(name)
    if epoch > 1:
        expected_files = ["best.pt", "last.pt"]
    else:
        expected_files = ["best.pt"] if name == "last.pt" else []
    assert sorted(p.name for p in tmp_path.iterdir()) == expected_files
    assert checkpoint_epoch(tmp_path / "last.pt") == (None if epoch == 1 else epoch - 1)
    best_epoch = epoch if name == "last.pt" else (None if epoch == 1 else epoch - 1)
    assert checkpoint_epoch(tmp_path / "best.pt") == best_epoch
    # the fit stopped there, said it once (no second warning), and let go of the folder
    assert ("epoch_start", epoch + 1) not in recorder.calls
    assert recorder.calls[-1] == ("exception", "CheckpointWriteError")
    assert not any("fit interrupted" in message for message in caplog.messages)
    assert not (tmp_path / "run.lock").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_fit_stopped_by_a_full_disk_resumes_from_the_epoch_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CheckpointWriteError, match="holds epoch 2"):
        _trainer(tmp_path, FailWrites(monkeypatch, "last.pt", 3, None)).fit(*_data())
    monkeypatch.undo()

    trainer = quiet_trainer(
        linear_classifier(seed=4),
        ClassificationTask(loss=ScriptedValidationLoss(IMPROVING[2:]), lr=0.05),
        max_epochs=4,
        batch_size=4,
        out_dir=tmp_path,
    )
    history = trainer.fit(*_data(), resume_from=tmp_path / "last.pt")

    assert [record.epoch for record in history] == [1, 2, 3, 4]
    assert load_checkpoint(tmp_path / "last.pt").epoch == 4


# ---------------------------------------------------------------------------------------------
# Ctrl-C: the warning names the epochs the files hold


class _InterruptingLoss(nn.Module):
    """NLL loss raising KeyboardInterrupt at training step ``step`` (counted over the fit)."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step, self.calls = step, 0

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not torch.is_inference_mode_enabled():
            self.calls += 1
            if self.calls == self.step:
                raise KeyboardInterrupt
        return functional.nll_loss(outputs, targets)


class _InterruptWriting(Callback):
    """Ctrl-C while ``name`` is being written at epoch ``epoch``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, epoch: int) -> None:
        self.monkeypatch, self.name, self.epoch = monkeypatch, name, epoch

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if epoch != self.epoch:
            return
        real_save, real_mkstemp = torch.save, tempfile.mkstemp
        target = {"open": False}

        def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
            target["open"] = kwargs.get("prefix") == f".{self.name}."
            return real_mkstemp(*args, **kwargs)

        def save(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
            if target["open"]:
                stream.write(b"half a checkpoint")
                raise KeyboardInterrupt
            real_save(obj, stream, *args, **kwargs)

        self.monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
        self.monkeypatch.setattr(torch, "save", save)


def _quoted(path: Path) -> str:
    return re.escape(repr(str(path)))


@pytest.mark.parametrize(
    ("how", "when", "best", "last"),
    [
        pytest.param("epoch-start", "after epoch 2", 2, 2, id="at-the-start-of-epoch-3"),
        pytest.param("training-step", "during epoch 3", 2, 2, id="in-a-step-of-epoch-3"),
        pytest.param("writing-best", "during epoch 3", 2, 2, id="while-best-pt-is-written"),
        pytest.param("writing-last", "during epoch 3", 3, 2, id="while-last-pt-is-written"),
    ],
)
def test_an_interrupted_fit_names_the_epochs_the_files_hold(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    how: str,
    when: str,
    best: int,
    last: int,
) -> None:
    callbacks: list[Callback] = []
    loss: nn.Module = ScriptedValidationLoss(IMPROVING)
    if how == "epoch-start":
        callbacks.append(InterruptAt(3))
    elif how == "training-step":
        loss = _InterruptingLoss(step=2 * 4 + 2)  # 4 steps an epoch: step 2 of epoch 3
    else:
        callbacks.append(_InterruptWriting(monkeypatch, how.removeprefix("writing-") + ".pt", 3))
    trainer = quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=loss, lr=0.05),
        max_epochs=5,
        batch_size=4,
        out_dir=tmp_path,
        callbacks=callbacks,
    )

    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        trainer.fit(*_data())
    monkeypatch.undo()

    assert checkpoint_epoch(tmp_path / "best.pt") == best
    assert checkpoint_epoch(tmp_path / "last.pt") == last
    expected = (
        rf"fit interrupted \(KeyboardInterrupt\) {when}: {_quoted(tmp_path / 'best.pt')} holds "
        rf"epoch {best}, {_quoted(tmp_path / 'last.pt')} epoch {last}; continue with "
        rf"fit\(\.\.\., resume_from={_quoted(tmp_path / 'last.pt')}\)"
    )
    assert [m for m in caplog.messages if re.fullmatch(expected, m)], caplog.messages
    assert not (tmp_path / "run.lock").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_interrupt_before_anything_was_written_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer = quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=_InterruptingLoss(step=2)),
        out_dir=tmp_path,
        batch_size=4,
    )

    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        trainer.fit(*_data())

    assert f"during epoch 1: no checkpoint in {str(tmp_path)!r}" in caplog.text
    assert "continue with" not in caplog.text


class _FailAtTheEnd(Callback):
    """Raises in ``on_fit_end``, after every epoch has run (as a warning made an error by
    ``-W error`` does in calibration)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        raise UserWarning("made an error at the end")


def test_an_interrupt_after_the_last_epoch_says_the_epochs_are_done_not_to_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer = _trainer(tmp_path, _FailAtTheEnd(), max_epochs=2)

    with caplog.at_level(logging.WARNING), pytest.raises(UserWarning):
        trainer.fit(*_data())

    best, last = _quoted(tmp_path / "best.pt"), _quoted(tmp_path / "last.pt")
    expected = (
        rf"fit interrupted \(UserWarning\) at its end, after its last epoch 2: {best} holds "
        rf"epoch 2, {last} epoch 2"
    )
    # was: "fit interrupted (UserWarning) after epoch 2: ...; continue with fit(...,
    # resume_from=...)", though the epochs were done and there was nothing to continue
    assert [m for m in caplog.messages if re.fullmatch(expected, m)], caplog.messages
    assert "resume_from" not in caplog.text


@pytest.mark.parametrize("earlier_run", [False, True], ids=["new-folder", "overwriting"])
def test_an_interrupt_writing_the_first_last_pt_advises_resuming_this_runs_best_pt(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    earlier_run: bool,
) -> None:
    if earlier_run:  # an earlier run's best.pt and last.pt (epoch 3) are in the folder
        quiet_trainer(linear_classifier(), max_epochs=3, out_dir=tmp_path, batch_size=4).fit(
            *_data()
        )
    trainer = quiet_trainer(
        linear_classifier(),
        max_epochs=3,
        batch_size=4,
        out_dir=tmp_path,
        overwrite=earlier_run,
        callbacks=[_InterruptWriting(monkeypatch, "last.pt", 1)],
    )
    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        trainer.fit(*_data())
    monkeypatch.undo()

    best = _quoted(tmp_path / "best.pt")
    last = rf", {_quoted(tmp_path / 'last.pt')} epoch 3 of an earlier run" if earlier_run else ""
    expected = (
        rf"fit interrupted \(KeyboardInterrupt\) during epoch 1: {best} holds epoch 1{last}; "
        rf"this run's {best} holds its last epoch whole \(it was interrupted writing "
        rf"last\.pt\): continue with fit\(\.\.\., resume_from={best}\)"
    )
    # was: "this run wrote no checkpoint yet; the files ... are an earlier run's", and no way on
    assert [m for m in caplog.messages if re.fullmatch(expected, m)], caplog.messages
    resumed = quiet_trainer(linear_classifier(), max_epochs=3, batch_size=4, out_dir=tmp_path)
    assert len(resumed.fit(*_data(), resume_from=tmp_path / "best.pt")) == 3
    assert checkpoint_epoch(tmp_path / "last.pt") == 3


def test_files_on_disk_reads_the_files(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(tmp_path, monitor="train_loss")
    assert checkpoint.files_on_disk() == f"no checkpoint in {str(tmp_path)!r}"
    assert checkpoint.best_epoch is None

    trainer = quiet_trainer(linear_classifier(), max_epochs=2, callbacks=[checkpoint])
    trainer.fit(_data()[0])

    assert checkpoint.best_epoch == checkpoint_epoch(tmp_path / "best.pt")
    assert checkpoint.files_on_disk() == (
        f"{str(tmp_path / 'best.pt')!r} holds epoch {checkpoint.best_epoch}, "
        f"{str(tmp_path / 'last.pt')!r} epoch 2"
    )


def test_an_overwriting_run_interrupted_before_its_first_files_names_them_an_earlier_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_trainer(linear_classifier(), max_epochs=2, out_dir=tmp_path, batch_size=4).fit(*_data())
    trainer = quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=_InterruptingLoss(step=2)),
        out_dir=tmp_path,
        batch_size=4,
        overwrite=True,
    )

    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        trainer.fit(*_data())

    assert (
        f"during epoch 1: this run wrote no checkpoint yet; the files in {str(tmp_path)!r} are "
        f"an earlier run's ({str(tmp_path / 'best.pt')!r} holds epoch"
    ) in caplog.text
    assert "continue with" not in caplog.text  # resuming would continue the earlier run


def test_a_run_resumed_into_another_folder_never_replaces_its_best_pt(tmp_path: Path) -> None:
    first, other = tmp_path / "first", tmp_path / "other"
    quiet_trainer(linear_classifier(), max_epochs=1, out_dir=first, batch_size=4).fit(*_data())
    quiet_trainer(linear_classifier(), max_epochs=1, out_dir=other, batch_size=4).fit(*_data())
    kept = (other / "best.pt").read_bytes()
    resumed = quiet_trainer(linear_classifier(), max_epochs=2, out_dir=other, batch_size=4)
    with pytest.raises(
        FileExistsError, match=r"other/best\.pt is another run's, which resuming .*first/last\.pt"
    ):
        resumed.fit(*_data(), resume_from=first / "last.pt")
    assert (other / "best.pt").read_bytes() == kept
    allowed = quiet_trainer(
        linear_classifier(), max_epochs=2, out_dir=other, batch_size=4, overwrite=True
    )
    assert len(allowed.fit(*_data(), resume_from=first / "last.pt")) == 2


def test_a_run_resumed_into_another_folder_brings_its_best_pt(tmp_path: Path) -> None:
    first, moved = tmp_path / "first", tmp_path / "moved"
    _trainer(first, max_epochs=2, losses=[1.0, 1.2]).fit(*_data())  # best epoch 1, last epoch 2
    history = _trainer(moved, max_epochs=4, losses=[1.3, 1.4]).fit(
        *_data(), resume_from=first / "last.pt"
    )
    assert len(history) == 4
    # was: no best.pt at all (no epoch after the resume beat epoch 1), and exit 0
    assert checkpoint_epoch(moved / "best.pt") == 1
    assert (moved / "best.pt").read_bytes() == (first / "best.pt").read_bytes()


def test_a_last_pt_copied_alone_resumes_when_it_holds_the_best_epoch_else_is_refused(
    tmp_path: Path,
) -> None:
    for losses, resumes in (([1.0, 0.9], True), ([1.0, 1.2], False)):
        first, alone = tmp_path / f"first-{resumes}", tmp_path / f"alone-{resumes}"
        _trainer(first, max_epochs=2, losses=losses).fit(*_data())
        alone.mkdir()
        (alone / "last.pt").write_bytes((first / "last.pt").read_bytes())
        resumed = _trainer(alone, max_epochs=3, losses=[1.3, 1.4])
        if resumes:  # last.pt holds the best epoch: it is best.pt too
            resumed.fit(*_data(), resume_from=alone / "last.pt")
            assert checkpoint_epoch(alone / "best.pt") == 2
            continue
        message = r"copy the run's best\.pt \(epoch 1\) into"
        with pytest.raises(FileNotFoundError, match=message):
            resumed.fit(*_data(), resume_from=alone / "last.pt")
        assert not (alone / "best.pt").exists()


def test_the_checkpoints_of_a_fit_carry_a_hand_built_models_declarations(tmp_path: Path) -> None:
    """best.pt and last.pt of a network built by hand reload with its declared head and
    Grad-CAM layer, not the guesses (here: the last Linear, the last Conv2d)."""
    from retinalnet.models import Classifier

    def network() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Unflatten(1, (1, 2, 4)),
            nn.Conv2d(1, 2, 1),
            nn.Conv2d(2, 2, 1),
            nn.Flatten(),
            nn.Linear(16, 4),
            nn.LogSoftmax(dim=1),
        )

    model = Classifier(network(), classes=linear_classifier().classes, head="4", gradcam_layer="1")
    quiet_trainer(model, max_epochs=1, batch_size=4, out_dir=tmp_path).fit(*_data())

    for name in ("best.pt", "last.pt"):
        loaded = load_checkpoint(tmp_path / name).build_model(network())
        assert loaded.head_module()[0] == "4"
        assert loaded.gradcam_target().module is loaded.network[1]  # the guess: network[2]


# ---------------------------------------------------------------------------------------------
# best.pt, last.pt and history.csv are a run's files alike: a new run refuses any of them,
# and never writes through a link there into a file it does not own


@pytest.mark.parametrize("left", [["last.pt"], ["history.csv"], ["last.pt", "history.csv"]])
def test_a_new_run_refuses_a_folder_holding_another_runs_files(
    tmp_path: Path, left: list[str]
) -> None:
    for name in left:
        (tmp_path / name).write_bytes(b"another run's")

    with pytest.raises(
        FileExistsError,
        match=rf"^{re.escape(str(tmp_path / left[0]))} already exists and would be replaced "
        r"by this new run; .* allow it \(overwrite=True",
    ):
        _trainer(tmp_path, max_epochs=1).fit(*_data())

    for name in left:
        assert (tmp_path / name).read_bytes() == b"another run's"


@pytest.mark.parametrize(
    ("left", "advice"),
    [
        pytest.param(
            ["last.pt", "history.csv"],
            r"; resume that run \(fit\(\.\.\., resume_from=last\.pt\), or --resume on the "
            r"command line\), choose another folder, or allow it",
            id="last-pt",
        ),
        pytest.param(
            ["best.pt", "history.csv"],
            r"; that run left no last\.pt: resume it from its best\.pt \(fit\(\.\.\., "
            r"resume_from='[^']*best\.pt'\)\), choose another folder, or allow it",
            id="best-pt-alone",
        ),
        pytest.param(
            ["history.csv"],
            r"; the run that wrote it saved no checkpoint \(no best\.pt, no last\.pt beside "
            r"it: .*full disk.*\), so there is nothing to resume; free some space if the disk "
            r"was full, then start the run again in another folder, or there if you allow it",
            id="no-checkpoint",
        ),
    ],
)
def test_a_new_run_is_told_to_resume_the_run_there_only_from_a_checkpoint_it_saved(
    tmp_path: Path, left: list[str], advice: str
) -> None:
    # a full disk at the first checkpoint left a history.csv alone: the next run was told to
    # resume a run that had saved nothing
    for name in left:
        (tmp_path / name).write_bytes(b"a run's")

    with pytest.raises(FileExistsError) as info:
        _trainer(tmp_path, max_epochs=1).fit(*_data())

    message = str(info.value)
    taken = f"{re.escape(str(tmp_path / left[0]))} already exists and would be replaced"
    ways = rf" by this new run{advice} \(overwrite=True, or --overwrite\)"
    assert re.fullmatch(taken + ways, message), message
    assert ("resume_from" in message) == (left != ["history.csv"])


def test_an_overwriting_run_replaces_a_link_to_another_file_not_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deployed = tmp_path / "deployed" / "v3.pt"
    deployed.parent.mkdir()
    deployed.write_bytes(b"the deployed model")
    out = tmp_path / "run5"
    out.mkdir()
    (out / "last.pt").symlink_to(deployed)
    (out / "best.pt").symlink_to(deployed)
    with pytest.raises(FileExistsError):  # without overwrite: refused, as for files
        _trainer(out, max_epochs=1).fit(*_data())

    trainer = _trainer(out, max_epochs=1)
    trainer.overwrite = True
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        trainer.fit(*_data())

    assert deployed.read_bytes() == b"the deployed model"
    for name in ("best.pt", "last.pt"):
        assert not (out / name).is_symlink()
        assert checkpoint_epoch(out / name) == 1
    assert any("was a link to" in message for message in caplog.messages)


def test_a_run_resumed_in_its_folder_says_it_goes_on_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _trainer(tmp_path, max_epochs=1).fit(*_data())

    with caplog.at_level(logging.INFO, logger="retinalnet"):
        _trainer(tmp_path, max_epochs=2).fit(*_data(), resume_from=tmp_path / "last.pt")

    assert f"continuing the run in {str(tmp_path)!r} (its files will be updated)" in (
        caplog.messages
    )


def test_a_new_fine_tune_refuses_another_runs_last_pt(tmp_path: Path) -> None:
    from retinalnet.datasets import SyntheticOCT
    from retinalnet.models import create_model
    from retinalnet.training import FineTune, fine_tune
    from retinalnet.transforms import Preprocessing

    (tmp_path / "last.pt").write_bytes(b"another run's resumable state")
    model = create_model("small_cnn", weights=None, preprocessing=Preprocessing(size=32))
    data = SyntheticOCT(2, shape=(40, 44), seed=1), SyntheticOCT(1, shape=(40, 44), seed=2)

    with pytest.raises(FileExistsError, match=r"last\.pt already exists and would be replaced"):
        fine_tune(
            model, *data, FineTune(blocks=1, epochs=1, probe_epochs=1), out_dir=tmp_path,
            batch_size=4, device="cpu", progress=False, seed=0,
        )  # fmt: skip

    assert (tmp_path / "last.pt").read_bytes() == b"another run's resumable state"


@pytest.mark.parametrize(
    ("own", "said"),
    [
        ("same", r"callbacks\[0\] ModelCheckpoint\(.*\) and Trainer\(out_dir=.*\) both write "
         r".*best\.pt.*remove the ModelCheckpoint .* or give it another dirpath"),
        ("link", r"callbacks\[0\] ModelCheckpoint\(.*\) and Trainer\(out_dir=.*\) both write"),
        ("two", r"callbacks\[0\] ModelCheckpoint\(.*\) and callbacks\[1\] ModelCheckpoint\(.*\) "
         r"both write .*give each ModelCheckpoint a folder of its own"),
    ],
    ids=["out_dir-and-callback", "through-a-link", "two-callbacks"],
)  # fmt: skip
def test_two_checkpoint_writers_of_one_file_are_refused_at_fit_start(
    tmp_path: Path, own: str, said: str
) -> None:
    # both wrote best.pt and last.pt, the last to write winning: best.pt held epoch 6 while
    # the Trainer's best was epoch 2
    out = tmp_path / "run"
    if own == "link":
        out.mkdir()
        (tmp_path / "alias").symlink_to(out, target_is_directory=True)
    with pytest.warns(UserWarning, match="highest 'val_loss'"):  # max on a loss warns
        mine = ModelCheckpoint(tmp_path / "alias" if own == "link" else out, mode="max")
    callbacks: list[Callback] = [mine]
    if own == "two":
        callbacks.append(ModelCheckpoint(out))
    trainer = _trainer(tmp_path / "elsewhere" if own == "two" else out, *callbacks)
    with pytest.raises(ValueError, match=said):
        trainer.fit(*_data())
    assert not (out / "best.pt").exists()  # refused before any epoch
    assert trainer.epoch == 0


def test_checkpoint_writers_of_other_folders_both_write(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="highest 'val_loss'"):  # max on a loss warns
        mine = ModelCheckpoint(tmp_path / "mine", monitor="val_loss", mode="max")
    _trainer(tmp_path / "run", mine, max_epochs=3).fit(*_data())
    assert checkpoint_epoch(tmp_path / "run" / "best.pt") == 3  # IMPROVING: lowest last
    assert checkpoint_epoch(tmp_path / "mine" / "best.pt") == 1  # mode="max": highest first


def test_a_checkpoint_listed_first_is_written_after_the_other_callbacks(tmp_path: Path) -> None:
    """``callbacks=[ModelCheckpoint(...), EarlyStopping(...)]`` wrote each epoch before the
    EarlyStopping counted it, and before a later callback logged its metric: a run resumed
    from ``last.pt`` trained on past the early stop, and the metric was missing there."""

    class LogsEpoch(Callback):
        def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Any) -> None:
            trainer.log("marked_epoch", float(epoch))

    early = EarlyStopping(patience=5)
    callbacks = [ModelCheckpoint(tmp_path), early, LogsEpoch()]
    quiet_trainer(linear_classifier(), max_epochs=2, callbacks=callbacks).fit(
        separable_data(8), separable_data(4, seed=1)
    )

    last = load_checkpoint(tmp_path / "last.pt")
    saved = last.callback_states["EarlyStopping"]
    assert (saved["best_epoch"], saved["wait"]) == (early.best_epoch, early.wait)
    assert [record["marked_epoch"] for record in last.history] == [1.0, 2.0]


def test_callbacks_get_each_checkpoint_file_whole_as_it_is_written(tmp_path: Path) -> None:
    """A callback copying ``best.pt`` away (an upload, a deployment) had only the previous
    epoch's file at hand: the checkpoint is written after every callback's ``on_epoch_end``.
    ``on_checkpoint_saved`` gets each file as it is written, the epoch's own."""

    class CopiesFiles(Callback):
        def __init__(self) -> None:
            self.seen: list[tuple[str, int, int]] = []

        def on_checkpoint_saved(self, trainer: Trainer, path: Path) -> None:
            self.seen.append((path.name, trainer.epoch, checkpoint_epoch(path)))

    copies = CopiesFiles()
    # best.pt in epochs 1 and 3 only (the loss rises in epoch 2)
    _trainer(tmp_path, copies, max_epochs=3, losses=[1.0, 1.5, 0.5]).fit(*_data())

    assert copies.seen == [
        ("best.pt", 1, 1),
        ("last.pt", 1, 1),
        ("last.pt", 2, 2),
        ("best.pt", 3, 3),
        ("last.pt", 3, 3),
    ]
