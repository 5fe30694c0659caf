"""genaug.Augmenter: the imbalanced-learn contract, conditional sampling, layout of the
synthetic frame, missing values, seeds, persistence without pickle, both models, the anomaly
options and the copy guard. Small generated tables and short trainings keep it fast."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from imblearn.pipeline import Pipeline
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from genaug import Augmenter, GenaugInputError, ModelFormatError
from genaug.neighbours import CopyGuard

from .conftest import mixed_frame

FAST = {"max_steps": 80, "gan_steps": 60, "gan_check_every": 20, "c2st_every": 2,
        "hidden": 32, "latent": 8, "gan_hidden": 32}


def labelled(n: int = 500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A mixed table whose rare class ("rare", ~20 %) sits at large ``a`` and is mostly
    "red", with a categorical dtype column, a bool, an int, a constant and NaNs."""
    df = mixed_frame(n, seed=seed).drop(columns="is_anomaly")
    rng = np.random.default_rng(seed)
    y = np.where(df["a"].to_numpy() + rng.normal(0, 0.3, n) > 0.85, "rare", "common")
    df["size"] = pd.Categorical(df["size"], categories=["XL", "L", "M", "S"])  # XL unused
    df["flag"] = rng.random(n) < 0.3
    df["const"] = 7
    return df, y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return labelled()


@pytest.fixture(scope="module", params=["vae", "gan"])
def fitted(request, data) -> Augmenter:
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the constant column
        return Augmenter(model=request.param, random_state=0, **FAST).fit(X, y)


# ------------------------------------------------------------------------ imbalanced-learn


class _Recorder(ClassifierMixin, BaseEstimator):
    """A classifier that remembers the class counts it was trained on."""

    def fit(self, X, y):
        self.classes_, self.counts_ = np.unique(y, return_counts=True)
        self.model_ = make_pipeline(
            ColumnTransformer([("cat", make_pipeline(
                SimpleImputer(strategy="most_frequent"),
                OneHotEncoder(handle_unknown="ignore")), ["colour", "size"])],
                remainder=SimpleImputer()),
            HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(X, y)
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)


def test_fit_resample_inside_an_imblearn_pipeline_with_cross_validate(data):
    X, y = data
    X, y = X.drop(columns="const"), (y == "rare").astype(int)
    pipe = Pipeline([("aug", Augmenter(random_state=0, **FAST)), ("clf", _Recorder())])
    with threadpool_limits(1):  # OpenMP threads crawl on a busy machine
        res = cross_validate(pipe, X, y, cv=3, scoring="average_precision",
                             return_estimator=True, error_score="raise")
    assert np.isfinite(res["test_score"]).all() and (res["test_score"] > 0.3).all()
    for est in res["estimator"]:
        counts = est.named_steps["clf"].counts_
        assert counts[0] == counts[1]  # "auto": the rare class grown to the majority's size
        assert est.named_steps["aug"].n_synthetic_ > 0


