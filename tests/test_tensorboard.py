"""TensorBoardLogger: the event files hold each epoch's scalars, the confusion matrix and the
Grad-CAM overlays; it skips Grad-CAM cleanly, resumes, and says how to install tensorboard."""

from __future__ import annotations

import logging
import re
import shutil
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from torch import nn

from _training_helpers import (
    CLASSES,
    InterruptAt,
    linear_classifier,
    one_thread,
    quiet_trainer,
    tiny_cnn,
)
from retinalnet.checkpoint import checkpoint_epoch
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.models import Classifier
from retinalnet.training import Callback, TensorBoardLogger, Trainer
from retinalnet.training._tensorboard_runs import make_run_folder
from retinalnet.transforms import Preprocessing

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
event_multiplexer = pytest.importorskip("tensorboard.backend.event_processing.event_multiplexer")


def _events(folder: Path) -> event_accumulator.EventAccumulator:
    events = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0}
    )
    events.Reload()
    return events


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tensorboard") / "data"
    return make_synthetic_kermany(root, train=3, val=2, test=0, shape=(48, 48), seed=3)


def _frozen_but_head(model: Classifier) -> Classifier:
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in model.head_module()[1].parameters():
        parameter.requires_grad_(True)
    return model


@pytest.mark.parametrize("feature_cache", [False, True])
def test_scalars_confusion_matrix_and_gradcam_images_are_written(
    data: Path, tmp_path: Path, feature_cache: bool
) -> None:
    model = _frozen_but_head(tiny_cnn()) if feature_cache else tiny_cnn()
    logger = TensorBoardLogger(tmp_path / "tb", images=3)
    with one_thread():
        trainer = quiet_trainer(
            model,
            callbacks=[logger],
            max_epochs=2,
            batch_size=4,
            seed=0,
            feature_cache=feature_cache,
        )
        history = trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))
    events = _events(tmp_path / "tb" / "version_0")  # no out_dir: Lightning's version_0
    tags = events.Tags()
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        assert [e.step for e in events.Scalars(name)] == [1, 2], name
    assert [e.value for e in events.Scalars("val_loss")] == pytest.approx(
        [record.val_loss for record in history]
    )
    assert set(tags["images"]) == {
        "confusion_matrix",
        "gradcam/0_CNV",
        "gradcam/1_DME",
        "gradcam/2_DRUSEN",
    }
    (matrix, _) = events.Images("confusion_matrix")
    assert (matrix.width, matrix.height) == (4 * 48, 4 * 48)
    assert [e.step for e in events.Images("gradcam/0_CNV")] == [1, 2]
    assert {"confusion_matrix/text_summary", "gradcam/text_summary"} <= set(tags["tensors"])
    table = events.Tensors("confusion_matrix/text_summary")[-1].tensor_proto.string_val[0]
    assert table.decode().startswith("| true \\ predicted | CNV | DME | DRUSEN | NORMAL |")


def test_the_logger_does_not_change_the_training(data: Path, tmp_path: Path) -> None:
    histories = []
    for callbacks in ([], [TensorBoardLogger(tmp_path / "tb", images=2)]):
        with one_thread():
            trainer = quiet_trainer(
                tiny_cnn(), callbacks=callbacks, max_epochs=2, batch_size=4, seed=0
            )
            history = trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))
        histories.append([(r.train_loss, r.val_loss) for r in history])
    assert histories[0] == histories[1]


def test_a_model_without_a_gradcam_layer_gets_one_log_line_and_the_rest(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    network = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4), nn.LogSoftmax(dim=1)
    )
    model = Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=32))
    with one_thread(), caplog.at_level(logging.WARNING, logger="retinalnet"):
        trainer = quiet_trainer(
            model, callbacks=[TensorBoardLogger(tmp_path / "tb")], max_epochs=2, batch_size=4
        )
        trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))
    skipped = [r for r in caplog.records if "no Grad-CAM images" in r.getMessage()]
    assert len(skipped) == 1
    assert "Conv2d" in skipped[0].getMessage()
    tags = _events(tmp_path / "tb" / "version_0").Tags()
    assert tags["images"] == ["confusion_matrix"]
    assert "val_accuracy" in tags["scalars"]


