"""docs/data.md, "Errors": every error murmurlm raises on purpose derives from MurmurlmError,
``str(DataFormatError)`` reads ``path:line: message``, AudioError is a DataFormatError, LabelError is
also a ValueError naming the valid classes, and the CLI prints any
of them as one ``error: ...`` line with exit code 2."""

from __future__ import annotations

import pytest

from murmurlm.cli import main
from murmurlm.data.labels import LabelError, feature
from murmurlm.errors import AudioError, ConfigError, DataFormatError, DownloadError, MurmurlmError


def test_the_documented_hierarchy():
    for error in (DataFormatError, AudioError, LabelError, DownloadError, ConfigError):
        assert issubclass(error, MurmurlmError), error
    assert issubclass(AudioError, DataFormatError) and issubclass(LabelError, ValueError)


def test_data_format_error_reads_path_line_message():
    assert str(DataFormatError("a/b.tsv", "bad row", 3)) == "a/b.tsv:3: bad row"
    assert str(DataFormatError("a/b.tsv", "missing")) == "a/b.tsv: missing"


def test_a_label_error_names_the_valid_classes():
    with pytest.raises(LabelError, match=r"unknown label 'Maybe' for 'Murmur'; valid: Present, Unknown, Absent"):
        feature("Murmur").normalise("Maybe")
    with pytest.raises(LabelError, match="valid: Murmur, "):
        feature("Loudness")


def test_the_cli_prints_one_error_line_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    assert main(["train", "--config", str(bad), "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {bad}")
