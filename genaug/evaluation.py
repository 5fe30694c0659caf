"""Does augmentation help scikit-learn classifiers? Measured on real held-out rows only.

:func:`evaluate_augmentation` repeats, over seeded stratified train / validation / test splits:

1. each arm's sampler (a factory ``seed -> sampler | None``; any object with imbalanced-learn's
   ``fit_resample``) sees **only the training part** and returns it with synthetic rows added;
2. each classifier is fitted on that (or on the plain training part for a ``None`` arm);
3. the decision threshold is tuned on the validation part (maximum F1), and, with ``ratios``,
   the augmentation ratio is chosen there too (best validation PR-AUC);
4. metrics are measured on the test part, which only ever holds real rows.

Validation and test rows are sliced from the table before any sampler runs and are never
passed to one; synthetic rows only exist inside the training step. Classifiers get the same
seed in every arm of a split, so arm differences are paired and come from augmentation.

:class:`EvaluationResult` keeps the per-split records, summarises each arm x classifier x metric
as a mean with a t-interval over splits and the paired difference to the baseline arm ("none"),
and gives a verdict on PR-AUC: "helps" (the difference's CI is above 0), "hurts" (below 0),
or "no measurable effect".
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .errors import GenaugInputError
from .plotting import new_figure
from .samplers import make_arm
from .schema import CATEGORICAL, NUMERIC, Schema, as_frame, infer_schema

ArmFactory = Callable[[int], Any]
ClassifierFactory = Callable[[int], Any]
METRICS = ("pr_auc", "roc_auc", "f1", "recall", "precision", "balanced_accuracy", "f1_at_0.5")
CLASSIFIERS = ("logreg", "rf", "hgb")
HELPS, HURTS, NO_EFFECT = "helps", "hurts", "no measurable effect"


# ------------------------------------------------------------------------------------ splits


@dataclass(frozen=True)
class Split:
    """Row positions of one train / validation / test split and the seed it was drawn with."""

    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def make_splits(
    y: Any, n_splits: int = 5, *, test_size: float = 0.25, val_size: float = 0.25,
    random_state: int = 0,
) -> list[Split]:
    """Seeded stratified splits; ``test_size`` and ``val_size`` are shares of all rows."""
    y = np.asarray(y).ravel()
    if not (0 < test_size < 1 and 0 < val_size < 1 and test_size + val_size < 1):
        raise ValueError("test_size and val_size must be in (0, 1) with a sum below 1")
    seeds = np.random.SeedSequence(random_state).generate_state(n_splits)
    pos = np.arange(len(y))
    out = []
    for seed in map(int, seeds):
        rest, test = train_test_split(pos, test_size=test_size, stratify=y, random_state=seed)
        train, val = train_test_split(rest, test_size=val_size / (1 - test_size),
                                      stratify=y[rest], random_state=seed)
        split = Split(seed, np.sort(train), np.sort(val), np.sort(test))
        _check_disjoint(split, len(y))
        out.append(split)
    return out


def _check_disjoint(split: Split, n: int) -> None:
    parts = np.concatenate([split.train, split.val, split.test])
    if len(np.unique(parts)) != len(parts) or len(parts) != n:
        raise AssertionError("train, validation and test parts overlap or miss rows")


# ------------------------------------------------------------------------------- classifiers


def preprocessor(numeric: Sequence[str], categorical: Sequence[str]) -> ColumnTransformer:
    """Impute + scale numeric columns, impute + one-hot categorical ones."""
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("num", Pipeline([
            ("impute", SimpleImputer(strategy="median", add_indicator=True)),
            ("scale", StandardScaler()),
        ]), list(numeric)))
    if categorical:
        parts.append(("cat", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]), list(categorical)))
    return ColumnTransformer(parts, sparse_threshold=0.0)


def make_classifier(
    name: str, seed: int, numeric: Sequence[str], categorical: Sequence[str],
    n_jobs: int | None = 1,
) -> Pipeline:
    """A built-in classifier ("logreg", "rf", "hgb") as a pipeline over the clean table.

    Logistic regression and the random forest (100 trees, ``n_jobs`` jobs) read the
    :func:`preprocessor` output; gradient boosting reads ordinal-coded categories natively
    and numeric columns as they are (it handles missing values itself).
    """
    if name == "logreg":
        return Pipeline([("prep", preprocessor(numeric, categorical)),
                         ("clf", LogisticRegression(max_iter=1000))])
    if name == "rf":
        return Pipeline([("prep", preprocessor(numeric, categorical)),
                         ("clf", RandomForestClassifier(n_estimators=100, n_jobs=n_jobs,
                                                        random_state=seed))])
    if name == "hgb":
        parts: list[tuple[str, Any, list[str]]] = []
        if categorical:
            parts.append(("cat", OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=np.nan,
                encoded_missing_value=np.nan, max_categories=250), list(categorical)))
        if numeric:
            parts.append(("num", "passthrough", list(numeric)))
        cat_idx = list(range(len(categorical))) or None
        return Pipeline([("prep", ColumnTransformer(parts, sparse_threshold=0.0)),
                         ("clf", HistGradientBoostingClassifier(categorical_features=cat_idx,
                                                                random_state=seed))])
    raise ValueError(f"unknown classifier {name!r}: expected one of {CLASSIFIERS} or a factory")


def _positive_scores(model: Any, X: pd.DataFrame, positive: Any) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        classes = list(model.classes_)
        return model.predict_proba(X)[:, classes.index(positive)]
    s = np.asarray(model.decision_function(X))
    if s.ndim == 2:
        return s[:, list(model.classes_).index(positive)]
    return s if model.classes_[1] == positive else -s


# ----------------------------------------------------------------------------------- metrics


def tune_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold (predict positive at ``score >= t``) with the highest F1."""
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    p, r = precision[:-1], recall[:-1]
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    return float(thresholds[int(np.argmax(f1))])


