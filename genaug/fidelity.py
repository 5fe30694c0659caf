"""How faithful synthetic rows are to real ones: C2ST, marginals, pairs, DCR and label fidelity.

Every measure works on mixed tables with missing values. Column kinds come from
:func:`~genaug.schema.infer_schema` on the real training rows; measures that need numbers
(C2ST, DCR, label fidelity) use a :class:`~genaug.transform.TabularEncoder` fitted on the real
training rows (numeric columns quantile-mapped to a standard normal, or standardised; one-hot
categories; a missingness indicator per numeric column that has gaps).

* **C2ST** (classifier two-sample test): a classifier tries to tell real rows from synthetic
  rows under stratified K-fold cross-validation; the mean ROC-AUC is 0.5 when it cannot.
* **Marginals**: per column, the Kolmogorov-Smirnov statistic (numeric, on present values; the
  column's statistic is the larger of KS and the difference in missing share) or the total
  variation distance (categorical, missing as a level of its own). Similarity = 1 - statistic.
* **Pairs**: numeric correlation similarity, the mean over numeric pairs of
  ``1 - |rho_real - rho_synth| / 2`` with Spearman's rho (Pearson on ranks, pairwise-complete
  rows); categorical contingency similarity, the mean over categorical pairs of
  ``1 - TV(joint_real, joint_synth)``.
* **DCR** (distance to closest record): Euclidean distance on the encoded table from each
  synthetic row, and from each real held-out row, to its nearest real training row. Synthetic
  rows that copy training rows sit at distance 0; a median ratio (synthetic / held-out) well
  below 1 means memorisation.
* **Label fidelity**: a classifier trained on the real training rows labels the synthetic rows;
  the share of synthetic rows of class c it assigns to c is compared with the same share on
  real held-out rows.

When labels are given for the training and synthetic rows (``match_classes=True``, the
default), the real reference for C2ST, marginals and pairs is drawn to the synthetic rows'
class mix, so that an augmenter that only makes rare-class rows is compared with real
rare-class rows, not with the whole table; the DCR's held-out baseline is restricted to those
classes the same way.
"""

from __future__ import annotations

import copy
import itertools
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import ks_2samp
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from .errors import EmptyInputError, GenaugInputError
from .plotting import new_figure
from .schema import CATEGORICAL, Schema, as_frame, infer_schema
from .transform import TabularEncoder

MISSING_LEVEL = "__missing__"
OTHER_LEVEL = "__other__"
EXACT_COPY_TOL = 1e-8

# --------------------------------------------------------------------------------- encoding


@dataclass
class TableCoding:
    """A schema and an encoder fitted on real rows, used to clean and encode any frame."""

    schema: Schema
    encoder: TabularEncoder
    columns: list[str]

    @classmethod
    def fit(
        cls, real: Any, *, numeric: Literal["quantile", "standard"] = "quantile",
        schema: Schema | None = None,
    ) -> TableCoding:
        """Infer the schema (unless given) and fit the encoder on ``real``."""
        df = as_frame(real)
        if schema is None:
            schema = infer_schema(df, all_numeric=not isinstance(real, pd.DataFrame))
        # synthetic rows may miss values where the real ones never do: that is a fidelity
        # finding, not an input error, so the frames are validated against a lenient copy
        lenient = copy.deepcopy(schema)
        for spec in lenient.columns:
            spec.nullable = True
        clean = schema.validate(df, handle_unknown="keep")
        enc = TabularEncoder(numeric=numeric).fit(clean, schema)
        return cls(schema=lenient, encoder=enc, columns=list(map(str, df.columns)))

    def clean(self, X: Any) -> pd.DataFrame:
        """Validate raw ``X`` against the schema (unseen levels kept).

        A 2-D array as wide as the real table takes its column names. Pass raw frames only:
        a cleaned frame's datetime columns are already numbers.
        """
        df = X if isinstance(X, pd.DataFrame) else as_frame(
            X, columns=self.columns if np.ndim(X) == 2 and np.shape(X)[1] == len(self.columns)
            else None)
        df = as_frame(df)
        extra = [c for c in self.schema.dropped if c in df.columns]
        return self.schema.validate(df, handle_unknown="keep", allow_extra=extra)

    def encode(self, clean: pd.DataFrame) -> np.ndarray:
        """Encoded float64 matrix of a cleaned frame (deterministic: no random tie-breaking)."""
        return self.encoder.transform(clean).X.astype(np.float64)

    @property
    def numeric_columns(self) -> list[str]:
        """Numeric and datetime model columns."""
        return [c.name for c in self.schema.columns if c.kind != CATEGORICAL]

    @property
    def categorical_columns(self) -> list[str]:
        """Categorical model columns."""
        return [c.name for c in self.schema.columns if c.kind == CATEGORICAL]


