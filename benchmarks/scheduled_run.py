"""Integration check: a scheduled deployment really fires against a started Prefect server.

Starts ``prefect server start`` on a free loopback port with a temporary PREFECT_HOME, trains a
tiny detector into a temp folder, drops a file into a temp incoming folder, serves
``pipelines.serve --interval 10``, and waits until the scheduled run has scored the file.
Everything it started is stopped at the end. About 1-2 minutes.

    .venv/bin/python benchmarks/scheduled_run.py
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    from genaug import AnomalyDetector

    tmp = Path(tempfile.mkdtemp(prefix="genaug-sched-"))
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ, PREFECT_HOME=str(tmp / "prefect"), PREFECT_API_URL=api,
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}", DO_NOT_TRACK="true",
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=300), "b": rng.choice(["x", "y"], 300)})
    AnomalyDetector(random_state=0, max_steps=30, n_members=1).fit(df).save(tmp / "model")
    incoming = tmp / "incoming"
    incoming.mkdir()
    df.head(50).to_parquet(incoming / "batch1.parquet")
    old = time.time() - 60
    os.utime(incoming / "batch1.parquet", (old, old))

    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    served = None
    try:
        t0 = time.time()
        wait_http(f"{api}/health", 120)
        print(f"prefect server up in {time.time() - t0:.1f} s on port {port}")
        served = subprocess.Popen(
            [sys.executable, "-m", "pipelines.serve", "--interval", "10", "--model",
             str(tmp / "model"), "--incoming", str(incoming)],
            env=dict(env, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        target = tmp / "data" / "scores" / "batch1.scores.parquet"
        t1 = time.time()
        while time.time() - t1 < 180 and not target.exists():
            time.sleep(2)
        body = {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
        done: list = []
        t2 = time.time()
        while target.exists() and not done and time.time() - t2 < 120:
            time.sleep(2)  # the run still logs to MLflow and publishes its artifacts
            req = urllib.request.Request(f"{api}/flow_runs/filter",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                done = json.load(r)
        names = sorted({x["name"] for x in done})
        print(f"completed flow runs: {len(done)} {names}; scores file "
              f"{'written' if target.exists() else 'MISSING'} after {time.time() - t1:.1f} s")
        ok = target.exists() and len(done) >= 1
        print("SCHEDULED RUN FIRED" if ok else "NO SCHEDULED RUN")
        return 0 if ok else 1
    finally:
        if served is not None:
            stop(served)
        stop(server)


if __name__ == "__main__":
    sys.exit(main())