def test_fit_resample_keeps_the_input_and_appends_what_the_strategy_asks(data):
    X, y = data
    X.index = np.arange(1000, 1000 + len(X))  # the index is not kept, as in imbalanced-learn
    ys = pd.Series(y, name="target")
    aug = Augmenter(random_state=0, sampling_strategy={"rare": 200}, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        X_res, y_res = aug.fit_resample(X, ys)
    n_rare = int((y == "rare").sum())
    assert len(X_res) == len(X) + 200 - n_rare == len(y_res)
    assert aug.n_synthetic_ == 200 - n_rare
    pd.testing.assert_frame_equal(X_res.iloc[:len(X)], X.reset_index(drop=True))
    assert isinstance(y_res, pd.Series) and y_res.name == "target"
    assert (y_res.iloc[len(X):] == "rare").all() and (y_res.iloc[:len(X)] == y).all()
    assert (X_res.dtypes == X.dtypes).all()
    # numpy in, numpy out
    Xn = X[["a", "count"]].fillna(0).to_numpy()
    X_np, y_np = Augmenter(random_state=0, sampling_strategy=0.5, **FAST).fit_resample(Xn, y)
    assert isinstance(X_np, np.ndarray) and X_np.shape[1] == 2
    assert (y_np == "rare").sum() == round(0.5 * (y == "common").sum())
    np.testing.assert_array_equal(X_np[:len(Xn)], Xn)


def test_clone_and_params_follow_sklearn(data):
    aug = Augmenter(model="gan", temperature=0.8, random_state=3)
    twin = clone(aug)
    assert twin.get_params() == aug.get_params()
    with pytest.raises(ValueError, match="model"):
        Augmenter(model="diffusion").fit(*data)


# ------------------------------------------------------------------------ sampling


def test_conditional_sampling_gives_the_class_asked_for(fitted, data):
    X, y = data
    rare, lab = fitted.sample(400, label="rare")
    common, lab_c = fitted.sample(400, label="common")
    assert (lab == "rare").all() and (lab_c == "common").all() and len(rare) == 400
    # the classes differ in `a` (rare: large a) and in colour; the samples must too
    real_rare, real_common = X[y == "rare"], X[y == "common"]
    assert abs(rare["a"].mean() - real_rare["a"].mean()) < 0.5
    assert abs(common["a"].mean() - real_common["a"].mean()) < 0.5
    assert rare["a"].mean() - common["a"].mean() > 1.0
    assert (rare["colour"] == "red").mean() > 0.8 > (common["colour"] == "red").mean()


def test_unconditional_sampling_follows_the_training_proportions(fitted, data):
    _, y = data
    _, lab = fitted.sample(4000)
    share = (lab == "rare").mean()
    assert abs(share - (y == "rare").mean()) < 0.03
    assert set(lab) == {"rare", "common"}


def test_columns_dtypes_and_levels_are_those_of_training(fitted, data):
    X, _ = data
    s, _ = fitted.sample(300, label="rare")
    assert list(s.columns) == list(X.columns)
    assert s.dtypes.to_dict() == X.dtypes.to_dict()
    assert list(s["size"].cat.categories) == ["XL", "L", "M", "S"]  # unused level kept
    assert set(s["size"].dropna()) <= {"L", "M", "S"}
    assert set(s["colour"].dropna()) <= {"red", "blue"}
    assert (s["const"] == 7).all()
    assert s["flag"].dtype == bool and s["flag"].any() and not s["flag"].all()
    assert (s["count"] >= 0).all()
    assert s.index.equals(pd.RangeIndex(300))


def test_missing_values_are_regenerated_where_training_had_them(fitted, data):
    X, _ = data
    s, _ = fitted.sample(3000)
    for col in ("b", "size"):
        real = X[col].isna().mean()
        assert 0.3 * real < s[col].isna().mean() < 3 * real, col
    for col in ("a", "colour", "count", "flag", "const"):
        assert not s[col].isna().any(), col


def test_sampling_is_seeded(data):
    X, y = data

    def fit(seed: int) -> Augmenter:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return Augmenter(random_state=seed, **FAST).fit(X, y)

    a, b, c = fit(1), fit(1), fit(2)
    first = a.sample(200, label="rare")[0]
    pd.testing.assert_frame_equal(first, b.sample(200, label="rare")[0])
    assert not first.equals(c.sample(200, label="rare")[0])
    # the internal stream moves on; an explicit random_state is repeatable
    assert not first.equals(a.sample(200, label="rare")[0])
    pd.testing.assert_frame_equal(a.sample(50, random_state=9)[0], a.sample(50, random_state=9)[0])


def test_large_requests_are_sampled_in_chunks(fitted):
    s, lab = fitted.sample(20_000, label="common")
    assert len(s) == 20_000 and not s["a"].isna().any()
    assert s["a"].std() > 0.3  # not one row repeated
    assert not fitted.vae_.training


# ------------------------------------------------------------------------ history


def test_history_has_losses_and_validation_c2st_per_epoch(fitted):
    h = fitted.history_
    json.dumps(h)  # plain JSON for MLflow
    vae = [r for r in h if r["phase"] == "vae"]
    assert [r["epoch"] for r in vae] == list(range(1, len(vae) + 1))
    assert all({"train_loss", "train_nll", "train_kl", "step"} <= set(r) for r in vae)
    checked = [r for r in vae if "val_c2st" in r]
    assert checked and all(0.0 <= r["val_c2st"] <= 1.0 for r in checked)
    assert fitted.best_epoch_ in [r["epoch"] for r in checked]
    gan = [r for r in h if r["phase"] == "gan"]
    if fitted.model == "gan":
        assert [r["epoch"] for r in gan] == list(range(1, len(gan) + 1))
        assert all({"gan_step", "critic_loss", "generator_loss", "val_c2st"} <= set(r)
                   for r in gan)
    else:
        assert not gan


# ------------------------------------------------------------------------ persistence


def test_save_and_load_give_the_same_samples(fitted, tmp_path):
    folder = fitted.save(tmp_path / "aug")
    back = Augmenter.load(folder)
    assert back.get_params() == fitted.get_params()
    pd.testing.assert_frame_equal(back.sample(300, random_state=4)[0],
                                  fitted.sample(300, random_state=4)[0])
    np.testing.assert_array_equal(back.sample(300, random_state=4)[1],
                                  fitted.sample(300, random_state=4)[1])
    assert back.history_ == json.loads(json.dumps(fitted.history_))
    # no pickle anywhere: JSON plus a tensors-only weights file
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "weights.pt"]
    assert all(isinstance(v, torch.Tensor)
               for v in torch.load(folder / "weights.pt", weights_only=True).values())


