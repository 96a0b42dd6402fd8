"""The compact model's inference API: load_model, Predictor, predict_recording/files/dataset."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from murmurlm.data import labels as L
from murmurlm.errors import MurmurlmError
from murmurlm.inference.predict import (DEFAULT_CHECKPOINT, Predictor, load_model, predict_dataset, predict_files,
                                        predict_recording, save_model)
from murmurlm.models.compact import CompactConfig, CompactModel
from murmurlm.signal.features import FrontEnd
from murmurlm.signal.synth import synth_pcg


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained tiny model saved as an inference checkpoint (the format :func:`load_model` reads)."""
    torch.manual_seed(0)
    fe = FrontEnd(n_mels=32)
    model = CompactModel(CompactConfig(n_mels=32, channels=(4, 8))).eval()
    path = tmp_path_factory.mktemp("model") / "best.pt"
    save_model(path, model, fe, window_seconds=2.0, hop_seconds=1.0, config={"note": "test"})
    return path


def pcg(seconds: float = 5.0, rate: int = 4000, seed: int = 0) -> np.ndarray:
    return synth_pcg(seconds, sampling_rate=rate, heart_rate=80, seed=seed).waveform


def test_load_model_restores_the_saved_model(checkpoint):
    predictor = load_model(checkpoint)
    assert isinstance(predictor, Predictor)
    assert predictor.front_end.n_mels == 32 and predictor.config == {"note": "test"}
    assert predictor.heads == (*L.FEATURE_NAMES, L.OUTCOME.name)
    assert load_model(checkpoint.parent).path == checkpoint  # a run folder means its best.pt


@pytest.mark.parametrize("rate", [4000, 8000, 44100])
def test_predict_waveform_gives_probabilities_in_schema_order_at_any_rate(checkpoint, rate):
    probs = load_model(checkpoint).predict_waveform(pcg(rate=rate), rate)
    for name in (*L.FEATURE_NAMES, L.OUTCOME.name):
        assert probs[name].shape == (L.feature(name).num_classes,)
        assert abs(probs[name].sum() - 1.0) < 1e-6 and np.all(probs[name] >= 0)


def test_predictions_are_deterministic_and_consistent(checkpoint):
    predictor = load_model(checkpoint)
    x = pcg(seed=3)
    a, b = predictor.predict_waveform(x, 4000), predictor.predict_waveform(x, 4000)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    pred = predict_recording(predictor, x, 4000)
    assert pred.labels == L.make_consistent(pred.labels)
    assert set(pred.labels) >= set(L.FEATURE_NAMES)


def test_short_and_bad_waveforms(checkpoint):
    predictor = load_model(checkpoint)
    assert predictor.predict_waveform(pcg(0.3), 4000)["Murmur"].shape == (3,)  # shorter than a window
    with pytest.raises(ValueError, match="1-D"):
        predictor.predict_waveform(np.zeros((2, 100)), 4000)


def test_predict_files_reports_and_skips_unreadable_files(checkpoint, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, pcg(rate=8000), 8000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 4000)
    missing = tmp_path / "missing.flac"
    results, problems = predict_files(load_model(checkpoint), [good, broken, empty, missing])
    assert list(results) == ["good"]
    assert results["good"].labels[L.MURMUR.name] in L.MURMUR.classes
    assert sorted(p.path.name for p in problems) == ["broken.wav", "empty.wav", "missing.flac"]
    assert all(p.severity == "error" and p.message for p in problems)


def test_predict_dataset_skips_a_broken_recording_and_keeps_the_patient(checkpoint, synthetic_circor, tmp_path):
    from murmurlm.data.circor import load_circor
    from murmurlm.evaluate.predictions import prob_column

    root = tmp_path / "data"
    shutil.copytree(synthetic_circor, root)
    patients = load_circor(root).patients[:3]
    patients[0].recordings[0].audio_path.write_bytes(b"not audio")
    ids = [p.patient_id for p in patients]
    frame, problems = predict_dataset(load_model(checkpoint), root, ids, progress=False)
    assert list(frame.index) == ids
    assert len(problems) == 1 and problems[0].path == patients[0].recordings[0].audio_path
    assert np.allclose(frame[[prob_column("Murmur", c) for c in L.MURMUR.classes]].sum(axis=1), 1.0, atol=1e-4)


