"""Write a broken copy of the packaged default model, to show that the test suite notices.

    permute    every float tensor's elements shuffled (values kept, learned structure gone)
    untrained  freshly initialised members of the same architecture

    .venv/bin/python scripts/break_packaged_model.py permute /tmp/broken.pt
    cp src/murmurlm/assets/compact-default.pt /tmp/good.pt && cp /tmp/broken.pt src/murmurlm/assets/compact-default.pt
    .venv/bin/python -m pytest -q tests/inference/test_packaged_model.py; cp /tmp/good.pt src/murmurlm/assets/compact-default.pt
"""

from __future__ import annotations

import sys

import torch

from murmurlm.inference.predict import CHECKPOINT_KIND, DEFAULT_CHECKPOINT, _build_compact
from murmurlm.train.checkpoint import load_checkpoint, save_checkpoint


def main(mode: str, out: str) -> int:
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT, kind=CHECKPOINT_KIND)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    for member in ckpt["members"]:
        if mode == "untrained":
            fresh = _build_compact(member["model_config"], member["model"])
            for m in fresh.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            member["model"] = fresh.state_dict()
        elif mode == "permute":
            member["model"] = {k: (v.flatten()[torch.randperm(v.numel(), generator=g)].view_as(v)
                                   if v.is_floating_point() else v) for k, v in member["model"].items()}
        else:
            raise SystemExit(f"unknown mode {mode!r}: permute | untrained")
    save_checkpoint(out, **ckpt)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
