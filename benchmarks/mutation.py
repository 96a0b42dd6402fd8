"""Mutation testing of the core pure-Python modules with mutmut 3 (a benchmark, not part of CI).

    .venv/bin/pip install -e '.[mutation]'   # mutmut 3; not needed by the package or its tests
    nice -n 19 .venv/bin/python benchmarks/mutation.py --label before --baseline
    nice -n 19 .venv/bin/python benchmarks/mutation.py --label after [--module evaluate/metrics ...]
    nice -n 19 .venv/bin/python benchmarks/mutation.py --rescore   # after editing mutation_equivalent.json

``--baseline`` leaves out the ``tests/**/test_*_mutants.py`` files, which were written to kill the
survivors of the first run. About 10 minutes for all five modules on 2 busy cores.

For each module in :data:`MODULES` the script builds a scratch project (``--work``, default
``/tmp/murmurlm-mutation/<module>``) holding a copy of ``src/``, ``tests/``, ``splits/``,
``configs/``, ``recipes/`` and ``pyproject.toml`` with a ``[tool.mutmut]`` table appended (so the
repository's own ``pyproject.toml`` needs none, and mutmut's ``mutants/`` folder never lands in
the checkout), then runs ``mutmut run`` there with only that module mutated and only the module's
own tests selected. mutmut then runs, per mutant, only the selected tests that call the mutated
function.

The package is installed editable (``.venv`` has a ``.pth`` entry for the checkout's ``src/``, which
stays on ``sys.path`` behind mutmut's ``mutants/src``), so the script checks that the tests really
import the mutated copy: a generated test in the scratch copy asserts that the module's ``__file__``
lies under ``mutants/`` and that its source holds mutmut's mutants (it fails the clean run
otherwise; where they were imported from is kept in the results), and mutmut's own forced-fail run
(every trampoline raises) must fail the tests before any mutant is tried. Real CirCor data is looked
for at ``$MURMURLM_CIRCOR`` (default ``../shared/circor-dev``, made absolute for the scratch copy).

Mutants listed in ``benchmarks/mutation_equivalent.json`` (module, mutant id, the mutated line(s),
a reason) that survive count as *equivalent*: no test can tell them from the original. The score
of a module is ``killed / (total - equivalent)``; timeouts (a mutant that makes the tests hang, e.g.
a loop that never ends) are listed separately and not counted as killed, mutants no selected test
reaches ("no tests") count as survivors.

Writes ``benchmarks/results/mutation.json`` (every run kept under its ``--label``) and
``benchmarks/results/mutation.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
EQUIVALENT_FILE = REPO / "benchmarks" / "mutation_equivalent.json"

DOCTESTS = "tests/test_doctests.py::test_doctests[{}]"

MODULES: dict[str, dict] = {
    "evaluate/metrics": {
        "source": "src/murmurlm/evaluate/metrics.py",
        "tests": ["tests/evaluate/test_eval_metrics.py", "tests/evaluate/test_eval_properties.py",
                  DOCTESTS.format("murmurlm.evaluate.metrics"), "tests/evaluate/test_metrics_mutants.py"],
    },
    "evaluate/aggregate": {
        "source": "src/murmurlm/evaluate/aggregate.py",
        "tests": ["tests/evaluate/test_aggregate.py", "tests/evaluate/test_eval_properties.py",
                  DOCTESTS.format("murmurlm.evaluate.aggregate"), "tests/evaluate/test_aggregate_mutants.py"],
    },
    "data/labels": {
        "source": "src/murmurlm/data/labels.py",
        "tests": ["tests/data/test_labels.py", DOCTESTS.format("murmurlm.data.labels"),
                  "tests/data/test_labels_mutants.py"],
    },
    "train/data": {
        "source": "src/murmurlm/train/data.py",
        # tests/train/test_data.py is being written alongside; it is used once it exists
        "tests": ["tests/train/test_data.py", DOCTESTS.format("murmurlm.train.data"),
                  "tests/train/test_train_data_mutants.py"],
        "process_isolation": "forkserver",  # the tests import torch
    },
    "signal/cycles": {
        "source": "src/murmurlm/signal/cycles.py",
        "tests": ["tests/signal/segment/test_segment_io_cycles.py",
                  DOCTESTS.format("murmurlm.signal.cycles"),
                  "tests/signal/segment/test_cycles_mutants.py", "tests/signal/test_cycles.py",
                  "tests/signal/test_cycles_mutants2.py"],
    },
}

COPY = ["src", "tests", "splits", "configs", "recipes", "pyproject.toml"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "*.egg-info")
PROBE_TEST = "tests/test_zz_mutation_probe.py"

# Run inside the scratch project after `mutmut run`: every mutant's id, status and diff as JSON.
DUMP = r"""
import json, sys
from pathlib import Path
from mutmut.configuration import config
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
source = Path(sys.argv[1])
data = SourceFileMutationData(path=source)
data.load()
out = []
for name, code in sorted(data.exit_code_by_key.items(), key=lambda kv: (kv[0].rsplit("__mutmut_", 1)[0], int(kv[0].rsplit("_", 1)[1]))):
    status = status_by_exit_code[code]
    out.append({"id": name, "status": status, "exit_code": code,
                "diff": get_diff_for_mutant(name, path=source) if status != "killed" else None})
