"""``murmurlm serve``: the web service and page (see :mod:`murmurlm.serve.app`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from murmurlm.errors import MurmurlmError

log = logging.getLogger(__name__)


def serve_command(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Compact checkpoint (default: the packaged model)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 exposes the service)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Largest accepted upload (MiB)."),
    max_duration: float = typer.Option(120.0, "--max-duration", help="Longest accepted recording (s)."),
    min_duration: float = typer.Option(2.0, "--min-duration", help="Shortest accepted recording (s)."),
    workers: int = typer.Option(4, "--workers", help="Requests processed at once, sharing the one loaded model."),
    max_pending: int = typer.Option(32, "--max-pending", help="Requests admitted at once; more get 503."),
    body_timeout: float = typer.Option(60.0, "--body-timeout", help="Seconds allowed for an upload to arrive (408 after)."),
    threads: int = typer.Option(1, "--threads", help="torch threads per operation (requests already run in parallel)."),
    segment: bool = typer.Option(True, "--segment/--no-segment", help="Segment heart cycles (heart rate, quality)."),
    segment_method: str = typer.Option("mamba", "--method", "--segment-method",
                                       help="Segmenter: mamba (the better) or springer (faster); as in `segment`."),
    audio_lm: Optional[Path] = typer.Option(None, "--audio-lm", help="Audio-LM folder enabling POST /v1/ask: a "
                                                                     "LoRA adapter folder (save_adapter) or a model."),
    audio_lm_backend: str = typer.Option("qwen2-audio", "--audio-lm-backend",
                                         help="Backend of --audio-lm when it is a plain model folder."),
) -> None:
    """Serve predictions over HTTP: POST /v1/predict, GET /healthz, a web page at /."""
    import uvicorn

    from murmurlm.serve.app import create_app

    if not 0 < port < 65536:
        raise MurmurlmError(f"--port must be in 1..65535, got {port}")
    backend = load_audio_lm(audio_lm, audio_lm_backend) if audio_lm else None
    app = create_app(model, max_upload_mb=max_upload_mb, max_duration_s=max_duration,
                     min_duration_s=min_duration, segment=segment, segment_method=segment_method,
                     audio_lm=backend, max_workers=workers,
                     max_pending=max_pending, torch_threads=threads, body_timeout_s=body_timeout)
    log.info("murmurlm serving on http://%s:%d (model %s)", host, port, app.state.service.model_name)
    uvicorn.run(app, host=host, port=port, log_level="info", workers=1)


def load_audio_lm(path: Path, backend: str = "qwen2-audio"):
    """An adapter folder (with ``murmurlm_backend.json``) with its base model, or a plain model folder."""
    from murmurlm.models.audio_lm import get_backend, load_backend_from_adapter

    if not path.exists():
        raise MurmurlmError(f"--audio-lm {path}: not found")
    if (path / "murmurlm_backend.json").exists():
        return load_backend_from_adapter(path)
    return get_backend(backend).load(path)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