def test_validation_data_without_images_skips_gradcam(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inputs = torch.randn(16, 8)
    data = torch.utils.data.TensorDataset(inputs, inputs[:, :4].argmax(dim=1))
    with one_thread(), caplog.at_level(logging.WARNING, logger="retinalnet"):
        trainer = quiet_trainer(
            linear_classifier(), callbacks=[TensorBoardLogger(tmp_path / "tb")], max_epochs=1
        )
        trainer.fit(data, data)
    assert any("neither image files nor PIL images" in r.getMessage() for r in caplog.records)
    assert _events(tmp_path / "tb" / "version_0").Tags()["images"] == ["confusion_matrix"]


def test_a_resumed_fit_continues_the_curves(data: Path, tmp_path: Path) -> None:
    train, val = KermanyOCT(data, "train"), KermanyOCT(data, "val")
    with one_thread():
        first = quiet_trainer(
            tiny_cnn(),
            callbacks=[TensorBoardLogger(tmp_path / "tb", images=0)],
            max_epochs=2,
            batch_size=4,
            seed=0,
            out_dir=tmp_path / "run",
        )
        first.fit(train, val)
        second = quiet_trainer(
            tiny_cnn(),
            callbacks=[TensorBoardLogger(tmp_path / "tb", images=0)],
            max_epochs=3,
            batch_size=4,
            seed=0,
            out_dir=tmp_path / "run",
        )
        second.fit(train, val, resume_from=tmp_path / "run" / "last.pt")
    # in the run's folder, named after its out_dir
    assert [e.step for e in _events(tmp_path / "tb" / "run").Scalars("train_loss")] == [1, 2, 3]
    assert [p.name for p in (tmp_path / "tb").iterdir()] == ["run"]


def test_only_the_main_process_writes(data: Path, tmp_path: Path) -> None:
    trainer = quiet_trainer(tiny_cnn(), max_epochs=1)
    logger = TensorBoardLogger(tmp_path / "tb")

    class Rank1:
        is_main = False

    class Loop:
        dist = Rank1()

    trainer._loop = Loop()  # type: ignore[assignment]
    logger.on_fit_start(trainer)
    logger.on_epoch_start(trainer, 1)
    logger.on_epoch_end(trainer, 1, {"train_loss": 1.0})
    logger.on_fit_end(trainer)
    assert not (tmp_path / "tb").exists()


def test_images_must_be_a_count() -> None:
    with pytest.raises(ValueError, match=r"images must be an int >= 0 .*got -1"):
        TensorBoardLogger("tb", images=-1)


def test_without_tensorboard_it_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r'pip install "retinalnet\[tensorboard\]"'):
        TensorBoardLogger("tb")


@pytest.mark.parametrize(
    ("inside", "said"),
    [("", "is a file, not a folder"), ("tb", "cannot be made: {file} is a file, not a folder")],
    ids=["the-folder-is-a-file", "inside-a-file"],
)
def test_a_log_dir_that_cannot_be_a_folder_is_refused_when_the_logger_is_built(
    tmp_path: Path, inside: str, said: str
) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    log_dir = file / inside if inside else file
    message = f"TensorBoardLogger: log_dir {str(log_dir)!r} {said.format(file=repr(str(file)))}"
    # not after the first epoch, which was lost with it
    with pytest.raises(NotADirectoryError, match=f"^{re.escape(message)}; pass a folder"):
        TensorBoardLogger(log_dir)
    assert file.read_text() == "mine"


def test_a_log_dir_that_goes_during_the_fit_stops_the_logging_not_the_fit(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logger = TensorBoardLogger(tmp_path / "tb", images=0)
    (tmp_path / "tb").write_text("a file took the folder's place")  # after the check
    with one_thread(), caplog.at_level(logging.WARNING, logger="retinalnet"):
        trainer = quiet_trainer(
            tiny_cnn(), callbacks=[logger], max_epochs=2, batch_size=4, out_dir=tmp_path / "run"
        )
        history = trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))
    assert len(history) == 2  # every epoch trained and saved
    assert checkpoint_epoch(tmp_path / "run" / "last.pt") == 2
    said = [m for m in caplog.messages if m.startswith("TensorBoardLogger: cannot write in")]
    assert len(said) == 1, caplog.messages
    assert "no TensorBoard logging from epoch 1 on; the fit and its checkpoints go on" in said[0]


