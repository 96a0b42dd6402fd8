"""``murmurlm predict``: the 11 murmur features of a recording, some recordings, or a CirCor folder.

- one file: a short summary, or with ``--report`` the readable report (class probabilities, heart
  rate and cycles, quality flag), ``--json`` the same as JSON, ``--plot out.png`` the figure;
- several files, or a folder of audio files: one row per file;
- a CirCor-layout folder (``training_data.csv`` + ``training_data/``): one row per patient.

Rows are written as the predictions CSV that ``murmurlm evaluate`` reads (``--out``, default
stdout). A file that cannot be read is reported and skipped; the exit code is non-zero only when
nothing could be predicted.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import typer

from murmurlm.errors import MurmurlmError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")


def _is_circor_folder(path: Path) -> bool:
    """CirCor's layout: ``training_data/`` or ``training_data.csv``, or patient headers ``<id>.txt``."""
    return path.is_dir() and ((path / "training_data").is_dir() or (path / "training_data.csv").is_file()
                              or any(p.stem.isdigit() for p in path.glob("*.txt")))


def _audio_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise MurmurlmError(f"{p}: no .wav or .flac files and no CirCor layout (training_data/)")
            files.extend(found)
        else:
            files.append(p)
    return files


def predict_command(
    inputs: list[str] = typer.Argument(..., help="An audio file (WAV/FLAC), several, a folder of them, "
                                                 "or a CirCor dataset folder; with --patient, one patient's "
                                                 "recordings as SITE=FILE (AV=a.wav) or CirCor names (<id>_AV.wav)."),
    patient: bool = typer.Option(False, "--patient", help="The inputs are one patient's recordings at several "
                                                          "sites (AV, PV, TV, MV, Phc): one patient answer, with "
                                                          "where the murmur is heard."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Compact checkpoint (default: the packaged model)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Predictions CSV to write (default: stdout for "
                                                                 "folders and several files)."),
    report: bool = typer.Option(False, "--report", help="Readable report for a single file."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Figure of a single file: waveform, spectrogram, "
                                                             "segments, features (PNG)."),
    as_json: bool = typer.Option(False, "--json", help="The single-file report as JSON."),
    segment: bool = typer.Option(True, "--segment/--no-segment", help="Segment heart cycles for the report."),
    segment_method: str = typer.Option("mamba", "--method", "--segment-method",
                                       help="Segmenter: mamba (the better) or springer (faster); as in `segment`."),
    max_duration: float = typer.Option(600.0, "--max-duration", help="Refuse recordings longer than this (s)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
    patients: Optional[Path] = typer.Option(None, "--patients", help="CirCor folder only: predict these patient ids "
                                                                     "(one per line, # comments)."),
    descriptor_head: Optional[str] = typer.Option("default", "--descriptor-head",
                                                  help="The systolic character also from the average heartbeats "
                                                       "(Mamba cycles): 'default' (the packaged head, with the packaged "
                                                       "model only), a head JSON, or 'none' (the CNN alone)."),
    output_format: str = typer.Option("csv", "--format", help="csv: one predictions CSV (--out FILE); challenge: "
                                                              "PhysioNet Challenge 2022 output files, one "
                                                              "<patient>.csv per patient (--out FOLDER)."),
) -> None:
    """Predict the 11 murmur features."""
    from murmurlm.data.circor import Problem
    from murmurlm.data.audio import read_pcg
    from murmurlm.inference.predict import load_model, predict_dataset, predict_recording
    from murmurlm.inference.plot import plot_report
    from murmurlm.inference.report import analyse_recording, render_report

    if patient:
        _predict_patient(inputs, model, out, report, plot, as_json, segment, segment_method, max_duration, threads,
                         descriptor_head)
        return
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.exists():
            raise MurmurlmError(f"{p}: no such file or folder")
    if output_format not in ("csv", "challenge"):
        raise MurmurlmError(f"--format must be csv or challenge, got {output_format!r}")
    if output_format == "challenge" and (out is None or not (len(inputs) == 1 and _is_circor_folder(inputs[0]))):
        raise MurmurlmError("--format challenge writes one file per patient: give one CirCor folder and --out FOLDER")
    if threads is not None and threads < 1:
        raise MurmurlmError(f"--threads must be >= 1, got {threads}")
    predictor = load_model(model, threads=threads, descriptor_head=_head_option(descriptor_head))
    single = len(inputs) == 1 and inputs[0].is_file()
    if (report or as_json or plot) and not single:
        raise MurmurlmError("--report, --json and --plot describe one recording; give a single audio file")

    if single:
        rec = read_pcg(inputs[0], max_duration_s=max_duration)  # at its own rate: each consumer resamples once
        found = analyse_recording(predictor, rec.waveform, rec.sampling_rate, segment=segment,
                                  segment_method=segment_method, notes=rec.notes, source=inputs[0].name)
        rep, prediction = found.report, found.prediction
        if plot:
            plot_report(found.waveform, found.sampling_rate, rep, found.segmentation, plot, title=inputs[0].name,
                        heartbeat=found.heartbeat)
            typer.echo(f"wrote {plot}", err=True)
        if out:
            _write_rows({inputs[0].stem: prediction}, out)
        if as_json:
            typer.echo(json.dumps(rep, indent=2))
        elif report:
            typer.echo(render_report(rep))
        elif not out:
            for f in rep["features"]:
                p = "-" if f["probability"] is None else f"{f['probability']:.2f}"
                typer.echo(f"{f['name']}: {f['label']} ({p})")
            for w in rep["warnings"]:
                typer.echo(f"warning: {w}", err=True)
        return

    problems: list[Problem] = []
    if patients is not None and not (len(inputs) == 1 and _is_circor_folder(inputs[0])):
        raise MurmurlmError("--patients selects patients of a CirCor folder; give one CirCor folder")
    if len(inputs) == 1 and _is_circor_folder(inputs[0]):
        ids = None
        if patients is not None:
            from murmurlm.data.splits import read_patient_list

            ids = read_patient_list(patients)
            if not ids:
                raise MurmurlmError(f"{patients}: no patient ids in the list")
        frame, problems = predict_dataset(predictor, inputs[0], patient_ids=ids)
        _report_problems(problems)
        if frame is None or len(frame) == 0:
            raise MurmurlmError(f"{inputs[0]}: no patient could be predicted")
        if output_format == "challenge":
            from murmurlm.evaluate.challenge import write_challenge_outputs

            try:
                written = write_challenge_outputs(frame, out)
            except ValueError as err:
                raise MurmurlmError(f"{model or 'the model'}: {err}") from None
            typer.echo(f"wrote {len(written)} Challenge output file(s) to {out}", err=True)
            return
        _write_frame(frame, out)
        return
    predictions = {}
    for path in _audio_files(inputs):
        try:
            rec = read_pcg(path, max_duration_s=max_duration)  # the front end resamples once
            predictions[path.stem] = predict_recording(predictor, rec.waveform, rec.sampling_rate)
        except MurmurlmError as err:
            problems.append(Problem(path, getattr(err, "message", str(err)), None, "error"))
    _report_problems(problems)
    if not predictions:
        raise MurmurlmError(f"none of the {len(problems)} file(s) could be predicted")
    _write_rows(predictions, out)


def _head_option(value: Optional[str]):
    """``--descriptor-head`` as ``load_model`` takes it: "default", None ("none") or a head file."""
    return "default" if value == "default" else None if value in (None, "none") else Path(value)


def parse_patient_inputs(inputs: Sequence[str]) -> list[tuple[str, Path]]:
    """``SITE=FILE`` items, or files named the CirCor way (``<id>_<SITE>[_n].wav``), as (site, path).

    >>> parse_patient_inputs(["AV=a.wav", "data/50782_MV_2.flac"])
    [('AV', PosixPath('a.wav')), ('MV', PosixPath('data/50782_MV_2.flac'))]
    """
    from murmurlm.data import labels as L
    from murmurlm.data.circor import parse_recording_name

    out = []
    for item in inputs:
        site, sep, rest = item.partition("=")
        if sep and site in L.LOCATIONS:
            out.append((site, Path(rest)))
            continue
        if sep and "/" not in site and "\\" not in site and not Path(item).exists():
            raise MurmurlmError(f"{item}: unknown site {site!r}; valid: {', '.join(L.LOCATIONS)}")
        path = Path(item)
        try:
            _, site, _ = parse_recording_name(path.stem)
        except Exception:
            site = None
        if site not in L.LOCATIONS:
            raise MurmurlmError(f"{item}: which site? give it as SITE=FILE (e.g. AV={item}); sites: "
                                f"{', '.join(L.LOCATIONS)}")
        out.append((site, path))
    return out


def _predict_patient(inputs, model, out, report, plot, as_json, segment, segment_method, max_duration, threads,
                     descriptor_head) -> None:
    """``murmurlm predict --patient``: one patient answer from recordings at several sites."""
    from murmurlm.data.audio import read_pcg
    from murmurlm.evaluate.predictions import predictions_frame
    from murmurlm.inference.plot import plot_patient
    from murmurlm.inference.predict import load_model
    from murmurlm.inference.report import analyse_patient, render_patient_report

    items = parse_patient_inputs(inputs)
    predictor = load_model(model, threads=threads, descriptor_head=_head_option(descriptor_head))
    recordings = []
    for site, path in items:
        try:
            rec = read_pcg(path, max_duration_s=max_duration)
        except MurmurlmError as err:  # a bad file is named; the others are still predicted
            typer.echo(f"skipped: {site}={path}: {getattr(err, 'message', err)}", err=True)
            continue
        recordings.append((site, rec.waveform, rec.sampling_rate, rec.notes, path.name))
    if not recordings:
        raise MurmurlmError(f"none of the patient's {len(items)} recording(s) could be read")
    found = analyse_patient(predictor, recordings, segment=segment, segment_method=segment_method)
    if plot:
        plot_patient(found, plot)
        typer.echo(f"wrote {plot}", err=True)
    if out:
        stems = {p.stem.split("_")[0] for _, p in items}
        pid = next(iter(stems)) if len(stems) == 1 and next(iter(stems)).isdigit() else "patient"
        _write_frame(predictions_frame({pid: found.prediction}), out)
    if as_json:
        typer.echo(json.dumps(found.report, indent=2))
    elif report:
        typer.echo(render_patient_report(found.report))
    elif not out:
        typer.echo(render_patient_report(found.report))


def _report_problems(problems) -> None:
    for p in problems:
        if p.severity == "error":
            typer.echo(f"skipped: {p.path}: {p.message}", err=True)
        else:
            log.warning("%s", p)


def _write_rows(predictions: dict, out: Path | None) -> None:
    from murmurlm.evaluate.predictions import predictions_frame

    _write_frame(predictions_frame(predictions), out)


def _write_frame(frame, out: Path | None) -> None:
    from murmurlm.evaluate.predictions import write_predictions

    if out is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "predictions.csv"
            write_predictions(frame, path)
            sys.stdout.write(path.read_text(encoding="utf-8"))
        return
    write_predictions(frame, out)
    typer.echo(f"wrote {len(frame)} prediction row(s) to {out}", err=True)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_command)
