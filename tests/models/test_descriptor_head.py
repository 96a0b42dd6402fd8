"""models.descriptor_head, train.descriptors and the recipe train_descriptor_head: the systolic
character from the average heartbeat, stored as plain arrays, blended with the CNN."""

from __future__ import annotations

import json

import numpy as np
import pytest

from murmurlm.data import labels as L
from murmurlm.errors import ConfigError
from murmurlm.models.descriptor_head import (DescriptorHead, blend_character, fit_descriptor_head,
                                             load_descriptor_head)


def toy(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    y = {}
    for f in L.SYSTOLIC:
        classes = np.array(f.present_classes[:3])
        y[f.name] = classes[np.digitize(x[:, 0], [-0.5, 0.5])]
    return x, y


def test_the_arrays_give_scikit_learns_probabilities():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = toy()
    head = fit_descriptor_head(x, y, names=("a", "b", "c", "d"), c=0.5)
    f = L.SYSTOLIC[0]
    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000).fit(scaler.transform(x), y[f.name])
    want = lr.predict_proba(scaler.transform(x[:5]))
    got = head.predict_proba(x[:5])[f.name]
    present = f.present_classes
    np.testing.assert_allclose(got[:, [present.index(c) for c in lr.classes_]], want, atol=1e-9)
    assert np.allclose(got.sum(axis=1), 1.0)
    assert (got[:, [present.index(c) for c in present if c not in lr.classes_]] == 0).all()  # unseen classes: 0


def test_two_classes_and_the_state_round_trip(tmp_path):
    x, y = toy()
    y = {k: np.where(x[:, 1] > 0, L.feature(k).present_classes[0], L.feature(k).present_classes[1]) for k in y}
    head = fit_descriptor_head(x, y, names=tuple("abcd"))
    again = DescriptorHead.from_state(json.loads(json.dumps(
        {**head.state(), "regressions": {f: {k: np.asarray(v).tolist() if k != "classes" else v for k, v in r.items()}
                                         for f, r in head.state()["regressions"].items()}})))
    for f in L.SYSTOLIC:
        np.testing.assert_allclose(again.predict_proba(x)[f.name], head.predict_proba(x)[f.name])
    with pytest.raises(ValueError, match="3 descriptors given, it was fitted on 4"):
        head.predict_proba(np.zeros((1, 3)))


def test_extra_rows_teach_a_class_the_real_rows_lack():
    x, y = toy()
    timing = L.SYSTOLIC[0]
    rare = [c for c in timing.present_classes if c not in set(y[timing.name])][0]
    extra = {timing.name: (np.full((10, 4), 4.0), [rare] * 10)}
    head = fit_descriptor_head(x, y, names=tuple("abcd"), extra=extra)
    p = head.predict_proba(np.full((1, 4), 4.0))[timing.name][0]
    assert timing.present_classes[int(np.argmax(p))] == rare


def test_blend_keeps_the_murmur_decision_and_mixes_the_classes():
    f = L.SYSTOLIC[0]
    cnn = {f.name: np.array([0.2, 0.8, 0.0, 0.0, 0.0])}  # nan 0.2, all murmur mass on the first class
    head = {f.name: np.array([0.0, 1.0, 0.0, 0.0])}
    out = blend_character(cnn, head, 0.5)[f.name]
    assert out[0] == pytest.approx(0.2) and out.sum() == pytest.approx(1.0)
    assert out[1] == pytest.approx(0.4) and out[2] == pytest.approx(0.4)
    assert blend_character(cnn, head, 0.0)[f.name].tolist() == pytest.approx(cnn[f.name].tolist())