def test_predict_dataset_gives_no_row_to_a_patient_without_a_readable_recording(checkpoint, synthetic_circor,
                                                                                 tmp_path):
    from murmurlm.data.circor import load_circor

    root = tmp_path / "data"
    shutil.copytree(synthetic_circor, root)
    patients = load_circor(root).patients[:3]
    for rec in patients[1].recordings:  # every recording of the second patient broken
        rec.audio_path.write_bytes(b"not audio")
    ids = [p.patient_id for p in patients]
    frame, problems = predict_dataset(load_model(checkpoint), root, ids, progress=False)
    assert list(frame.index) == [ids[0], ids[2]]
    broken = {r.audio_path for r in patients[1].recordings}
    assert {p.path for p in problems if p.path in broken} == broken
    [patient_problem] = [p for p in problems if p.path not in broken]
    assert f"patient {ids[1]}: no readable recording; not predicted" in patient_problem.message
    # nobody readable at all: an empty frame, not an error
    empty, _ = predict_dataset(load_model(checkpoint), root, [ids[1]], progress=False)
    assert empty.empty


def test_load_model_errors_name_the_file(tmp_path):
    with pytest.raises(MurmurlmError, match="not found"):
        load_model(tmp_path / "nothing.pt")
    other = tmp_path / "other.pt"
    torch.save({"kind": "something-else"}, other)
    with pytest.raises(MurmurlmError, match="expected 'murmurlm-compact'"):
        load_model(other)


def test_a_checkpoint_without_window_settings_is_an_error_naming_the_file(checkpoint, tmp_path):
    from murmurlm.train.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(checkpoint)
    assert load_model(checkpoint).hop_seconds == 1.0  # what save_model wrote, no fallback
    del ckpt["inference"]["hop_seconds"]
    save_checkpoint(tmp_path / "no_hop.pt", **ckpt)
    with pytest.raises(MurmurlmError, match=r"no_hop\.pt.*lack hop_seconds"):
        load_model(tmp_path / "no_hop.pt")
    del ckpt["inference"]
    save_checkpoint(tmp_path / "no_inference.pt", **ckpt)
    with pytest.raises(MurmurlmError, match=r"no_inference\.pt.*lack window_seconds, hop_seconds"):
        load_model(tmp_path / "no_inference.pt")


def test_packaged_default_model_loads_and_predicts():
    predictor = load_model()
    assert predictor.model.num_params < 500_000
    assert DEFAULT_CHECKPOINT.stat().st_size < 2_000_000
    assert predictor.predict_waveform(pcg(), 4000)["Murmur"].shape == (3,)


def _member(tmp_path, seed: int, n_mels: int = 32, **save_kw):
    torch.manual_seed(seed)
    model = CompactModel(CompactConfig(n_mels=n_mels, channels=(4, 8))).eval()
    path = tmp_path / f"member{seed}.pt"
    save_model(path, model, FrontEnd(n_mels=n_mels), window_seconds=2.0, hop_seconds=1.0,
               config={"seed": seed}, **save_kw)
    return path


def test_ensemble_predicts_the_mean_of_its_members(tmp_path):
    from murmurlm.inference.predict import combine_models
    from murmurlm.models.compact import CompactEnsemble

    paths = [_member(tmp_path, s) for s in (0, 1, 2)]
    ensemble = combine_models(paths, tmp_path / "ensemble.pt")
    assert isinstance(ensemble.model, CompactEnsemble) and len(ensemble.model.members) == 3
    reloaded = load_model(tmp_path / "ensemble.pt")
    assert reloaded.model.num_params == 3 * load_model(paths[0]).model.num_params
    x = pcg(seed=5)
    members = [load_model(p).predict_waveform(x, 4000) for p in paths]
    got = reloaded.predict_waveform(x, 4000)
    for head in got:
        np.testing.assert_allclose(got[head], np.mean([m[head] for m in members], axis=0), atol=1e-6)
    # the members' own configs are kept beside the ensemble's
    from murmurlm.train.checkpoint import load_checkpoint

    assert [c["seed"] for c in load_checkpoint(tmp_path / "ensemble.pt")["member_configs"]] == [0, 1, 2]
    # an ensemble combines further: 3 + 1 members
    bigger = combine_models([tmp_path / "ensemble.pt", _member(tmp_path, 3)], tmp_path / "bigger.pt")
    assert len(bigger.model.members) == 4


