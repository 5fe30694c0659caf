"""With/without augmentation evaluation: isolation of the test rows, verdicts, ratio choice."""

import inspect

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import RandomOverSampler
from matplotlib.figure import Figure
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from genaug.errors import GenaugInputError
from genaug.evaluation import (
    HELPS,
    HURTS,
    NO_EFFECT,
    evaluate_augmentation,
    make_splits,
    paired_difference,
    t_interval,
    verdict,
)
from genaug.samplers import SmoteSampler, make_arm
from tests.conftest import mixed_frame

T975_4 = 2.7764451051977987  # Student t, 97.5% quantile, 4 degrees of freedom (tables)


def toy(n: int = 300, seed: int = 0, p: float = 0.12) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric table where the rare class sits 1.5 sd higher on ``x1`` and ``x2``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < p).astype(int)
    X = pd.DataFrame({"x1": rng.normal(1.5 * y, 1.0), "x2": rng.normal(1.5 * y, 1.0),
                      "x3": rng.normal(0, 1, n)})
    return X, y


class Recording(BaseEstimator):
    """Wraps RandomOverSampler; logs the rows and the strategy of every call; can add a marker
    value to every synthetic row, or flip labels (label noise)."""

    log: list = []

    def __init__(self, sampling_strategy="auto", random_state=None, marker=None, noise=False):
        self.sampling_strategy = sampling_strategy
        self.random_state = random_state
        self.marker = marker
        self.noise = noise

    def fit_resample(self, X, y):
        self.log.append({"seed": self.random_state, "index": X.index.to_numpy().copy(),
                         "X": X.copy(), "strategy": self.sampling_strategy})
        if self.noise:  # two copies of the training rows with the labels swapped
            flipped = 1 - np.asarray(y)
            return (pd.concat([X, X, X], ignore_index=True),
                    np.r_[np.asarray(y), flipped, flipped])
        Xr, yr = RandomOverSampler(sampling_strategy=self.sampling_strategy,
                                   random_state=self.random_state).fit_resample(X, y)
        Xr = Xr.reset_index(drop=True)
        if self.marker is not None:
            Xr.loc[len(X):, "x3"] = self.marker
        return Xr, yr


class RecordingLogReg(BaseEstimator):
    """Logistic regression that logs the frames it is fitted on and scores."""

    log: list = []

    def __init__(self, seed=0):
        self.seed = seed

    def fit(self, X, y):
        self.log.append({"seed": self.seed, "what": "fit", "X": X.copy()})
        self.model_ = LogisticRegression().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        self.log.append({"seed": self.seed, "what": "score", "X": X.copy()})
        return self.model_.predict_proba(X)


@pytest.fixture
def recording():
    Recording.log, RecordingLogReg.log = [], []
    yield
    Recording.log, RecordingLogReg.log = [], []


def test_default_uses_at_least_five_seeded_splits():
    sig = inspect.signature(evaluate_augmentation)
    assert sig.parameters["n_splits"].default >= 5
    y = np.r_[np.zeros(80), np.ones(20)]
    splits = make_splits(y)
    assert len(splits) >= 5 and len({s.seed for s in splits}) == len(splits)
    for s in splits:
        parts = np.concatenate([s.train, s.val, s.test])
        assert sorted(parts) == list(range(100))
        assert len(s.test) == 25 and len(s.val) == 25
        assert y[s.test].sum() == 5 and y[s.val].sum() == 5  # stratified
    again = make_splits(y)
    assert all((a.test == b.test).all() for a, b in zip(splits, again))
    assert not all((a.test == b.test).all() for a, b in zip(splits, make_splits(y,
                                                                               random_state=1)))


def test_sampler_sees_only_training_rows_and_synthetic_rows_stay_out_of_val_test(recording):
    X, y = toy()
    res = evaluate_augmentation(
        X, y, {"none": "none", "marked": lambda s: Recording(random_state=s, marker=999.0)},
        classifiers={"rec": lambda s: RecordingLogReg(seed=s)}, n_splits=3)
    by_seed = {s.seed: s for s in res.splits}
    assert len(Recording.log) == 3
    for call in Recording.log:
        sp = by_seed[call["seed"]]
        idx = call["index"]
        assert set(idx) == set(sp.train)
        assert not set(idx) & (set(sp.val) | set(sp.test))
        pd.testing.assert_frame_equal(call["X"], X.iloc[idx].astype(float))
    fits = [c for c in RecordingLogReg.log if c["what"] == "fit"]
    scored = [c for c in RecordingLogReg.log if c["what"] == "score"]
    assert any((c["X"]["x3"] == 999.0).any() for c in fits)  # the marker reached training
    for c in scored:
        sp = by_seed[c["seed"]]
        assert not (c["X"]["x3"] == 999.0).any()
        assert set(c["X"].index) in (set(sp.val), set(sp.test))
    marked = res.records[res.records["arm"] == "marked"]
    assert (marked["n_synthetic"] > 0).all()