def test_an_ordinal_grade_is_a_monotone_distribution_that_round_trips():
    """grade I < II < III as cumulative logits: probabilities are a distribution, the answer climbs
    the scale as the loudness descriptor does, and the state keeps the kind."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((90, 3))
    grading = L.SYSTOLIC[2]
    y = {f.name: np.array(f.present_classes[:3])[np.digitize(x[:, 0], [-0.6, 0.6])] for f in L.SYSTOLIC}
    head = fit_descriptor_head(x, y, names=("loud", "b", "c"), ordinal=(grading.name,))
    assert head.regressions[grading.name].kind == "ordinal" and head.regressions[L.SYSTOLIC[0].name].kind == "multinomial"
    grid = np.column_stack([np.linspace(-3, 3, 13), np.zeros(13), np.zeros(13)])
    p = head.predict_proba(grid)[grading.name]
    assert (p >= -1e-12).all() and np.allclose(p.sum(axis=1), 1.0)
    answers = p.argmax(axis=1)
    assert answers[0] == 0 and answers[-1] == 2 and (np.diff(answers) >= 0).all()
    again = DescriptorHead.from_state(json.loads(json.dumps(
        {**head.state(), "regressions": {f: {k: np.asarray(v).tolist() if k not in ("classes", "kind") else v
                                             for k, v in r.items()} for f, r in head.state()["regressions"].items()}})))
    np.testing.assert_allclose(again.predict_proba(grid)[grading.name], p)
    bad = head.state()
    bad["regressions"][grading.name]["kind"] = "tree"
    with pytest.raises(ValueError, match="unknown regression kind"):
        DescriptorHead.from_state(bad)


def test_the_diastolic_detector_decides_the_diastolic_murmur_and_the_cnn_its_character():
    from murmurlm.evaluate.aggregate import aggregate_patient
    from murmurlm.models.descriptor_head import DIASTOLIC_PRESENCE

    x, y = toy()
    dia = x[:, 1] > 1.0  # the detector's descriptor
    head = fit_descriptor_head(x, y, names=tuple("abcd"), diastolic=(x, dia))
    p = head.predict_proba(np.array([[0.0, 3.0, 0.0, 0.0], [0.0, -3.0, 0.0, 0.0]]))[DIASTOLIC_PRESENCE]
    assert p.shape == (2, 2) and p[0, 1] > 0.9 and p[1, 1] < 0.1
    # one patient: the CNN hears a murmur but no diastolic one (P(nan) 0.99), with Early-diastolic its
    # favourite diastolic class; the head says there is one
    probs = {f.name: np.tile(np.eye(f.num_classes)[1] * 0.5 + np.full(f.num_classes, 0.5 / f.num_classes), (1, 1))
             for f in L.SYSTOLIC}
    probs[L.MURMUR.name] = np.array([[0.9, 0.05, 0.05]])
    for f in L.DIASTOLIC:
        v = np.full(f.num_classes, 0.002)
        v[0], v[1] = 0.99, 0.01
        probs[f.name] = (v / v.sum())[None]
    character = {f: v[0] for f, v in head.predict_proba(np.array([[0.0, 3.0, 0.0, 0.0]])).items()}
    said = aggregate_patient(probs, character=character).labels
    assert said[L.DIASTOLIC[0].name] == "Early-diastolic" and said[L.DIASTOLIC[1].name] == "Decrescendo"
    blended = blend_character({f: v[0] for f, v in probs.items()}, character)
    assert blended[L.DIASTOLIC[0].name][0] == pytest.approx(1.0 - character[DIASTOLIC_PRESENCE][1])
    no = {f: v[0] for f, v in head.predict_proba(np.array([[0.0, -3.0, 0.0, 0.0]])).items()}
    assert aggregate_patient(probs, character=no).labels[L.DIASTOLIC[0].name] == L.NO_MURMUR
    with pytest.raises(ValueError, match="with and without"):
        fit_descriptor_head(x, y, names=tuple("abcd"), diastolic=(x, np.zeros(len(x), bool)))


def test_the_packaged_head_loads_and_a_bad_file_is_a_clear_error(tmp_path):
    from murmurlm.signal.descriptors import DESCRIPTOR_NAMES

    head = load_descriptor_head()
    from murmurlm.models.descriptor_head import DIASTOLIC_PRESENCE

    assert head.names == tuple(DESCRIPTOR_NAMES)
    assert set(head.regressions) == {f.name for f in L.SYSTOLIC} | {DIASTOLIC_PRESENCE}  # with the diastolic detector
    assert head.meta["weight"] == 0.5 and head.meta["transplants_per_class"] > 0
    assert head.meta["config"]["diastolic_transplants"] > 0 and not head.meta["config"]["ordinal_grading"]
    with pytest.raises(ConfigError, match="no such descriptor head"):
        load_descriptor_head(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a descriptor head"):
        load_descriptor_head(tmp_path / "bad.json")


@pytest.mark.slow
def test_the_recipe_fits_a_head_that_predict_dataset_uses(tmp_path):
    from murmurlm.data.circor import load_circor
    from murmurlm.inference.predict import load_model, predict_dataset
    from murmurlm.recipes import train_descriptor_head as recipe
    from murmurlm.signal.synth import write_synthetic_circor

    root = tmp_path / "circor"
    write_synthetic_circor(root, num_patients=24, seed=3, locations=("MV",), duration=(5.0, 5.0))
    cfg = recipe.load_recipe_config(None, ["segmenter=springer", "transplants_per_class=2"])
    summary = recipe.run(cfg, data=root, out=tmp_path / "run", progress=False)
    assert summary["patients"] >= 10 and (tmp_path / "run" / "descriptor-head.json").is_file()
    head = load_descriptor_head(tmp_path / "run" / "descriptor-head.json")
    model = load_model()
    plain, _ = predict_dataset(model, root, progress=False, descriptor_head=None)
    described, _ = predict_dataset(model, root, progress=False, descriptor_head=head, segmenter="springer")
    assert (plain[L.MURMUR.name] == described[L.MURMUR.name]).all()  # the murmur decision is the CNN's
    cols = [c for c in plain.columns if c.startswith("P(Systolic murmur timing=")]
    assert not np.allclose(plain[cols].to_numpy(float), described[cols].to_numpy(float))
    ids = [p.patient_id for p in load_circor(root).patients]
    assert sorted(described.index.astype(str)) == sorted(ids)


@pytest.mark.slow
def test_predict_on_a_circor_folder_uses_the_packaged_head_unless_told_not_to(tmp_path, capsys):
    import pandas as pd

    from murmurlm.cli import main
    from murmurlm.signal.synth import write_synthetic_circor

    root = tmp_path / "circor"
    write_synthetic_circor(root, num_patients=4, seed=8, locations=("AV", "MV"), duration=(5.0, 5.0))
    assert main(["predict", str(root), "--out", str(tmp_path / "with.csv")]) == 0
    assert main(["predict", str(root), "--out", str(tmp_path / "without.csv"), "--descriptor-head", "none"]) == 0
    with_head, without = pd.read_csv(tmp_path / "with.csv"), pd.read_csv(tmp_path / "without.csv")
    assert (with_head["Murmur"] == without["Murmur"]).all()
    cols = [c for c in with_head.columns if c.startswith("P(Systolic murmur shape=")]
    assert not np.allclose(with_head[cols].to_numpy(float), without[cols].to_numpy(float))
    assert main(["predict", str(root), "--descriptor-head", str(tmp_path / "missing.json")]) == 2
    assert "no such descriptor head" in capsys.readouterr().err


def test_the_packaged_default_carries_its_head_and_a_single_recording_uses_it():
    from murmurlm.inference.predict import load_model, predict_recording
    from murmurlm.signal.synth import MurmurSpec, synth_pcg

    model = load_model()
    assert model.descriptor_head is not None and load_model(descriptor_head=None).descriptor_head is None
    pcg = synth_pcg(8.0, 4000, heart_rate=75, murmurs=[MurmurSpec(grade="III/VI")], seed=4)
    with_head = predict_recording(model, pcg.waveform, 4000)
    model.descriptor_head = None
    alone = predict_recording(model, pcg.waveform, 4000)
    assert with_head.labels[L.MURMUR.name] == alone.labels[L.MURMUR.name]
    np.testing.assert_array_equal(with_head.probabilities[L.MURMUR.name], alone.probabilities[L.MURMUR.name])
    shape = "Systolic murmur shape"
    assert not np.allclose(with_head.probabilities[shape], alone.probabilities[shape])
    assert with_head.probabilities[shape].sum() == pytest.approx(1.0)
