"""What the compact model learns from one recording: murmurlm.train.data.recording_targets.

CirCor labels patients; a recording's targets come from its patient's labels and the patient's
``Murmur locations``. Every expected class id below is worked out by hand from the class orders of
murmurlm.data.labels (written next to each case), so a changed rule or a changed encoding fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from murmurlm.data import labels as L
from murmurlm.data.circor import Patient, Recording, load_circor
from murmurlm.models.compact import IGNORE, head_names
from murmurlm.train.data import recording_targets

HEADS = head_names(aux_outcome=True)  # the 11 features + Outcome: what the compact recipe trains
SYS_T, SYS_S, SYS_G, SYS_P, SYS_Q = (f.name for f in L.SYSTOLIC)
DIA_T, DIA_S, DIA_G, DIA_P, DIA_Q = (f.name for f in L.DIASTOLIC)
CHARACTER = [f.name for f in (*L.SYSTOLIC, *L.DIASTOLIC)]

# Class orders (labels.py), hand-encoded:
#   Murmur: Present 0, Unknown 1, Absent 2
#   Systolic timing: nan 0, Early-systolic 1, Holosystolic 2, Mid-systolic 3, Late-systolic 4
#   Systolic shape: nan 0, Crescendo 1, Decrescendo 2, Diamond 3, Plateau 4
#   Systolic grading: nan 0, I/VI 1, II/VI 2, III/VI 3
#   Systolic pitch / Diastolic pitch: nan 0, Low 1, Medium 2, High 3
#   Systolic quality: nan 0, Blowing 1, Harsh 2, Musical 3
#   Diastolic timing: nan 0, Early-diastolic 1, Holodiastolic 2, Mid-diastolic 3
#   Diastolic shape: nan 0, Decrescendo 1, Plateau 2
#   Diastolic grading: nan 0, I/IV 1, II/IV 2, III/IV 3
#   Diastolic quality: nan 0, Blowing 1, Harsh 2
#   Outcome: Abnormal 0, Normal 1
#   Most audible location: nan 0, AV 1, PV 2, TV 3, MV 4, Phc 5
SYSTOLIC_MURMUR = {SYS_T: "Holosystolic", SYS_S: "Plateau", SYS_G: "II/VI", SYS_P: "Medium", SYS_Q: "Blowing"}
SYSTOLIC_IDS = {SYS_T: 2, SYS_S: 4, SYS_G: 2, SYS_P: 2, SYS_Q: 1}
DIASTOLIC_MURMUR = {DIA_T: "Early-diastolic", DIA_S: "Decrescendo", DIA_G: "I/IV", DIA_P: "High", DIA_Q: "Blowing"}
DIASTOLIC_IDS = {DIA_T: 1, DIA_S: 1, DIA_G: 1, DIA_P: 3, DIA_Q: 1}
NO_SYSTOLIC_IDS = {name: 0 for name in SYSTOLIC_IDS}
NO_DIASTOLIC_IDS = {name: 0 for name in DIASTOLIC_IDS}


def patient(murmur: str, locations: tuple[str, ...] = (), outcome: str = "Abnormal",
            most_audible: str = "nan", **characters: str) -> Patient:
    labels = {name: "nan" for name in CHARACTER}
    labels.update({L.MURMUR.name: murmur, L.OUTCOME.name: outcome, "Most audible location": most_audible})
    labels.update(characters)
    recordings = [rec(loc) for loc in ("AV", "PV", "TV", "MV")]
    return Patient("1", recordings, labels, murmur_locations=locations)


def rec(location: str, name: str | None = None) -> Recording:
    return Recording("1", location, name or f"1_{location}", Path(f"1_{location}.wav"), 4000)


def targets(p: Patient, location: str, mode: str = "heard", heads=HEADS) -> dict[str, int]:
    return recording_targets(p, rec(location), heads, mode)


# ------------------------------------------------------------------------------------------------
# Murmur


def test_present_patient_is_present_where_heard_and_absent_elsewhere():
    p = patient("Present", ("AV", "MV"), **SYSTOLIC_MURMUR)  # 'AV+MV' in the csv
    assert [targets(p, loc)[L.MURMUR.name] for loc in ("AV", "PV", "TV", "MV")] == [0, 2, 2, 0]


def test_murmur_locations_parse_from_the_csv_spelling():
    """The rule compares recording.location with the parsed ``Murmur locations``: 'AV+MV' -> AV, MV."""
    p = patient("Present", L.parse_locations("AV+MV"), **SYSTOLIC_MURMUR)
    assert targets(p, "AV")[L.MURMUR.name] == 0 and targets(p, "MV")[L.MURMUR.name] == 0
    assert targets(p, "TV")[L.MURMUR.name] == 2


def test_phc_is_a_location_like_the_four_valves():
    heard_at_phc = patient("Present", ("Phc",), **SYSTOLIC_MURMUR)
    assert targets(heard_at_phc, "Phc")[L.MURMUR.name] == 0
    assert targets(heard_at_phc, "MV")[L.MURMUR.name] == 2
    elsewhere = patient("Present", ("MV",), **SYSTOLIC_MURMUR)
    assert targets(elsewhere, "Phc")[L.MURMUR.name] == 2


def test_repeated_site_recordings_share_the_location_rule():
    """CirCor's second AV recording (``<id>_AV_2``) has location AV: heard there like ``<id>_AV_1``."""
    p = patient("Present", ("AV",), **SYSTOLIC_MURMUR)
    first = recording_targets(p, rec("AV", "1_AV_1"), HEADS)
    second = recording_targets(p, rec("AV", "1_AV_2"), HEADS)
    assert first == second and first[L.MURMUR.name] == 0 and first[SYS_T] == 2
    # the name is never looked at: only the location decides
    assert recording_targets(p, rec("MV", "1_AV_2"), HEADS)[L.MURMUR.name] == 2


