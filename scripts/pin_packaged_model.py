"""Write the regression pins of the packaged default model (tests/inference/packaged_pins.json).

The pins are the packaged checkpoint's class probabilities on a few real circor-dev recordings and
one synthetic one, stored with the checkpoint's SHA-256; tests/inference/test_packaged_model.py
re-computes them to 1e-6. Re-pin only when the default model is deliberately retrained, and say so
in the commit message:

    .venv/bin/python scripts/pin_packaged_model.py --data ../shared/circor-dev
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PINS = REPO / "tests" / "inference" / "packaged_pins.json"
# validation patients of splits/circor-dev (the packaged model only monitored them): several sites,
# murmur heard and not heard, an Absent patient, a repeated site (MV_2)
RECORDINGS = ["13918_AV", "13918_TV", "14241_PV", "49678_MV", "49989_PV", "50210_MV_2"]
SYNTHETIC = {"seconds": 8.0, "sampling_rate": 4000, "heart_rate": 80, "seed": 11}


def checkpoint_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def synthetic_wave():
    from murmurlm.signal.synth import MurmurSpec, synth_pcg

    spec = MurmurSpec("systolic", "Holosystolic", "Plateau", "II/VI", "Medium", "Blowing")
    s = SYNTHETIC
    return synth_pcg(s["seconds"], s["sampling_rate"], heart_rate=s["heart_rate"], murmurs=[spec],
                     seed=s["seed"]).waveform


def pinned_probabilities(predictor, data_root: Path | None) -> dict[str, dict[str, list[float]]]:
    """{recording: {head: probabilities}} of the pinned recordings (real ones only with ``data_root``)."""
    from murmurlm.data.circor import read_audio

    out = {"synthetic": predictor.predict_waveform(synthetic_wave(), SYNTHETIC["sampling_rate"])}
    if data_root is not None:
        for stem in RECORDINGS:
            out[stem] = predictor.predict_waveform(read_audio(data_root / "training_data" / f"{stem}.flac"), 4000)
    return {rec: {head: [float(v) for v in p] for head, p in probs.items()} for rec, probs in out.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the circor-dev folder")
    args = parser.parse_args(argv)
    from murmurlm.inference.predict import DEFAULT_CHECKPOINT, load_model

    missing = [s for s in RECORDINGS if not (args.data / "training_data" / f"{s}.flac").exists()]
    if missing:
        print(f"error: {args.data}: recordings not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    pins = {"checkpoint": DEFAULT_CHECKPOINT.name, "sha256": checkpoint_sha256(DEFAULT_CHECKPOINT),
            "synthetic": SYNTHETIC, "probabilities": pinned_probabilities(load_model(), args.data)}
    PINS.write_text(json.dumps(pins, indent=1) + "\n")
    print(f"pinned {len(pins['probabilities'])} recordings of {DEFAULT_CHECKPOINT.name} ({pins['sha256'][:12]}) in {PINS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
