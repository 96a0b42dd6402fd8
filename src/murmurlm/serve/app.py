"""The murmurlm web service: upload a recording, get the 11 murmur features back as JSON.

Endpoints
---------
- ``GET /`` - a web page: drop a recording, see the waveform and spectrogram with the segments
  shaded and the feature table, download the JSON (static files, no CDN, works offline).
- ``GET /healthz`` - liveness, the loaded model and the limits.
- ``POST /v1/predict`` - the recording as ``multipart/form-data`` (field ``file``) or as a raw
  ``audio/wav`` / ``audio/flac`` body; any sampling rate, mono or stereo (mixed down and resampled,
  and said so in ``warnings``). ``?plot=true`` adds the report figure as a base64 PNG.
- ``POST /v1/patients`` - one patient: a ``multipart/form-data`` form with one file field per
  auscultation site (``AV``, ``PV``, ``TV``, ``MV``, ``Phc``; at most 4 files); the patient answer
  (:func:`murmurlm.inference.report.analyse_patient`): the 11 features, where the murmur is heard
  and loudest, Outcome, and a summary per site. Each file gets the limits and 4xx errors of
  ``/v1/predict``, the site and file named. ``?plot=true`` adds the patient figure.
- ``POST /v1/ask`` - a free-form question about a recording, when an audio-LM checkpoint is loaded.
- ``GET /openapi.json`` - the OpenAPI schema (no ``/docs`` viewer: FastAPI's loads from a CDN).

Safety
------
The body is read by the endpoint itself, counting bytes, so an upload over ``max_upload_mb`` is
refused with 413 whether or not it announces its length, a body that has not arrived after
``body_timeout_s`` gets 408, and nothing is spooled to the system's temporary folder. The audio is written to one ``mkstemp`` file inside the service's own temporary
directory (the client's file name is only echoed, never used as a path) and removed in a
``finally``; the directory itself is removed at shutdown. Every unusable file gets a 4xx with a
``detail`` sentence and a ``reason`` code; a decoder never sees more than ``max_duration_s`` of
audio. The model is loaded once, in :func:`create_app`, and shared by up to ``max_workers`` worker
threads, each predicting under ``torch.inference_mode`` (compact-model inference keeps no state);
the audio LM of ``/v1/ask`` runs one request at a time under a lock.

Examples
--------
``create_app()`` serves the packaged model; here an untrained tiny one keeps the example fast.

>>> import io, soundfile as sf
>>> from fastapi.testclient import TestClient
>>> from murmurlm.inference.predict import Predictor
>>> from murmurlm.models.compact import CompactConfig, CompactModel
>>> from murmurlm.signal.features import FrontEnd
>>> from murmurlm.signal.synth import synth_pcg
>>> untrained = Predictor(CompactModel(CompactConfig(channels=(4, 8), n_mels=16)), FrontEnd(n_mels=16), 4.0, 2.0)
>>> client = TestClient(create_app(untrained))
>>> buf = io.BytesIO(); sf.write(buf, synth_pcg(5.0, 44100).waveform, 44100, format="FLAC")
>>> r = client.post("/v1/predict", files={"file": ("a.flac", buf.getvalue(), "audio/flac")})
>>> r.status_code, len(r.json()["features"]), r.json()["warnings"][0]
(200, 11, 'resampled from 44100 Hz to 4000 Hz')
>>> client.post("/v1/predict", files={"file": ("a.wav", b"no audio", "audio/wav")}).json()["reason"]
'not_audio'
"""

from __future__ import annotations

import base64
import io
import logging
import os
import shutil
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import ClientDisconnect

from murmurlm.inference.report import ANALYSIS_RATE
from murmurlm.errors import ConfigError
from murmurlm.data import labels as L
from murmurlm.serve.schemas import ERRORS, PATIENT_BODY, UPLOAD_BODY, AskResponse, Health, PatientResponse, PredictResponse
from murmurlm.serve.upload import UploadError, parse_site_uploads, parse_upload

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and part headers on top of the file itself
MAX_SITES = 4  # recordings of one patient in POST /v1/patients (CirCor records AV, PV, TV and MV)