def held_out_metrics(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, default: float = 0.5
) -> dict[str, float]:
    """Ranking metrics and, at ``threshold`` (tuned elsewhere), F1 / recall / precision /
    balanced accuracy; ``f1_at_0.5`` uses ``default``. ``y_true`` is 0/1 (1 = positive)."""
    pred = scores >= threshold
    return {
        "pr_auc": float(average_precision_score(y_true, scores)),
        "roc_auc": float(roc_auc_score(y_true, scores)),
        "f1": float(f1_score(y_true, pred, zero_division=0)),
        "recall": float(recall_score(y_true, pred, zero_division=0)),
        "precision": float(precision_score(y_true, pred, zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, pred)),
        "f1_at_0.5": float(f1_score(y_true, scores >= default, zero_division=0)),
    }


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t confidence interval over splits: ``(mean, low, high)``."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def paired_difference(
    a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> dict[str, float]:
    """``a - b`` paired over splits: mean, t-interval and the paired t-test p-value."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    m, lo, hi = t_interval(d, level)
    if len(d) < 2:
        p = float("nan")
    elif np.all(d == d[0]):  # no spread: the t statistic is 0/0 or +-inf
        p = 1.0 if d[0] == 0 else 0.0
    else:
        p = float(stats.ttest_1samp(d, 0.0).pvalue)
    return {"diff": m, "diff_low": lo, "diff_high": hi, "p_value": p}


def verdict(diff_low: float, diff_high: float) -> str:
    """Verdict from a difference's CI: "helps" above 0, "hurts" below 0, else no effect."""
    if diff_low > 0:
        return HELPS
    if diff_high < 0:
        return HURTS
    return NO_EFFECT


# ------------------------------------------------------------------------------------ result


