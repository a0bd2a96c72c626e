"""Seeds make a run reproducible end to end on the CPU, and a resumed run repeats the
uninterrupted one: the checkpoint carries the random generators and the data order.

Every case has dropout and BatchNorm in the model and a shuffled order of the data: the
Trainer's own shuffle (seeded), the class-balanced sampler, and loaders of one's own with and
without a generator; random augmentation where the data are PIL images.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from _training_helpers import InterruptAt, quiet_trainer, same_state, snapshot, tiny_cnn
from retinalnet import SyntheticOCT
from retinalnet.checkpoint import load_checkpoint
from retinalnet.models import Classifier
from retinalnet.training import ClassificationTask, History, Trainer, seed_everything

EPOCHS = 4


def _records(history: History) -> list[dict[str, Any]]:
    """Every value of every epoch but the seconds it took."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.to_records()]


def _tensors() -> TensorDataset:
    generator = torch.Generator().manual_seed(11)
    return TensorDataset(torch.randn(10, 3, 32, 32, generator=generator), torch.arange(10) % 4)


def _pil() -> SyntheticOCT:
    return SyntheticOCT(2, shape=(40, 48), seed=0)  # 8 PIL images: random augmentation


# name: (seed, balance, training data made afresh for each fit)
CASES: dict[str, tuple[int | None, str | None, Callable[[], Any]]] = {
    "seeded-shuffle-with-augmentation": (3, None, _pil),
    "balanced-sampler": (3, "sampler", _pil),
    "own-loader-on-the-global-generator": (
        None,
        None,
        lambda: DataLoader(_tensors(), batch_size=3, shuffle=True),
    ),
    "own-loader-with-its-generator": (
        None,
        None,
        lambda: DataLoader(
            _tensors(), batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(5)
        ),
    ),
}


def _trainer(model: Classifier, case: str, out: Path, max_epochs: int, **kwargs: Any) -> Trainer:
    seed, balance, _ = CASES[case]
    return quiet_trainer(
        model,
        ClassificationTask(lr=0.01, balance=balance),
        batch_size=3,
        max_epochs=max_epochs,
        seed=seed,
        out_dir=out,
        overwrite=True,
        **kwargs,
    )


def _uninterrupted(case: str, out: Path) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    seed_everything(0)
    model = tiny_cnn()
    history = _trainer(model, case, out, EPOCHS).fit(CASES[case][2](), _pil())
    return _records(history), snapshot(model)


def _stray_draws() -> None:
    """Whatever the global generators held before a resumed fit must not matter."""
    torch.rand(13)
    np.random.rand(3)
    random.random()


# ---------------------------------------------------------------------------------------------
# The same seed, the same run


def test_seed_everything_seeds_python_numpy_and_torch() -> None:
    def draws() -> tuple[float, float, list[float]]:
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    assert seed_everything(5) == 5
    first = draws()
    seed_everything(5)
    assert draws() == first
    seed_everything(6)
    assert draws() != first


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "1", True, None])
def test_a_bad_seed_is_refused(seed: Any) -> None:
    with pytest.raises(ValueError, match=r"seed must be (None or )?an int from 0 to 2\*\*32 - 1"):
        seed_everything(seed)


@pytest.mark.parametrize("seed", [-1, 2**32, 2.0, "0", False])
def test_the_trainer_refuses_a_bad_seed_at_construction(seed: Any) -> None:
    with pytest.raises(ValueError, match=rf"got {seed!r}"):
        Trainer(tiny_cnn(), seed=seed, device="cpu")


@pytest.mark.parametrize("balance", [None, "sampler"])
def test_the_same_seed_gives_the_same_history_bit_for_bit(balance: str | None) -> None:
    def run(seed: int) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
        _stray_draws()
        seed_everything(seed)  # the model's initial weights
        model = _unseeded_cnn()
        trainer = quiet_trainer(
            model, ClassificationTask(balance=balance), batch_size=3, max_epochs=3, seed=seed
        )
        return _records(trainer.fit(_pil(), _pil())), snapshot(model)

    first, again, other = run(3), run(3), run(4)

    assert first[0] == again[0]
    assert same_state(first[1], again[1])
    assert first[0] != other[0]


def _unseeded_cnn() -> Classifier:
    """``small_cnn`` as ``tiny_cnn`` builds it, but from the global generator as it is."""
    from retinalnet.models import small_cnn
    from retinalnet.transforms import Preprocessing

    return small_cnn(width=4, hidden=8, preprocessing=Preprocessing(size=32))


