"""The package works installed, not only from a checkout: build the wheel from a copy of the
sources, install it into a fresh virtual environment outside the checkout, and run what needs
package data there (``murmurlm config list|cp`` and one epoch of ``murmurlm train`` on a synthetic
CirCor folder, which reads the shipped default config and the recipe from the installed package).

The fresh environment gets the already-installed dependencies (torch, transformers, ...) through a
``.pth`` line naming this interpreter's site-packages: a path line adds the folder to ``sys.path``
without running the ``.pth`` files inside it, so this checkout's editable install stays out and
``import murmurlm`` can only find the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from repo_paths import REPO
from murmurlm.signal.synth import write_synthetic_circor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(dist), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = dist.glob("murmurlm-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_murmurlm_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def run_installed(env: Path, *args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MURMURLM_CIRCOR")}
    clean.update(OMP_NUM_THREADS="1", MURMURLM_CACHE=str(cwd / "cache"))
    return subprocess.run([str(env / "bin" / args[0]), *args[1:]], cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=timeout)


def test_the_wheel_ships_recipes_configs_splits_and_models(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("murmurlm/recipes/train_compact.py", "murmurlm/recipes/finetune_audio_lm.py",
                   "murmurlm/recipes/train_segmenter.py", "murmurlm/recipes/configs/compact/default.yaml",
                   "murmurlm/recipes/configs/audio_lm/prompts.yaml", "murmurlm/recipes/configs/segment/mamba.yaml",
                   "murmurlm/assets/splits/circor-dev/train.txt", "murmurlm/assets/splits/circor-dev-5fold/fold0/val.txt",
                   "murmurlm/assets/compact-default.pt", "murmurlm/assets/segmenter-mamba.pt",
                   "murmurlm/serve/static/index.html"):
        assert needed in names, needed
    shipped = {p.relative_to(REPO / "src").as_posix() for p in (REPO / "src" / "murmurlm" / "recipes" / "configs").rglob("*.yaml")}
    assert shipped <= names  # every config, not only the ones named above


def test_installed_package_lists_copies_and_trains_outside_the_checkout(installed, tmp_path):
    where = run_installed(installed, "python", "-c", "import murmurlm, murmurlm.recipes as r; "
                          "print(murmurlm.__file__); print(r.CONFIGS)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(installed)) for line in where.stdout.split()), where.stdout  # the wheel, not src/

    listed = run_installed(installed, "murmurlm", "config", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {"compact/default", "audio_lm/whisper_base_cpu", "segment/mamba"} <= {
        line.split()[0] for line in listed.stdout.splitlines()}
    copied = run_installed(installed, "murmurlm", "config", "cp", "compact/default", "mine.yaml", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "mine.yaml").read_text() == (REPO / "configs" / "compact" / "default.yaml").read_text()

    data = tmp_path / "circor"
    write_synthetic_circor(data, num_patients=10, seed=3, locations=("AV", "MV"), duration=(4.0, 5.0))
    trained = run_installed(installed, "murmurlm", "train", "--data", str(data), "--out", "run", "--no-progress",
                            "epochs=1", "crop_seconds=2.0", "window_hop_seconds=2.0", "model.channels=[8,16]",
                            cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "metrics.jsonl").is_file()
    # the run read the shipped default config: its keys are in the checkpoint's resolved config
    import torch

    config = torch.load(tmp_path / "run" / "best.pt", map_location="cpu", weights_only=False)["config"]
    assert config["select"] == "last" and config["epochs"] == 1 and config["murmur_scale"] == [1.0, 0.35, 1.0]
