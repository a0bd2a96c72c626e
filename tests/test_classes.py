"""A model's classes against its data's (``retinalnet._core.classes``): every wrapper of a
data set is looked through, so a study of some classes never meets a model of others."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader, Subset

from retinalnet._core.classes import check_same_classes
from retinalnet.datasets import KermanyOCT, SyntheticOCT, make_synthetic_kermany
from retinalnet.models import small_cnn
from retinalnet.predictor import Predictor
from retinalnet.training import Trainer, calibrate, evaluate
from retinalnet.transforms import Preprocessing


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("classes") / "data"
    return make_synthetic_kermany(root, train=2, val=2, test=2, shape=(40, 40), seed=1)


def _wrapped(study: KermanyOCT) -> dict[str, object]:
    return {
        "Subset": Subset(study, [0, 1]),
        "DataLoader(Subset)": DataLoader(Subset(study, [0, 1]), batch_size=2),
        "ConcatDataset": ConcatDataset([study, study]),
        "DataLoader(ConcatDataset(Subset))": DataLoader(ConcatDataset([Subset(study, [0])])),
    }


@pytest.mark.parametrize(
    "wrapper",
    ["Subset", "DataLoader(Subset)", "ConcatDataset", "DataLoader(ConcatDataset(Subset))"],
)
def test_a_study_wrapped_in_data_sets_still_meets_the_models_classes(
    data: Path, wrapper: str
) -> None:
    # was: a 4-class model scored a CNV-NORMAL study inside a DataLoader of a Subset, or a
    # ConcatDataset, counting every NORMAL scan (target 1) as DME
    model = small_cnn(preprocessing=Preprocessing(size=32))
    study = KermanyOCT(data, "test", classes=["CNV", "NORMAL"])
    wrapped = _wrapped(study)[wrapper]
    message = r"the model's classes are \['CNV', 'DME', 'DRUSEN', 'NORMAL'\] .* \['CNV', 'NORMAL'\]"
    with pytest.raises(ValueError, match="evaluate: " + message):
        evaluate(model, wrapped, device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="calibrate: " + message):
        calibrate(model, wrapped, device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Trainer.fit \(train\): " + message):
        Trainer(model, device="cpu", max_epochs=1).fit(wrapped, wrapped)  # type: ignore[arg-type]


def test_a_model_of_kermany_classes_out_of_their_order_is_told_the_fix_that_works(
    data: Path,
) -> None:
    # the message said "KermanyOCT(root, split, classes=model.classes)", which gives the
    # Kermany order again and was refused again
    model = small_cnn(classes=["NORMAL", "CNV"], preprocessing=Preprocessing(size=32))
    study = KermanyOCT(data, "test", classes=model.classes)
    with pytest.raises(ValueError, match=r"out of the Kermany order.* classes=data\.classes\)$"):
        evaluate(model, study, device="cpu")
    retrained = small_cnn(classes=study.classes, preprocessing=Preprocessing(size=32))
    assert evaluate(retrained, study, device="cpu").classes == ("CNV", "NORMAL")


def test_matching_classes_through_every_wrapper_are_taken(data: Path) -> None:
    study = KermanyOCT(data, "test", classes=["CNV", "NORMAL"])
    for name, wrapped in _wrapped(study).items():
        check_same_classes(("CNV", "NORMAL"), wrapped, where=name)  # no error
    check_same_classes(("CNV", "NORMAL"), torch.zeros(2, 3), where="tensors")  # unknown: pass


class _NamedByMapping(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """A user's data set that names its targets by ``class_to_idx`` only (no ``classes``)."""

    def __init__(self, class_to_idx: dict[str, int]) -> None:
        self.class_to_idx = class_to_idx

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.zeros(3, 32, 32), index


def test_a_data_set_named_by_class_to_idx_only_is_checked_by_it() -> None:
    # was: no `classes` attribute, so a NORMAL-CNV mapping passed a CNV-NORMAL model and
    # every number compared the two classes swapped (accuracy 81% -> 0%)
    model = small_cnn(classes=["CNV", "NORMAL"], preprocessing=Preprocessing(size=32))
    swapped = _NamedByMapping({"NORMAL": 0, "CNV": 1})
    with pytest.raises(ValueError, match=r"but the data's are \['NORMAL', 'CNV'\]"):
        evaluate(model, swapped, device="cpu")
    with pytest.raises(ValueError, match=r"but the data's are \['NORMAL', 'CNV'\]"):
        check_same_classes(model.classes, DataLoader(Subset(swapped, [0])), where="wrapped")
    check_same_classes(model.classes, _NamedByMapping({"NORMAL": 1, "CNV": 0}), where="same")
    # indices held as one-number tensors (a mapping built with torch) are read too
    tensors = _NamedByMapping({"NORMAL": torch.tensor(0), "CNV": torch.tensor(1)})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"but the data's are \['NORMAL', 'CNV'\]"):
        check_same_classes(model.classes, tensors, where="tensors")
    # a mapping that is not targets 0 to n - 1 says nothing about the order: not read
    check_same_classes(model.classes, _NamedByMapping({"NORMAL": 0, "CNV": 2}), where="gap")


