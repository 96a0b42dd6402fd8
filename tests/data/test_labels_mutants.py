"""Label-schema behaviour that the mutation benchmark (benchmarks/mutation.py) showed untested:
which murmur ``has_murmur`` looks at, missing keys, the character-feature constructor, messages."""

from __future__ import annotations

import pytest

from murmurlm.data import labels as L


def test_has_murmur_looks_at_the_timing_of_the_named_murmur():
    systolic_only = {"Murmur": "Present", "Systolic murmur timing": "Holosystolic",
                     "Diastolic murmur timing": "nan"}
    assert L.has_murmur(systolic_only, "systolic") is True
    assert L.has_murmur(systolic_only, "diastolic") is False
    diastolic_only = {"Murmur": "Present", "Systolic murmur timing": "nan",
                      "Diastolic murmur timing": "Early-diastolic"}
    assert L.has_murmur(diastolic_only, "systolic") is False
    assert L.has_murmur(diastolic_only, "diastolic") is True
    # the timing decides, not the other character fields
    assert L.has_murmur({"Systolic murmur timing": "Mid-systolic"}, "systolic") is True
    assert L.has_murmur({"Systolic murmur shape": "Diamond"}, "systolic") is False
    assert L.has_murmur({"Diastolic murmur timing": "Holodiastolic"}, "diastolic") is True
    assert L.has_murmur({"Diastolic murmur shape": "Plateau"}, "diastolic") is False


def test_a_missing_timing_means_no_murmur():
    assert L.has_murmur({}, "systolic") is False
    assert L.has_murmur({"Murmur": "Present"}, "diastolic") is False
    # make_consistent reads a missing timing the same way: that murmur's fields are cleared
    out = L.make_consistent({"Murmur": "Present", "Systolic murmur shape": "Diamond",
                             "Diastolic murmur timing": "Early-diastolic", "Diastolic murmur pitch": "Low"})
    assert all(out[f.name] == "nan" for f in L.SYSTOLIC)
    assert out["Diastolic murmur timing"] == "Early-diastolic" and out["Diastolic murmur pitch"] == "Low"


def test_character_feature_constructor():
    f = L._character("diastolic", "colour", ("Red", "Blue"), "What colour?")
    assert f == L.Feature("Diastolic murmur colour", ("nan", "Red", "Blue"), "diastolic", "What colour?")
    assert f.present_classes == ("Red", "Blue")
    assert L.feature("Systolic murmur grading").murmur == "systolic"
    assert L.feature("Diastolic murmur grading").question == "What is the grade of the diastolic murmur?"


def test_unknown_location_message_lists_the_valid_ones():
    with pytest.raises(L.LabelError, match=r"^unknown location 'XV' in 'AV\+XV'; valid: AV, PV, TV, MV, Phc$"):
        L.parse_locations("AV+XV")
