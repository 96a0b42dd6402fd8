"""Draw docs/figures/synth_examples.png: synthetic PCGs with their segmentation and murmurs.

    .venv/bin/python docs/figures/make_synth_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import signal as sps  # noqa: E402

from murmurlm.signal.synth import MurmurSpec, synth_pcg  # noqa: E402

FS = 4000
EXAMPLES = [
    ("no murmur", []),
    ("Holosystolic, Plateau, II/VI, Medium, Blowing", [MurmurSpec("systolic", "Holosystolic", "Plateau", "II/VI", "Medium", "Blowing")]),
    ("Mid-systolic, Diamond, III/VI, Medium, Harsh", [MurmurSpec("systolic", "Mid-systolic", "Diamond", "III/VI", "Medium", "Harsh")]),
    ("Early-systolic, Decrescendo, II/VI, High, Musical", [MurmurSpec("systolic", "Early-systolic", "Decrescendo", "II/VI", "High", "Musical")]),
    ("Early-diastolic, Decrescendo, II/IV, High, Blowing", [MurmurSpec("diastolic", "Early-diastolic", "Decrescendo", "II/IV", "High", "Blowing")]),
]
COLOURS = {0: "0.85", 1: "tab:blue", 2: "tab:orange", 3: "tab:green", 4: "white"}


def main(out: Path = Path(__file__).with_name("synth_examples.png")) -> None:
    fig, axes = plt.subplots(len(EXAMPLES), 2, figsize=(12, 2.0 * len(EXAMPLES)),
                             gridspec_kw={"width_ratios": [3, 1]})
    for (title, murmurs), (ax, ax_f) in zip(EXAMPLES, axes):
        pcg = synth_pcg(3.0, FS, heart_rate=80, murmurs=murmurs, unannotated=0.3, seed=0)
        t = np.arange(len(pcg.waveform)) / FS
        for s in pcg.segments:
            ax.axvspan(s.start, s.end, color=COLOURS[s.state], alpha=0.25, lw=0)
        ax.plot(t, pcg.waveform, lw=0.5, color="k")
        ax.set_ylim(-0.5, 0.5)
        ax.set_title(title, fontsize=9, loc="left")
        f, p = sps.welch(pcg.waveform, FS, nperseg=1024)
        ax_f.semilogy(f, p, lw=0.8)
        ax_f.set_xlim(0, 800)
    axes[-1, 0].set_xlabel("time (s); shaded: S1 blue, systole orange, S2 green, unannotated grey")
    axes[-1, 1].set_xlabel("frequency (Hz), Welch PSD")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