@dataclass
class EvaluationResult:
    """Per-split records of an augmentation comparison, with summaries and a chart."""

    records: pd.DataFrame
    splits: list[Split]
    positive: Any
    baseline: str | None
    trials: pd.DataFrame | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def summary(
        self, baseline: str | None = None, level: float = 0.95,
        metrics: Sequence[str] = METRICS,
    ) -> pd.DataFrame:
        """Per arm x classifier x metric: mean, CI over splits, paired difference to baseline.

        Columns ``arm, classifier, metric, n, mean, ci_low, ci_high, diff, diff_low,
        diff_high, p_value``; the difference columns are NaN for the baseline arm itself.
        """
        base = baseline if baseline is not None else self.baseline
        rows = []
        r = self.records
        for (arm, clf), g in r.groupby(["arm", "classifier"], sort=False):
            g = g.sort_values("split")
            ref = None
            if base is not None and arm != base:
                ref = r[(r["arm"] == base) & (r["classifier"] == clf)].sort_values("split")
                if list(ref["split"]) != list(g["split"]):
                    raise ValueError(f"arm {arm!r} and baseline {base!r} cover different splits")
            for m in metrics:
                mean, lo, hi = t_interval(g[m].to_numpy(), level)
                d = (paired_difference(g[m].to_numpy(), ref[m].to_numpy(), level)
                     if ref is not None else dict.fromkeys(
                         ("diff", "diff_low", "diff_high", "p_value"), float("nan")))
                rows.append({"arm": arm, "classifier": clf, "metric": m, "n": len(g),
                             "mean": mean, "ci_low": lo, "ci_high": hi, **d})
        return pd.DataFrame(rows)

    def verdicts(
        self, metric: str = "pr_auc", baseline: str | None = None, level: float = 0.95
    ) -> pd.DataFrame:
        """One row per non-baseline arm x classifier: difference on ``metric`` and verdict."""
        base = baseline if baseline is not None else self.baseline
        if base is None:
            raise ValueError("no baseline arm: name one (an arm whose factory returns None)")
        s = self.summary(base, level, metrics=(metric,))
        s = s[s["arm"] != base].drop(columns=["metric"]).reset_index(drop=True)
        s["verdict"] = [verdict(lo, hi) for lo, hi in zip(s["diff_low"], s["diff_high"])]
        return s

    def to_dict(self, level: float = 0.95) -> dict[str, float]:
        """Flat metrics for MLflow: ``{metric}.{arm}.{classifier}`` (mean over splits), with
        ``_ci_low``/``_ci_high`` and, against the baseline, ``_diff``/``_diff_low``/
        ``_diff_high`` suffixes on the metric name."""
        out: dict[str, float] = {}
        for r in self.summary(level=level).itertuples():
            where = f"{_key(r.arm)}.{_key(r.classifier)}"
            out[f"{r.metric}.{where}"] = float(r.mean)
            out[f"{r.metric}_ci_low.{where}"] = float(r.ci_low)
            out[f"{r.metric}_ci_high.{where}"] = float(r.ci_high)
            if not np.isnan(r.diff):
                out[f"{r.metric}_diff.{where}"] = float(r.diff)
                out[f"{r.metric}_diff_low.{where}"] = float(r.diff_low)
                out[f"{r.metric}_diff_high.{where}"] = float(r.diff_high)
        return out

    def to_markdown(self, level: float = 0.95) -> str:
        """A markdown report: verdicts on PR-AUC and means with CIs of the main metrics."""
        lines = [f"Positive class: `{self.positive}`; {len(self.splits)} splits; "
                 f"{int(level * 100)}% t-intervals over splits; test rows are real only.", ""]
        if self.baseline is not None and (self.records["arm"] != self.baseline).any():
            v = self.verdicts(level=level)
            lines += [f"**PR-AUC difference to `{self.baseline}`** (paired over splits)", ""]
            lines += _md_table(
                ["arm", "classifier", "difference [CI]", "p", "verdict"],
                [[a, c, _ci(d, lo, hi), f"{p:.3g}", vd] for a, c, d, lo, hi, p, vd in zip(
                    v["arm"], v["classifier"], v["diff"], v["diff_low"], v["diff_high"],
                    v["p_value"], v["verdict"])])
            lines.append("")
        shown = ("pr_auc", "roc_auc", "f1", "recall", "balanced_accuracy")
        s = self.summary(level=level, metrics=shown)
        wide = {(a, c): {} for a, c in zip(s["arm"], s["classifier"])}
        for row in s.itertuples():
            wide[(row.arm, row.classifier)][row.metric] = _ci(row.mean, row.ci_low, row.ci_high)
        lines += ["**Test metrics** (mean [CI]; F1, recall and balanced accuracy at the "
                  "threshold tuned on validation)", ""]
        lines += _md_table(["arm", "classifier", *shown],
                           [[a, c, *(cells[m] for m in shown)] for (a, c), cells in wide.items()])
        return "\n".join(lines) + "\n"

    def figure(self, metric: str = "pr_auc", level: float = 0.95) -> Figure:
        """Mean difference to the baseline on ``metric`` with CI bars, per arm x classifier."""
        v = self.verdicts(metric, level=level) if self.baseline is not None else pd.DataFrame()
        fig = new_figure(6.5, 0.45 * max(len(v), 1) + 1.6)
        ax = fig.subplots()
        colours = {HELPS: "tab:green", HURTS: "tab:red", NO_EFFECT: "tab:gray"}
        for i, r in enumerate(v.itertuples()):
            err = [[r.diff - r.diff_low], [r.diff_high - r.diff]]
            ax.errorbar(r.diff, i, xerr=err, fmt="o", capsize=4, color=colours[r.verdict])
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_yticks(range(len(v)), [f"{a} / {c}" for a, c in zip(v.get("arm", []),
                                                                      v.get("classifier", []))])
        ax.invert_yaxis()
        ax.set(xlabel=f"{metric} difference to '{self.baseline}' ({int(level * 100)}% CI)",
               title="Effect of augmentation on real test rows")
        fig.tight_layout()
        return fig