def _fit(data: Path, log_dir: Path, out_dir: Path | None, epochs: int, **fit: object) -> None:
    with one_thread():
        trainer = quiet_trainer(
            tiny_cnn(),
            callbacks=[TensorBoardLogger(log_dir, images=0)],
            max_epochs=epochs,
            batch_size=4,
            seed=0,
            out_dir=out_dir,
        )
        trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"), **fit)  # type: ignore[arg-type]


def test_two_runs_in_one_log_dir_are_two_runs_tensorboard_shows(data: Path, tmp_path: Path) -> None:
    # both wrote into tb itself: TensorBoard showed one run, the second's steps replacing the
    # first's (val_loss steps [1] of two runs of 3 and 1 epochs)
    _fit(data, tmp_path / "tb", tmp_path / "runA", 3)
    _fit(data, tmp_path / "tb", tmp_path / "runB", 1)
    runs = event_multiplexer.EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "tb"))
    runs.Reload()
    assert sorted(runs.Runs()) == ["runA", "runB"]
    assert [e.step for e in runs.Scalars("runA", "val_loss")] == [1, 2, 3]
    assert [e.step for e in runs.Scalars("runB", "val_loss")] == [1]


@pytest.mark.parametrize(
    ("out_dirs", "folders"),
    [
        (["run", "other/run", "run/."], ["run", "run_2", "run_3"]),  # one name: numbered
        ([None, None], ["version_0", "version_1"]),  # no out_dir: as Lightning names them
    ],
)
def test_each_fit_gets_a_folder_of_its_own(
    tmp_path: Path, out_dirs: list[str | None], folders: list[str]
) -> None:
    logger = TensorBoardLogger(tmp_path / "tb", images=0)
    seen = []
    for out_dir in out_dirs:
        trainer = quiet_trainer(
            linear_classifier(), max_epochs=1, out_dir=tmp_path / out_dir if out_dir else None
        )
        logger.on_fit_start(trainer)
        logger.on_epoch_end(trainer, 1, {"train_loss": 1.0})
        logger.on_fit_end(trainer)
        assert logger.run_dir is not None
        seen.append(logger.run_dir.name)
    assert seen == folders
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == folders


