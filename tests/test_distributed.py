"""The incoming-folder flow on a local Dask cluster: one task per file, each scored once.

Skipped when the ``distributed`` extra (prefect-dask) is not installed. The Dask flow run takes
9 to 16 s here (two worker processes start and import torch), so it stays in the default suite.
"""

import contextlib
import io
import os
import sqlite3
import time

import pytest

from genaug import AnomalyDetector

from .conftest import mixed_frame

pytest.importorskip("prefect_dask")


def test_incoming_flow_on_a_local_dask_cluster_scores_each_file_once(prefect_api, mlflow_store):
    from mlflow import MlflowClient

    from pipelines.batch import score_incoming_flow

    train = mixed_frame(n=300, seed=21).drop(columns="is_anomaly")
    model = AnomalyDetector(random_state=0, max_steps=40, n_members=1).fit(train).save(
        mlflow_store / "model")
    inc = mlflow_store / "incoming"
    inc.mkdir()
    for i in range(3):
        mixed_frame(n=250, seed=30 + i).drop(columns="is_anomaly").to_parquet(
            inc / f"part{i}.parquet")
    (inc / "bad.csv").write_text("a,b\n1,2\n")
    t = time.time() - 60
    for p in inc.iterdir():
        os.utime(p, (t, t))
    folders = {k: str(mlflow_store / k) for k in ("scores", "done", "q")}
    ledger = mlflow_store / "ledger.db"
    kw = {"incoming": str(inc), "model": str(model), "out": folders["scores"],
          "processed": folders["done"], "quarantine": folders["q"], "ledger": str(ledger)}
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        res = score_incoming_flow(**kw, dask="local", dask_workers=2)
    print(f"dask flow run: {time.perf_counter() - t0:.1f} s")
    assert sorted(res["scored"]) == ["part0.parquet", "part1.parquet", "part2.parquet"]
    assert res["quarantined"] == ["bad.csv"] and res["rows_scored"] == 750
    assert sorted(p.name for p in (mlflow_store / "scores").iterdir()) == [
        f"part{i}.scores.parquet" for i in range(3)]
    assert list(inc.iterdir()) == []
    with contextlib.closing(sqlite3.connect(ledger)) as db:
        status = dict(db.execute("SELECT name, status FROM files").fetchall())
    assert status == {"part0.parquet": "done", "part1.parquet": "done", "part2.parquet": "done",
                      "bad.csv": "quarantined"}
    # MLflow logging happened in the flow's process: one run per scored file, one batch run
    c = MlflowClient()
    runs = c.search_runs([c.get_experiment_by_name("genaug-scoring").experiment_id])
    assert sorted(r.data.tags["genaug.kind"] for r in runs) == ["batch"] + ["scoring"] * 3
    # the same content again, now on the default (sequential) path: the ledger written by the
    # Dask workers says it was scored, so it is not scored a second time
    (inc / "again.parquet").write_bytes((mlflow_store / "done" / "part0.parquet").read_bytes())
    os.utime(inc / "again.parquet", (t, t))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        again = score_incoming_flow(**kw, log_to_mlflow=False)
    assert again["scored"] == [] and again["duplicates"] == ["again.parquet"]
