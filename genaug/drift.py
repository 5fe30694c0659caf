"""Drift of incoming data against the training data: population stability index (PSI) per column.

At fit, the detector stores a compact :class:`TrainingProfile` in its ``config.json``: per numeric
(or datetime) column the training deciles as bin edges and the share of rows per bin, per
categorical column the share of each of its ``max_levels`` most frequent levels, of the other
levels together and of missing values (numeric columns have a missing bin too). At scoring a
:class:`DriftAccumulator` counts incoming rows into the same bins batch by batch (memory is the
bin counts, whatever the file size), then

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with shares smoothed by half a row per bin (``(count + 0.5) / (n + 0.5 * bins)``) so an empty
bin gives a large but finite term. Levels (a common convention):

* PSI < 0.1: stable; 0.1 to 0.25: moderate shift; > 0.25: drift (a column is *drifted*).

A file's sampling noise alone gives ``PSI ~ (bins - 1) / rows`` (about 0.01 for 1,000 rows and
10 deciles), so columns are flagged only in files of at least ``min_rows`` (default 200) rows.
The scores get the same treatment against the detector's held-out validation scores (deciles of
``validation_scores_``: ``score_psi``), and the share of flagged rows is reported beside the
expected one (``flag_rate_`` on the validation rows, about ``contamination``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .schema import CATEGORICAL, Schema, level_codes

STABLE = 0.1
DRIFT = 0.25
MIN_ROWS = 200
OTHER = "__other__"
MISSING = "__missing__"
_SMOOTH = 0.5


def psi_level(psi: float) -> str:
    """``stable`` (< 0.1), ``moderate`` (0.1 to 0.25) or ``drift`` (> 0.25)."""
    if psi > DRIFT:
        return "drift"
    return "moderate" if psi >= STABLE else "stable"


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI between two vectors of bin *counts* (smoothed by half a row per bin)."""
    e = (np.asarray(expected, float) + _SMOOTH) / (np.sum(expected) + _SMOOTH * len(expected))
    a = (np.asarray(actual, float) + _SMOOTH) / (np.sum(actual) + _SMOOTH * len(actual))
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass
class ColumnProfile:
    """Bins of one column and the training rows' count per bin.

    Numeric: bins ``(-inf, e0], (e0, e1], ..., (ek, inf)`` and missing. Categorical: one bin per
    level in ``levels``, then other levels, then missing.
    """

    name: str
    kind: str  # "numeric" | "categorical"
    counts: list[float]
    edges: list[float] | None = None
    levels: list[str] | None = None

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Counts of ``values`` (a validated column) per bin."""
        n_bins = len(self.counts)
        if self.kind == "numeric":
            x = np.asarray(values, dtype=float)
            miss = np.isnan(x)
            idx = np.searchsorted(np.asarray(self.edges), x[~miss], side="left")
            out = np.bincount(idx, minlength=n_bins - 1).astype(float)
            return np.append(out, float(miss.sum()))
        pos = {lv: i for i, lv in enumerate(self.levels or [])}
        # levels, then other levels (len(pos)), then missing (len(pos) + 1)
        idx = level_codes(values, pos, len(pos), len(pos) + 1)
        return np.bincount(idx, minlength=n_bins).astype(float)

    def labels(self) -> list[str]:
        """Readable bin names, in order."""
        if self.kind == "numeric":
            e = [f"{v:.4g}" for v in self.edges or []]
            if not e:
                return ["all values", MISSING]
            inner = [f"({a}, {b}]" for a, b in zip(e[:-1], e[1:])]
            return [f"<= {e[0]}", *inner, f"> {e[-1]}", MISSING]
        return [*(self.levels or []), OTHER, MISSING]


def _numeric_profile(name: str, x: np.ndarray, n_bins: int) -> ColumnProfile:
    x = np.asarray(x, dtype=float)
    ok = x[~np.isnan(x)]
    edges = np.unique(np.quantile(ok, np.linspace(0, 1, n_bins + 1)[1:-1])) if len(ok) else []
    prof = ColumnProfile(name, "numeric", [0.0] * (len(edges) + 2), [float(v) for v in edges])
    prof.counts = prof.bin_counts(x).tolist()
    return prof


def _categorical_profile(name: str, values: np.ndarray, max_levels: int) -> ColumnProfile:
    counts = pd.Series(values, dtype=object).value_counts(dropna=True)
    levels = sorted(counts.index, key=lambda v: (-int(counts[v]), str(v)))[:max_levels]
    prof = ColumnProfile(name, "categorical", [0.0] * (len(levels) + 2),
                         levels=[str(v) for v in levels])
    prof.counts = prof.bin_counts(values).tolist()
    return prof


@dataclass
class TrainingProfile:
    """Per-column bins and training counts, saved in the detector's ``config.json``."""

    columns: list[ColumnProfile]
    n_rows: int

    @classmethod
    def fit(cls, clean: pd.DataFrame, schema: Schema, n_bins: int = 10,
            max_levels: int = 30) -> TrainingProfile:
        """Profile a frame cleaned by :meth:`Schema.validate` (deciles, top levels)."""
        cols = []
        for spec in schema.columns:
            values = clean[spec.name].to_numpy()
            cols.append(_categorical_profile(spec.name, values, max_levels)
                        if spec.kind == CATEGORICAL else
                        _numeric_profile(spec.name, values, n_bins))
        return cls(cols, len(clean))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"n_rows": self.n_rows, "columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingProfile:
        """Inverse of :meth:`to_dict`."""
        return cls([ColumnProfile(**c) for c in d["columns"]], int(d["n_rows"]))


