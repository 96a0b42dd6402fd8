"""Physical properties of the synthetic PCG and the CirCor layout written by write_synthetic_circor."""

from __future__ import annotations

import csv
import filecmp
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal as sps

from murmurlm.data import labels as L
from murmurlm.data.circor import load_circor, read_hea, read_patient_txt
from murmurlm.signal.synth import (
    CSV_COLUMNS, PITCH_BANDS, MurmurSpec, labels_for, synth_pcg, write_synthetic_circor,
)

FS = 4000


def murmur_only(spec: MurmurSpec, seed: int = 3, duration: float = 10.0, **kw):
    """The murmur alone: the same seeded recording with and without it, noise off (heart sounds are
    drawn before the murmur, so they are identical in both)."""
    with_m = synth_pcg(duration, FS, murmurs=[spec], noise=0.0, seed=seed, **kw)
    without = synth_pcg(duration, FS, murmurs=[], noise=0.0, seed=seed, **kw)
    return with_m, with_m.waveform.astype(np.float64) - without.waveform


def inner(segments, state):
    """Segments of one state, without those cut by the recording's edges."""
    return [s for s in segments[1:-1] if s.state == state]


def psd(x):
    return sps.welch(x, FS, nperseg=1024)


# --------------------------------------------------------------------------------------------
# heart cycle


@pytest.mark.parametrize("heart_rate", [55.0, 80.0, 120.0, 160.0])
def test_heart_rate_recovered_from_segments(heart_rate):
    pcg = synth_pcg(20.0, FS, heart_rate=heart_rate, seed=int(heart_rate))
    s1 = np.array([s.start for s in inner(pcg.segments, 1)])
    measured = 60.0 / np.median(np.diff(s1))
    assert measured == pytest.approx(heart_rate, rel=0.03)
    cycles = np.diff(s1)
    assert 0.005 < cycles.std() / cycles.mean() < 0.1  # jitter present, moderate


def test_segments_tile_the_recording_in_cardiac_order():
    pcg = synth_pcg(7.3, FS, heart_rate=75, seed=5)
    segs = pcg.segments
    assert segs[0].start == 0.0 and segs[-1].end == pytest.approx(len(pcg.waveform) / FS, abs=1e-6)
    for a, b in zip(segs, segs[1:]):
        assert a.end == b.start
        assert b.state == a.state % 4 + 1
    systole = [s.duration for s in inner(segs, 2)]
    assert all(0.2 - 1e-6 <= d <= 0.4 + 1e-6 for d in systole)
    assert all(0.07 < s.duration < 0.16 for s in inner(segs, 1) + inner(segs, 3))