def test_present_patient_without_murmur_locations_is_present_everywhere():
    p = patient("Present", (), **SYSTOLIC_MURMUR)
    for loc in L.LOCATIONS:
        t = targets(p, loc)
        assert t[L.MURMUR.name] == 0 and {k: t[k] for k in SYSTOLIC_IDS} == SYSTOLIC_IDS


def test_absent_and_unknown_patients_pass_their_label_to_every_recording():
    for loc in L.LOCATIONS:
        assert targets(patient("Absent", outcome="Normal"), loc)[L.MURMUR.name] == 2
        assert targets(patient("Unknown"), loc)[L.MURMUR.name] == 1
    # Murmur locations only matter for Present patients (CirCor leaves them 'nan' otherwise)
    assert targets(patient("Unknown", ("AV",)), "AV")[L.MURMUR.name] == 1
    assert targets(patient("Absent", ("AV",)), "AV")[L.MURMUR.name] == 2


# ------------------------------------------------------------------------------------------------
# character features


def test_a_recording_where_the_murmur_is_heard_takes_the_patients_classes():
    p = patient("Present", ("MV",), **SYSTOLIC_MURMUR, **DIASTOLIC_MURMUR)
    for mode in ("heard", "masked"):
        t = targets(p, "MV", mode)
        assert {k: t[k] for k in SYSTOLIC_IDS} == SYSTOLIC_IDS
        assert {k: t[k] for k in DIASTOLIC_IDS} == DIASTOLIC_IDS


def test_a_heard_recording_learns_nan_for_the_murmur_the_patient_does_not_have():
    """A systolic-only patient: the heard recording's diastolic targets are 'nan' (0), never skipped."""
    p = patient("Present", ("MV",), **SYSTOLIC_MURMUR)
    for mode in ("heard", "masked"):
        t = targets(p, "MV", mode)
        assert {k: t[k] for k in DIASTOLIC_IDS} == NO_DIASTOLIC_IDS
    diastolic_only = patient("Present", ("AV",), **DIASTOLIC_MURMUR)
    t = targets(diastolic_only, "AV")
    assert {k: t[k] for k in SYSTOLIC_IDS} == NO_SYSTOLIC_IDS and {k: t[k] for k in DIASTOLIC_IDS} == DIASTOLIC_IDS


def test_where_the_murmur_is_not_heard_characters_are_nan_or_skipped_when_masked():
    p = patient("Present", ("MV",), **SYSTOLIC_MURMUR, **DIASTOLIC_MURMUR)
    heard = targets(p, "PV", "heard")
    assert {k: heard[k] for k in CHARACTER} == {k: 0 for k in CHARACTER}  # "nan": no murmur here
    masked = targets(p, "PV", "masked")
    assert {k: masked[k] for k in CHARACTER} == {k: IGNORE for k in CHARACTER}
    assert masked[L.MURMUR.name] == 2  # masking touches the character heads only


def test_absent_patient_characters_are_nan_or_skipped_when_masked():
    p = patient("Absent", outcome="Normal")
    assert {k: targets(p, "AV", "heard")[k] for k in CHARACTER} == {k: 0 for k in CHARACTER}
    assert {k: targets(p, "AV", "masked")[k] for k in CHARACTER} == {k: IGNORE for k in CHARACTER}


