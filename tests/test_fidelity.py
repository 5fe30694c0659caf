"""Fidelity measures on generated tables whose answer is known: same draw, shift, copies."""

import io
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from genaug.errors import GenaugInputError
from genaug.fidelity import (
    c2st,
    contingency_similarity,
    correlation_similarity,
    distance_to_closest_record,
    fidelity_report,
    label_fidelity,
    marginal_similarity,
)
from tests.conftest import mixed_frame


def draw(n: int, seed: int) -> pd.DataFrame:
    """:func:`mixed_frame` without its label: NaNs in numeric ``b`` and categorical ``size``."""
    return mixed_frame(n, seed=seed).drop(columns="is_anomaly")


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return draw(600, seed=0)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return draw(600, seed=1)


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    return draw(600, seed=2)


def labelled(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Two classes 4 sd apart on ``x`` (nearly separable), 30% of rows in class 1."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    df = pd.DataFrame({"x": rng.normal(4.0 * y, 1.0), "z": rng.normal(0, 1, n),
                       "k": rng.choice(["u", "v"], n).astype(object)})
    return df, y


def test_same_distribution_is_indistinguishable(real, fresh):
    rep = fidelity_report(real, fresh)
    assert rep.c2st is not None and rep.c2st.auc_mean < 0.6
    assert len(rep.c2st.fold_aucs) == 5
    assert rep.marginal_similarity > 0.93
    assert rep.marginals["similarity"].min() > 0.88
    assert rep.correlation_similarity > 0.95
    assert rep.contingency_similarity > 0.85


def test_shifted_numeric_column_is_detected_and_named(real, fresh):
    shifted = fresh.copy()
    shifted["a"] = shifted["a"] + 2 * real["a"].std()
    res = c2st(real, shifted, random_state=1)
    assert res.auc_mean > 0.9
    marg = marginal_similarity(real, shifted)
    assert marg.sort_values("similarity")["column"].iloc[0] == "a"
    assert marg.set_index("column").loc["a", "ks"] > 0.5


def test_flipped_category_is_detected_and_named():
    rng = np.random.default_rng(0)

    def frame(p: float, seed: int) -> pd.DataFrame:
        r = np.random.default_rng(seed)
        return pd.DataFrame({"x": r.normal(0, 1, 500), "w": r.normal(0, 1, 500),
                             "grade": np.where(r.random(500) < p, "A", "B").astype(object)})

    real, flipped = frame(0.95, int(rng.integers(1e6))), frame(0.05, int(rng.integers(1e6)))
    assert c2st(real, flipped).auc_mean > 0.9
    marg = marginal_similarity(real, flipped)
    worst = marg.sort_values("similarity").iloc[0]
    assert worst["column"] == "grade" and worst["tv"] == pytest.approx(0.9, abs=0.06)


def test_copies_of_training_rows_are_exact_and_ratio_zero(real, holdout):
    copies = real.sample(200, random_state=3)
    dcr = distance_to_closest_record(real, copies, holdout)
    assert dcr.exact_share_synth == 1.0
    assert dcr.median_synth == 0.0 and dcr.ratio == pytest.approx(0.0, abs=1e-12)
    assert dcr.exact_share_holdout < 0.05  # continuous columns: real rows do not repeat


def test_fresh_draw_has_dcr_ratio_near_one(real, holdout, fresh):
    dcr = distance_to_closest_record(real, fresh, holdout)
    assert 0.85 < dcr.ratio < 1.15
    assert dcr.exact_share_synth == 0.0
    assert dcr.p05_synth > 0 and dcr.p05_holdout > 0


def test_label_fidelity_separates_right_and_swapped_labels():
    X, y = labelled(600, 0)
    Xh, yh = labelled(400, 1)
    Xs, ys = labelled(400, 2)
    good = label_fidelity(X, y, Xs, ys, Xh, yh).set_index("label")
    assert set(good.index) == {0, 1}
    assert (good["agree_synth"] > 0.85).all() and (good["agree_holdout"] > 0.85).all()
    assert good["diff"].abs().max() < 0.08
    bad = label_fidelity(X, y, Xs, 1 - ys, Xh, yh).set_index("label")
    assert (bad["agree_synth"] < 0.2).all() and (bad["diff"] < -0.6).all()


def test_report_with_labels_matches_classes_and_reports_label_fidelity():
    X, y = labelled(800, 0)
    Xh, yh = labelled(400, 1)
    Xs, ys = labelled(1200, 2)
    rare = ys == 1  # an augmenter makes rare-class rows only
    Xs, ys = Xs[rare].reset_index(drop=True), ys[rare]
    rep = fidelity_report(X, Xs, Xh, y_train=y, y_synth=ys, y_holdout=yh)
    assert rep.class_matched and rep.c2st.auc_mean < 0.65
    unmatched = fidelity_report(X, Xs, Xh, y_train=y, y_synth=ys, y_holdout=yh,
                                match_classes=False)
    assert unmatched.c2st.auc_mean > 0.8  # rare rows vs the whole table: trivially apart
    d = rep.to_dict()
    assert d["label_agree_synth.1"] > 0.8 and "label_agree_synth.0" not in d
    assert abs(d["label_agree_diff"]) < 0.1