def _key(v: Any) -> str:
    """A name as text that MLflow accepts inside a metric name."""
    return re.sub(r"[^0-9A-Za-z_\-]", "_", str(v))


def _ci(m: float, lo: float, hi: float) -> str:
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return out


# -------------------------------------------------------------------------------- evaluation


def _work_schema(schema: Schema) -> Schema:
    """The schema of the cleaned table: dates are numbers by now, gaps are allowed anywhere."""
    s = copy.deepcopy(schema)
    for spec in s.columns:
        if spec.kind != CATEGORICAL:
            spec.kind, spec.dtype = NUMERIC, "float64"
        spec.nullable = True
    return s


def _resolve_arms(arms: Mapping[str, ArmFactory | str] | Sequence[str]) -> dict[str, ArmFactory]:
    items = arms.items() if isinstance(arms, Mapping) else [(a, a) for a in arms]
    out = {}
    for name, a in items:
        out[str(name)] = make_arm(a) if isinstance(a, str) else a
        if not callable(out[str(name)]):
            raise TypeError(f"arm {name!r}: expected a name or a factory seed -> sampler | None")
    if not out:
        raise ValueError("no arms to compare")
    return out


def _resolve_classifiers(
    classifiers: Mapping[str, ClassifierFactory | str] | Sequence[str],
    numeric: list[str], categorical: list[str], n_jobs: int | None,
) -> dict[str, ClassifierFactory]:
    items = classifiers.items() if isinstance(classifiers, Mapping) else [
        (c, c) for c in classifiers]
    out: dict[str, ClassifierFactory] = {}
    for name, c in items:
        if isinstance(c, str):
            make_classifier(c, 0, numeric, categorical)  # fail early on an unknown name
            out[str(name)] = (lambda seed, c=c: make_classifier(c, seed, numeric, categorical,
                                                                n_jobs))
        else:
            out[str(name)] = c
    if not out:
        raise ValueError("no classifiers")
    return out


def _strategy(y: np.ndarray, positive: Any, ratio: float) -> dict[Any, int] | None:
    """imbalanced-learn sampling strategy growing ``positive`` to ``ratio`` x majority count;
    None when it already has that many rows."""
    classes, counts = np.unique(y, return_counts=True)
    n_pos = int(counts[classes == positive][0])
    n_major = int(counts[classes != positive].max())
    target = int(round(ratio * n_major))
    return {positive: target} if target > n_pos else None


class _Augment:
    """Runs one sampler on the training part only and checks what comes back."""

    def __init__(self, schema: Schema, columns: list[str]) -> None:
        self.schema, self.columns = schema, columns

    def __call__(
        self, sampler: Any, X_train: pd.DataFrame, y_train: np.ndarray
    ) -> tuple[pd.DataFrame, np.ndarray, float]:
        t0 = time.perf_counter()
        # a copy: whatever the sampler does to its input cannot reach the evaluation's rows
        X_res, y_res = sampler.fit_resample(X_train.copy(), y_train.copy())
        secs = time.perf_counter() - t0
        X_res = X_res if isinstance(X_res, pd.DataFrame) else as_frame(X_res, self.columns)
        y_res = np.asarray(y_res).ravel()
        if len(X_res) != len(y_res):
            raise GenaugInputError("sampler returned rows and labels of different lengths",
                                   expected="as many labels as rows",
                                   found=f"{len(X_res)} rows, {len(y_res)} labels")
        if list(map(str, X_res.columns)) != self.columns:
            raise GenaugInputError("sampler changed the columns",
                                   expected=f"columns {self.columns}",
                                   found=f"columns {list(map(str, X_res.columns))}")
        clean = self.schema.validate(X_res.reset_index(drop=True), handle_unknown="keep")
        return clean, y_res, secs