def test_unknown_patient_characters_are_always_skipped():
    p = patient("Unknown")
    for mode in ("heard", "masked"):
        t = targets(p, "TV", mode)
        assert {k: t[k] for k in CHARACTER} == {k: IGNORE for k in CHARACTER}
        assert t[L.MURMUR.name] == 1  # while Murmur itself is learnt as Unknown


# ------------------------------------------------------------------------------------------------
# outcome, auxiliary heads, arguments


def test_outcome_is_the_patients_on_every_recording():
    present = patient("Present", ("MV",), outcome="Abnormal", **SYSTOLIC_MURMUR)
    assert targets(present, "MV")[L.OUTCOME.name] == 0
    assert targets(present, "PV")[L.OUTCOME.name] == 0  # also where the murmur is not heard
    assert targets(present, "PV", "masked")[L.OUTCOME.name] == 0
    assert targets(patient("Absent", outcome="Normal"), "AV")[L.OUTCOME.name] == 1
    assert targets(patient("Unknown", outcome="Normal"), "AV", "masked")[L.OUTCOME.name] == 1
    assert targets(patient("Unknown", outcome="Abnormal"), "AV")[L.OUTCOME.name] == 0


def test_other_auxiliary_heads_take_the_patients_label_unchanged():
    """Any head that is not one of the 11 features is a patient label copied to every recording."""
    p = patient("Present", ("MV",), most_audible="MV", **SYSTOLIC_MURMUR)
    heads = [L.MURMUR.name, "Most audible location"]
    assert targets(p, "MV", heads=heads) == {L.MURMUR.name: 0, "Most audible location": 4}
    assert targets(p, "AV", heads=heads) == {L.MURMUR.name: 2, "Most audible location": 4}


def test_only_the_requested_heads_are_returned():
    p = patient("Present", ("MV",), **SYSTOLIC_MURMUR)
    assert targets(p, "MV", heads=[SYS_G]) == {SYS_G: 2}
    assert set(targets(p, "MV")) == set(HEADS) and len(HEADS) == 12


def test_bad_arguments_are_refused():
    p = patient("Present", ("MV",), **SYSTOLIC_MURMUR)
    with pytest.raises(ValueError, match="character_targets"):
        targets(p, "MV", "skip")
    with pytest.raises(L.LabelError, match="unknown feature"):
        targets(p, "MV", heads=["Murmur colour"])


def test_the_patient_is_not_changed():
    p = patient("Present", ("MV",), **SYSTOLIC_MURMUR)
    before = (dict(p.labels), p.murmur_locations)
    targets(p, "AV")
    targets(p, "AV", "masked")
    assert (p.labels, p.murmur_locations) == before


# ------------------------------------------------------------------------------------------------
# through the CirCor loader


def test_loaded_circor_recordings_with_repeated_sites(tmp_path):
    """A dataset in CirCor's layout with two AV recordings per patient (``_AV_1``, ``_AV_2``):
    the loader gives both location AV, so both follow the AV rule of ``Murmur locations``."""
    from murmurlm.signal.synth import write_synthetic_circor

    write_synthetic_circor(tmp_path, num_patients=8, seed=1, locations=("AV", "AV", "MV", "Phc"),
                           duration=(2.0, 2.5), murmur_fraction=0.6)
    patients = load_circor(tmp_path).patients
    present = [p for p in patients if p.labels[L.MURMUR.name] == "Present"]
    # the data hold every case: Unknown and Absent patients, murmurs heard and not heard at AV
    assert {p.labels[L.MURMUR.name] for p in patients} == {"Present", "Unknown", "Absent"}
    assert any("AV" in p.murmur_locations for p in present) and any("AV" not in p.murmur_locations for p in present)
    for p in patients:
        names = [r.name for r in p.recordings]
        assert names == [f"{p.patient_id}_AV_1", f"{p.patient_id}_AV_2", f"{p.patient_id}_MV", f"{p.patient_id}_Phc"]
        got = [recording_targets(p, r, HEADS)[L.MURMUR.name] for r in p.recordings]
        assert got[0] == got[1]  # AV_1 and AV_2 alike
        if p in present:
            assert got == [0 if loc in p.murmur_locations else 2 for loc in ("AV", "AV", "MV", "Phc")]
        else:
            assert got == [L.MURMUR.classes.index(p.labels[L.MURMUR.name])] * 4