def test_label_noise_sampler_hurts(recording):
    X, y = toy(400, seed=1)
    res = evaluate_augmentation(
        X, y, {"none": "none", "noisy": lambda s: Recording(random_state=s, noise=True)},
        classifiers=["logreg"], n_splits=3)
    v = res.verdicts().set_index("arm").loc["noisy"]
    assert v["diff"] < -0.2
    assert v["verdict"] == HURTS


def test_none_against_none_is_exactly_zero():
    X, y = toy()
    res = evaluate_augmentation(X, y, {"none": "none", "also_none": lambda s: None},
                                classifiers=["logreg", "rf"], n_splits=3)
    v = res.verdicts()
    assert (v["diff"] == 0).all() and (v["diff_low"] == 0).all() and (v["diff_high"] == 0).all()
    assert (v["verdict"] == NO_EFFECT).all()
    s = res.summary()
    assert s.loc[s["arm"] == "none", "diff"].isna().all()
    assert (s.loc[s["arm"] == "also_none", "diff"] == 0).all()


def test_smote_picks_the_variant_from_the_columns_and_copes_with_gaps():
    df = mixed_frame(300, seed=0, n_anomalies=30)
    y = df.pop("is_anomaly").to_numpy()
    assert df["b"].isna().any() and df["size"].isna().any()
    sm = SmoteSampler(random_state=0)
    Xr, yr = sm.fit_resample(df, y)
    assert sm.kind_ == "SMOTENC" and set(sm.categorical_) == {"colour", "size"}
    assert len(Xr) == len(yr) and (yr == 1).sum() == (yr == 0).sum()
    pd.testing.assert_frame_equal(Xr.iloc[:300], df,
                                  check_dtype=False)
    new = Xr.iloc[300:]
    assert not new["b"].isna().any()  # numeric gaps are filled before interpolation
    assert set(new["size"].dropna()) <= {"S", "M", "L"}
    num = SmoteSampler(random_state=0)
    num.fit_resample(df[["a", "b"]], y)
    assert num.kind_ == "SMOTE"
    cat = SmoteSampler(random_state=0)
    cat.fit_resample(df[["colour", "size"]], y)
    assert cat.kind_ == "SMOTEN"


def test_smotenc_runs_inside_the_evaluation_on_a_mixed_table():
    df = mixed_frame(300, seed=0, n_anomalies=30)
    y = df.pop("is_anomaly").to_numpy()
    made = []

    def smote(seed):
        made.append(make_arm("smote")(seed))
        return made[-1]

    res = evaluate_augmentation(df, y, {"none": "none", "smote": smote}, n_splits=2,
                                classifiers=["logreg", "hgb"])
    assert len(made) == 2 and all(m.kind_ == "SMOTENC" for m in made)
    rec = res.records[res.records["arm"] == "smote"]
    assert (rec["n_synthetic"] > 0).all() and rec["pr_auc"].between(0, 1).all()


def test_ratio_is_chosen_on_validation_and_requested_from_the_sampler(recording):
    X, y = toy(300, seed=2)
    ratios = (0.3, 0.6, 1.0)
    res = evaluate_augmentation(
        X, y, {"none": "none", "rec": lambda s: Recording(random_state=s)},
        classifiers=["logreg", "rf"], n_splits=3, ratios=ratios)
    by_seed = {s.seed: s for s in res.splits}
    asked = {}
    for call in Recording.log:
        sp = by_seed[call["seed"]]
        yt = y[sp.train]
        n_major, n_pos = int((yt == 0).sum()), int((yt == 1).sum())
        strategy = call["strategy"]
        assert set(strategy) == {1} and strategy[1] > n_pos
        asked.setdefault(call["seed"], []).append(strategy[1] / n_major)
    for seed, got in asked.items():
        # every ratio that means adding rows is asked for, once per split, not per classifier
        assert got == pytest.approx([r for r in ratios if r * (y[by_seed[seed].train] == 0).sum()
                                     > (y[by_seed[seed].train] == 1).sum()], abs=0.01)
    trials = res.trials
    for r in res.records[res.records["arm"] == "rec"].itertuples():
        t = trials[(trials["arm"] == "rec") & (trials["classifier"] == r.classifier)
                   & (trials["split"] == r.split)]
        assert len(t) == len(ratios)
        assert r.ratio == t.loc[t["val_pr_auc"].idxmax(), "ratio"]
        assert r.val_pr_auc == t["val_pr_auc"].max()
    assert res.records.loc[res.records["arm"] == "none", "ratio"].isna().all()