def test_a_reloaded_model_continues_the_same_sample_stream(data, tmp_path):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a = Augmenter(random_state=5, **FAST).fit(X, y)
    a.save(tmp_path / "m")
    pd.testing.assert_frame_equal(Augmenter.load(tmp_path / "m").sample(100)[0],
                                  a.sample(100)[0])


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears if code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_is_refused_and_never_runs(fitted, tmp_path):
    folder = fitted.save(tmp_path / "aug")
    marker = tmp_path / "payload-ran"
    tensors = torch.load(folder / "weights.pt", weights_only=True)
    torch.save({**tensors, "extra": _Payload(marker)}, folder / "weights.pt")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["weights_sha256"] = hashlib.sha256((folder / "weights.pt").read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="refused to load"):
        Augmenter.load(folder)
    assert not marker.exists()
    torch.load(folder / "weights.pt", weights_only=False)  # the payload was live
    assert marker.exists()


def test_a_detector_folder_is_not_an_augmenter(tmp_path, mixed):
    from genaug import AnomalyDetector

    AnomalyDetector(max_steps=20, random_state=0).fit(mixed).save(tmp_path / "det")
    with pytest.raises(ModelFormatError, match="expected 'genaug.Augmenter'"):
        Augmenter.load(tmp_path / "det")


# ------------------------------------------------------------------------ anomaly options


def test_drop_anomalies_drops_the_broken_rows():
    df = mixed_frame(600, seed=3, n_anomalies=30)
    broken = df.pop("is_anomaly").to_numpy().astype(bool)
    df.loc[broken, "a"] += 6.0  # far from everything: any detector flags these
    df.loc[broken, "b"] = -df.loc[broken, "b"] - 12.0
    y = np.where(np.arange(600) % 4 == 0, "rare", "common")
    aug = Augmenter(drop_anomalies=True, random_state=0,
                    detector_params={"max_steps": 300, "contamination": 0.05}, **FAST)
    aug.fit(df, y)
    assert aug.detector_ is not None and 0 < aug.n_dropped_ <= 0.06 * 600
    kept = np.ones(600, dtype=bool)
    kept[aug.dropped_index_] = False
    assert (~kept[broken]).mean() > 5 * (~kept[~broken]).mean()  # broken rows go first
    assert not np.isin(aug.validation_index_, np.flatnonzero(~kept)).any()
    plain = Augmenter(random_state=0, **FAST).fit(df, y)
    assert plain.n_dropped_ == 0 and plain.detector_ is None