class _Part:
    """The three parts of one split, sliced from the clean table before any sampler runs."""

    def __init__(self, clean: pd.DataFrame, y: np.ndarray, sp: Split, positive: Any) -> None:
        self.X_tr = clean.iloc[sp.train].copy()
        self.y_tr = y[sp.train]
        self.X_va, self.X_te = clean.iloc[sp.val].copy(), clean.iloc[sp.test].copy()
        self.t_va = (y[sp.val] == positive).astype(int)
        self.t_te = (y[sp.test] == positive).astype(int)
        self.positive = positive


def _training_sets(
    factory: ArmFactory, arm: str, seed: int, ratios: list[float | None], part: _Part,
    augment: _Augment,
) -> Iterator[tuple[float, pd.DataFrame, np.ndarray, float, bool]]:
    """``(ratio, X, y, sampler seconds, no sampler)`` per candidate ratio; a fresh sampler
    from ``factory(seed)`` each time, given the training part only."""
    for ratio in ratios:
        sampler = factory(seed)
        if sampler is None:
            yield float("nan"), part.X_tr, part.y_tr, 0.0, True
            return  # nothing to vary
        r = float("nan") if ratio is None else ratio
        if ratio is None:
            yield r, *augment(sampler, part.X_tr, part.y_tr), False
            continue
        strategy = _strategy(part.y_tr, part.positive, ratio)
        if strategy is None:  # the positive class is already that large
            yield r, part.X_tr, part.y_tr, 0.0, False
            continue
        _set_strategy(sampler, arm, strategy)
        yield r, *augment(sampler, part.X_tr, part.y_tr), False