def _default_classifier(random_state: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=15,
                                          early_stopping=False, random_state=random_state)


def _labels(y: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(y).ravel()
    if len(arr) != n:
        raise GenaugInputError(f"{what} labels do not match the rows", expected=f"{n} labels",
                               found=f"{len(arr)}")
    return arr


def _nonempty(df: pd.DataFrame, what: str) -> None:
    if len(df) == 0:
        raise EmptyInputError(f"no {what} rows", expected="at least 1 row", found="0 rows")


# ------------------------------------------------------------------------------------- C2ST


@dataclass(frozen=True)
class C2STResult:
    """Cross-validated ROC-AUC of a real-vs-synthetic classifier (0.5 = indistinguishable)."""

    auc_mean: float
    auc_std: float
    fold_aucs: tuple[float, ...]
    n_per_side: int


def c2st(
    real: Any,
    synth: Any,
    *,
    classifier: ClassifierMixin | None = None,
    n_splits: int = 5,
    max_rows: int | None = 5000,
    random_state: int = 0,
    coding: TableCoding | None = None,
    n_jobs: int | None = 1,
) -> C2STResult:
    """Classifier two-sample test on the encoded table (encoder fitted on ``real``).

    Both sides are cut to the same size (the larger one subsampled, and both to at most
    ``max_rows``) so that 0.5 means chance; the AUC is averaged over stratified folds.
    ``n_jobs`` caps the classifier's threads (``None``: no cap).
    """
    coding = coding or TableCoding.fit(real)
    r = coding.encode(coding.clean(real))
    s = coding.encode(coding.clean(synth))
    n = min(len(r), len(s), max_rows or np.inf)
    if n < n_splits:
        raise EmptyInputError("too few rows for the two-sample test",
                              expected=f"at least {n_splits} rows per side",
                              found=f"{len(r)} real, {len(s)} synthetic")
    rng = np.random.default_rng(random_state)
    r = r[rng.choice(len(r), int(n), replace=False)]
    s = s[rng.choice(len(s), int(n), replace=False)]
    Z = np.vstack([r, s])
    t = np.r_[np.zeros(len(r), dtype=int), np.ones(len(s), dtype=int)]
    clf = clone(classifier) if classifier is not None else _default_classifier(random_state)
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    with threadpool_limits(n_jobs):
        aucs = cross_val_score(clf, Z, t, cv=cv, scoring="roc_auc")
    return C2STResult(float(np.mean(aucs)), float(np.std(aucs)), tuple(map(float, aucs)), int(n))


# -------------------------------------------------------------------------------- marginals


def _cat_freq(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), MISSING_LEVEL).value_counts(normalize=True)


def total_variation(p: pd.Series, q: pd.Series) -> float:
    """Total variation distance between two frequency tables indexed by level."""
    p, q = p.align(q, fill_value=0.0)
    return float(0.5 * np.abs(p.to_numpy(float) - q.to_numpy(float)).sum())