# ---------------------------------------------------------------------------------------------
# A resumed run repeats the uninterrupted one


@pytest.mark.parametrize("case", list(CASES))
def test_fit_2_then_resume_to_4_repeats_the_uninterrupted_fit(case: str, tmp_path: Path) -> None:
    expected, weights = _uninterrupted(case, tmp_path / "whole")

    seed_everything(0)
    _trainer(tiny_cnn(), case, tmp_path / "parts", 2).fit(CASES[case][2](), _pil())
    _stray_draws()
    model = tiny_cnn(seed=9)  # other initial weights: the checkpoint's replace them
    resumed = _trainer(model, case, tmp_path / "parts", EPOCHS)
    history = resumed.fit(CASES[case][2](), _pil(), resume_from=tmp_path / "parts" / "last.pt")

    assert _records(history) == expected
    assert same_state(snapshot(model), weights)


@pytest.mark.parametrize("interrupted_at", [2, 4])
@pytest.mark.parametrize("case", ["seeded-shuffle-with-augmentation", "balanced-sampler"])
def test_an_interrupted_fit_resumed_repeats_the_uninterrupted_fit(
    case: str, interrupted_at: int, tmp_path: Path
) -> None:
    expected, weights = _uninterrupted(case, tmp_path / "whole")

    seed_everything(0)
    trainer = _trainer(
        tiny_cnn(), case, tmp_path / "parts", EPOCHS, callbacks=[InterruptAt(interrupted_at)]
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(CASES[case][2](), _pil())
    assert load_checkpoint(tmp_path / "parts" / "last.pt").epoch == interrupted_at - 1
    _stray_draws()
    model = tiny_cnn(seed=9)
    history = _trainer(model, case, tmp_path / "parts", EPOCHS).fit(
        CASES[case][2](), _pil(), resume_from=tmp_path / "parts" / "last.pt"
    )

    assert _records(history) == expected
    assert same_state(snapshot(model), weights)


def test_without_the_loop_state_a_resumed_run_would_not_repeat(tmp_path: Path) -> None:
    # the control: the loop state is what makes the tests above pass
    case = "seeded-shuffle-with-augmentation"
    expected, _ = _uninterrupted(case, tmp_path / "whole")
    seed_everything(0)
    _trainer(tiny_cnn(), case, tmp_path / "parts", 2).fit(CASES[case][2](), _pil())
    last = tmp_path / "parts" / "last.pt"
    data = torch.load(last, weights_only=True)
    del data["loop"]
    torch.save(data, last)
    _stray_draws()

    history = _trainer(tiny_cnn(), case, tmp_path / "parts", EPOCHS).fit(
        CASES[case][2](), _pil(), resume_from=last
    )

    records = _records(history)
    assert records[:2] == expected[:2]
    assert records[2:] != expected[2:]


def test_a_checkpoint_of_a_fit_carries_the_loop_state(tmp_path: Path) -> None:
    _trainer(tiny_cnn(), "balanced-sampler", tmp_path, 1).fit(_pil())

    loop = load_checkpoint(tmp_path / "last.pt").loop_state

    assert loop["seed"] == 3
    assert set(loop["random"]) == {"python", "numpy", "torch", "cuda"}
    assert set(loop["data"]) == {"loader", "sampler"}  # the shuffle and the balanced draws
    assert all(isinstance(state, torch.Tensor) for state in loop["data"].values())
    assert torch.load(tmp_path / "last.pt", weights_only=True)["loop"]["seed"] == 3


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (3, 4, r"used seed=3 and this fit seed=4: .*this fit follows seed=4 from here, not seed=3"),
        (3, None, r"used seed=3 and this fit seed=None: .*pass seed=3 \(--seed 3\) to repeat it"),
        (None, 4, r"used seed=None and this fit seed=4: .*this fit follows seed=4 from here"),
    ],
)
def test_resuming_with_another_seed_warns_that_the_run_will_not_repeat(
    tmp_path: Path, first: int | None, second: int | None, message: str
) -> None:
    quiet_trainer(tiny_cnn(), max_epochs=1, seed=first, out_dir=tmp_path).fit(_pil())

    trainer = quiet_trainer(tiny_cnn(), max_epochs=2, seed=second, out_dir=tmp_path)
    with pytest.warns(UserWarning, match=message):
        trainer.fit(_pil(), resume_from=tmp_path / "last.pt")
    assert len(trainer.history) == 2


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda loop: loop.__setitem__("random", 3), "loop.random"),
        (lambda loop: loop["random"].pop("numpy"), "loop.random.numpy"),
        (lambda loop: loop["random"].__setitem__("torch", torch.zeros(3)), "loop.random.torch"),
        (lambda loop: loop["random"]["python"].__setitem__("internal", [1]), "loop.random.python"),
        (lambda loop: loop["data"].__setitem__("loader", "x"), "loop.data.loader"),
    ],
)
def test_a_malformed_loop_state_is_named(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], field: str
) -> None:
    quiet_trainer(tiny_cnn(), max_epochs=1, seed=1, out_dir=tmp_path).fit(_pil())
    last = tmp_path / "last.pt"
    data = torch.load(last, weights_only=True)
    edit(data["loop"])
    torch.save(data, last)

    trainer = quiet_trainer(tiny_cnn(), max_epochs=2, seed=1, out_dir=tmp_path)
    with pytest.raises(ValueError, match=rf"cannot resume from '.*last\.pt': field '{field}'"):
        trainer.fit(_pil(), resume_from=last)


