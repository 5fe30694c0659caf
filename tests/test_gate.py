"""Retrain gate: champion vs challenger on a fixed labelled validation set."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genaug import AnomalyDetector
from genaug.anomalies import with_dependency_anomalies
from genaug.errors import DtypeError, MissingColumnError
from genaug.gate import Evaluation, compare, decide, read_validation

from .conftest import mixed_frame

TINY = {"max_steps": 300, "n_members": 1, "combine": "none", "random_state": 0}


def _ev(auc: float) -> Evaluation:
    return Evaluation(auc, auc / 2, 100, 10)


def test_decide_rules():
    d = decide(_ev(0.8), None, min_val_auc=0.6)
    assert d.promote and d.reason.startswith("passed: no champion yet")
    d = decide(_ev(0.55), None, min_val_auc=0.6)
    assert not d.promote and d.reason == "failed: challenger ROC-AUC 0.550 < floor 0.6"
    d = decide(_ev(0.55), _ev(0.7), min_val_auc=0.6, champion_desc="champion v1")
    assert d.reason == ("failed: challenger ROC-AUC 0.550 < champion v1 ROC-AUC 0.700 - "
                        "tolerance 0.0; challenger ROC-AUC 0.550 < floor 0.6; champion v1 stays")
    d = decide(_ev(0.80), _ev(0.85), min_val_auc=0.6, champion_desc="champion v3")
    assert not d.promote and d.reason.startswith("failed") and "champion v3 stays" in d.reason
    assert "0.800" in d.reason and "0.850" in d.reason
    d = decide(_ev(0.80), _ev(0.85), min_val_auc=0.6, tolerance=0.05)
    assert d.promote  # within the tolerance
    d = decide(_ev(0.85), _ev(0.85), min_val_auc=0.6)
    assert d.promote  # "at least as good"
    d = decide(_ev(0.7), None, min_val_auc=0.6, champion_desc="champion v2",
               champion_error="MissingColumnError: x")
    assert d.promote and "champion v2 is unusable (MissingColumnError: x)" in d.reason
    assert d.metrics()["gate_promoted"] == 1.0 and "gate_champion_roc_auc" not in d.metrics()


def _shuffled(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every column permuted on its own: marginals kept, the dependencies destroyed."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: df[c].to_numpy()[rng.permutation(len(df))] for c in df.columns})


def test_compare_treats_a_champion_that_cannot_read_the_file_as_unusable():
    train = mixed_frame(n=400, seed=1).drop(columns="is_anomaly")
    val = mixed_frame(n=300, seed=2, n_anomalies=30)
    X, y = val.drop(columns="is_anomaly"), val["is_anomaly"].to_numpy()
    challenger = AnomalyDetector(**TINY).fit(train)
    champion = AnomalyDetector(**TINY).fit(train.assign(extra=np.arange(400) % 7 * 1.5))
    d = compare(challenger, champion, X.assign(note="ignored"), y, file="val.parquet",
                champion_desc="champion v1")
    assert d.champion is None and d.champion_error.startswith("MissingColumnError")
    assert "'extra'" in d.champion_error and "val.parquet" in d.champion_error
    assert d.promote and "champion v1 is unusable" in d.reason
    assert d.challenger.roc_auc > 0.7 and d.challenger.n_anomalies == 30
    # the challenger itself cannot score it: the validation file is wrong -> named error
    with pytest.raises(MissingColumnError, match="val.parquet"):
        compare(challenger, None, X.drop(columns="colour"), y, file="val.parquet")
    # unseen levels are scored as rare during the gate, and the model's setting is restored
    odd = X.copy()
    odd.loc[0, "size"] = "XXL"
    assert compare(challenger, None, odd, y).challenger.n_rows == 300
    assert challenger.handle_unknown == "error"


def test_validation_file_errors(tmp_path):
    df = mixed_frame(n=50, seed=3)
    df.drop(columns="is_anomaly").to_parquet(tmp_path / "nolabel.parquet")
    with pytest.raises(MissingColumnError, match="nolabel.parquet"):
        read_validation(str(tmp_path / "nolabel.parquet"), "is_anomaly")
    df.to_parquet(tmp_path / "one_class.parquet")  # no anomalies: ROC-AUC undefined
    with pytest.raises(DtypeError, match="single class"):
        read_validation(str(tmp_path / "one_class.parquet"), "is_anomaly")
    df.assign(is_anomaly=2).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DtypeError, match="0 \\(normal\\) or 1"):
        read_validation(str(tmp_path / "bad.parquet"), "is_anomaly")


def test_dependency_anomalies_keep_marginals_and_the_shipped_file_is_their_rebuild():
    root = Path(__file__).resolve().parents[1]
    src = pd.read_parquet(root / "data/sample/adult_incoming.parquet")
    built = with_dependency_anomalies(src, 60, seed=0)
    assert len(built) == 660 and built["is_anomaly"].sum() == 60
    fake = built[built["is_anomaly"] == 1]
    for c in src.columns:  # every injected value is a real value of its column
        assert set(fake[c].dropna()) <= set(src[c].dropna())
        assert built[c].dtype == src[c].dtype
    # normal rows are the source rows, untouched
    normal = built[built["is_anomaly"] == 0].drop(columns="is_anomaly")
    key = list(src.columns)
    pd.testing.assert_frame_equal(normal.sort_values(key).reset_index(drop=True),
                                  src.sort_values(key).reset_index(drop=True))
    shipped = pd.read_parquet(root / "data/sample/adult_validation.parquet")
    pd.testing.assert_frame_equal(shipped, built)
    assert not built.equals(with_dependency_anomalies(src, 60, seed=1))


def test_retrain_flow_promotes_a_better_challenger_and_keeps_the_champion_otherwise(
        prefect_api, mlflow_store):
    from mlflow import MlflowClient

    from pipelines.train_detector import train_detector

    clean = mixed_frame(n=500, seed=4).drop(columns="is_anomaly")
    clean.to_parquet(mlflow_store / "clean.parquet", index=False)
    _shuffled(clean, 0).to_parquet(mlflow_store / "garbage.parquet", index=False)
    mixed_frame(n=300, seed=5, n_anomalies=30).to_parquet(mlflow_store / "val.parquet")
    common = {"model_name": "gated", "target": None, "params": TINY,
              "validation_data": str(mlflow_store / "val.parquet")}

    def train(data: str, **kw):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return train_detector(data=str(mlflow_store / data), **common, **kw)

    c = MlflowClient()
    # a weak first champion: trained on data whose dependencies were shuffled away
    weak = train("garbage.parquet", min_val_auc=0.0)
    assert weak["promoted"] and weak["gate"].startswith("passed: no champion yet")

    better = train("clean.parquet")
    assert better["promoted"] and better["version"] == 2 and better["champion_version"] == 2
    cmp = better["comparison"]
    assert cmp["challenger"]["roc_auc"] > cmp["champion"]["roc_auc"] + 0.1
    assert "champion v1" in better["gate"] and better["gate"].startswith("passed")
    m = c.get_run(better["run_id"]).data.metrics
    assert m["gate_challenger_roc_auc"] == pytest.approx(cmp["challenger"]["roc_auc"])
    assert m["gate_champion_roc_auc"] == pytest.approx(cmp["champion"]["roc_auc"])
    assert {"gate_challenger_pr_auc", "gate_champion_pr_auc"} <= set(m)
    assert m["gate_promoted"] == 1.0

    worse = train("garbage.parquet", min_val_auc=0.0)  # only the champion can stop it
    assert not worse["promoted"] and worse["version"] == 3 and worse["champion_version"] == 2
    assert worse["gate"].startswith("failed") and "champion v2 stays" in worse["gate"]
    assert str(c.get_model_version_by_alias("gated", "champion").version) == "2"
    run = c.get_run(worse["run_id"])
    assert run.data.tags["genaug.gate"] == worse["gate"]
    assert run.data.tags["genaug.gate.decision"] == "kept champion"
    assert run.data.tags["genaug.gate.champion"] == "champion v2"
    assert run.data.metrics["gate_promoted"] == 0.0
    assert run.data.metrics["gate_challenger_roc_auc"] < run.data.metrics["gate_champion_roc_auc"]
    local = c.download_artifacts(worse["run_id"], "gate/decision.json", str(mlflow_store))
    saved = json.loads(Path(local).read_text())
    assert saved["promoted"] is False and saved["reason"] == worse["gate"]
    assert c.get_model_version("gated", "3").tags["genaug.gate"] == worse["gate"]


def test_weekly_retrain_deployment_passes_the_shipped_validation_file():
    import inspect

    from pipelines.serve import VALIDATION, retrain_parameters
    from pipelines.train_detector import train_detector

    params = retrain_parameters(VALIDATION, 0.55)
    assert set(params) <= set(inspect.signature(train_detector.fn).parameters)
    root = Path(__file__).resolve().parents[1]
    X, y = read_validation(str(root / params["validation_data"]), params["validation_label"])
    assert len(X) == 660 and y.sum() == 60
    assert "validation_data" not in retrain_parameters("", 0.55)
