"""Drift reports: PSI per column against the training profile, streamed; flow artifacts."""

import contextlib
import io
import json
import os
import time

import numpy as np
import pandas as pd
import pytest

from genaug import AnomalyDetector
from genaug.drift import DriftAccumulator, TrainingProfile, psi, psi_level
from genaug.scoring import score_file

from .conftest import mixed_frame


def _frame(n: int, seed: int) -> pd.DataFrame:
    return mixed_frame(n=n, seed=seed).drop(columns="is_anomaly")


@pytest.fixture(scope="module")
def detector():
    return AnomalyDetector(random_state=0, max_steps=40, n_members=1, combine="none",
                           handle_unknown="keep").fit(_frame(2000, 0))


def test_psi_and_levels():
    assert psi([10, 20, 30], [10, 20, 30]) == pytest.approx(0.0)
    assert psi([100, 100], [100, 100]) == 0.0 and psi([100, 100], [190, 10]) > 0.25
    # smoothed: an empty bin gives a large but finite term
    assert np.isfinite(psi([50, 50, 0], [0, 50, 50]))
    assert [psi_level(v) for v in (0.0, 0.099, 0.1, 0.25, 0.2501)] == [
        "stable", "stable", "moderate", "moderate", "drift"]


def test_same_distribution_is_stable_and_a_shifted_column_is_named(tmp_path, detector):
    same = _frame(2000, 1)
    same.to_parquet(tmp_path / "same.parquet")
    rep = score_file(tmp_path / "same.parquet", detector, tmp_path / "s.parquet").drift
    assert rep.available and rep.n_rows == 2000
    assert {c.column for c in rep.columns} == {"a", "b", "colour", "size", "count"}
    assert rep.max_psi < 0.1 and rep.drifted_columns == []
    assert all(c.level == "stable" for c in rep.columns)
    assert rep.score_psi < 0.1
    assert rep.flag_rate == pytest.approx(detector.flag_rate_, abs=0.02)

    shifted = same.assign(a=same["a"] + 1.5)  # one numeric column moves
    shifted["size"] = np.where(np.arange(2000) % 2 == 0, "L", shifted["size"])  # and a category
    shifted.to_parquet(tmp_path / "shifted.parquet")
    rep = score_file(tmp_path / "shifted.parquet", detector, tmp_path / "t.parquet").drift
    by = {c.column: c for c in rep.columns}
    assert by["a"].psi > 0.25 and by["a"].level == "drift"
    assert by["size"].psi > 0.25 and by["size"].top_bin == "L"
    assert by["size"].actual_share > by["size"].expected_share + 0.3
    assert set(rep.drifted_columns) == {"a", "size"}
    assert max(by[c].psi for c in ("b", "colour", "count")) < 0.1
    assert rep.metrics()["n_drifted_columns"] == 2.0
    assert rep.metrics()["max_psi"] == pytest.approx(max(by["a"].psi, by["size"].psi))


def test_streamed_counts_equal_one_pass_and_small_files_are_not_flagged(tmp_path, detector):
    df = _frame(1500, 2).assign(count=lambda d: d["count"] + 4)
    df.to_parquet(tmp_path / "x.parquet", row_group_size=100)
    streamed = score_file(tmp_path / "x.parquet", detector, tmp_path / "a.parquet",
                          batch_rows=128).drift
    acc = detector.drift_accumulator()
    acc.update(df, detector.decision_function(df), detector.predict(df))
    whole = acc.report()
    assert [c.psi for c in streamed.columns] == pytest.approx([c.psi for c in whole.columns])
    assert streamed.score_psi == pytest.approx(whole.score_psi)
    # the accumulator's state is bin counts only: its size does not grow with the rows
    assert [len(c) for c in acc.counts] == [len(p.counts) for p in detector.profile_.columns]
    assert "count" in streamed.drifted_columns
    small = df.head(50)
    small.to_parquet(tmp_path / "small.parquet")
    rep = score_file(tmp_path / "small.parquet", detector, tmp_path / "b.parquet").drift
    assert rep.drifted_columns == [] and "only 50 rows" in rep.note


