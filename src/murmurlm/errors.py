"""murmurlm's own exception types. Every error about user input names the file (and line) at fault."""

from __future__ import annotations

from pathlib import Path


class MurmurlmError(Exception):
    """Base class of every error murmurlm raises on purpose."""


class DataFormatError(MurmurlmError, ValueError):
    """A data file is missing, malformed or inconsistent.

    ``str(err)`` reads ``path:line: message`` (or ``path: message`` when no line applies), so that
    a user can open the file at the right place.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {message}")


class AudioError(DataFormatError):
    """An audio file cannot be read or does not match what its header promises."""


class ConfigError(MurmurlmError, ValueError):
    """A configuration file or a ``key=value`` override is invalid."""


class DownloadError(MurmurlmError, OSError):
    """A download failed for good (after retries) or a downloaded file failed its checksum."""
