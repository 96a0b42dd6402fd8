"""The README and docs/data.md promise that no CirCor file is in this repository: the tracked files
hold no recording (``.wav``, ``.flac``, ``.hea``, ``.tsv``) and no label table, and ``.gitignore``
keeps them out."""

from __future__ import annotations

import re
import shutil
import subprocess

from repo_paths import REPO

CIRCOR_FILE = re.compile(r"(^|/)(training_data\.csv|RECORDS|SHA256SUMS\.txt|\d+\.txt|\d+_(AV|PV|TV|MV|Phc)(_\d+)?\.\w+)$"
                         r"|\.(wav|flac|hea|tsv)$", re.IGNORECASE)


def test_no_circor_file_is_tracked():
    git = shutil.which("git")
    assert git is not None and (REPO / ".git").exists(), "a git checkout of the repository is needed"
    tracked = subprocess.run([git, "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    names = [n for n in tracked.decode().split("\0") if n]
    assert len(names) > 50  # the listing is the repository's
    synthetic = re.compile(r"^tests/.*synthetic")  # the one exception .gitignore makes
    assert [n for n in names if CIRCOR_FILE.search(n) and not synthetic.search(n)] == []
    assert CIRCOR_FILE.search("training_data/50782_MV_1.flac") and CIRCOR_FILE.search("x/50782.txt")


def test_gitignore_keeps_recordings_and_labels_out():
    rules = set((REPO / ".gitignore").read_text().split())
    assert {"*.wav", "*.flac", "*.hea", "*.tsv", "training_data.csv"} <= rules