def test_label_column_inside_the_frames_is_not_a_feature():
    X, y = labelled(400, 0)
    Xh, yh = labelled(300, 1)
    Xs, ys = labelled(300, 2)
    rep = fidelity_report(X.assign(cls=y), Xs.assign(cls=ys), Xh.assign(cls=yh), label="cls")
    assert "cls" not in set(rep.marginals["column"])
    assert rep.labels is not None and len(rep.labels) == 2
    with pytest.raises(GenaugInputError, match="label column absent"):
        fidelity_report(X.assign(cls=y), Xs, Xh.assign(cls=yh), label="cls")


def test_missing_values_and_unseen_levels_are_measured(real, fresh):
    assert real["b"].isna().any() and real["size"].isna().any()
    gappy = fresh.copy()
    gappy.loc[gappy.index[:300], "a"] = np.nan  # 'a' is never missing in the real rows
    gappy.loc[gappy.index[:100], "size"] = "XXL"  # a level the real rows lack
    marg = marginal_similarity(real, gappy).set_index("column")
    assert marg.loc["a", "missing_diff"] == pytest.approx(0.5)
    assert marg.loc["a", "statistic"] >= 0.5
    assert marg.loc["size", "tv"] > 0.15
    rep = fidelity_report(real, gappy, fresh)
    assert np.isfinite(rep.c2st.auc_mean) and np.isfinite(rep.dcr.ratio)


def test_pairwise_measures_see_a_broken_dependence(real, fresh):
    broken = fresh.copy()
    rng = np.random.default_rng(0)
    broken["b"] = rng.permutation(broken["b"].to_numpy())  # same marginal, no correlation
    broken["colour"] = rng.permutation(broken["colour"].to_numpy())
    same, cr, cs = correlation_similarity(real, fresh)
    worse, _, _ = correlation_similarity(real, broken)
    assert same > 0.97 and worse < 0.7
    assert list(cr.columns) == ["a", "b"]
    both = real.assign(c2=real["colour"])  # two categorical columns that move together
    assert contingency_similarity(both, fresh.assign(c2=fresh["colour"])) > 0.9
    assert contingency_similarity(both, broken.assign(c2=fresh["colour"])) < 0.9
    assert np.isnan(contingency_similarity(real[["a", "b", "colour"]], fresh[["a", "b",
                                                                              "colour"]]))


def test_report_dict_is_flat_numbers_with_mlflow_safe_names(real, holdout, fresh):
    d = fidelity_report(real, fresh, holdout).to_dict()
    for k in ("c2st_auc", "c2st_auc_std", "marginal_similarity", "correlation_similarity",
              "contingency_similarity", "dcr_ratio", "dcr_median_synth", "dcr_median_holdout",
              "dcr_p05_synth", "dcr_exact_share_synth", "marginal_similarity.size"):
        assert k in d
    assert all(isinstance(v, float) for v in d.values())
    assert all(re.fullmatch(r"[0-9A-Za-z_\-. /]+", k) for k in d)


def test_figures_are_produced(real, holdout, fresh):
    figs = fidelity_report(real, fresh, holdout).figures()
    assert set(figs) == {"fidelity_marginals.png", "fidelity_correlation_diff.png",
                         "fidelity_dcr.png"}
    for fig in figs.values():
        assert isinstance(fig, Figure) and fig.axes
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.getvalue()[:4] == b"\x89PNG"
    no_holdout = fidelity_report(real, fresh).figures()
    assert "fidelity_dcr.png" not in no_holdout


def test_arrays_take_the_real_column_names():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    rep = fidelity_report(a, b, rng.normal(size=(200, 3)))
    assert list(rep.marginals["column"]) == ["x0", "x1", "x2"]
    assert rep.c2st.auc_mean < 0.65


def test_bad_label_length_is_a_named_error(real, fresh, holdout):
    with pytest.raises(GenaugInputError, match="labels do not match"):
        fidelity_report(real, fresh, holdout, y_train=np.zeros(3), y_synth=np.zeros(len(fresh)),
                        y_holdout=np.zeros(len(holdout)))


def test_same_seed_same_report(real, fresh, holdout):
    a = fidelity_report(real, fresh, holdout, random_state=5).to_dict()
    b = fidelity_report(real, fresh, holdout, random_state=5).to_dict()
    assert a == b