def marginal_similarity(
    real: Any, synth: Any, *, coding: TableCoding | None = None
) -> pd.DataFrame:
    """Per-column marginal distance (KS or TV) and similarity = 1 - statistic.

    Columns: ``column``, ``kind``, ``statistic``, ``similarity``, ``ks`` (numeric: on present
    values), ``missing_diff`` (absolute difference of the missing share), ``tv`` (categorical,
    missing as its own level). A numeric column's ``statistic`` is ``max(ks, missing_diff)``.
    """
    coding = coding or TableCoding.fit(real)
    a, b = coding.clean(real), coding.clean(synth)
    rows = []
    for spec in coding.schema.columns:
        x, z = a[spec.name], b[spec.name]
        miss = abs(float(x.isna().mean()) - float(z.isna().mean()))
        if spec.kind == CATEGORICAL:
            tv = total_variation(_cat_freq(x), _cat_freq(z))
            rows.append({"column": spec.name, "kind": "categorical", "statistic": tv,
                         "ks": np.nan, "missing_diff": miss, "tv": tv})
            continue
        xv, zv = x.dropna().to_numpy(float), z.dropna().to_numpy(float)
        if len(xv) and len(zv):
            ks = float(ks_2samp(xv, zv).statistic)
        else:  # one side has no values at all: as different as it gets, unless both are empty
            ks = float(len(xv) != len(zv) and (len(xv) == 0 or len(zv) == 0))
        rows.append({"column": spec.name, "kind": "numeric", "statistic": max(ks, miss),
                     "ks": ks, "missing_diff": miss, "tv": np.nan})
    out = pd.DataFrame(rows, columns=["column", "kind", "statistic", "ks", "missing_diff", "tv"])
    out.insert(3, "similarity", 1.0 - out["statistic"])
    return out


# ------------------------------------------------------------------------------------ pairs