def test_synthetic_data_for_a_model_of_some_classes_is_told_a_fix_it_can_follow(
    tmp_path: Path,
) -> None:
    # was: "KermanyOCT(root, split, classes=model.classes) reads some of the four", for a
    # data set that is no KermanyOCT (SyntheticOCT takes no classes=)
    model = small_cnn(classes=["CNV", "NORMAL"], preprocessing=Preprocessing(size=32))
    synthetic = SyntheticOCT({"CNV": 2, "NORMAL": 2}, shape=(40, 40))
    with pytest.raises(
        ValueError, match=r"SyntheticOCT always has the four Kermany classes"
    ) as error:
        evaluate(model, synthetic, device="cpu")
    assert "data.write(root, split)" in str(error.value)
    # the fix it names works
    synthetic.write(tmp_path, "test")
    study = KermanyOCT(tmp_path, "test", classes=model.classes)
    assert evaluate(model, study, device="cpu").classes == ("CNV", "NORMAL")


def test_a_model_of_other_classes_is_not_sent_to_kermany_oct(data: Path) -> None:
    # was: "KermanyOCT(root, split, classes=model.classes) reads some of the four", which
    # refuses an AMD class
    model = small_cnn(classes=["AMD", "NORMAL"], preprocessing=Preprocessing(size=32))
    with pytest.raises(ValueError, match=r"torchvision's ImageFolder") as error:
        evaluate(model, KermanyOCT(data, "test"), device="cpu")
    assert "classes=model.classes" not in str(error.value)


def test_gradcam_lists_class_names_holding_commas_one_by_one() -> None:
    # was: "choose from 3, normal, wet AMD, Ödem, diabetic", which reads as five classes
    classes = ["3", "normal", "wet AMD", "Ödem, diabetic"]
    model = small_cnn(num_classes=4, classes=classes, preprocessing=Preprocessing(size=32))
    predictor = Predictor(model, device="cpu")
    choices = "'3', 'normal', 'wet AMD', 'Ödem, diabetic'"
    with pytest.raises(ValueError, match=re.escape(f"choose from {choices}")):
        predictor.gradcam(Image.new("L", (40, 40)), class_index="Ödem")


def test_class_lists_in_messages_are_quoted_only_when_a_name_would_read_as_two() -> None:
    from retinalnet._core.classes import in_words

    assert in_words(["CNV", "DME", "DRUSEN", "NORMAL"]) == "CNV, DME, DRUSEN, NORMAL"
    assert in_words(["wet AMD", "Ödem, diabetic", "3"]) == "'wet AMD', 'Ödem, diabetic', '3'"
    assert in_words([" NORMAL", "CNV"]) == "' NORMAL', 'CNV'"


def test_a_training_warning_quotes_a_class_name_holding_a_comma() -> None:
    # was: "holds no image of a, b": read as two classes
    import warnings

    from torch.utils.data import TensorDataset

    from retinalnet.training._data import warn_of_missing_classes

    data = TensorDataset(torch.zeros(4, 1), torch.tensor([1, 2, 1, 2]))
    data.targets = [1, 2, 1, 2]  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_of_missing_classes(data, ("a, b", "c", "d"))
    assert "holds no image of 'a, b' (4 images in all)" in str(caught[0].message)


@pytest.mark.parametrize(
    ("own", "given", "expected"),
    [
        (("CNV", "NORMAL"), None, ("CNV", "NORMAL")),  # a Classifier's own
        (("CNV", "NORMAL"), ["CNV", "NORMAL"], ("CNV", "NORMAL")),  # repeated: taken
        (None, ["b", "a"], ("b", "a")),  # a plain module's, as given
    ],
)
def test_output_classes_are_the_owners_else_those_given(
    own: tuple[str, ...] | None, given: list[str] | None, expected: tuple[str, ...]
) -> None:
    from retinalnet._core.classes import output_classes

    assert output_classes(own, given, where="here") == expected


def test_output_classes_never_reorder_or_rename_the_owners() -> None:
    from retinalnet._core.classes import output_classes

    for given in (["NORMAL", "CNV"], ["CNV", "AMD"], ["CNV"]):
        message = re.escape(f"here: classes={given} differs from the classes of the result, ")
        with pytest.raises(ValueError, match=message + r".*; only for arrays\. Leave"):
            output_classes(
                ("CNV", "NORMAL"),
                given,
                where="here",
                owner="the result",
                given_for="only for arrays",
            )
    with pytest.raises(ValueError, match=r"^here: pass classes=\[\.\.\.\] when the model is not"):
        output_classes(None, None, where="here")
    with pytest.raises(TypeError, match=r"got the string 'CNV'"):
        output_classes(("CNV", "NORMAL"), "CNV", where="here")


def test_a_class_folder_read_under_lang_c_is_the_class_of_that_name() -> None:
    # was: "the model's classes are ['CNV', 'Normal-\udcc3\udca9'] ... but the data's are
    # ['CNV', 'Normal-é']" for a model trained on ImageFolder under LANG=C
    under_c = _NamedByMapping({"CNV": 0, "Normal-\udcc3\udca9": 1})
    check_same_classes(("CNV", "Normal-é"), under_c, where="evaluate")  # no error
    check_same_classes(
        ("CNV", "Normal-\udcc3\udca9"), _NamedByMapping({"CNV": 0, "Normal-é": 1}), where="evaluate"
    )
