"""Write segmentations as CirCor ``.tsv`` files: ``start<TAB>end<TAB>state`` per row, seconds.

The files read back through :func:`murmurlm.data.circor.read_tsv`.

Examples
--------
>>> import tempfile, pathlib
>>> from murmurlm.data.circor import Segment, read_tsv
>>> path = pathlib.Path(tempfile.mkdtemp()) / "1_AV.tsv"
>>> write_tsv(path, [Segment(0.0, 0.5, 0), Segment(0.5, 0.62, 1)])
>>> print(path.read_text().replace(chr(9), " <TAB> "), end="")
0 <TAB> 0.5 <TAB> 0
0.5 <TAB> 0.62 <TAB> 1
>>> read_tsv(path)[0] == [Segment(0.0, 0.5, 0), Segment(0.5, 0.62, 1)]
True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from murmurlm.data.circor import STATES, Segment


def _fmt(x: float) -> str:
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def format_tsv(segments: Sequence[Segment]) -> str:
    """The ``.tsv`` text of ``segments`` (validated: finite, ordered times and known states)."""
    lines = []
    previous_end = 0.0
    for i, seg in enumerate(segments):
        if not (math.isfinite(seg.start) and math.isfinite(seg.end)) or seg.start < 0 or seg.end < seg.start:
            raise ValueError(f"segment {i}: times must satisfy 0 <= start <= end, got {seg.start} .. {seg.end}")
        if seg.start < previous_end - 1e-6:
            raise ValueError(f"segment {i} starts at {seg.start} before the previous one ends ({previous_end})")
        if seg.state not in STATES:
            raise ValueError(f"segment {i}: unknown state {seg.state!r}; valid: {sorted(STATES)}")
        lines.append(f"{_fmt(seg.start)}\t{_fmt(seg.end)}\t{int(seg.state)}\n")
        previous_end = seg.end
    return "".join(lines)


def write_tsv(path: str | Path, segments: Sequence[Segment]) -> None:
    """Write ``segments`` to ``path`` in CirCor's ``.tsv`` format (parent folders are created)."""
    path = Path(path)
    text = format_tsv(segments)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