def test_ensemble_refuses_unlike_members(tmp_path):
    from murmurlm.inference.predict import combine_models

    a = _member(tmp_path, 0)
    with pytest.raises(MurmurlmError, match="two or more"):
        combine_models([a], tmp_path / "e.pt")
    other_rule = _member(tmp_path, 1, murmur_rule="mean")
    with pytest.raises(MurmurlmError, match="aggregation rules differs"):
        combine_models([a, other_rule], tmp_path / "e.pt")
    other_front_end = _member(tmp_path, 2, n_mels=16)
    with pytest.raises(MurmurlmError, match="front end differs"):
        combine_models([a, other_front_end], tmp_path / "e.pt")
    assert not (tmp_path / "e.pt").exists()
    from murmurlm.models.compact import CompactEnsemble

    m = load_model(a).model
    with pytest.raises(ValueError, match="does not train"):
        CompactEnsemble([m, m])(torch.zeros(1, 32, 100), {"Murmur": torch.zeros(1, dtype=torch.long)})
    with pytest.raises(ValueError, match="heads"):
        CompactEnsemble([m, CompactModel(CompactConfig(n_mels=32, channels=(4, 8), aux_outcome=False))])


def test_a_circor_folder_prediction_says_where_the_murmur_is_heard(synthetic_circor, tmp_path):
    """Murmur locations and Most audible location columns: sites the patient was recorded at, none
    without a Present murmur, and the CSV reads them back unchanged."""
    from murmurlm.data import labels as L
    from murmurlm.data.circor import load_circor
    from murmurlm.evaluate.predictions import read_predictions, write_predictions
    from murmurlm.inference.predict import load_model, predict_dataset

    frame, _ = predict_dataset(load_model(descriptor_head=None), synthetic_circor, progress=False)
    recorded = {p.patient_id: {r.location for r in p.recordings} for p in load_circor(synthetic_circor).patients}
    for pid, row in frame.iterrows():
        sites = set(L.parse_locations(row["Murmur locations"]))
        if row["Murmur"] == "Present":
            assert sites and sites <= recorded[pid] and row["Most audible location"] in sites
        else:
            assert not sites and row["Most audible location"] == "nan"
    write_predictions(frame, tmp_path / "p.csv")
    back = read_predictions(tmp_path / "p.csv")
    assert (back["Murmur locations"] == frame["Murmur locations"]).all()
    assert (back["Most audible location"] == frame["Most audible location"]).all()


def test_calibration_is_fitted_stored_and_changes_probabilities_not_labels(synthetic_circor, tmp_path):
    """calibrate_checkpoint fits one temperature per feature on given patients and stores it in the
    checkpoint; load_model applies it to every patient answer: the probabilities move, the labels
    do not, and the NLL on those patients does not get worse."""
    from murmurlm.data.circor import load_circor
    from murmurlm.evaluate.calibration import negative_log_likelihood
    from murmurlm.evaluate.predictions import probability_matrix
    from murmurlm.inference.predict import calibrate_checkpoint

    path = tmp_path / "model.pt"
    shutil.copyfile(DEFAULT_CHECKPOINT, path)
    ids = [p.patient_id for p in load_circor(synthetic_circor).patients]
    before, _ = predict_dataset(load_model(path), synthetic_circor, ids, progress=False)
    temperatures = calibrate_checkpoint(path, synthetic_circor, ids)
    assert set(temperatures) >= {"Murmur", "Systolic murmur timing"} and all(t > 0 for t in temperatures.values())
    model = load_model(path)
    assert model.calibration == temperatures
    after, _ = predict_dataset(model, synthetic_circor, ids, progress=False)
    labels = [c for c in before.columns if not c.startswith("P(")]
    assert before[labels].equals(after[labels])
    truth = {p.patient_id: p.labels["Murmur"] for p in load_circor(synthetic_circor).patients}
    idx = np.array([L.MURMUR.classes.index(truth[pid]) for pid in before.index])
    nll = [negative_log_likelihood(probability_matrix(f, "Murmur"), idx) for f in (before, after)]
    assert nll[1] <= nll[0] + 1e-9
    if abs(temperatures["Murmur"] - 1.0) > 0.05:
        assert not np.allclose(probability_matrix(before, "Murmur"), probability_matrix(after, "Murmur"))