# RecordingError.reason -> HTTP status
STATUS = {
    "empty": 400, "not_audio": 415, "truncated": 400, "unsupported": 415, "non_finite": 422,
    "too_long": 413, "too_short": 422, "not_found": 400,
}


class ServiceError(Exception):
    """A refused request: HTTP ``status``, a ``reason`` code and a sentence."""

    def __init__(self, status: int, reason: str, detail: str):
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


# ----------------------------------------------------------------------------------------------


class _Service:
    """What one app holds: the model (loaded once), the limits, the workers and the temp directory."""

    def __init__(self, model: Any, max_upload_mb: float, max_duration_s: float, min_duration_s: float,
                 tmp_dir: str | Path | None, segment: bool, segment_method: str, audio_lm: Any,
                 max_workers: int, max_pending: int, torch_threads: int | None, body_timeout_s: float):
        if (max_upload_mb <= 0 or max_duration_s <= 0 or min_duration_s < 0 or max_workers < 1 or max_pending < 1
                or body_timeout_s <= 0):
            raise ConfigError("create_app: limits must be positive (max_upload_mb, max_duration_s, "
                              "max_workers, max_pending, body_timeout_s) and min_duration_s >= 0")
        if torch_threads is not None:
            import torch

            if torch_threads < 1:
                raise ConfigError(f"create_app: torch_threads must be >= 1, got {torch_threads}")
            torch.set_num_threads(torch_threads)
        if segment:
            try:
                from murmurlm.signal.segment import METHODS
            except ImportError:
                METHODS = (segment_method,)  # no segmenter installed: reports say so
            if segment_method not in METHODS:
                raise ConfigError(f"unknown segmentation method {segment_method!r}; valid: {', '.join(METHODS)}")
        if model is None or isinstance(model, (str, Path)):
            from murmurlm.inference.predict import load_model

            model = load_model(model)
        self.model = model
        path = getattr(model, "path", None)
        self.model_name = Path(path).name if path else type(model).__name__
        # Uploads are read at their own rate; the model's front end and the analysis (segmenter,
        # report, figure: CirCor's rate, reported by /health) each resample once from it.
        self.sampling_rate = ANALYSIS_RATE
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_upload_mb = max_upload_mb
        self.max_duration_s = float(max_duration_s)
        self.min_duration_s = float(min_duration_s)
        self.segment = segment
        self.segment_method = segment_method
        self.audio_lm = audio_lm
        self.lm_lock = threading.Lock()
        self.limiter = anyio.CapacityLimiter(max_workers)
        self.max_pending = max_pending
        self.body_timeout_s = float(body_timeout_s)
        self.pending = 0  # requests being read or processed; changed on the event loop only
        self.own_tmp = tmp_dir is None
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="murmurlm-serve-")) if tmp_dir is None else Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    # -- request pieces -------------------------------------------------------------------------
    @asynccontextmanager
    async def admit(self):
        """Count the request in, or refuse it with 503 when ``max_pending`` are already in."""
        if self.pending >= self.max_pending:
            raise ServiceError(503, "busy", f"the service is busy ({self.pending} requests in progress); "
                               "retry in a moment")
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    async def read_body(self, request: Request) -> bytes:
        return await self.read_body_limit(request, 1)

    async def read_body_limit(self, request: Request, files: int) -> bytes:
        """The request body, refused (413) beyond ``files`` uploads of the size limit, or (408) when
        it does not arrive in time."""
        limit = files * (self.max_upload_bytes + MULTIPART_OVERHEAD)
        announced = request.headers.get("content-length")
        if announced is not None:
            try:
                size = int(announced)
            except ValueError:
                raise ServiceError(400, "bad_request", f"invalid Content-Length {announced!r}") from None
            if size > limit:
                raise ServiceError(413, "too_large", f"upload of {size / 2**20:.1f} MiB exceeds the "
                                   f"limit of {self.max_upload_mb:g} MiB")
        chunks, total = [], 0
        try:
            with anyio.fail_after(self.body_timeout_s):
                async for chunk in request.stream():
                    total += len(chunk)
                    if total > limit:
                        raise ServiceError(413, "too_large", f"upload exceeds the limit of {self.max_upload_mb:g} MiB")
                    chunks.append(chunk)
        except TimeoutError:
            raise ServiceError(408, "timeout", f"the upload did not arrive within {self.body_timeout_s:g} s "
                               f"({total} bytes received)") from None
        except ClientDisconnect:  # the client hung up mid-upload: no one to answer, not a server fault
            log.info("client disconnected after %d bytes of its upload", total)
            raise ServiceError(400, "disconnected", f"the client closed the connection during the upload "
                               f"({total} bytes received)") from None
        return b"".join(chunks)

    def upload(self, request: Request, body: bytes):
        try:
            up = parse_upload(request.headers.get("content-type"), body)
        except UploadError as err:
            raise ServiceError(err.status, err.reason, str(err)) from None
        if len(up.data) == 0:
            raise ServiceError(400, "empty", f"{up.filename}: the uploaded file is empty")
        if len(up.data) > self.max_upload_bytes:
            raise ServiceError(413, "too_large", f"{up.filename}: {len(up.data) / 2**20:.1f} MiB exceeds "
                               f"the limit of {self.max_upload_mb:g} MiB")
        return up

    def decode(self, filename: str, data: bytes, target_rate: int | None = None):
        """Write the bytes to a private temp file, read them as audio (at ``target_rate``, or at the
        file's own rate when ``None``), always remove the file."""
        from murmurlm.inference.audio import RecordingError, read_pcg, read_recording

        self.tmp_dir.mkdir(parents=True, exist_ok=True)  # in case something removed it meanwhile
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, suffix=".audio")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                limits = dict(max_duration_s=self.max_duration_s, min_duration_s=self.min_duration_s)
                return read_pcg(tmp, **limits) if target_rate is None else read_recording(tmp, target_rate, **limits)
            except RecordingError as err:
                raise ServiceError(STATUS.get(err.reason, 400), err.reason, f"{filename}: {err.message}") from None
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    @staticmethod
    def input_info(filename: str, data: bytes, rec) -> dict:
        return {"filename": filename, "bytes": len(data), "format": rec.info.format,
                "subtype": rec.info.subtype, "sampling_rate": rec.info.sampling_rate,
                "channels": rec.info.channels, "duration_s": round(rec.info.duration, 3)}

    def predict(self, filename: str, data: bytes, plot: bool) -> dict:
        """The blocking part of /v1/predict (runs in a worker thread)."""
        import torch

        from murmurlm.inference.plot import plot_heartbeat, plot_report
        from murmurlm.inference.report import analyse_recording

        start = time.perf_counter()
        rec = self.decode(filename, data)  # at its own rate: the model and the analysis resample once each
        # Inference is stateless (eval mode, no autograd), so worker threads share the model
        # without a lock; tests/serve/test_app.py checks concurrent answers against sequential ones.
        with torch.inference_mode():
            found = analyse_recording(self.model, rec.waveform, rec.sampling_rate, segment=self.segment,
                                      segment_method=self.segment_method, notes=rec.notes, source=filename)
        report = found.report
        if plot:
            buf = io.BytesIO()
            plot_report(found.waveform, found.sampling_rate, report, found.segmentation, buf, title=filename)
            report["plot_png"] = base64.b64encode(buf.getvalue()).decode("ascii")
            buf = io.BytesIO()
            plot_heartbeat(None, found.heartbeat, path=buf)
            report["heartbeat_png"] = base64.b64encode(buf.getvalue()).decode("ascii")
        report.pop("source", None)
        report["input"] = self.input_info(filename, data, rec)
        report["model"] = self.model_name
        report["elapsed_s"] = round(time.perf_counter() - start, 4)
        return report

    def patient(self, uploads, plot: bool) -> dict:
        """The blocking part of /v1/patients: every site's file read (a bad one refuses the request
        with its 4xx, the file and site named), then one patient analysis."""
        import torch

        from murmurlm.inference.plot import plot_patient
        from murmurlm.inference.report import analyse_patient

        start = time.perf_counter()
        recordings, inputs = [], []
        for site, up in uploads:
            if len(up.data) == 0:
                raise ServiceError(400, "empty", f"{site} ({up.filename}): the uploaded file is empty")
            if len(up.data) > self.max_upload_bytes:
                raise ServiceError(413, "too_large", f"{site} ({up.filename}): {len(up.data) / 2**20:.1f} MiB "
                                   f"exceeds the limit of {self.max_upload_mb:g} MiB")
            try:
                rec = self.decode(up.filename, up.data)
            except ServiceError as err:
                raise ServiceError(err.status, err.reason, f"{site}: {err.detail}") from None
            recordings.append((site, rec.waveform, rec.sampling_rate, rec.notes, up.filename))
            inputs.append(self.input_info(up.filename, up.data, rec))
        with torch.inference_mode():
            found = analyse_patient(self.model, recordings, segment=self.segment, segment_method=self.segment_method)
        report = dict(found.report)
        report["sites"] = [{**entry, "input": info} for entry, info in zip(report["sites"], inputs)]
        if plot:
            buf = io.BytesIO()
            plot_patient(found, buf)
            report["plot_png"] = base64.b64encode(buf.getvalue()).decode("ascii")
        report["model"] = self.model_name
        report["elapsed_s"] = round(time.perf_counter() - start, 4)
        return report

    def ask(self, filename: str, data: bytes, question: str) -> dict:
        backend = self.audio_lm
        # the adapter's band mapping: read at sampling_rate / playback, handed over as sampling_rate audio
        playback = float(getattr(backend, "playback", 1.0))
        rec = self.decode(filename, data, int(round(backend.sampling_rate / playback)))
        notes = list(rec.notes)
        wave = rec.waveform
        seconds = float(backend.max_audio_seconds) * playback  # of the recording
        limit = int(seconds * rec.sampling_rate)
        if len(wave) > limit:
            notes.append(f"only the first {seconds:g} s were given to the audio model")
            wave = wave[:limit]
        with self.lm_lock:
            answers = backend.generate([wave], [question])
        answer = answers[0] if isinstance(answers, (list, tuple)) else str(answers)
        return {"question": question, "answer": str(answer).strip(),
                "input": self.input_info(filename, data, rec), "warnings": notes,
                "model": str(getattr(backend, "name", type(backend).__name__))}

    def close(self) -> None:
        if self.own_tmp:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