def test_ratios_need_a_sampling_strategy_parameter():
    class Bare:
        def fit_resample(self, X, y):
            return X, y

    X, y = toy()
    with pytest.raises(TypeError, match="sampling_strategy"):
        evaluate_augmentation(X, y, {"bare": lambda s: Bare()}, classifiers=["logreg"],
                              n_splits=2, ratios=(1.0,))


def test_interval_and_verdict_on_known_differences():
    d = np.array([0.10, 0.12, 0.08, 0.11, 0.09])
    m, lo, hi = t_interval(d)
    half = T975_4 * d.std(ddof=1) / np.sqrt(5)
    assert m == pytest.approx(0.10) and lo == pytest.approx(0.10 - half)
    assert hi == pytest.approx(0.10 + half)
    base = np.array([0.5, 0.6, 0.55, 0.52, 0.58])
    pdiff = paired_difference(base + d, base)
    assert pdiff["diff_low"] == pytest.approx(lo) and pdiff["diff_high"] == pytest.approx(hi)
    from scipy.stats import ttest_rel

    assert pdiff["p_value"] == pytest.approx(ttest_rel(base + d, base).pvalue)
    assert verdict(lo, hi) == HELPS
    _, lo_n, hi_n = t_interval(-d)
    assert verdict(lo_n, hi_n) == HURTS
    _, lo_z, hi_z = t_interval(np.array([0.1, -0.1, 0.05, -0.05, 0.0]))
    assert lo_z < 0 < hi_z and verdict(lo_z, hi_z) == NO_EFFECT
    same = paired_difference(base, base)
    assert same["diff"] == 0 and same["p_value"] == 1.0


def test_report_outputs():
    X, y = toy()
    res = evaluate_augmentation(X, y, ["none", "random"], classifiers=["logreg"], n_splits=2)
    rec = res.records
    for col in ("arm", "classifier", "split", "pr_auc", "roc_auc", "f1", "recall",
                "balanced_accuracy", "f1_at_0.5", "threshold", "fit_seconds", "n_synthetic"):
        assert col in rec.columns
    assert len(rec) == 2 * 2
    md = res.to_markdown()
    assert "| random | logreg |" in md and "verdict" in md
    fig = res.figure()
    assert isinstance(fig, Figure) and fig.axes[0].get_yticklabels()[0].get_text() == (
        "random / logreg")
    d = res.to_dict()
    assert d["pr_auc.random.logreg"] == pytest.approx(
        rec.loc[rec["arm"] == "random", "pr_auc"].mean())
    assert "pr_auc_diff.random.logreg" in d and "pr_auc_diff.none.logreg" not in d
    s = res.summary()
    assert set(s["metric"]) >= {"pr_auc", "roc_auc", "f1", "balanced_accuracy"}
    assert (s["ci_low"] <= s["mean"]).all() and (s["mean"] <= s["ci_high"]).all()


def test_same_seed_same_records():
    X, y = toy()
    cols = ["arm", "classifier", "split", "pr_auc", "f1", "threshold", "n_synthetic"]
    a = evaluate_augmentation(X, y, ["none", "smote"], classifiers=["rf"], n_splits=2)
    b = evaluate_augmentation(X, y, ["none", "smote"], classifiers=["rf"], n_splits=2)
    pd.testing.assert_frame_equal(a.records[cols], b.records[cols])


def test_bad_input_is_named():
    X, y = toy()
    with pytest.raises(GenaugInputError, match="labels do not match"):
        evaluate_augmentation(X, y[:-1], ["none"], n_splits=2)
    with pytest.raises(GenaugInputError, match="too few rows of the positive class"):
        evaluate_augmentation(X, np.r_[np.ones(3), np.zeros(len(y) - 3)], ["none"], n_splits=2)
    with pytest.raises(ValueError, match="unknown arm"):
        evaluate_augmentation(X, y, ["gan?"], n_splits=2)
    with pytest.raises(ValueError, match="unknown classifier"):
        evaluate_augmentation(X, y, ["none"], classifiers=["svm"], n_splits=2)