def spearman_matrix(clean: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Spearman correlations (Pearson on ranks, pairwise-complete rows) of numeric columns."""
    return clean[list(columns)].astype(float).corr(method="spearman")


def correlation_similarity(
    real: Any, synth: Any, *, coding: TableCoding | None = None, max_columns: int = 50,
) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    """Mean over numeric pairs of ``1 - |rho_real - rho_synth| / 2`` (Spearman's rho).

    An undefined correlation (a constant column) counts as 0. Returns the similarity (NaN with
    fewer than two numeric columns) and both correlation matrices (the first ``max_columns``
    numeric columns).
    """
    coding = coding or TableCoding.fit(real)
    cols = coding.numeric_columns[:max_columns]
    a, b = coding.clean(real), coding.clean(synth)
    cr = spearman_matrix(a, cols).fillna(0.0)
    cs = spearman_matrix(b, cols).fillna(0.0)
    if len(cols) < 2:
        return float("nan"), cr, cs
    iu = np.triu_indices(len(cols), k=1)
    diff = np.abs(cr.to_numpy()[iu] - cs.to_numpy()[iu])
    return float(np.mean(1.0 - diff / 2.0)), cr, cs


def _capped(s: pd.Series, keep: Sequence[str]) -> pd.Series:
    v = s.astype(object).where(s.notna(), MISSING_LEVEL)
    return v.where(v.isin(list(keep)) | (v == MISSING_LEVEL), OTHER_LEVEL)


def contingency_similarity(
    real: Any,
    synth: Any,
    *,
    coding: TableCoding | None = None,
    max_pairs: int = 100,
    max_levels: int = 20,
    random_state: int = 0,
) -> float:
    """Mean over categorical pairs of ``1 - TV`` between the joint frequency tables.

    Missing is a level; levels beyond the ``max_levels`` most frequent real ones are pooled
    into one; at most ``max_pairs`` pairs (a seeded random choice) are compared. NaN with fewer
    than two categorical columns.
    """
    coding = coding or TableCoding.fit(real)
    cols = coding.categorical_columns
    pairs = list(itertools.combinations(cols, 2))
    if not pairs:
        return float("nan")
    if len(pairs) > max_pairs:
        pick = np.random.default_rng(random_state).choice(len(pairs), max_pairs, replace=False)
        pairs = [pairs[i] for i in sorted(pick)]
    a, b = coding.clean(real), coding.clean(synth)
    keep = {c: a[c].value_counts().index[:max_levels].tolist() for c in cols}
    sims = []
    for c1, c2 in pairs:
        ja = pd.Series(list(zip(_capped(a[c1], keep[c1]), _capped(a[c2], keep[c2]))))
        jb = pd.Series(list(zip(_capped(b[c1], keep[c1]), _capped(b[c2], keep[c2]))))
        sims.append(1.0 - total_variation(ja.value_counts(normalize=True),
                                          jb.value_counts(normalize=True)))
    return float(np.mean(sims))


# -------------------------------------------------------------------------------------- DCR


@dataclass(frozen=True)
class DCRResult:
    """Distances to the closest real training row, for synthetic and real held-out rows."""

    synth: np.ndarray
    holdout: np.ndarray

    @property
    def median_synth(self) -> float:
        """Median distance of synthetic rows."""
        return float(np.median(self.synth))

    @property
    def median_holdout(self) -> float:
        """Median distance of held-out rows."""
        return float(np.median(self.holdout))

    @property
    def ratio(self) -> float:
        """Median synthetic / median held-out; NaN when the held-out median is 0."""
        h = self.median_holdout
        return self.median_synth / h if h > 0 else float("nan")

    @property
    def p05_synth(self) -> float:
        """5th percentile of synthetic distances."""
        return float(np.percentile(self.synth, 5))

    @property
    def p05_holdout(self) -> float:
        """5th percentile of held-out distances."""
        return float(np.percentile(self.holdout, 5))

    @property
    def exact_share_synth(self) -> float:
        """Share of synthetic rows identical (after encoding) to a training row."""
        return float(np.mean(self.synth < EXACT_COPY_TOL))

    @property
    def exact_share_holdout(self) -> float:
        """Share of held-out rows identical to a training row (the baseline for the above)."""
        return float(np.mean(self.holdout < EXACT_COPY_TOL))


def distance_to_closest_record(
    real_train: Any,
    synth: Any,
    real_holdout: Any,
    *,
    coding: TableCoding | None = None,
    max_rows: int | None = 5000,
    random_state: int = 0,
) -> DCRResult:
    """Euclidean distance on the encoded table to the nearest real training row.

    ``synth`` and ``real_holdout`` are each subsampled to at most ``max_rows`` rows (seeded);
    every training row is a candidate neighbour.
    """
    coding = coding or TableCoding.fit(real_train)
    train = coding.encode(coding.clean(real_train))
    rng = np.random.default_rng(random_state)

    def query(X: Any) -> np.ndarray:
        Z = coding.encode(coding.clean(X))
        if max_rows is not None and len(Z) > max_rows:
            Z = Z[rng.choice(len(Z), max_rows, replace=False)]
        return Z

    nn = NearestNeighbors(n_neighbors=1).fit(train)

    def closest(Z: np.ndarray) -> np.ndarray:
        idx = nn.kneighbors(Z, return_distance=False)[:, 0]
        # recomputed directly: the fast search's expanded-square formula leaves ~1e-8 of
        # rounding on identical rows, which would hide exact copies
        return np.linalg.norm(Z - train[idx], axis=1)

    return DCRResult(synth=closest(query(synth)), holdout=closest(query(real_holdout)))


# ---------------------------------------------------------------------------- label fidelity


def label_fidelity(
    real_train: Any,
    y_train: Any,
    synth: Any,
    y_synth: Any,
    real_holdout: Any,
    y_holdout: Any,
    *,
    classifier: ClassifierMixin | None = None,
    coding: TableCoding | None = None,
    random_state: int = 0,
    n_jobs: int | None = 1,
) -> pd.DataFrame:
    """Per class c of the synthetic rows: share assigned to c, synthetic vs real held-out.

    The classifier (default: histogram gradient boosting) is trained on the encoded real
    training rows. Columns: ``label``, ``n_synth``, ``n_holdout``, ``agree_synth``,
    ``agree_holdout``, ``diff`` (synthetic - held-out; NaN if no held-out row has the class).
    """
    coding = coding or TableCoding.fit(real_train)
    Xt = coding.clean(real_train)
    Xs, Xh = coding.clean(synth), coding.clean(real_holdout)
    yt = _labels(y_train, len(Xt), "training")
    ys = _labels(y_synth, len(Xs), "synthetic")
    yh = _labels(y_holdout, len(Xh), "held-out")
    clf = clone(classifier) if classifier is not None else _default_classifier(random_state)
    with threadpool_limits(n_jobs):
        clf.fit(coding.encode(Xt), yt)
        ps, ph = clf.predict(coding.encode(Xs)), clf.predict(coding.encode(Xh))
    rows = []
    for c in pd.unique(ys):
        ms, mh = ys == c, yh == c
        a_s = float(np.mean(ps[ms] == c))
        a_h = float(np.mean(ph[mh] == c)) if mh.any() else float("nan")
        rows.append({"label": c, "n_synth": int(ms.sum()), "n_holdout": int(mh.sum()),
                     "agree_synth": a_s, "agree_holdout": a_h, "diff": a_s - a_h})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------- report


def _key(v: Any) -> str:
    """A class label as text that MLflow accepts in a metric name."""
    return re.sub(r"[^0-9A-Za-z_\-.]", "_", str(v))


@dataclass
class FidelityReport:
    """All fidelity measures of one synthetic table; ``to_dict`` and ``figures`` feed MLflow."""

    n_train: int
    n_synth: int
    n_holdout: int
    c2st: C2STResult | None
    marginals: pd.DataFrame
    correlation_similarity: float
    contingency_similarity: float
    dcr: DCRResult | None
    labels: pd.DataFrame | None
    correlation_method: str = "spearman"
    class_matched: bool = False
    _reference: pd.DataFrame | None = field(default=None, repr=False)
    _synth: pd.DataFrame | None = field(default=None, repr=False)
    _corr: tuple[pd.DataFrame, pd.DataFrame] | None = field(default=None, repr=False)

    @property
    def marginal_similarity(self) -> float:
        """Mean per-column marginal similarity."""
        return float(self.marginals["similarity"].mean())

    def to_dict(self) -> dict[str, float]:
        """Flat ``name -> number`` metrics (NaN where a measure does not apply)."""
        d: dict[str, float] = {
            "n_train": float(self.n_train), "n_synth": float(self.n_synth),
            "n_holdout": float(self.n_holdout),
            "marginal_similarity": self.marginal_similarity,
            "marginal_similarity_min": float(self.marginals["similarity"].min()),
            "correlation_similarity": self.correlation_similarity,
            "contingency_similarity": self.contingency_similarity,
        }
        if self.c2st is not None:
            d["c2st_auc"] = self.c2st.auc_mean
            d["c2st_auc_std"] = self.c2st.auc_std
        for r in self.marginals.itertuples():
            d[f"marginal_similarity.{_key(r.column)}"] = float(r.similarity)
        if self.dcr is not None:
            d.update({
                "dcr_median_synth": self.dcr.median_synth,
                "dcr_median_holdout": self.dcr.median_holdout,
                "dcr_ratio": self.dcr.ratio,
                "dcr_p05_synth": self.dcr.p05_synth,
                "dcr_p05_holdout": self.dcr.p05_holdout,
                "dcr_exact_share_synth": self.dcr.exact_share_synth,
                "dcr_exact_share_holdout": self.dcr.exact_share_holdout,
            })
        if self.labels is not None and len(self.labels):
            d["label_agree_synth"] = float(self.labels["agree_synth"].mean())
            d["label_agree_holdout"] = float(self.labels["agree_holdout"].mean())
            d["label_agree_diff"] = float(self.labels["diff"].mean())
            for r in self.labels.itertuples():
                k = _key(r.label)
                d[f"label_agree_synth.{k}"] = float(r.agree_synth)
                d[f"label_agree_holdout.{k}"] = float(r.agree_holdout)
        return d

    def figures(self, max_columns: int = 12) -> dict[str, Figure]:
        """Figures by file name: marginals grid, correlation difference, DCR histograms."""
        out: dict[str, Figure] = {}
        if self._reference is not None and self._synth is not None:
            out["fidelity_marginals.png"] = _marginal_figure(
                self._reference, self._synth, self.marginals, max_columns)
        if self._corr is not None and len(self._corr[0]) >= 2:
            out["fidelity_correlation_diff.png"] = _correlation_figure(*self._corr)
        if self.dcr is not None:
            out["fidelity_dcr.png"] = _dcr_figure(self.dcr)
        return out


def _class_matched(
    y_ref: np.ndarray, y_synth: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Indices of reference rows drawn to the synthetic class mix (as many as possible)."""
    classes, counts = np.unique(y_synth, return_counts=True)
    share = counts / counts.sum()
    avail = np.array([np.sum(y_ref == c) for c in classes])
    if (avail == 0).any():
        missing = classes[avail == 0].tolist()
        raise GenaugInputError("synthetic rows have classes the real rows lack",
                               column=None, expected="classes seen in real training rows",
                               found=f"{missing}")
    total = int(np.floor(np.min(avail / share)))
    idx = []
    for c, p in zip(classes, share):
        pool = np.flatnonzero(y_ref == c)
        k = min(len(pool), max(1, int(round(p * total))))
        idx.append(rng.choice(pool, k, replace=False))
    return np.sort(np.concatenate(idx))


def fidelity_report(
    real_train: Any,
    synth: Any,
    real_holdout: Any | None = None,
    *,
    y_train: Any = None,
    y_synth: Any = None,
    y_holdout: Any = None,
    label: str | None = None,
    match_classes: bool = True,
    numeric: Literal["quantile", "standard"] = "quantile",
    classifier: ClassifierMixin | None = None,
    n_splits: int = 5,
    max_rows: int | None = 5000,
    max_pairs: int = 100,
    random_state: int = 0,
    n_jobs: int | None = 1,
) -> FidelityReport:
    """Compute every measure that applies (module docstring) for one synthetic table.

    ``label`` names a class column inside the frames (it is then not a feature); otherwise
    ``y_*`` give the labels. DCR needs ``real_holdout``; label fidelity needs labels for all
    three tables. ``classifier`` (unfitted) is used for C2ST and label fidelity, with at most
    ``n_jobs`` threads.
    """
    train = as_frame(real_train)
    names = list(train.columns)

    def frame(X: Any) -> pd.DataFrame | None:
        if X is None or isinstance(X, pd.DataFrame):
            return X
        wide = np.ndim(X) == 2 and np.shape(X)[1] == len(names)
        return as_frame(X, columns=names if wide else None)

    syn, hold = frame(synth), frame(real_holdout)
    if label is not None:
        found = []
        for what, df in (("real_train", train), ("synth", syn), ("real_holdout", hold)):
            if df is not None and label not in df.columns:
                raise GenaugInputError("label column absent", column=label,
                                       expected=f"a column named {label!r} in {what}",
                                       found=f"columns {list(map(str, df.columns))}")
            found.append(None if df is None else df[label].to_numpy())
        y_train, y_synth, y_holdout = found
        train = train.drop(columns=label)
        syn = syn.drop(columns=label)
        hold = None if hold is None else hold.drop(columns=label)
    assert syn is not None
    _nonempty(train, "real training")
    _nonempty(syn, "synthetic")
    coding = TableCoding.fit(train, numeric=numeric)
    rng = np.random.default_rng(random_state)
    y_tr = None if y_train is None else _labels(y_train, len(train), "training")
    y_sy = None if y_synth is None else _labels(y_synth, len(syn), "synthetic")
    y_ho = None
    if hold is not None and y_holdout is not None:
        y_ho = _labels(y_holdout, len(hold), "held-out")

    ref = train
    matched = match_classes and y_tr is not None and y_sy is not None
    if matched:
        ref = train.iloc[_class_matched(y_tr, y_sy, rng)]
    c2 = c2st(ref, syn, classifier=classifier, n_splits=n_splits, max_rows=max_rows,
              random_state=random_state, coding=coding, n_jobs=n_jobs)
    marg = marginal_similarity(ref, syn, coding=coding)
    corr, cr, cs = correlation_similarity(ref, syn, coding=coding)
    cont = contingency_similarity(ref, syn, coding=coding, max_pairs=max_pairs,
                                  random_state=random_state)
    dcr = None
    if hold is not None:
        h = hold
        if matched and y_ho is not None:
            keep = np.isin(y_ho, np.unique(y_sy))
            h = hold.iloc[np.flatnonzero(keep)] if keep.any() else hold
        dcr = distance_to_closest_record(train, syn, h, coding=coding, max_rows=max_rows,
                                         random_state=random_state)
    lab = None
    if y_tr is not None and y_sy is not None and y_ho is not None:
        lab = label_fidelity(train, y_tr, syn, y_sy, hold, y_ho, classifier=classifier,
                             coding=coding, random_state=random_state, n_jobs=n_jobs)
    elif any(v is not None for v in (y_tr, y_sy, y_ho)) and hold is not None:
        warnings.warn("label fidelity needs labels for training, synthetic and held-out rows; "
                      "skipped", UserWarning, stacklevel=2)
    return FidelityReport(
        n_train=len(train), n_synth=len(syn), n_holdout=0 if hold is None else len(hold),
        c2st=c2, marginals=marg, correlation_similarity=corr, contingency_similarity=cont,
        dcr=dcr, labels=lab, class_matched=bool(matched),
        _reference=coding.clean(ref), _synth=coding.clean(syn), _corr=(cr, cs),
    )


# ---------------------------------------------------------------------------------- figures


def _marginal_figure(
    real: pd.DataFrame, synth: pd.DataFrame, marg: pd.DataFrame, max_columns: int
) -> Figure:
    show = marg.sort_values("similarity").head(max_columns)
    n = len(show)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig = new_figure(4.0 * ncol, 2.8 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    for ax, r in zip(axes, show.itertuples()):
        x, z = real[r.column], synth[r.column]
        if r.kind == "numeric":
            xv, zv = x.dropna().to_numpy(float), z.dropna().to_numpy(float)
            both = np.r_[xv, zv]
            bins = np.histogram_bin_edges(both, bins=30) if len(both) else 10
            ax.hist(xv, bins=bins, density=True, alpha=0.5, label="real")
            ax.hist(zv, bins=bins, density=True, alpha=0.5, label="synthetic")
        else:
            fr, fs = _cat_freq(x), _cat_freq(z)
            levels = fr.add(fs, fill_value=0).sort_values(ascending=False).index[:10]
            pos = np.arange(len(levels))
            ax.bar(pos - 0.2, fr.reindex(levels, fill_value=0), 0.4, label="real")
            ax.bar(pos + 0.2, fs.reindex(levels, fill_value=0), 0.4, label="synthetic")
            ax.set_xticks(pos, [str(v)[:10] for v in levels], rotation=45, fontsize=7)
        ax.set_title(f"{r.column} (sim {r.similarity:.2f})", fontsize=9)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.suptitle("Marginals, least similar first")
    fig.tight_layout()
    return fig


def _correlation_figure(cr: pd.DataFrame, cs: pd.DataFrame) -> Figure:
    d = (cr - cs).abs()
    k = len(d)
    fig = new_figure(1.0 + 0.35 * k + 2, 1.0 + 0.35 * k + 1.2)
    ax = fig.subplots()
    vals = d.to_numpy()
    im = ax.imshow(vals, vmin=0, vmax=max(0.1, float(np.nanmax(vals))), cmap="Reds")
    if k <= 12:
        for i, j in itertools.product(range(k), range(k)):
            ax.text(j, i, f"{vals[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(k), [str(c)[:12] for c in d.columns], rotation=90, fontsize=7)
    ax.set_yticks(range(k), [str(c)[:12] for c in d.index], fontsize=7)
    fig.colorbar(im, ax=ax, label="|rho real - rho synthetic|")
    ax.set_title("Spearman correlation difference")
    fig.tight_layout()
    return fig


def _dcr_figure(dcr: DCRResult) -> Figure:
    fig = new_figure(6, 3.5)
    ax = fig.subplots()
    both = np.r_[dcr.synth, dcr.holdout]
    bins = np.histogram_bin_edges(both, bins=40)
    ax.hist(dcr.holdout, bins=bins, density=True, alpha=0.5, label="real held-out")
    ax.hist(dcr.synth, bins=bins, density=True, alpha=0.5, label="synthetic")
    ax.set(xlabel="distance to closest training row (encoded)", ylabel="density",
           title=f"DCR: median ratio {dcr.ratio:.2f}, exact copies {dcr.exact_share_synth:.1%}")
    ax.legend()
    fig.tight_layout()
    return fig