def test_reject_anomalies_returns_only_rows_the_detector_accepts(data):
    X, y = data
    X = X.drop(columns="const")
    aug = Augmenter(reject_anomalies=True, random_state=0,
                    detector_params={"max_steps": 100, "contamination": 0.1}, **FAST)
    aug.fit(X, y)
    assert aug.n_dropped_ == 0  # rejecting synthetic rows keeps every training row
    s, lab = aug.sample(500, label="rare")
    assert aug.last_rejected_["anomaly"] > 0
    flagged = aug._anomalous(s, np.searchsorted(aug.classes_, lab))
    assert not flagged.any()


# ------------------------------------------------------------------------ copy guard


def test_copy_guard_rejects_copies_and_near_copies():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 3))
    slots = rng.integers(0, 3, size=(300, 2))
    labels = (np.arange(300) % 3 == 0).astype(int)
    guard = CopyGuard.fit(values, slots, labels, [3, 3], 0.05, rng)
    assert (guard.thresholds > 0).all()
    # training rows themselves (exact copies), in either class
    assert guard.too_close(values, slots, labels).all()
    assert guard.too_close(values, slots, 1 - labels).all()  # exact copies of any class
    # a hair away from a training row of the same class: a near copy
    near = values + 1e-4
    assert guard.too_close(near, slots, labels).all()
    # far away from everything: kept
    far = values + 50.0
    assert not guard.too_close(far, slots, labels).any()


def test_samples_contain_no_copies_of_training_rows():
    # discrete columns only, latents drawn very near the training rows' posteriors: without
    # the guard many synthetic rows are training rows again
    rng = np.random.default_rng(0)
    n = 150
    X = pd.DataFrame({"k": rng.integers(0, 300, n), "colour": rng.choice(["r", "g", "b"], n),
                      "flag": rng.random(n) < 0.5})
    y = np.where(np.arange(n) % 3 == 0, "rare", "common")
    train = set(map(tuple, X.astype(str).to_numpy()))

    def copies(guard: bool) -> tuple[float, Augmenter]:
        aug = Augmenter(random_state=0, copy_guard=guard, sample_z="posterior",
                        temperature=0.05, numeric_noise=False, **FAST).fit(X, y)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s, _ = aug.sample(500, label="rare")
        # the guard never gives up: rows rejected again and again come from the prior
        assert not [w for w in caught if "returned anyway" in str(w.message)]
        return float(np.mean([t in train for t in map(tuple, s.astype(str).to_numpy())])), aug

    unguarded, _ = copies(False)
    guarded, aug = copies(True)
    assert unguarded > 0.05
    assert guarded == 0.0 and aug.last_rejected_["copy"] > 0


def test_rows_the_guard_keeps_rejecting_are_drawn_from_the_prior(data, monkeypatch):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        aug = Augmenter(random_state=0, sample_z="posterior", **FAST).fit(X, y)
    sources: list[str] = []
    draw = aug._draw

    def spy(y_idx, source, tg):
        sources.append(source)
        return draw(y_idx, source, tg)

    class Crowded:  # every posterior draw is a near copy; prior draws are fine
        def too_close(self, values, slots, labels):
            return np.full(len(values), sources[-1] == "posterior")

    monkeypatch.setattr(aug, "_draw", spy)
    monkeypatch.setattr(aug, "_guard", Crowded())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s, _ = aug.sample(100, label="rare")
    assert len(s) == 100 and not caught
    assert sources == ["posterior"] * 3 + ["prior"]
    assert aug.last_rejected_["copy"] == 300


# ------------------------------------------------------------------------ bad input


def test_bad_input_gives_named_errors(fitted, data):
    X, y = data
    with pytest.raises(GenaugInputError, match="labels do not match") as ei:
        Augmenter(**FAST).fit(X, y[:-1])
    assert ei.value.column == "__label__"
    with pytest.raises(GenaugInputError, match="at least two classes"):
        Augmenter(**FAST).fit_resample(X, np.zeros(len(X)))
    with pytest.raises(GenaugInputError, match="missing labels"):
        Augmenter(**FAST).fit(X, pd.Series(y).where(np.arange(len(y)) > 0))
    with pytest.raises(GenaugInputError, match="unknown label") as ei:
        fitted.sample(10, label="elephant")
    assert "rare" in ei.value.expected
    with pytest.raises(ValueError, match="non-negative int"):
        fitted.sample(-1)