print(json.dumps(out))
"""


def probe_test(module: str) -> str:
    return textwrap.dedent(f'''
        """Generated by benchmarks/mutation.py: the tests must import mutmut's mutated copy."""
        import importlib
        import os
        from pathlib import Path


        def test_the_mutated_copy_is_imported():
            import murmurlm
            mod = importlib.import_module({module!r})
            path = Path(mod.__file__).resolve()
            Path(os.environ["MURMURLM_MUTATION_PROBE"]).write_text(
                __import__("json").dumps({{"murmurlm": murmurlm.__file__, "module": str(path)}}))
            assert "mutants" in path.parts, f"tests import {{path}}, not the mutated copy"
            assert "__mutmut_orig" in path.read_text(), f"{{path}} holds no mutmut mutants"
    ''')


def prepare(name: str, spec: dict, work: Path, baseline: bool = False) -> tuple[list[str], list[str]]:
    """A fresh scratch project for one module; returns (tests selected, tests missing). With
    ``baseline`` the ``test_*_mutants.py`` files (written to kill this benchmark's survivors) are left out."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for item in COPY:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, work / item, ignore=IGNORE)
        elif src.exists():
            shutil.copy2(src, work / item)
    wanted = [t for t in spec["tests"] if not (baseline and t.split("::")[0].endswith("_mutants.py"))]
    tests = [t for t in wanted if (REPO / t.split("::")[0]).exists()]
    missing = [t for t in wanted if t not in tests]
    module = spec["source"].removeprefix("src/").removesuffix(".py").replace("/", ".")
    (work / PROBE_TEST).write_text(probe_test(module))
    if baseline:
        for path in (work / "tests").rglob("test_*_mutants.py"):
            path.unlink()
    toml = {
        "source_paths": ["src"],
        "only_mutate": [spec["source"]],
        # tests/ (conftest.py, fake_mirror.py, system_tools.py, ...) and pyproject.toml are copied by
        # mutmut itself; the data files some tests and doctests read are not
        "also_copy": ["splits", "configs", "recipes"],
        "pytest_add_cli_args_test_selection": [PROBE_TEST, *tests],
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        "process_isolation": spec.get("process_isolation", "fork"),
        "use_git_change_detection": False,
        "timeout_multiplier": 15.0,
        "timeout_constant": 5.0,
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in toml.items()]
    with open(work / "pyproject.toml", "a") as f:
        f.write("\n".join(lines) + "\n")
    return tests, missing


def changed_lines(diff: str | None) -> list[str]:
    if not diff:
        return []
    return [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def load_equivalents() -> list[dict]:
    if not EQUIVALENT_FILE.exists():
        return []
    return json.loads(EQUIVALENT_FILE.read_text())["equivalent"]


def run_module(name: str, spec: dict, work: Path, max_children: int, baseline: bool = False) -> dict:
    tests, missing = prepare(name, spec, work, baseline)
    env = dict(os.environ)
    env.setdefault("MURMURLM_CIRCOR", str(REPO.parent / "shared" / "circor-dev"))
    env["MURMURLM_CIRCOR"] = str(Path(env["MURMURLM_CIRCOR"]).resolve())
    env["MURMURLM_MUTATION_PROBE"] = str(work / "probe.json")
    env.pop("PYTHONPATH", None)
    mutmut = [sys.executable, "-m", "mutmut"]
    t0 = time.perf_counter()
    log = work / "mutmut.log"
    with open(log, "w") as f:
        proc = subprocess.run([*mutmut, "run", "--max-children", str(max_children)], cwd=work, env=env,
                              stdout=f, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    if proc.returncode != 0 or not (work / "probe.json").exists():
        tail = "\n".join(text.splitlines()[-40:])
        raise SystemExit(f"{name}: mutmut run failed (rc {proc.returncode}); log {log}:\n{tail}")
    probe = json.loads((work / "probe.json").read_text())
    # mutmut stops with "FAILED: Unable to force test failures" when the tests pass although every
    # trampoline raises (i.e. they do not run the mutated copy)
    forced_fail = "Running forced fail test" in text and "Unable to force test failures" not in text
    dumped = subprocess.run([sys.executable, "-c", DUMP, spec["source"]], cwd=work, env=env,
                            capture_output=True, text=True, check=True)
    mutants = json.loads(dumped.stdout)

    # the mutated line(s) only: `mutmut show <id>` in the scratch folder prints the whole diff
    not_killed = [{"id": m["id"], "status": m["status"], "mutation": changed_lines(m["diff"])}
                  for m in mutants if m["status"] != "killed"]
    return {
        "source": spec["source"],
        "tests": tests,
        "tests_missing": missing,
        "total": len(mutants),
        "killed": sum(m["status"] == "killed" for m in mutants),
        "seconds": round(seconds, 1),
        "imported_from": probe,
        "forced_fail_test_passed": forced_fail,
        "not_killed": not_killed,
    }


def score(m: dict, equivalents: list[dict], name: str) -> dict:
    """(Re)classify one module's non-killed mutants against the equivalents list; adds the counts
    and the score to ``m``. Applied to every stored run, so before and after use the same list."""
    eq_by_id = {e["mutant"]: e for e in equivalents if e["module"] == name}
    counts = {k: 0 for k in ("survived", "no_tests", "timeout", "equivalent", "other")}
    survivors, equivalent, stale = [], [], []
    for s in m["not_killed"]:
        eq = eq_by_id.pop(s["id"], None)
        if eq and s["status"] in ("survived", "no tests") and eq.get("mutation") == s["mutation"]:
            counts["equivalent"] += 1
            equivalent.append({"id": s["id"], "mutation": s["mutation"], "reason": eq["reason"]})
            continue
        if eq:
            stale.append({"id": s["id"], "listed": eq.get("mutation"), "now": [f"status {s['status']}", *s["mutation"]]})
        key = {"survived": "survived", "no tests": "no_tests", "timeout": "timeout"}.get(s["status"], "other")
        counts[key] += 1
        survivors.append(s["id"])
    killed_listed = [{"id": i, "listed": e.get("mutation"), "now": ["killed"]} for i, e in eq_by_id.items()]
    denom = m["total"] - counts["equivalent"]
    m.update(counts)
    m["score"] = round(m["killed"] / denom, 4) if denom else None
    m["score_counting_timeouts"] = round((m["killed"] + counts["timeout"]) / denom, 4) if denom else None
    m["survivors"] = survivors
    m["equivalents"] = equivalent
    m["stale_equivalents"] = stale + killed_listed
    return m


def render(results: dict) -> str:
    runs = results["runs"]
    labels = list(runs)
    out = ["# Mutation testing (mutmut 3)", "",
           "Produced by `benchmarks/mutation.py` (a benchmark, not part of CI). Score = killed / (total - equivalent); "
           "timeouts and mutants that no selected test reaches are not counted as killed (the last column "
           "counts timeouts as detected). Equivalent mutants are listed, each with its reason, in "
           "`benchmarks/mutation_equivalent.json`; the same list is applied to every run.", ""]
    names = list(dict.fromkeys(n for r in runs.values() for n in r["modules"]))
    out += ["| module | " + " | ".join(f"{lab}" for lab in labels) + " | equivalent | "
            + f"{labels[-1]}, timeouts as detected |",
            "|---|" + "---|" * (len(labels) + 2)]
    for n in names:
        cells = []
        for lab in labels:
            m = runs[lab]["modules"].get(n)
            cells.append("—" if m is None else f"{m['score']:.1%} ({m['killed']}/{m['total'] - m['equivalent']})")
        last = runs[labels[-1]]["modules"].get(n)
        eq = "—" if last is None else str(last["equivalent"])
        with_t = "—" if last is None else f"{last['score_counting_timeouts']:.1%}"
        out.append(f"| `{n}` | " + " | ".join(cells) + f" | {eq} | {with_t} |")
    for lab in labels:
        r = runs[lab]
        out += ["", f"## {lab}", "", f"mutmut {r['mutmut']}, Python {r['python']}, git {r['git']}. Commands:", ""]
        for cmd in dict.fromkeys(m.get("command", r["command"]) for m in r["modules"].values()):
            out.append(f"    {cmd}")
        out += ["", "| module | total | killed | survived | no tests | timeout | equivalent | score | tests run | date | s |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for n, m in r["modules"].items():
            tests = "<br>".join(f"`{t}`" for t in m["tests"])
            out.append(f"| `{n}` | {m['total']} | {m['killed']} | {m['survived']} | {m['no_tests']} | "
                       f"{m['timeout']} | {m['equivalent']} | {m['score']:.1%} | {tests} | "
                       f"{m.get('date', r['date'])} | {m['seconds']:.0f} |")
        out.append("")
        for n, m in r["modules"].items():
            p = m["imported_from"]
            note = f"- `{n}`: the tests imported `{p['module']}`; mutmut's forced-fail check " + \
                ("passed" if m["forced_fail_test_passed"] else "NOT SEEN")
            if m["tests_missing"]:
                note += "; not present, skipped: " + ", ".join(f"`{t}`" for t in m["tests_missing"])
            out.append(note)
        for n, m in r["modules"].items():
            if m["survivors"]:
                out += ["", f"### {lab}: `{n}`, not killed", ""]
                by_id = {s["id"]: s for s in m["not_killed"]}
                for s in map(by_id.get, m["survivors"]):
                    out.append(f"- `{s['id'].rsplit('.', 1)[-1]}` ({s['status']}): "
                               f"`{' / '.join(s['mutation']) or '(line removed)'}`")
            if m["stale_equivalents"]:
                out += ["", f"### {lab}: `{n}`, entries of mutation_equivalent.json that do not match", ""]
                for e in m["stale_equivalents"]:
                    out.append(f"- `{e['id']}`: listed `{e['listed']}`, now `{e['now']}`")
    eq_lines = []
    for n in names:
        for lab in reversed(labels):
            m = runs[lab]["modules"].get(n)
            if m is not None:
                break
        for e in m["equivalents"]:
            eq_lines.append(f"- `{n}` `{e['id'].rsplit('.', 1)[-1]}`: `{' / '.join(e['mutation']) or '(line removed)'}` "
                            f"— {e['reason']}")
    if eq_lines:
        out += ["", "## Equivalent mutants", ""] + eq_lines
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", default="before", help="name of this run in the results (before, after, ...)")
    parser.add_argument("--module", action="append", choices=list(MODULES), help="only these (repeatable)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested in parallel")
    parser.add_argument("--work", type=Path, default=Path("/tmp/murmurlm-mutation"), help="scratch folder")
    parser.add_argument("--out", type=Path, default=RESULTS / "mutation")
    parser.add_argument("--baseline", action="store_true",
                        help="leave out the tests/**/test_*_mutants.py files (the 'before' state)")
    parser.add_argument("--rescore", action="store_true",
                        help="run nothing: re-apply mutation_equivalent.json to the stored runs and rewrite the results")
    args = parser.parse_args()
    json_path = args.out.with_suffix(".json")
    results = json.loads(json_path.read_text()) if json_path.exists() else {"runs": {}}
    equivalents = load_equivalents()

    def write() -> None:
        for r in results["runs"].values():
            for n, m in r["modules"].items():
                score(m, equivalents, n)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
        args.out.with_suffix(".md").write_text(render(results))

    if args.rescore:
        write()
        return
    try:
        from importlib.metadata import version
        mutmut_version = version("mutmut")
    except Exception:
        raise SystemExit("mutmut is not installed: pip install 'mutmut>=3.8,<4'") from None
    if int(mutmut_version.split(".")[0]) != 3:
        raise SystemExit(f"needs mutmut 3, found {mutmut_version}")

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout.strip())
    command = "nice -n 19 .venv/bin/python benchmarks/mutation.py " + " ".join(sys.argv[1:])
    run = results["runs"].setdefault(args.label, {"modules": {}})
    run.update(date=dt.datetime.now().isoformat(timespec="seconds"), command=command, mutmut=mutmut_version,
               python=platform.python_version(), git=git + ("+dirty" if dirty else ""))
    for name in args.module or list(MODULES):
        print(f"== {name}", flush=True)
        m = run_module(name, MODULES[name], args.work / name.replace("/", "-"), args.max_children, args.baseline)
        m.update(command=command, baseline=args.baseline, max_children=args.max_children,
                 date=dt.datetime.now().isoformat(timespec="seconds"))
        run["modules"][name] = m
        write()
        print(f"   {m['total']} mutants: {m['killed']} killed, {m['survived']} survived, {m['no_tests']} no tests, "
              f"{m['timeout']} timeout, {m['equivalent']} equivalent -> score {m['score']:.1%} "
              f"({m['seconds']:.0f} s; imported {m['imported_from']['module']})", flush=True)


if __name__ == "__main__":
    main()
