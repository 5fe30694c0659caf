"""AnomalyDetector: estimator contract, determinism, quality floor, explain, persistence."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from genaug import AnomalyDetector, ModelFormatError
from genaug.detector import LATENT_COLUMN

from .conftest import mixed_frame

FAST = {"max_steps": 150, "n_members": 2}


@pytest.fixture(scope="module")
def fitted():
    df = mixed_frame(n=600, seed=1).drop(columns="is_anomaly")
    return AnomalyDetector(random_state=0, **FAST).fit(df), df


def test_estimator_contract(mixed):
    det = AnomalyDetector(random_state=3, contamination=0.05, **FAST)
    params = det.get_params()
    assert params["random_state"] == 3 and params["contamination"] == 0.05
    assert not hasattr(det, "model_")  # constructor stores parameters only
    twin = clone(det)
    assert twin.get_params() == params and twin is not det
    assert det.fit(mixed) is det
    for attr in ("threshold_", "decision_scores_", "labels_", "schema_", "n_features_in_"):
        assert hasattr(det, attr)
    det.set_params(contamination=0.1)
    assert det.get_params()["contamination"] == 0.1


def test_same_seed_same_scores(mixed):
    s1 = AnomalyDetector(random_state=7, **FAST).fit(mixed).decision_function(mixed)
    s2 = AnomalyDetector(random_state=7, **FAST).fit(mixed).decision_function(mixed)
    s3 = AnomalyDetector(random_state=8, **FAST).fit(mixed).decision_function(mixed)
    np.testing.assert_array_equal(s1, s2)
    assert not np.array_equal(s1, s3)


def test_scoring_is_deterministic(fitted):
    det, df = fitted
    np.testing.assert_array_equal(det.decision_function(df), det.decision_function(df))


@pytest.mark.parametrize(("combine", "floor"), [("none", 0.9), ("iforest", 0.8)])
def test_roc_auc_floor_on_planted_anomalies(combine, floor):
    train = mixed_frame(n=800, seed=2).drop(columns="is_anomaly")
    test = mixed_frame(n=400, seed=3, n_anomalies=40)
    # clean training data: no need to trim (the default trim=0.2 is for contaminated data)
    det = AnomalyDetector(random_state=0, combine=combine, max_steps=400, trim=0.0).fit(train)
    scores = det.decision_function(test.drop(columns="is_anomaly"))
    # the planted anomalies break a correlation, which the VAE sees and the forest barely does
    assert roc_auc_score(test["is_anomaly"], scores) > floor


def test_numpy_input_and_predict():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4))
    X[:, 1] = X[:, 0] * 2
    det = AnomalyDetector(random_state=0, trim=0.0, **FAST).fit(X)
    outliers = np.array([[0, 8, 0, 0], [6, 6, 6, 6.0]])
    assert det.predict(outliers).tolist() == [1, 1]
    assert det.predict(X).mean() < 0.05


def test_trimmed_loss_helps_when_training_data_hides_anomalies():
    train = mixed_frame(n=800, seed=8, n_anomalies=120).drop(columns="is_anomaly")
    test = mixed_frame(n=400, seed=9, n_anomalies=40)
    auc = {}
    for trim in (0.0, 0.2):
        det = AnomalyDetector(random_state=0, combine="none", max_steps=400, trim=trim)
        scores = det.fit(train).decision_function(test.drop(columns="is_anomaly"))
        auc[trim] = roc_auc_score(test["is_anomaly"], scores)
    assert auc[0.2] > auc[0.0] + 0.02, auc


def test_explain_rows_sum_to_vae_score(fitted):
    det, df = fitted
    parts = det.explain(df, with_latent=True)
    assert list(parts.columns) == [*det.schema_.feature_names, LATENT_COLUMN]
    np.testing.assert_allclose(parts.sum(axis=1), det.vae_score(df), rtol=1e-5, atol=1e-5)
    plain = det.explain(df)
    assert list(plain.columns) == det.schema_.feature_names
    pure = AnomalyDetector(random_state=0, combine="none", **FAST).fit(df)
    np.testing.assert_allclose(pure.explain(df, with_latent=True).sum(axis=1),
                               pure.decision_function(df), rtol=1e-5, atol=1e-5)


def test_explain_blames_the_broken_column(fitted):
    det, df = fitted
    row = df.iloc[[0]].copy()
    row["b"] = 2 * row["a"] + 8.0  # breaks only the a-b relation, through b's value
    blame = det.explain(row).iloc[0]
    assert blame.idxmax() in ("a", "b")
    assert blame["b"] > det.explain(df.iloc[[0]]).iloc[0]["b"] + 5


def test_threshold_changes_without_refit(fitted):
    det, df = fitted
    before = det.threshold_
    det.set_threshold(contamination=0.2)
    assert det.threshold_ < before
    assert 0.15 <= det.flag_rate_ <= 0.25
    det.set_threshold(value=before)
    assert det.threshold_ == before
    det.set_threshold(contamination=det.contamination)


def test_save_load_identical_scores(fitted, tmp_path):
    det, df = fitted
    det.save(tmp_path / "model")
    loaded = AnomalyDetector.load(tmp_path / "model", device="cpu")
    np.testing.assert_array_equal(loaded.decision_function(df), det.decision_function(df))
    pd.testing.assert_frame_equal(loaded.explain(df), det.explain(df))
    assert loaded.threshold_ == det.threshold_
    assert loaded.get_params()["random_state"] == 0


def test_load_rejects_unknown_version(fitted, tmp_path):
    det, _ = fitted
    folder = det.save(tmp_path / "model")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["format_version"] = 999
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="format version 999"):
        AnomalyDetector.load(folder)


def test_load_rejects_tampered_or_pickled_weights(fitted, tmp_path):
    det, _ = fitted
    folder = det.save(tmp_path / "model")
    data = (folder / "weights.pt").read_bytes()
    (folder / "weights.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="checksum"):
        AnomalyDetector.load(folder)

    # A weights file carrying a pickled object, with a matching checksum, is still refused.
    class Payload:
        def __reduce__(self):
            return (print, ("payload executed",))

    torch.save({"x": Payload()}, folder / "weights.pt")
    import hashlib

    cfg = json.loads((folder / "config.json").read_text())
    cfg["weights_sha256"] = hashlib.sha256((folder / "weights.pt").read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="refused"):
        AnomalyDetector.load(folder)


def test_missing_model_files(tmp_path):
    with pytest.raises(ModelFormatError, match="config.json"):
        AnomalyDetector.load(tmp_path)


def test_invalid_params_raise_at_fit(mixed):
    with pytest.raises(ValueError, match="contamination"):
        AnomalyDetector(contamination=0.7).fit(mixed)
    with pytest.raises(ValueError, match="combine"):
        AnomalyDetector(combine="magic").fit(mixed)


def test_integer_arrays_and_non_string_column_names():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 1_000_000, size=(120, 3))  # distinct per row, but an array: numeric
    det = AnomalyDetector(random_state=0, max_steps=20, n_members=1).fit(X)
    assert det.schema_.dropped == {} and det.n_features_in_ == 3
    df = pd.DataFrame(rng.normal(size=(100, 2)))  # columns 0 and 1
    scores = AnomalyDetector(random_state=0, max_steps=20, n_members=1).fit(df)
    assert np.isfinite(scores.decision_function(df)).all()


def test_timezone_aware_datetimes_and_excluded_columns(mixed):
    df = mixed.assign(
        when=pd.date_range("2024-01-01", periods=len(mixed), freq="h", tz="Europe/Paris"),
        label=0, key=np.arange(len(mixed)) % 7,
    )
    det = AnomalyDetector(random_state=0, max_steps=20, n_members=1, target="label",
                          exclude_columns=("key",)).fit(df)
    assert "when" in det.model_feature_names_ and "key" in det.schema_.dropped
    assert np.isfinite(det.decision_function(df)).all()
    assert np.isfinite(det.decision_function(df.drop(columns=["label", "key"]))).all()


def test_save_refuses_to_replace_a_foreign_folder(fitted, tmp_path):
    det, _ = fitted
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        det.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    det.save(tmp_path / "m")
    det.save(tmp_path / "m")  # replacing a model folder is fine