@dataclass
class ColumnDrift:
    """PSI of one column and the bin whose share moved most."""

    column: str
    kind: str
    psi: float
    level: str
    top_bin: str
    expected_share: float
    actual_share: float


@dataclass
class DriftReport:
    """Drift of one scored file (or of several, summed) against the training data."""

    n_rows: int
    available: bool
    note: str
    columns: list[ColumnDrift] = field(default_factory=list)
    score_psi: float = math.nan
    flag_rate: float = math.nan
    expected_flag_rate: float = math.nan
    min_rows: int = MIN_ROWS

    @property
    def max_psi(self) -> float:
        """Largest column PSI (NaN when column drift is unavailable)."""
        return max((c.psi for c in self.columns), default=math.nan)

    @property
    def drifted_columns(self) -> list[str]:
        """Columns with PSI > 0.25, most drifted first; none in files under ``min_rows`` rows."""
        if self.n_rows < self.min_rows:
            return []
        return [c.column for c in sorted(self.columns, key=lambda c: -c.psi) if c.psi > DRIFT]

    def metrics(self) -> dict[str, float]:
        """Numbers for an MLflow run (NaN-valued ones left out)."""
        m = {"max_psi": self.max_psi, "n_drifted_columns": float(len(self.drifted_columns)),
             "score_psi": self.score_psi, "expected_flag_rate": self.expected_flag_rate}
        return {k: float(v) for k, v in m.items() if not math.isnan(v)}

    def table(self) -> list[dict[str, Any]]:
        """One row per column, most drifted first (for CSV and Prefect table artifacts)."""
        return [{**asdict(c), "psi": round(c.psi, 4),
                 "expected_share": round(c.expected_share, 4),
                 "actual_share": round(c.actual_share, 4)}
                for c in sorted(self.columns, key=lambda c: -c.psi)]


class DriftAccumulator:
    """Counts incoming rows into the training bins batch by batch; :meth:`report` at the end."""

    def __init__(self, profile: TrainingProfile | None, schema: Schema,
                 validation_scores: np.ndarray, *, expected_flag_rate: float,
                 n_bins: int = 10, min_rows: int = MIN_ROWS) -> None:
        self.profile = profile
        self.schema = schema
        self.expected_flag_rate = expected_flag_rate
        self.min_rows = min_rows
        self.score_ref = _numeric_profile("score", np.asarray(validation_scores, float), n_bins)
        self.score_counts = np.zeros(len(self.score_ref.counts))
        self.counts = ([np.zeros(len(c.counts)) for c in profile.columns]
                       if profile is not None else [])
        self.n_rows = 0
        self.n_flagged = 0

    def update(self, df: pd.DataFrame, scores: np.ndarray, flags: np.ndarray,
               clean: pd.DataFrame | None = None) -> None:
        """Add one batch: the raw rows (already scored, so valid) and their scores and flags.

        ``clean``: the same rows already validated by the schema (skips validating them again).
        """
        self.n_rows += len(df)
        self.n_flagged += int(np.sum(flags))
        self.score_counts += self.score_ref.bin_counts(np.asarray(scores, float))
        if self.profile is None:
            return
        if clean is None:
            clean = self.schema.validate(df[self.schema.feature_names], handle_unknown="keep")
        for acc, prof in zip(self.counts, self.profile.columns):
            acc += prof.bin_counts(clean[prof.name].to_numpy())

    def report(self) -> DriftReport:
        """PSI per column and of the scores, over every batch seen."""
        flag_rate = self.n_flagged / self.n_rows if self.n_rows else math.nan
        score_psi = psi(self.score_ref.counts, self.score_counts) if self.n_rows else math.nan
        common = {"score_psi": score_psi, "flag_rate": flag_rate,
                  "expected_flag_rate": self.expected_flag_rate, "min_rows": self.min_rows}
        if self.profile is None:
            return DriftReport(self.n_rows, False, "unavailable: the model was saved without a "
                               "training profile (retrain to get column drift)", **common)
        cols = []
        for acc, prof in zip(self.counts, self.profile.columns):
            e = np.asarray(prof.counts) / max(sum(prof.counts), 1)
            a = acc / max(acc.sum(), 1)
            top = int(np.argmax(np.abs(a - e)))
            value = psi(prof.counts, acc)
            cols.append(ColumnDrift(prof.name, prof.kind, value, psi_level(value),
                                    prof.labels()[top], float(e[top]), float(a[top])))
        note = (f"only {self.n_rows} rows: PSI is noisy, no column is flagged below "
                f"{self.min_rows} rows" if self.n_rows < self.min_rows else "ok")
        return DriftReport(self.n_rows, True, note, cols, **common)
