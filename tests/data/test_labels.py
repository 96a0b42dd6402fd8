"""The label schema: the 11 features, encode/decode, unknown labels, consistency of a patient's labels."""

from __future__ import annotations

import csv
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from murmurlm.data import labels as L


def test_eleven_features_in_circor_column_order():
    assert len(L.FEATURES) == 11 and len(set(L.FEATURE_NAMES)) == 11
    assert L.FEATURES[0] is L.MURMUR and L.FEATURES[1:6] == L.SYSTOLIC and L.FEATURES[6:] == L.DIASTOLIC
    assert all(f.murmur == "systolic" for f in L.SYSTOLIC) and all(f.murmur == "diastolic" for f in L.DIASTOLIC)
    for f in (*L.SYSTOLIC, *L.DIASTOLIC):
        assert f.classes[0] == L.NO_MURMUR and L.NO_MURMUR not in f.present_classes
        assert f.num_classes == len(f.present_classes) + 1 and f.question.endswith("?")
    assert L.MURMUR.classes == ("Present", "Unknown", "Absent")
    assert L.feature("Systolic murmur grading").present_classes == ("I/VI", "II/VI", "III/VI")
    assert L.feature("Diastolic murmur grading").present_classes == ("I/IV", "II/IV", "III/IV")


@pytest.mark.circor
def test_schema_covers_the_real_table(circor_root):
    with open(circor_root / "training_data.csv", newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames
        rows = list(reader)
    wanted = [*L.FEATURE_NAMES, *(f.name for f in L.AUXILIARY), L.MURMUR_LOCATIONS_NAME]
    assert set(wanted) <= set(columns)
    assert [c for c in columns if c in L.FEATURE_NAMES] == list(L.FEATURE_NAMES)  # same order as CirCor
    for row in rows:
        for f in (*L.FEATURES, *L.AUXILIARY):
            assert f.decode(f.encode(row[f.name])) == row[f.name]
        assert set(L.parse_locations(row[L.MURMUR_LOCATIONS_NAME])) <= set(L.LOCATIONS)


@pytest.mark.parametrize("raw", [None, float("nan"), "", "  ", "nan", "NaN", " nan "])
def test_missing_values_mean_no_murmur(raw):
    f = L.feature("Diastolic murmur pitch")
    assert f.normalise(raw) == L.NO_MURMUR and f.encode(raw) == 0


def test_encode_decode_roundtrip_and_errors():
    for f in (*L.FEATURES, *L.AUXILIARY):
        assert [f.decode(f.encode(c)) for c in f.classes] == list(f.classes)
        assert [f.encode(c) for c in f.classes] == list(range(f.num_classes))
    pitch = L.feature("Systolic murmur pitch")
    assert pitch.encode(" High ") == 3
    with pytest.raises(L.LabelError, match=r"unknown label 'Loud' for 'Systolic murmur pitch'; "
                                           r"valid: nan, Low, Medium, High"):
        pitch.encode("Loud")
    with pytest.raises(L.LabelError, match="unknown label 'high'"):  # case matters: CirCor's spelling only
        pitch.normalise("high")
    with pytest.raises(L.LabelError, match="class id 4 out of range"):
        pitch.decode(4)
    with pytest.raises(L.LabelError, match="class id -1 out of range"):
        pitch.decode(-1)
    with pytest.raises(L.LabelError, match="unknown feature 'Murmur grade'; valid: Murmur, "):
        L.feature("Murmur grade")
    with pytest.raises(L.LabelError, match="unknown label 'nan' for 'Murmur'; valid: Present, Unknown, Absent"):
        L.MURMUR.normalise(float("nan"))  # Murmur has no 'nan' class: a missing value is an error there
    assert issubclass(L.LabelError, ValueError)


def test_locations():
    assert L.parse_locations("MV+Phc+TV") == ("MV", "Phc", "TV")
    assert L.parse_locations("nan") == L.parse_locations("") == L.parse_locations(None) == ()
    assert L.parse_locations(math.nan) == ()
    with pytest.raises(L.LabelError, match="unknown location 'XV' in 'AV\\+XV'"):
        L.parse_locations("AV+XV")
    assert L.locations_to_multihot(("MV", "AV")) == [1, 0, 0, 1, 0]
    assert L.MOST_AUDIBLE_LOCATION.classes == (L.NO_MURMUR, *L.LOCATIONS)


def _patient(murmur="Present", systolic=True, diastolic=False) -> dict[str, str]:
    labels = {L.MURMUR.name: murmur}
    for group, present in ((L.SYSTOLIC, systolic), (L.DIASTOLIC, diastolic)):
        for f in group:
            labels[f.name] = f.present_classes[0] if present else L.NO_MURMUR
    return labels


def test_has_murmur_and_make_consistent():
    both = _patient(systolic=True, diastolic=True)
    assert both["Murmur"] == "Present" and L.has_murmur(both, "systolic") and L.has_murmur(both, "diastolic")
    assert L.make_consistent(both) == both
    absent = L.make_consistent({**both, "Murmur": "Absent"})
    assert all(absent[f.name] == L.NO_MURMUR for f in (*L.SYSTOLIC, *L.DIASTOLIC))
    unknown = L.make_consistent({**both, "Murmur": "Unknown"})
    assert not L.has_murmur(unknown, "systolic")
    # timing says no systolic murmur: the rest of the systolic features follow it
    no_timing = {**both, "Systolic murmur timing": L.NO_MURMUR}
    fixed = L.make_consistent(no_timing)
    assert all(fixed[f.name] == L.NO_MURMUR for f in L.SYSTOLIC)
    assert all(fixed[f.name] == both[f.name] for f in L.DIASTOLIC)
    assert no_timing["Systolic murmur shape"] != L.NO_MURMUR  # the input is not modified


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({f.name: st.sampled_from(f.classes) for f in L.FEATURES}))
def test_make_consistent_is_idempotent_and_only_clears(labels):
    once = L.make_consistent(labels)
    assert L.make_consistent(once) == once
    assert all(once[k] in (labels[k], L.NO_MURMUR) for k in labels)
    assert once["Murmur"] == labels["Murmur"]
    if once["Murmur"] != "Present":
        assert not L.has_murmur(once, "systolic") and not L.has_murmur(once, "diastolic")
