"""End to end: real Prefect flow runs against a real MLflow store in a temp folder."""

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from .conftest import mixed_frame

FAST = {"max_steps": 120, "n_members": 2}


@pytest.fixture
def train_file(mlflow_store):
    path = mlflow_store / "train.parquet"
    df = mixed_frame(n=600, seed=4, n_anomalies=30)
    df.to_parquet(path, index=False)
    return path


def test_train_register_load_by_alias_and_score(prefect_api, mlflow_store, train_file):
    from pipelines.score import score
    from pipelines.train_detector import train_detector

    rec = train_detector(data=str(train_file), model_name="demo", target=None,
                         label_column="is_anomaly", min_val_auc=0.6, params=FAST)
    assert rec["promoted"] and rec["version"] == 1
    import os

    import mlflow

    # tracking calls leave MLflow's process-wide URI as they found it
    assert mlflow.get_tracking_uri() == os.environ["MLFLOW_TRACKING_URI"]
    c = MlflowClient()
    assert str(c.get_model_version_by_alias("demo", "champion").version) == "1"
    run = c.get_run(rec["run_id"])
    assert run.info.status == "FINISHED"
    assert {"threshold", "train_loss", "val_loss", "val_roc_auc"} <= set(run.data.metrics)
    assert len(c.get_metric_history(rec["run_id"], "train_loss")) > 10
    assert run.data.params["n_steps"] == "120"
    assert run.inputs.dataset_inputs[0].dataset.name == "train"
    plots = {a.path for a in c.list_artifacts(rec["run_id"], "plots")}
    assert {"plots/loss_curves.png", "plots/score_histogram.png",
            "plots/top_blamed_columns.png"} <= plots

    incoming = mixed_frame(n=200, seed=5, n_anomalies=10)
    inc_path = mlflow_store / "incoming.csv"
    incoming.drop(columns="is_anomaly").to_csv(inc_path, index=False)
    out = mlflow_store / "scores" / "incoming.parquet"
    res = score(data=str(inc_path), model="models:/demo@champion", out=str(out))
    scores = pd.read_parquet(out)
    assert len(scores) == 200 and {"row", "score", "is_anomaly", "contrib_a"} <= set(scores)
    assert scores.loc[190:, "score"].mean() > scores.loc[:189, "score"].mean()
    assert "version 1" in res["model"]
    srun = c.get_run(res["run_id"])
    assert srun.data.metrics["n_rows"] == 200
    assert not list(out.parent.glob(".*.tmp"))  # no temp file left beside the output

    # the registered pyfunc returns score, is_anomaly and per-column contributions
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model("models:/demo@champion")
    pred = model.predict(incoming.drop(columns="is_anomaly").head(5))
    np.testing.assert_allclose(pred["score"], scores["score"].head(5), rtol=1e-6)

    # a model that fails the gate is registered but does not become champion
    bad = train_detector(data=str(train_file), model_name="demo", target=None,
                         label_column="is_anomaly", min_val_auc=0.999, params=FAST)
    assert bad["version"] == 2 and not bad["promoted"]
    assert bad["gate"].startswith("failed")
    assert str(c.get_model_version_by_alias("demo", "champion").version) == "1"