def test_unannotated_lead_in_and_out_are_state_zero_and_noisier():
    pcg = synth_pcg(10.0, FS, unannotated=1.0, noise=0.02, seed=2)
    first, last = pcg.segments[0], pcg.segments[-1]
    assert first.state == 0 and last.state == 0
    assert first.end >= 1.0 and last.start <= 9.0
    assert {s.state for s in pcg.segments[1:-1]} == {1, 2, 3, 4}
    clean = synth_pcg(10.0, FS, unannotated=1.0, noise=0.0, seed=2).waveform
    noise = pcg.waveform - clean
    assert noise[: FS // 2].std() > 2 * noise[4 * FS: 6 * FS].std()


def test_heart_sounds_are_low_frequency_s2_higher_than_s1():
    pcg = synth_pcg(20.0, FS, noise=0.0, seed=4)
    w = pcg.waveform.astype(np.float64)
    centroid = {}
    for state in (1, 3):
        x = np.concatenate([w[round(s.start * FS): round(s.end * FS)] for s in inner(pcg.segments, state)])
        f, p = sps.welch(x, FS, nperseg=256)
        assert p[f <= 150].sum() / p.sum() > 0.95
        centroid[state] = (f * p).sum() / p.sum()
    assert 30 < centroid[1] < centroid[3] < 120
    assert 0.2 < np.abs(w).max() < 0.95


# --------------------------------------------------------------------------------------------
# murmurs


@pytest.mark.parametrize("timing,third", [("Early-systolic", 0), ("Mid-systolic", 1), ("Late-systolic", 2)])
def test_systolic_murmur_energy_in_its_third_of_systole(timing, third):
    pcg, m = murmur_only(MurmurSpec(timing=timing))
    thirds = np.zeros(3)
    for s in inner(pcg.segments, 2):
        seg = m[round(s.start * FS): round(s.end * FS)]
        k = len(seg)
        for j in range(3):
            thirds[j] += (seg[j * k // 3: (j + 1) * k // 3] ** 2).sum()
    outside = sum((m[round(s.start * FS): round(s.end * FS)] ** 2).sum()
                  for s in pcg.segments[1:-1] if s.state != 2)
    assert outside == 0.0
    assert thirds[third] / thirds.sum() > 0.95


def test_holosystolic_fills_systole_and_diastolic_murmur_stays_in_diastole():
    pcg, m = murmur_only(MurmurSpec(timing="Holosystolic"))
    for s in inner(pcg.segments, 2):
        seg = m[round(s.start * FS): round(s.end * FS)]
        k = len(seg)
        parts = [(seg[j * k // 3: (j + 1) * k // 3] ** 2).sum() for j in range(3)]
        assert min(parts) > 0.1 * sum(parts)
    spec = MurmurSpec("diastolic", "Holodiastolic", "Plateau", "II/IV", "Low", "Blowing")
    pcg, m = murmur_only(spec)
    energy = {st: sum((m[round(s.start * FS): round(s.end * FS)] ** 2).sum() for s in pcg.segments if s.state == st)
              for st in (1, 2, 3, 4)}
    assert energy[4] > 0 and energy[1] == energy[2] == energy[3] == 0.0


@pytest.mark.parametrize("pitch", ["Low", "Medium", "High"])
def test_blowing_murmur_energy_in_its_pitch_band(pitch):
    _, m = murmur_only(MurmurSpec(pitch=pitch, quality="Blowing"))
    f, p = psd(m)
    lo, hi = PITCH_BANDS[pitch]
    assert p[(f >= lo) & (f <= hi)].sum() / p.sum() > 0.9


def test_pitch_orders_spectral_centroid():
    centroids = []
    for pitch in ("Low", "Medium", "High"):
        for quality in ("Blowing", "Harsh", "Musical"):
            _, m = murmur_only(MurmurSpec(pitch=pitch, quality=quality), seed=7)
            f, p = psd(m)
            centroids.append(((f * p).sum() / p.sum(), pitch, quality))
    for quality in ("Blowing", "Harsh", "Musical"):
        c = [x[0] for x in centroids if x[2] == quality]
        assert c[0] < c[1] < c[2], (quality, c)


def test_louder_grade_more_energy():
    energies = [(murmur_only(MurmurSpec(grade=g))[1] ** 2).sum() for g in ("I/VI", "II/VI", "III/VI")]
    assert energies[0] < energies[1] < energies[2]
    assert energies[2] / energies[0] > 4.0


@pytest.mark.parametrize("shape", ["Crescendo", "Decrescendo", "Diamond", "Plateau"])
def test_shape_is_the_envelope_inside_the_window(shape):
    pcg, m = murmur_only(MurmurSpec(shape=shape, timing="Holosystolic", quality="Blowing", pitch="High"))
    parts = np.zeros(3)
    for s in inner(pcg.segments, 2):
        seg = m[round(s.start * FS): round(s.end * FS)]
        k = len(seg)
        parts += [(seg[j * k // 3: (j + 1) * k // 3] ** 2).sum() for j in range(3)]
    first, middle, last = parts / parts.sum()
    if shape == "Crescendo":
        assert first < middle < last
    elif shape == "Decrescendo":
        assert first > middle > last
    elif shape == "Diamond":
        assert middle > 1.5 * max(first, last)
    else:
        assert max(parts) / min(parts) < 1.6


def test_musical_quality_is_tonal():
    """Musical murmurs concentrate power in a few spectral lines; noise murmurs spread it."""
    def peakiness(quality, pitch):
        _, m = murmur_only(MurmurSpec(quality=quality, pitch=pitch), seed=11)
        f, p = psd(m)
        return p.max() / p.sum(), f[np.argmax(p)]

    for pitch in ("Low", "Medium", "High"):
        musical, f0 = peakiness("Musical", pitch)
        lo, hi = PITCH_BANDS[pitch]
        assert lo <= f0 <= hi
        assert musical > 4 * peakiness("Blowing", pitch)[0]
        assert musical > 4 * peakiness("Harsh", pitch)[0]


def test_harsh_is_broader_and_rougher_than_blowing():
    def stats(quality):
        _, m = murmur_only(MurmurSpec(quality=quality, pitch="Medium", timing="Holosystolic"), seed=13)
        f, p = psd(m)
        lo, hi = PITCH_BANDS["Medium"]
        out_of_band = p[(f < lo) | (f > hi)].sum() / p.sum()
        env = np.abs(sps.hilbert(m))
        active = env[env > 1e-9]
        return out_of_band, active.std() / active.mean()

    harsh, blowing = stats("Harsh"), stats("Blowing")
    assert harsh[0] > blowing[0] + 0.1
    assert harsh[1] > blowing[1]


def test_deterministic_for_a_seed():
    specs = [MurmurSpec(), MurmurSpec("diastolic", "Early-diastolic", "Decrescendo", "I/IV", "High", "Harsh")]
    a = synth_pcg(5.0, FS, murmurs=specs, unannotated=0.5, seed=42)
    b = synth_pcg(5.0, FS, murmurs=specs, unannotated=0.5, seed=42)
    c = synth_pcg(5.0, FS, murmurs=specs, unannotated=0.5, seed=43)
    assert np.array_equal(a.waveform, b.waveform) and a.segments == b.segments
    assert not np.array_equal(a.waveform, c.waveform)
    assert a.waveform.dtype == np.float32 and np.abs(a.waveform).max() < 0.95 + 1e-6


def test_other_sampling_rates_and_fast_heart_rate():
    pcg = synth_pcg(4.0, 2000, heart_rate=150, murmurs=[MurmurSpec(pitch="High")], seed=0)
    assert len(pcg.waveform) == 8000 and pcg.sampling_rate == 2000
    assert all(s.duration > 0 for s in pcg.segments)


# --------------------------------------------------------------------------------------------
# validation and labels


def test_murmurspec_rejects_invalid_values_listing_valid_ones():
    with pytest.raises(L.LabelError, match="valid: Early-systolic, Holosystolic"):
        MurmurSpec(timing="Holodiastolic")
    with pytest.raises(L.LabelError, match="Blowing, Harsh"):
        MurmurSpec("diastolic", "Early-diastolic", "Decrescendo", "I/IV", "Low", "Musical")
    with pytest.raises(L.LabelError, match="systolic, diastolic"):
        MurmurSpec(kind="both")
    with pytest.raises(L.LabelError, match="I/VI"):
        MurmurSpec(grade="IV/VI")


@pytest.mark.parametrize("kwargs", [
    dict(duration=0.0), dict(sampling_rate=4000.0), dict(sampling_rate=500), dict(heart_rate=10.0),
    dict(noise=-1.0), dict(unannotated=3.0), dict(heart_rate_jitter=0.5), dict(noise=float("nan")),
    dict(unannotated=float("nan")), dict(heart_rate=float("nan")), dict(duration=float("inf")),
])
def test_synth_pcg_rejects_bad_arguments(kwargs):
    args = dict(duration=5.0, sampling_rate=FS) | kwargs
    with pytest.raises(ValueError):
        synth_pcg(**args)


def test_labels_for_gives_all_eleven_features():
    sys_ = MurmurSpec("systolic", "Mid-systolic", "Diamond", "III/VI", "High", "Musical")
    dia = MurmurSpec("diastolic", "Mid-diastolic", "Plateau", "I/IV", "Low", "Harsh")
    labels = labels_for([sys_, dia])
    assert list(labels) == list(L.FEATURE_NAMES)
    assert labels["Murmur"] == "Present" and labels["Systolic murmur quality"] == "Musical"
    assert labels["Diastolic murmur grading"] == "I/IV"
    for f in L.FEATURES:
        f.normalise(labels[f.name])  # every value is a valid class
    only_sys = labels_for([sys_])
    assert all(only_sys[f.name] == L.NO_MURMUR for f in L.DIASTOLIC)
    assert labels_for([]) == {f.name: ("Absent" if f is L.MURMUR else L.NO_MURMUR) for f in L.FEATURES}
    with pytest.raises(ValueError, match="at most one systolic"):
        labels_for([sys_, sys_])


# --------------------------------------------------------------------------------------------
# the CirCor layout


@pytest.fixture(scope="module")
def small_circor(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("syn")
    ids = write_synthetic_circor(root, num_patients=8, seed=1, duration=(3.0, 4.0))
    return root, ids


def test_layout_reads_back(small_circor):
    root, ids = small_circor
    data = load_circor(root)
    assert [p.patient_id for p in data.patients] == ids
    assert all(i.isdigit() for i in ids) and len(set(ids)) == len(ids)
    assert data.problems == []
    murmur = [p.labels["Murmur"] for p in data.patients]
    assert murmur.count("Unknown") == 2 and murmur.count("Present") == 4
    for p in data.patients:
        assert [r.location for r in p.recordings] == ["AV", "PV", "TV", "MV"]
        present = p.labels["Murmur"] == "Present"
        assert bool(p.murmur_locations) == present
        assert (p.labels["Most audible location"] in p.murmur_locations) == present
        assert L.has_murmur(p.labels, "systolic") == present
        for r in p.recordings:
            audio = r.load_audio()  # checks rate and the .hea's sample count
            assert 3.0 * FS <= len(audio) <= 4.0 * FS
            segs = r.load_segments()
            assert segs[0].start == 0.0 and segs[-1].end == pytest.approx(len(audio) / FS, abs=1e-6)
            assert {1, 2, 3, 4} <= {s.state for s in segs}


def test_layout_files_match_the_official_format(small_circor):
    root, ids = small_circor
    folder = root / "training_data"
    assert sorted(p.name for p in root.iterdir()) == ["training_data", "training_data.csv"]
    expected = {f"{i}.txt" for i in ids} | {
        f"{i}_{loc}.{ext}" for i in ids for loc in ("AV", "PV", "TV", "MV") for ext in ("wav", "hea", "tsv")}
    assert {p.name for p in folder.iterdir()} == expected
    rows = list(csv.reader((root / "training_data.csv").read_text().splitlines()))
    assert tuple(rows[0]) == CSV_COLUMNS
    pid = ids[0]
    hea_bytes = (folder / f"{pid}_AV.hea").read_bytes()
    lines = hea_bytes.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) == 3 and b"\n" not in hea_bytes.replace(b"\r\n", b"")
    assert lines[1] == f"{pid}_AV.wav 16+44 1 16 0 0 0 0 AV".encode()
    hea = read_hea(folder / f"{pid}_AV.hea")
    info = sf.info(str(folder / f"{pid}_AV.wav"))
    assert (info.subtype, info.samplerate, info.channels, info.frames) == ("PCM_16", FS, 1, hea.num_samples)
    assert (folder / f"{pid}_AV.wav").stat().st_size == 44 + 2 * hea.num_samples  # data offset 44
    header = read_patient_txt(folder / f"{pid}.txt")
    assert list(header.fields) == list(CSV_COLUMNS[2:])
    row = dict(zip(rows[0], rows[1]))
    assert header.fields == {k: row[k] for k in CSV_COLUMNS[2:]}
    for line in (folder / f"{pid}_AV.tsv").read_text().splitlines():
        start, end, state = line.split("\t")
        assert state in {"0", "1", "2", "3", "4"}
        for number in (start, end):
            assert not number.endswith("0") or number == "0"
            assert len(number.partition(".")[2]) <= 6


def test_layout_matches_real_circor_header_and_fields(small_circor, circor_root):
    root, ids = small_circor
    real = (circor_root / "training_data.csv").read_text().splitlines()[0]
    assert (root / "training_data.csv").read_text().splitlines()[0] == real
    real_txt = sorted((circor_root / "training_data").glob("*.txt"))[0]
    assert list(read_patient_txt(real_txt).fields) == list(
        read_patient_txt(root / "training_data" / f"{ids[0]}.txt").fields)


def test_write_is_deterministic(tmp_path):
    a = write_synthetic_circor(tmp_path / "a", num_patients=3, seed=5, duration=(2.0, 2.5))
    b = write_synthetic_circor(tmp_path / "b", num_patients=3, seed=5, duration=(2.0, 2.5))
    c = write_synthetic_circor(tmp_path / "c", num_patients=3, seed=6, duration=(2.0, 2.5))
    assert a == b and a != c
    names = sorted(p.name for p in (tmp_path / "a" / "training_data").iterdir())
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a" / "training_data", tmp_path / "b" / "training_data",
                                               names, shallow=False)
    assert not mismatch and not errors
    assert filecmp.cmp(tmp_path / "a" / "training_data.csv", tmp_path / "b" / "training_data.csv", shallow=False)


def test_given_specs_and_repeated_locations(tmp_path):
    specs = [[MurmurSpec(quality="Musical", pitch="High")], [],
             [MurmurSpec(), MurmurSpec("diastolic", "Early-diastolic", "Decrescendo", "III/IV", "Low", "Blowing")]]
    write_synthetic_circor(tmp_path, num_patients=3, seed=0, locations=("PV", "TV", "TV"),
                           duration=(2.0, 2.0), specs=specs)
    data = load_circor(tmp_path)
    for p, s in zip(data.patients, specs):
        assert {k: p.labels[k] for k in L.FEATURE_NAMES} == labels_for(s)
        assert [r.name for r in p.recordings] == [f"{p.patient_id}_PV", f"{p.patient_id}_TV_1", f"{p.patient_id}_TV_2"]
        assert p.metadata is not None
    rows = list(csv.DictReader((tmp_path / "training_data.csv").read_text().splitlines()))
    assert rows[0]["Recording locations:"] == "PV+TV+TV"


def test_murmur_is_loudest_at_the_most_audible_location(tmp_path):
    spec = MurmurSpec(grade="III/VI", quality="Blowing", pitch="High")
    write_synthetic_circor(tmp_path, num_patients=4, seed=3, duration=(4.0, 4.0), specs=[[spec]] * 4)
    for p in load_circor(tmp_path).patients:
        power = {}
        for r in p.recordings:
            f, psd_ = sps.welch(r.load_audio().astype(np.float64), FS, nperseg=512)
            power[r.location] = psd_[(f > 250) & (f < 550)].sum()  # above the heart sounds
        loudest = p.labels["Most audible location"]
        assert max(power, key=power.get) == loudest
        for loc in set(power) - set(p.murmur_locations):
            assert power[loc] < power[loudest] / 3


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_patients=0), "num_patients"), (dict(locations=("XX",)), "unknown location"),
    (dict(duration=(5.0, 2.0)), "duration"), (dict(specs=[[]]), "one per patient"),
    (dict(murmur_fraction=2.0), "murmur_fraction"), (dict(sampling_rate=500), "sampling_rate"),
])
def test_write_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_synthetic_circor(tmp_path / "out", **({"num_patients": 2} | kwargs))
    assert not (tmp_path / "out").exists()  # nothing written


# --------------------------------------------------------------------------------------------
# properties over random arguments


@settings(max_examples=30, deadline=None)
@given(duration=st.floats(0.3, 6.0), heart_rate=st.floats(30.0, 220.0), jitter=st.floats(0.0, 0.2),
       unannotated=st.floats(0.0, 0.14), rate=st.sampled_from([1000, 2000, 4000, 8000]),
       seed=st.integers(0, 2**31 - 1))
def test_segments_always_tile_the_recording(duration, heart_rate, jitter, unannotated, rate, seed):
    pcg = synth_pcg(duration, rate, heart_rate=heart_rate, murmurs=[MurmurSpec()], heart_rate_jitter=jitter,
                    unannotated=unannotated, seed=seed)
    n = len(pcg.waveform)
    assert n == round(duration * rate) and np.all(np.isfinite(pcg.waveform))
    assert np.abs(pcg.waveform).max() <= 0.95 + 1e-6
    segs = pcg.segments
    assert segs[0].start == 0.0 and segs[-1].end == pytest.approx(n / rate, abs=1e-6)
    for a, b in zip(segs, segs[1:]):
        assert a.end == b.start and a.end > a.start
        assert b.state == a.state % 4 + 1 or 0 in (a.state, b.state)
    if unannotated > 0:
        assert segs[0].state == 0 and segs[-1].state == 0