def test_profile_is_saved_and_old_folders_without_it_still_load(tmp_path, detector):
    folder = detector.save(tmp_path / "m")
    back = AnomalyDetector.load(folder)
    assert back.profile_.to_dict() == detector.profile_.to_dict()
    assert isinstance(back.profile_, TrainingProfile)
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["profile"]  # a folder written before drift profiles existed
    cfg_path.write_text(json.dumps(cfg))
    old = AnomalyDetector.load(folder)
    assert old.profile_ is None
    _frame(300, 3).to_parquet(tmp_path / "in.parquet")
    res = score_file(tmp_path / "in.parquet", old, tmp_path / "o.parquet")
    assert res.n_rows == 300 and not res.drift.available
    assert "unavailable" in res.drift.note and res.drift.drifted_columns == []
    assert np.isfinite(res.drift.score_psi)  # the score shift needs no profile
    assert "max_psi" not in res.drift.metrics() and "score_psi" in res.drift.metrics()
    assert isinstance(DriftAccumulator(None, old.schema_, old.validation_scores_,
                                       expected_flag_rate=0.01).report().note, str)


def test_incoming_flow_reports_counts_and_drift_to_prefect_and_mlflow(
        prefect_api, mlflow_store, detector):
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from pipelines.batch import score_incoming_flow

    model = detector.save(mlflow_store / "model")
    inc = mlflow_store / "incoming"
    inc.mkdir()
    _frame(600, 5).to_parquet(inc / "normal.parquet")
    _frame(600, 6).assign(a=lambda d: d["a"] + 2.0).to_parquet(inc / "shifted.parquet")
    (inc / "broken.csv").write_text("a,b\n1,2\n")
    t = time.time() - 60
    for p in inc.iterdir():
        os.utime(p, (t, t))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        state = score_incoming_flow(
            incoming=str(inc), model=str(model), out=str(mlflow_store / "scores"),
            processed=str(mlflow_store / "done"), quarantine=str(mlflow_store / "q"),
            ledger=str(mlflow_store / "l.db"), return_state=True)
    res = state.result()
    assert res["counts"] == {"files_scored": 2, "rows_scored": 1200,
                             "rows_flagged": res["rows_flagged"], "files_quarantined": 1,
                             "duplicates": 0, "skipped": 0, "failed": 0, "drifted_columns": 1}
    assert res["drifted_columns"] == ["a"]

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    by_key = {a.key: a for a in arts}
    assert {"incoming-batch", "incoming-batch-files"} <= set(by_key)
    table = by_key["incoming-batch-files"].data
    table = json.loads(table) if isinstance(table, str) else table
    rows = {r["file"]: r for r in table}
    assert rows["shifted.parquet"]["drifted_columns"] == "a"
    assert rows["normal.parquet"]["drifted_columns"] == ""
    assert rows["normal.parquet"]["max_psi"] < 0.1 < 0.25 < rows["shifted.parquet"]["max_psi"]
    assert rows["broken.csv"]["outcome"].startswith("quarantined")
    assert "| files scored | 2 |" in by_key["incoming-batch"].data
    assert "drifted columns" in by_key["incoming-batch"].data.lower()

    c = MlflowClient()
    runs = c.search_runs([c.get_experiment_by_name("genaug-scoring").experiment_id])
    kinds = {}
    for r in runs:
        kinds.setdefault(r.data.tags["genaug.kind"], []).append(r)
    batch = kinds["batch"][0].data.metrics
    assert batch["files_scored"] == 2 and batch["rows_scored"] == 1200
    assert batch["files_quarantined"] == 1 and batch["drifted_columns"] == 1
    per_file = {r.data.params["input_file"]: r for r in kinds["scoring"]}
    shifted = per_file["shifted.scores.parquet"]
    m = shifted.data.metrics
    assert m["n_rows"] == 600 and m["n_drifted_columns"] == 1 and m["max_psi"] > 0.25
    assert {"n_flagged", "flag_rate", "score_psi", "expected_flag_rate"} <= set(m)
    assert shifted.data.tags["genaug.drift"] == "drift in a"
    assert per_file["normal.scores.parquet"].data.metrics["n_drifted_columns"] == 0
    arts = {a.path for a in c.list_artifacts(shifted.info.run_id, "drift")}
    assert arts == {"drift/columns.csv", "drift/drift.json"}
    csv = c.download_artifacts(shifted.info.run_id, "drift/columns.csv", str(mlflow_store))
    assert pd.read_csv(csv).iloc[0]["column"] == "a"