def test_a_resumed_fit_writes_on_in_its_own_folder_and_says_where(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _fit(data, tmp_path / "tb", tmp_path / "run", 2)
    _fit(data, tmp_path / "tb", tmp_path / "other" / "run", 1)  # the same name: run_2
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        _fit(data, tmp_path / "tb", tmp_path / "run", 3, resume_from=tmp_path / "run" / "last.pt")
    said = [m for m in caplog.messages if m.startswith("TensorBoard: this run logs to")]
    assert said == [
        f"TensorBoard: this run logs to {tmp_path / 'tb' / 'run'} (tensorboard --logdir "
        f"{tmp_path / 'tb'} shows the runs)"
    ]
    assert [e.step for e in _events(tmp_path / "tb" / "run").Scalars("train_loss")] == [1, 2, 3]
    assert [e.step for e in _events(tmp_path / "tb" / "run_2").Scalars("train_loss")] == [1]
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["run", "run_2"]


@pytest.mark.parametrize(
    ("out_dirs", "folders"),
    [
        (["sweep/lr0.01/run", "sweep/lr0.001/run"], ["run", "run_2"]),
        ([None, None], ["version_0", "version_1"]),
    ],
)
def test_fits_started_together_get_a_folder_each(
    tmp_path: Path, out_dirs: list[str | None], folders: list[str]
) -> None:
    # the name was chosen when a fit started and its folder made after the first epoch:
    # fits starting meanwhile took the same name, and TensorBoard purged one run's curves
    fits = [
        (
            TensorBoardLogger(tmp_path / "tb", images=0),
            quiet_trainer(linear_classifier(), out_dir=tmp_path / out if out else None),
        )
        for out in out_dirs
    ]
    for hook in ("start", "epoch", "end"):
        for logger, trainer in fits:
            if hook == "start":
                logger.on_fit_start(trainer)
            elif hook == "epoch":
                logger.on_epoch_start(trainer, 1)
            else:
                logger.on_epoch_end(trainer, 1, {"train_loss": 1.0})
                logger.on_fit_end(trainer)
    assert [logger.run_dir.name for logger, _ in fits if logger.run_dir] == folders
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == folders


def test_a_run_folder_is_claimed_in_one_step(tmp_path: Path) -> None:
    names: list[str] = []
    start = threading.Barrier(8)

    def claim() -> None:
        start.wait()
        names.append(make_run_folder(tmp_path / "tb", tmp_path / "run"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(names) == sorted(["run", *(f"run_{n}" for n in range(2, 9))])


def test_a_fit_resumed_in_another_out_dir_logs_in_a_folder_of_its_own(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the copy's fit wrote into the original run's folder, replacing its epoch 3
    tb, run_c, run_d = tmp_path / "tb", tmp_path / "runC", tmp_path / "runD"
    _fit(data, tb, run_c, 2)
    shutil.copytree(run_c, run_d)  # a copy (or a fork with another --out) of the run
    _fit(data, tb, run_c, 3, resume_from=run_c / "last.pt")  # the run goes on
    before = [(e.step, e.value) for e in _events(tb / "runC").Scalars("train_loss")]
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        _fit(data, tb, run_d, 3, resume_from=run_d / "last.pt")
    assert sorted(p.name for p in tb.iterdir()) == ["runC", "runD"]
    assert [(e.step, e.value) for e in _events(tb / "runC").Scalars("train_loss")] == before
    assert [e.step for e in _events(tb / "runD").Scalars("train_loss")] == [3]
    assert (
        f"TensorBoard: the run resumed wrote in another out_dir and logs to {tb / 'runC'}; "
        "this fit logs to a folder of its own"
    ) in caplog.messages


def _state_of_a_run_in(out_dir: Path, log_dir: Path) -> dict[str, object]:
    logger = TensorBoardLogger(log_dir, images=0)
    trainer = quiet_trainer(linear_classifier(), out_dir=out_dir)
    logger.on_fit_start(trainer)
    logger.on_epoch_start(trainer, 1)
    logger.on_epoch_end(trainer, 1, {"train_loss": 1.0})
    logger.on_fit_end(trainer)
    return logger.state_dict()


@pytest.mark.parametrize(
    ("ran_in", "keys", "folder"),
    [
        ("here", ("run", "out_dir"), "here"),  # resumed in its out_dir: writes on there
        ("there", ("run", "out_dir"), "here"),  # resumed elsewhere: a folder of its own
        ("there", ("run",), "there"),  # a checkpoint of 0.2.0: its folder, as before
    ],
    ids=["same-out-dir", "another-out-dir", "no-out-dir-recorded"],
)
def test_a_resumed_fit_writes_on_in_its_run_s_folder_only_in_its_out_dir(
    tmp_path: Path, ran_in: str, keys: tuple[str, ...], folder: str
) -> None:
    state = _state_of_a_run_in(tmp_path / ran_in, tmp_path / "tb")
    logger = TensorBoardLogger(tmp_path / "tb", images=0)
    trainer = quiet_trainer(linear_classifier(), out_dir=tmp_path / "here")
    logger.on_fit_start(trainer)
    logger.load_state_dict({key: state[key] for key in keys})
    logger.on_epoch_start(trainer, 2)
    assert logger.run_dir == tmp_path / "tb" / folder
    # its checkpoints name this out_dir: a fit resumed from them in it writes on there
    here = _state_of_a_run_in(tmp_path / "here", tmp_path / "other-tb")
    assert logger.state_dict() == {"run": folder, "out_dir": here["out_dir"]}


def test_a_checkpoint_naming_no_out_dir_digest_is_refused(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path / "tb")
    with pytest.raises(ValueError, match=r"^'out_dir' must be the digest of a folder's path, "):
        logger.load_state_dict({"run": "run", "out_dir": 3})


@pytest.mark.parametrize("how", ["refused-before-the-epochs", "interrupted-in-epoch-1"])
def test_a_fit_that_writes_nothing_leaves_no_folder(data: Path, tmp_path: Path, how: str) -> None:
    tb, out = tmp_path / "tb", tmp_path / "run"
    _fit(data, tb, out, 2)
    logger = TensorBoardLogger(tb, images=0)
    with one_thread():
        if how == "refused-before-the-epochs":  # after on_fit_start: max_epochs < 2 done
            trainer = quiet_trainer(tiny_cnn(), callbacks=[logger], max_epochs=1, out_dir=out)
            with pytest.raises(ValueError, match="cannot resume"):
                trainer.fit(KermanyOCT(data, "train"), resume_from=out / "last.pt")
        else:
            callbacks = [logger, InterruptAt(1)]  # after the logger made its folder
            trainer = quiet_trainer(
                tiny_cnn(), callbacks=callbacks, max_epochs=1, out_dir=out, overwrite=True
            )
            with pytest.raises(KeyboardInterrupt):
                trainer.fit(KermanyOCT(data, "train"))
            assert logger.run_dir is None  # the folder it made went again
    assert [p.name for p in tb.iterdir()] == ["run"]  # no empty run_2 to push the next one


@pytest.mark.parametrize("run", ["../elsewhere", "a/b", "", 3])
def test_a_checkpoint_naming_no_folder_of_log_dir_is_refused(tmp_path: Path, run: object) -> None:
    logger = TensorBoardLogger(tmp_path / "tb")
    with pytest.raises(ValueError, match=r"^'run' must be the name of a folder, got "):
        logger.load_state_dict({"run": run})


class _Modes(Callback):
    """Records every module's train/eval mode at each epoch's end."""

    def __init__(self) -> None:
        self.seen: list[dict[str, bool]] = []

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        modes = {name: module.training for name, module in trainer.model.named_modules()}
        self.seen.append(modes)


def test_the_gradcam_images_leave_each_modules_mode_as_it_was(data: Path, tmp_path: Path) -> None:
    before, after = _Modes(), _Modes()
    model = _frozen_but_head(tiny_cnn())  # the frozen backbone trains in eval mode: a mix
    with one_thread():
        trainer = quiet_trainer(
            model,
            callbacks=[before, TensorBoardLogger(tmp_path / "tb", images=2), after],
            max_epochs=1,
            batch_size=4,
            seed=0,
            feature_cache=False,
        )
        trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))
    assert len(set(before.seen[0].values())) == 2  # a real mix
    assert after.seen == before.seen


class _Writer:
    def add_image(self, *args: object, **kwargs: object) -> None:
        pass


def test_the_gradcam_images_predict_in_fp32_inside_a_callers_autocast() -> None:
    # the prediction beside each map ran in the caller's bf16, the map in fp32
    from PIL import Image

    from retinalnet.training._tensorboard import _add_cams

    model = tiny_cnn()
    image = Image.new("L", (48, 48), 90)
    dtypes: list[torch.dtype] = []
    hook = model.network.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _add_cams(model, [("0_CNV", image)], _Writer(), 1, [])  # type: ignore[arg-type]
    hook.remove()
    assert dtypes == [torch.float32, torch.float32]  # the prediction, the Grad-CAM


class _Lines:
    """A stand-in SummaryWriter: the images are dropped."""

    def add_image(self, *args: object, **kwargs: object) -> None:
        pass


def test_the_grad_cam_table_shows_the_predictors_probability() -> None:
    # the table ran the network by hand: no temperature, no check of what it returned
    from retinalnet import Predictor, SyntheticOCT
    from retinalnet.training._tensorboard import _add_cams

    model = tiny_cnn(seed=3)
    model.temperature = 4.0
    image = SyntheticOCT(1, shape=(40, 36), seed=2).image(0)
    lines: list[str] = []
    _add_cams(model, [("0_CNV", image)], _Lines(), 1, lines)  # type: ignore[arg-type]
    (top,) = Predictor(model, device="cpu", precision="fp32").topk(image, k=1).top
    assert lines == [f"| 0_CNV | CNV | {top.name} ({top.probability:.0%}) |"]
