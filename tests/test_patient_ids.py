"""Tests for retinalnet._core.patient_ids: the one rule by which patient ids are compared."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retinalnet._core.patient_ids import digits_key, is_missing_id, patient_group_key
from retinalnet.datasets._files import patient_key


@pytest.mark.parametrize(
    "patient", [None, "", "  ", math.nan, np.float32("nan"), np.datetime64("NaT")]
)
def test_no_id(patient: object) -> None:
    assert is_missing_id(patient)


@pytest.mark.parametrize("patient", ["0", "42", 0, 42, "P-1", -3, 1.5])
def test_an_id(patient: object) -> None:
    assert not is_missing_id(patient)


@pytest.mark.parametrize(
    "same",
    [
        ["42", "0042", 42, np.int64(42), np.uint8(42), 42.0, np.float32(42.0), np.str_("042")],
        ["0", "000", 0, 0.0],
        ["4370501", 4370501, "04370501"],
    ],
)
def test_digits_and_whole_numbers_name_one_patient(same: list[object]) -> None:
    assert {patient_group_key(patient) for patient in same} == {str(same[0])}


@pytest.mark.parametrize(
    ("patient", "other"),
    [
        ("0042A", "42A"),  # not all digits: zeros count
        ("P-0042", "P-42"),
        (" 42", "42"),  # a space is not a digit
        ("\uff14\uff12", "42"),  # full-width digits are not ASCII
        ("\u0664\u0662", "42"),  # Arabic-Indic digits neither
        (-42, 42),
        (42.5, "42"),
        (True, 1),  # a bool is no number of a patient
        (("7", 1), "7"),
    ],
)
def test_other_ids_are_compared_as_given(patient: object, other: object) -> None:
    assert patient_group_key(patient) == patient
    assert patient_group_key(patient) != patient_group_key(other)


def test_an_id_that_cannot_be_a_key_is_refused_naming_it() -> None:
    with pytest.raises(TypeError, match=r"^patient id \['7'\] \(scan 3\) is a list, which can"):
        patient_group_key(["7"], row=3)


@pytest.mark.parametrize(
    ("patient", "key"),
    [("0042", "42"), ("000", "0"), ("4370501", "4370501"), ("0042A", "0042A"), ("", "")],
)
def test_patient_key_of_the_split_and_audit_follows_the_same_rule(patient: str, key: str) -> None:
    # was: "0042A" became "42A", and "" became "0" (a patient merging every empty id)
    assert patient_key(patient) == digits_key(patient) == key