def evaluate_augmentation(
    X: Any,
    y: Any,
    arms: Mapping[str, ArmFactory | str] | Sequence[str],
    *,
    classifiers: Mapping[str, ClassifierFactory | str] | Sequence[str] = CLASSIFIERS,
    n_splits: int = 5,
    test_size: float = 0.25,
    val_size: float = 0.25,
    positive: Any = None,
    random_state: int = 0,
    ratios: Sequence[float] | None = None,
    progress: bool = False,
    n_jobs: int | None = 1,
) -> EvaluationResult:
    """Compare augmentation arms on real held-out rows (procedure in the module docstring).

    ``arms`` maps a name to a factory ``seed -> sampler | None`` or to a built-in name
    ("none", "random", "smote"; a list of names also works). ``classifiers`` are built-in names
    or factories ``seed -> estimator`` that accept the cleaned table (numeric columns float
    with NaN, categorical columns text with NaN; see :func:`preprocessor`). ``positive`` is the
    class whose PR-AUC is measured (default: the rarest). With ``ratios`` (e.g. ``(0.5, 1.0)``)
    each sampler is asked, through ``set_params(sampling_strategy={positive: count})``, to grow
    the positive class to that fraction of the majority count; the ratio with the best
    validation PR-AUC is kept per arm x classifier x split. ``n_jobs`` caps the threads
    (OpenMP, BLAS) of classifier fitting and scoring, not of the samplers; ``None`` = no cap.
    """
    if n_splits < 2:
        raise ValueError("n_splits must be at least 2 (the intervals need a spread)")
    df = as_frame(X)
    y_arr = np.asarray(y).ravel()
    if len(y_arr) != len(df):
        raise GenaugInputError("labels do not match the rows", expected=f"{len(df)} labels",
                               found=f"{len(y_arr)}")
    schema = infer_schema(df, all_numeric=not isinstance(X, pd.DataFrame))
    clean = schema.validate(df).reset_index(drop=True)
    work = _work_schema(schema)
    numeric = [c.name for c in work.columns if c.kind == NUMERIC]
    categorical = [c.name for c in work.columns if c.kind == CATEGORICAL]
    classes, counts = np.unique(y_arr, return_counts=True)
    if len(classes) < 2:
        raise GenaugInputError("need at least two classes", column=None,
                               expected="labels of 2 or more classes", found=f"{classes.tolist()}")
    if positive is None:
        positive = classes[np.argmin(counts)]
    elif positive not in classes:
        raise GenaugInputError("positive class absent from the labels",
                               expected=f"one of {classes.tolist()}", found=repr(positive))
    positive = positive.item() if isinstance(positive, np.generic) else positive
    n_pos = int(counts[classes == positive][0])
    if n_pos < 6:
        raise GenaugInputError("too few rows of the positive class to split three ways",
                               expected="at least 6", found=str(n_pos))
    arm_factories = _resolve_arms(arms)
    clf_factories = _resolve_classifiers(classifiers, numeric, categorical, n_jobs)
    splits = make_splits(y_arr, n_splits, test_size=test_size, val_size=val_size,
                         random_state=random_state)
    augment = _Augment(work, list(clean.columns))
    cand = [None] if not ratios else [float(r) for r in ratios]
    if ratios is not None and (not cand or any(r <= 0 for r in cand)):
        raise ValueError("ratios must be positive numbers")

    records: list[dict[str, Any]] = []
    trials: list[dict[str, Any]] = []
    baseline = "none" if "none" in arm_factories else None
    bar = tqdm(total=len(splits) * len(arm_factories), disable=not progress,
               desc="augmentation evaluation")
    for i, sp in enumerate(splits):
        part = _Part(clean, y_arr, sp, positive)
        for arm, factory in arm_factories.items():
            best: dict[str, dict[str, Any]] = {}
            for ratio, X_fit, y_fit, s_secs, no_sampler in _training_sets(
                    factory, arm, sp.seed, cand, part, augment):
                if no_sampler and baseline is None:
                    baseline = arm
                for cname, cfac in clf_factories.items():
                    model = cfac(sp.seed)
                    with threadpool_limits(n_jobs):
                        t0 = time.perf_counter()
                        model.fit(X_fit, y_fit)
                        fit_secs = time.perf_counter() - t0
                        s_va = _positive_scores(model, part.X_va, positive)
                    val_pr = float(average_precision_score(part.t_va, s_va))
                    n_syn = len(X_fit) - len(part.X_tr)
                    trials.append({"arm": arm, "classifier": cname, "split": i, "ratio": ratio,
                                   "val_pr_auc": val_pr, "n_synthetic": n_syn})
                    # ties keep the earlier ratio (the order given)
                    if cname not in best or val_pr > best[cname]["val_pr_auc"]:
                        best[cname] = {"model": model, "val_pr_auc": val_pr, "s_va": s_va,
                                       "ratio": ratio, "n_synthetic": n_syn,
                                       "sampler_seconds": s_secs, "fit_seconds": fit_secs}
            for cname, b in best.items():
                thr = tune_threshold(part.t_va, b["s_va"])
                # the test part is scored once, for the choice made on validation
                with threadpool_limits(n_jobs):
                    s_te = _positive_scores(b["model"], part.X_te, positive)
                records.append({
                    "arm": arm, "classifier": cname, "split": i, "seed": sp.seed,
                    "ratio": b["ratio"], "threshold": thr, "val_pr_auc": b["val_pr_auc"],
                    **held_out_metrics(part.t_te, s_te, thr),
                    "n_train": len(sp.train), "n_synthetic": b["n_synthetic"],
                    "sampler_seconds": b["sampler_seconds"], "fit_seconds": b["fit_seconds"],
                })
            bar.update(1)
    bar.close()
    config = {"n_splits": n_splits, "test_size": test_size, "val_size": val_size,
              "random_state": random_state, "ratios": None if ratios is None else list(cand),
              "positive": positive, "n_jobs": n_jobs,
              "arms": list(arm_factories), "classifiers": list(clf_factories)}
    return EvaluationResult(records=pd.DataFrame(records), splits=splits, positive=positive,
                            baseline=baseline,
                            trials=pd.DataFrame(trials) if ratios is not None else None,
                            config=config)


def _set_strategy(sampler: Any, arm: str, strategy: dict[Any, int]) -> None:
    params = sampler.get_params() if hasattr(sampler, "get_params") else {}
    if "sampling_strategy" not in params:
        raise TypeError(f"arm {arm!r}: ratios need a sampler with a 'sampling_strategy' "
                        "parameter (set through set_params)")
    sampler.set_params(sampling_strategy=strategy)
