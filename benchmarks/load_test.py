"""Load test of ``murmurlm serve`` on 127.0.0.1: N requests from C concurrent clients, 20-second recordings.

Starts the service in a subprocess on a free local port (never another host), waits for
``/healthz``, sends one warm-up request, then ``--requests`` POST /v1/predict uploads from
``--clients`` threads (each with its own HTTP connection), cycling over distinct synthetic 20-s
recordings (4 kHz 16-bit WAV, 160 kB). Bounded: the run stops at ``--time-limit`` seconds, and
requests that were not sent count as failed. Writes latency percentiles, throughput and failures
to ``benchmarks/results/load_test.json`` and ``.md``.

    nice -n 10 .venv/bin/python benchmarks/load_test.py            # 200 requests, 8 clients
    .venv/bin/python benchmarks/load_test.py --model runs/main/best.pt --requests 50
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recordings(count: int, seconds: float) -> list[bytes]:
    import soundfile as sf

    from murmurlm.signal.synth import random_murmurs, synth_pcg

    out = []
    rng = np.random.default_rng(0)
    for i in range(count):
        murmurs = random_murmurs(rng) if i % 2 else ()
        pcg = synth_pcg(seconds, 4000, heart_rate=float(rng.uniform(60, 140)), murmurs=murmurs, seed=i)
        buf = io.BytesIO()
        sf.write(buf, pcg.waveform, 4000, format="WAV", subtype="PCM_16")
        out.append(buf.getvalue())
    return out


def start_server(port: int, model: str | None, workers: int, log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "import sys; from murmurlm.cli import main; sys.exit(main(sys.argv[1:]))",
           "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if model:
        cmd += ["--model", model]
    log = open(log_path, "wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(client, url: str, proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            r = client.get(url + "/healthz", timeout=2)
            if r.status_code == 200:
                return r.json()
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s")


def run(args) -> dict:
    import httpx

    load_before = os.getloadavg()
    files = recordings(args.distinct, args.seconds)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.mkdtemp(prefix="murmurlm-load-")) / "server.log"
    proc = start_server(port, args.model, args.workers, log_path)
    try:
        with httpx.Client() as c:
            health = wait_ready(c, url, proc, args.startup_timeout)
            warm = c.post(url + "/v1/predict", files={"file": ("warmup.wav", files[0], "audio/wav")}, timeout=60)
            warm.raise_for_status()
        latencies: list[float] = []
        server_times: list[float] = []  # the service's own elapsed_s: decoding to report
        failures: list[str] = []
        lock = threading.Lock()
        next_index = iter(range(args.requests))
        deadline = time.monotonic() + args.time_limit

        def client_loop(cid: int) -> None:
            with httpx.Client(timeout=args.request_timeout) as c:
                while True:
                    with lock:
                        i = next(next_index, None)
                    if i is None or time.monotonic() > deadline:
                        return
                    data = files[i % len(files)]
                    t0 = time.perf_counter()
                    try:
                        r = c.post(url + "/v1/predict", files={"file": (f"rec{i}.wav", data, "audio/wav")})
                        body = r.json() if r.status_code == 200 else {}
                        ok = r.status_code == 200 and len(body.get("features", ())) == 11
                        err = None if ok else f"HTTP {r.status_code}: {r.text[:200]}"
                    except Exception as e:  # network errors, timeouts
                        err = f"{type(e).__name__}: {e}"
                    dt = time.perf_counter() - t0
                    with lock:
                        if err is None:
                            latencies.append(dt)
                            server_times.append(float(body["elapsed_s"]))
                        else:
                            failures.append(err)

        start = time.perf_counter()
        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    not_sent = args.requests - len(latencies) - len(failures)
    lat = np.asarray(latencies) * 1000
    result = {
        "requests": args.requests,
        "clients": args.clients,
        "recording_seconds": args.seconds,
        "recording_bytes": len(files[0]),
        "succeeded": len(latencies),
        "failed": len(failures) + not_sent,
        "not_sent_time_limit": not_sent,
        "failure_examples": failures[:5],
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 2) if wall > 0 else None,
        "latency_ms": {k: round(float(np.percentile(lat, q)), 1) for k, q in
                       (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))} if lat.size else None,
        "latency_mean_ms": round(float(lat.mean()), 1) if lat.size else None,
        "server_elapsed_ms": {k: round(float(np.percentile(np.asarray(server_times) * 1000, q)), 1)
                              for k, q in (("p50", 50), ("p99", 99))} if server_times else None,
        "server": {"model": health["model"], "segmentation": health["segmentation"], "workers": args.workers},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "note": "client and server on the same host" + (f"; {args.note}" if args.note else "")},
        "command": ((f"nice -n {os.nice(0)} " if os.nice(0) else "") + ".venv/bin/python benchmarks/load_test.py "
                   + " ".join(sys.argv[1:])).strip(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    return result


def markdown(r: dict) -> str:
    lat = r["latency_ms"] or {}
    srv = r["server_elapsed_ms"] or {}
    return "\n".join([
        "# Load test: murmurlm serve",
        "",
        f"`{r['command'].strip()}` ({r['date_utc']} UTC)",
        "",
        f"{r['requests']} POST /v1/predict requests from {r['clients']} concurrent clients, "
        f"{r['recording_seconds']:g}-s recordings ({r['recording_bytes'] / 1000:.0f} kB WAV, 4 kHz 16-bit), "
        f"127.0.0.1, model `{r['server']['model']}`, segmentation {'on' if r['server']['segmentation'] else 'off'}, "
        f"{r['server']['workers']} server workers; {r['machine']['cpus']} CPUs, load average "
        f"{r['machine']['load_average_before'][0]} before the run ({r['machine']['note']}).",
        "",
        "| succeeded | failed | wall (s) | throughput (req/s) | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) "
        "| server p50 (ms) | server p99 (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['succeeded']} | {r['failed']} | {r['wall_s']} | {r['throughput_rps']} | {lat.get('p50')} | "
        f"{lat.get('p90')} | {lat.get('p99')} | {lat.get('max')} | {srv.get('p50')} | {srv.get('p99')} |",
        "",
        "Latency: client-side, upload to parsed answer. Server: the service's own `elapsed_s` (decoding, "
        "prediction, segmentation, report), without HTTP and queueing.",
        "",
    ])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="compact checkpoint (default: the packaged model)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of each recording")
    ap.add_argument("--distinct", type=int, default=8, help="distinct recordings cycled over")
    ap.add_argument("--workers", type=int, default=4, help="server --workers")
    ap.add_argument("--time-limit", type=float, default=540.0, help="stop sending after this many seconds")
    ap.add_argument("--request-timeout", type=float, default=120.0)
    ap.add_argument("--startup-timeout", type=float, default=120.0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--note", default="", help="a remark on the machine, written with the results")
    args = ap.parse_args()
    if not (0 < args.requests <= 10_000 and 0 < args.clients <= 64):
        ap.error("--requests must be in 1..10000 and --clients in 1..64")
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load_test.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "load_test.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