# --- a NumPy integer seed (``for seed in np.arange(5)``) -------------------------------------


def _fit_history(seed: Any, balance: str | None) -> tuple[list[float], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = tiny_cnn()
    task = ClassificationTask(balance=balance)
    trainer = quiet_trainer(model, task, max_epochs=2, batch_size=4, seed=seed, num_workers=0)
    history = trainer.fit(SyntheticOCT(2, shape=(40, 36)))
    assert type(trainer.seed) is int  # recorded in checkpoints as a plain int
    return [record.train_loss for record in history], snapshot(model)


def _seeded_everything(seed: Any) -> list[float]:
    assert type(seed_everything(seed)) is int
    return [random.random(), float(np.random.rand()), float(torch.rand(()))]


def _split(seed: Any) -> list[Any]:
    from retinalnet.datasets import patient_split

    root = Path(__file__).parents[2] / "shared" / "data" / "kermany-sample"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return [(row.path, row.split) for row in patient_split(root, seed=seed)]


def _sampled(seed: Any) -> list[int]:
    from retinalnet.training import balanced_sampler

    return list(balanced_sampler([0, 0, 0, 1, 1, 2], seed=seed))


def _bootstrapped(seed: Any) -> Any:
    from retinalnet.metrics import classification_report

    scores = np.random.default_rng(0).dirichlet(np.ones(4), size=40)
    targets = np.arange(40) % 4
    report = classification_report(targets, scores, bootstrap=200, seed=seed)
    assert type(report.seed) is int
    return report.to_dict()


def _cached_views(seed: Any) -> torch.Tensor:
    from _training_helpers import frozen_small_cnn
    from retinalnet.training import build_feature_cache

    torch.manual_seed(0)
    model = frozen_small_cnn()
    model.preprocessing = model.preprocessing.with_augmentation("oct")
    cache = build_feature_cache(
        model, SyntheticOCT(1, shape=(40, 36)), views=1, seed=seed, device="cpu",
        precision="fp32", progress=False, num_workers=0,
    )  # fmt: skip
    return cache.features


SEEDED: dict[str, Callable[[Any], Any]] = {
    "build_feature_cache": _cached_views,
    "Trainer.fit": lambda seed: _fit_history(seed, None),
    "Trainer.fit, balance='sampler'": lambda seed: _fit_history(seed, "sampler"),
    "seed_everything": _seeded_everything,
    "patient_split": _split,
    "balanced_sampler": _sampled,
    "classification_report": _bootstrapped,
}


@pytest.mark.parametrize("door", list(SEEDED))
def test_a_numpy_integer_seed_is_the_int_it_holds(door: str) -> None:
    # np.int64 passed the seed check, then failed deep in torch ("an integer is required")
    # or random.seed ("The only supported seed types are: None, int, ...")
    seeds = np.arange(3)
    given, plain = SEEDED[door](seeds[1]), SEEDED[door](1)
    if door.startswith("Trainer.fit"):
        assert given[0] == plain[0]
        assert same_state(given[1], plain[1])
    elif isinstance(given, torch.Tensor):
        assert torch.equal(given, plain)
    else:
        assert given == plain
