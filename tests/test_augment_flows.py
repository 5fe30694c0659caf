"""Augmented datasets and the augmentation evaluation as flows, with a real MLflow store."""

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from genaug import Augmenter
from genaug.augmented import (
    SYNTHETIC_COLUMN,
    augment_frame,
    manifest_path,
    split_target,
    synthetic_counts,
)
from genaug.errors import GenaugInputError, MissingColumnError
from genaug.ledger import file_digest
from genaug.samplers import is_generator_arm, make_arm

from .conftest import mixed_frame

FAST = {"max_steps": 60, "gan_steps": 60, "hidden": 32}


def labelled(n: int = 300, seed: int = 1, n_rare: int = 40) -> pd.DataFrame:
    df = mixed_frame(n=n, seed=seed, n_anomalies=n_rare)
    return df.rename(columns={"is_anomaly": "label"})


def quiet():
    return contextlib.redirect_stdout(io.StringIO())


# ------------------------------------------------------------------------------------ library
def test_synthetic_counts_follow_imblearn_strategies():
    y = np.array([0] * 90 + [1] * 10)
    assert synthetic_counts(y, "auto") == {1: 80}
    assert synthetic_counts(y, 0.5) == {1: 35}
    assert synthetic_counts(y, {1: 30}) == {1: 20}
    assert synthetic_counts(np.array([0] * 5 + [1] * 5), "auto") == {}


def test_split_target_names_the_missing_target_and_refuses_augmented_tables():
    df = labelled(50)
    with pytest.raises(MissingColumnError, match="'income'") as e:
        split_target(df, "income", "x.parquet")
    assert e.value.file == "x.parquet"
    with pytest.raises(GenaugInputError, match="missing labels"):
        split_target(df.assign(label=df["label"].astype(float).where(df.index > 0)), "label")
    with pytest.raises(GenaugInputError, match="already augmented"):
        split_target(df.assign(**{SYNTHETIC_COLUMN: False}), "label")


def test_augment_frame_keeps_real_rows_columns_and_dtypes():
    df = labelled()
    X, y = split_target(df, "label")
    aug = Augmenter(random_state=0, **FAST).fit(X, y)
    out, counts = augment_frame(X, y, aug, "auto", random_state=3)
    assert counts == {1: 260 - 40}
    assert list(out.columns) == [*X.columns, "label", SYNTHETIC_COLUMN]
    real = out[~out[SYNTHETIC_COLUMN]]
    pd.testing.assert_frame_equal(real.drop(columns=[SYNTHETIC_COLUMN]).reset_index(drop=True),
                                  df[list(out.columns[:-1])].reset_index(drop=True))
    syn = out[out[SYNTHETIC_COLUMN]]
    assert len(syn) == 220 and (syn["label"] == 1).all()
    assert out.dtypes.drop(SYNTHETIC_COLUMN).equals(df[list(out.columns[:-1])].dtypes)
    again, _ = augment_frame(X, y, aug, "auto", random_state=3)
    pd.testing.assert_frame_equal(out, again)  # seeded draws repeat


def test_generator_arm_names():
    assert is_generator_arm("vae") and is_generator_arm("gan+filter")
    assert is_generator_arm("default+drop")
    assert not is_generator_arm("vae+") and not is_generator_arm("smote")
    assert not is_generator_arm("vae+nothing")
    a = make_arm("gan+filter", max_steps=5)(7)
    assert (a.model, a.drop_anomalies, a.reject_anomalies, a.random_state, a.max_steps) == (
        "gan", True, True, 7, 5)
    b = make_arm("default+reject")(1)
    assert b.model == Augmenter().model and b.reject_anomalies and not b.drop_anomalies
    with pytest.raises(ValueError, match="unknown arm"):
        make_arm("vae+")


