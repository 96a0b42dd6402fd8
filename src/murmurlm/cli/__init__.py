"""The ``murmurlm`` command. Thin: each subcommand parses arguments and calls library functions.

Subcommands live one group per module in this package; each module has ``register(app)``.
Heavy imports (torch, transformers) happen inside the commands so that ``murmurlm --help`` is fast.
Logging is configured here, once; errors of murmurlm's own types print as one clear line.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

from murmurlm.errors import MurmurlmError

app = typer.Typer(
    name="murmurlm",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Heart murmur characterisation from phonocardiograms (CirCor DigiScope).",
)

# One module per command group; each has register(app).
COMMAND_MODULES: tuple[str, ...] = ("data", "evaluate", "predict", "serve", "train", "pipeline", "calibrate", "segment", "finetune",
                                     "whisper", "config")


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    level = logging.DEBUG if verbose else getattr(logging, os.environ.get("MURMURLM_LOG", "INFO").upper(), logging.INFO)
    try:
        from rich.console import Console
        from rich.logging import RichHandler
        # stderr: stdout carries command output (CSV, JSON) that logs must not corrupt
        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False,
                                               console=Console(stderr=True))
        fmt = "%(message)s"
    except ImportError:  # pragma: no cover - rich is a dependency
        handler, fmt = logging.StreamHandler(), "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)


for _name in COMMAND_MODULES:
    importlib.import_module(f"murmurlm.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Console entry point. Returns the exit code (2 for a murmurlm error, with one clear line)."""
    try:
        code = app(args=argv, standalone_mode=False)  # the code of a `raise typer.Exit(code)`
    except MurmurlmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # raised by typer/click for --help, usage errors
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    except Exception as err:  # click usage errors
        import click
        # typer >= 0.20 vendors click as typer._click; its exceptions derive from typer.TyperException.
        usage = isinstance(err, typer.TyperException) and hasattr(err, "show") and hasattr(err, "exit_code")
        if usage or isinstance(err, click.exceptions.ClickException):
            err.show()
            return err.exit_code
        if isinstance(err, (click.exceptions.Abort, typer.Abort)):
            print("aborted", file=sys.stderr)
            return 1
        raise
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
