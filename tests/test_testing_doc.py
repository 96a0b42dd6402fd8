"""docs/testing.md stays true: every test it names exists (a renamed or moved test fails here), and
every table row names at least one test file."""

from __future__ import annotations

import re

from repo_paths import REPO

DOC = REPO / "docs" / "testing.md"
REF = re.compile(r"(tests/[\w/]+\.py)(?:::([\w\[\]/.-]+))?|, ::([\w\[\]/.-]+)")


def named_tests(row: str) -> list[tuple[str, str | None]]:
    """``(file, test name or None)`` in a row; ``, ::name`` continues the file named before it."""
    out, current = [], None
    for m in REF.finditer(row):
        if m.group(1):
            current = m.group(1)
            out.append((current, m.group(2)))
        elif current is not None:
            out.append((current, m.group(3)))
    return out


def test_every_named_test_exists():
    missing = []
    for lineno, row in enumerate(DOC.read_text().splitlines(), 1):
        for path, name in named_tests(row):
            file = REPO / path
            if not file.exists():
                missing.append(f"docs/testing.md:{lineno}: {path} does not exist")
            elif name and f"def {name.split('[')[0]}(" not in file.read_text():
                missing.append(f"docs/testing.md:{lineno}: {path} has no test {name}")
    assert missing == []


def test_every_table_row_names_a_test():
    rows = [(i, r) for i, r in enumerate(DOC.read_text().splitlines(), 1)
            if r.startswith("| ") and not r.startswith("| claim") and not r.startswith("| module")
            and not r.startswith("| docs/serve.md row") and "---" not in r]
    without = [f"docs/testing.md:{i}" for i, r in rows if not named_tests(r) and "the table below" not in r
               and "GPU" not in r and "%" not in r]
    assert without == []


def test_the_parser_follows_continued_names():
    assert named_tests("| x | tests/a.py::t1, ::t2, tests/b.py | yes |") == [
        ("tests/a.py", "t1"), ("tests/a.py", "t2"), ("tests/b.py", None)]