# ------------------------------------------------------------------------------------ flows
def test_augment_flow_fits_registers_writes_and_reuses_the_model(prefect_api, mlflow_store):
    from mlflow import MlflowClient

    from pipelines.augment import augment

    df = labelled()
    src = mlflow_store / "train.parquet"
    df.to_parquet(src)
    out = mlflow_store / "aug" / "train.augmented.parquet"
    with quiet():
        res = augment(data=str(src), target="label", out=str(out), params=FAST,
                      random_state=0)
    table = pd.read_parquet(out)
    assert len(table) == 520 and table[SYNTHETIC_COLUMN].sum() == 220
    assert (table.loc[table[SYNTHETIC_COLUMN], "label"] == 1).all()
    pd.testing.assert_frame_equal(
        table[~table[SYNTHETIC_COLUMN]].drop(columns=[SYNTHETIC_COLUMN]), df)
    man = json.loads(manifest_path(out).read_text())
    assert man["source_sha256"] == file_digest(src) and man["output_sha256"] == file_digest(out)
    assert (man["rows_real"], man["rows_synthetic"], man["rows_total"]) == (300, 220, 520)
    assert man["synthetic_by_class"] == {"1": 220} and man["seed"] == 0
    assert man["model"]["name"] == "genaug-augmenter" and man["model"]["version"] == 1
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp files

    c = MlflowClient()
    assert int(c.get_model_version_by_alias("genaug-augmenter", "champion").version) == 1
    train_run = c.get_run(res["training"]["run_id"])
    assert train_run.data.tags["genaug.gate"].startswith("passed")
    losses = c.get_metric_history(train_run.info.run_id, "vae_train_loss")
    assert len(losses) > 5 and len({m.step for m in losses}) == len(losses)  # per epoch
    assert "fidelity_c2st_auc" in train_run.data.metrics
    arts = {a.path for a in c.list_artifacts(train_run.info.run_id, "plots")}
    assert {"plots/training_curves.png", "plots/fidelity_marginals.png"} <= arts
    import mlflow

    pyfunc = mlflow.pyfunc.load_model("models:/genaug-augmenter@champion")
    rows = pyfunc.predict(pd.DataFrame({"label": ["1", "0"], "n": [4, 2]}))
    assert list(rows["label"]) == ["1"] * 4 + ["0"] * 2
    assert list(rows.columns) == [*df.columns.drop("label"), "label"]
    run = c.get_run(res["run_id"])
    assert run.data.metrics["rows_synthetic"] == 220
    contexts = {next(t.value for t in d.tags if t.key == "mlflow.data.context")
                for d in run.inputs.dataset_inputs}
    assert contexts == {"source", "augmented"}
    assert {a.path for a in c.list_artifacts(run.info.run_id, "augmented")} == {
        "augmented/manifest.json", "augmented/train.augmented.parquet"}

    # the registered model, asked for half balance on new rows of the same table
    new = labelled(seed=2)
    src2 = mlflow_store / "new.parquet"
    new.to_parquet(src2)
    out2 = mlflow_store / "aug" / "new.augmented.parquet"
    with quiet():
        res2 = augment(data=str(src2), target="label", out=str(out2),
                       model="models:/genaug-augmenter@champion", sampling_strategy=0.5,
                       random_state=4)
    assert res2["rows_synthetic"] == 130 - 40 and res2["model"]["version"] == 1
    assert len(c.search_model_versions("name='genaug-augmenter'")) == 1  # nothing retrained

    # a table the model does not fit: a named error, no output
    bad = mlflow_store / "bad.parquet"
    new.drop(columns=["colour"]).to_parquet(bad)
    out3 = mlflow_store / "aug" / "bad.augmented.parquet"
    with quiet():
        state = augment(data=str(bad), target="label", out=str(out3),
                        model="models:/genaug-augmenter@champion", return_state=True)
    assert state.is_failed()
    with pytest.raises(MissingColumnError, match="colour"):
        state.result()
    assert not out3.exists() and not manifest_path(out3).exists()


def test_evaluate_flow_logs_parent_children_table_and_chart(prefect_api, mlflow_store):
    from mlflow import MlflowClient

    from pipelines.evaluate_augmentation import evaluate_augmentation_flow

    src = mlflow_store / "train.parquet"
    labelled(n=400, n_rare=50).to_parquet(src)
    with quiet():
        res = evaluate_augmentation_flow(
            data=str(src), target="label", arms=["none", "random", "vae+filter"],
            classifiers=["logreg"], n_splits=2, augmenter_params=FAST)
    assert res["positive"] == 1 and res["baseline"] == "none"
    assert [(r["arm"], r["verdict"] in ("helps", "hurts", "no measurable effect"))
            for r in res["table"]] == [("none", False), ("random", True), ("vae+filter", True)]
    c = MlflowClient()
    parent = c.get_run(res["run_id"])
    exp = parent.info.experiment_id
    children = c.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 3 * 1 * 2
    assert {(r.data.params["arm"], r.data.params["split"]) for r in children} == {
        (a, s) for a in ("none", "random", "vae+filter") for s in ("0", "1")}
    assert all("pr_auc" in r.data.metrics for r in children)
    assert "pr_auc_diff.vae_filter.logreg" in parent.data.metrics
    assert parent.data.tags["verdict.vae_filter.logreg"] == res["table"][2]["verdict"]
    arts = {a.path for a in c.list_artifacts(parent.info.run_id, "evaluation")}
    assert {"evaluation/summary.csv", "evaluation/records.csv", "evaluation/summary.md",
            "evaluation/verdicts.json"} <= arts
    assert [a.path for a in c.list_artifacts(parent.info.run_id, "plots")] == [
        "plots/pr_auc_difference.png"]
    recs = pd.read_csv(c.download_artifacts(parent.info.run_id, "evaluation/records.csv"))
    assert (recs.loc[recs["arm"] != "none", "n_synthetic"] > 0).all()

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as pc:
        arts = pc.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["augmentation-evaluation"])))
    assert arts and arts[0].type == "table"
