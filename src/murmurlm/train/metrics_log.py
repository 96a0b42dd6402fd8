"""A metrics log: one JSON object per line (``metrics.jsonl``), appended and flushed per record.

On resume the log is cut back to the records of the epochs that the checkpoint covers
(:meth:`MetricsLog.truncate`), so a resumed run's log reads like an uninterrupted one.

Examples
--------
>>> import tempfile, pathlib
>>> log = MetricsLog(pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl")
>>> log.write({"epoch": 1, "loss": 0.5}); log.write({"epoch": 2, "loss": 0.4})
>>> log.truncate(max_epoch=1)
>>> [r["epoch"] for r in log.read()]
[1]
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


class MetricsLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(_plain(record)) + "\n")
            fh.flush()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
        return out

    def truncate(self, max_epoch: int) -> None:
        """Keep only records with ``epoch <= max_epoch`` (atomic rewrite)."""
        keep = [r for r in self.read() if int(r.get("epoch", 0)) <= max_epoch]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        os.replace(tmp, self.path)