def create_app(model: Any = None, max_upload_mb: float = 20.0, max_duration_s: float = 120.0,
               min_duration_s: float = 2.0, tmp_dir: str | Path | None = None, segment: bool = True,
               segment_method: str = "mamba", audio_lm: Any = None, max_workers: int = 4,
               max_pending: int = 32, torch_threads: int | None = None, body_timeout_s: float = 60.0) -> FastAPI:
    """Build the FastAPI app.

    Parameters
    ----------
    model
        A loaded predictor, a checkpoint path, or None for the packaged default model; loaded here,
        once.
    max_upload_mb, max_duration_s, min_duration_s
        Upload limits (413 beyond the size or duration, 422 under the minimum duration).
    tmp_dir
        Where uploads are written while they are decoded; None makes a private ``mkdtemp``
        directory, removed at shutdown.
    segment, segment_method
        Whether to segment the heart cycles (heart rate, shading, quality flag) and how.
    audio_lm
        An audio-LM backend (:mod:`murmurlm.models.audio_lm`) enabling ``POST /v1/ask``.
    max_workers
        Requests processed at once (decoding, segmentation, plotting); the model itself runs one
        request at a time.
    max_pending
        Requests admitted at once (reading, waiting, processing); more get 503 with Retry-After,
        which bounds the memory held by uploads to about ``max_pending * max_upload_mb``.
    body_timeout_s
        Time allowed for the request body to arrive; a slower upload gets 408, so a stalled client
        cannot hold an admission slot.
    torch_threads
        ``torch.set_num_threads`` for the process (None: leave it). ``murmurlm serve`` uses 1:
        requests run in parallel threads, and intra-op threads on top of them oversubscribe the
        cores (on a busy 2-core machine one 20-s prediction took 1.2 s with 2 threads, 0.04 s
        with 1).
    """
    service = _Service(model, max_upload_mb, max_duration_s, min_duration_s, tmp_dir, segment,
                       segment_method, audio_lm, max_workers, max_pending, torch_threads, body_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()

    # No /docs or /redoc: FastAPI's viewers load their scripts from a CDN, and this service must
    # work offline; the schema itself is /openapi.json.
    app = FastAPI(title="murmurlm", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Heart-murmur characterisation of phonocardiograms: the 11 CirCor "
                              "murmur features with class probabilities, heart cycles and a quality flag.")
    app.state.service = service

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, err: ServiceError):
        headers = {"Retry-After": "1"} if err.status == 503 else None
        return JSONResponse({"detail": err.detail, "reason": err.reason}, status_code=err.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request: Request, err: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in err.errors()]
        return JSONResponse({"detail": "; ".join(parts) or "invalid request", "reason": "invalid_parameter"},
                            status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):  # pragma: no cover - a bug, logged
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"detail": "internal error; see the server log", "reason": "internal"},
                            status_code=500)

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", response_model=Health)
    def healthz():
        from murmurlm.inference.report import segmentation_available

        has_seg = segmentation_available()
        return {"status": "ok", "model": service.model_name, "sampling_rate": service.sampling_rate,
                "ask": service.audio_lm is not None, "segmentation": bool(service.segment and has_seg),
                "limits": {"max_upload_mb": service.max_upload_mb, "max_duration_s": service.max_duration_s,
                           "min_duration_s": service.min_duration_s}}

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra=UPLOAD_BODY,
              summary="Predict the 11 murmur features of an uploaded recording")
    async def predict(request: Request, plot: bool = Query(False, description="add the report figure (base64 PNG)")):
        async with service.admit():
            body = await service.read_body(request)
            up = service.upload(request, body)
            return await anyio.to_thread.run_sync(service.predict, up.filename, up.data, plot,
                                                  limiter=service.limiter)

    @app.post("/v1/patients", response_model=PatientResponse, responses=ERRORS, openapi_extra=PATIENT_BODY,
              summary="One patient's answer from its recordings at several auscultation sites")
    async def patients(request: Request, plot: bool = Query(False, description="add the patient figure (base64 PNG)")):
        async with service.admit():
            body = await service.read_body_limit(request, MAX_SITES)
            try:
                uploads = parse_site_uploads(request.headers.get("content-type"), body, L.LOCATIONS)
            except UploadError as err:
                raise ServiceError(err.status, err.reason, str(err)) from None
            if len(uploads) > MAX_SITES:
                raise ServiceError(422, "invalid_parameter", f"{len(uploads)} recordings; a patient takes at most "
                                   f"{MAX_SITES}")
            return await anyio.to_thread.run_sync(service.patient, uploads, plot, limiter=service.limiter)

    if audio_lm is not None:
        @app.post("/v1/ask", response_model=AskResponse, responses=ERRORS, openapi_extra=UPLOAD_BODY,
                  summary="Ask the audio language model a question about an uploaded recording")
        async def ask(request: Request, question: str = Query(..., min_length=1, max_length=500)):
            async with service.admit():
                body = await service.read_body(request)
                up = service.upload(request, body)
                return await anyio.to_thread.run_sync(service.ask, up.filename, up.data, question,
                                                      limiter=service.limiter)

    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("murmurlm")
    except Exception:  # pragma: no cover - not installed
        return "0"
