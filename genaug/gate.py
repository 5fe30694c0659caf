"""Champion-vs-challenger gate: compare two detectors on a fixed, labelled validation set.

The validation file (Parquet/CSV) holds the model columns and a 0/1 label column (1 = anomaly);
it stays the same across retrains so that the numbers of two models are comparable. Both models
score it and are measured by ROC-AUC (the gate) and PR-AUC (average precision; reported, not
gated). The challenger is promoted only if

    challenger ROC-AUC >= min_val_auc   and   challenger ROC-AUC >= champion ROC-AUC - tolerance.

Scoring rules during the gate: columns a model does not know are ignored (so the file may hold
the label, an ID, or columns added since the champion was trained); a category level a model
never saw is scored as rare (``handle_unknown="keep"``) instead of failing. A champion that still
cannot score the file (a column it needs is absent, a type it cannot read) is *unusable*: the
reason is recorded and the challenger is judged on the floor alone. A challenger that cannot
score the file is an error (:class:`~genaug.errors.GenaugInputError` naming the file): the
validation file does not match the data the model was trained on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from .detector import AnomalyDetector
from .errors import DtypeError, GenaugInputError, MissingColumnError, ModelFormatError
from .io import read_table


def check_labels(df: pd.DataFrame, column: str, file: str | None = None) -> np.ndarray:
    """The 0/1 anomaly labels in ``column`` as an int array, or a named error."""
    if column not in df.columns:
        raise MissingColumnError("label column absent", file=file, column=column,
                                 expected=f"a column named {column!r}",
                                 found=f"columns {list(map(str, df.columns))}")
    values = df[column]
    if values.isna().any() or not set(values.unique()) <= {0, 1}:
        raise DtypeError("labels must be 0 (normal) or 1 (anomaly)", file=file, column=column,
                         expected="0/1 without missing values",
                         found=f"values {sorted(map(str, values.unique()))[:5]}")
    return values.astype(int).to_numpy()


def read_validation(path: str, label_column: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a validation file; its labels must hold both classes (else ROC-AUC is undefined)."""
    df = read_table(path)
    y = check_labels(df, label_column, path)
    if len(np.unique(y)) < 2:
        raise DtypeError("the validation labels hold a single class", file=path,
                         column=label_column, expected="both 0 (normal) and 1 (anomaly) rows",
                         found=f"only {int(y[0])} in {len(y)} rows")
    return df.drop(columns=label_column), y


@dataclass
class Evaluation:
    """One model's quality on the validation set."""

    roc_auc: float
    pr_auc: float
    n_rows: int
    n_anomalies: int


@dataclass
class GateDecision:
    """The outcome of :func:`compare`; ``reason`` starts with ``passed:`` or ``failed:``."""

    promote: bool
    reason: str
    challenger: Evaluation
    champion: Evaluation | None
    champion_desc: str | None
    champion_error: str | None
    min_val_auc: float
    tolerance: float

    def metrics(self) -> dict[str, float]:
        """Numbers for the training run (``gate_*``)."""
        m = {"gate_challenger_roc_auc": self.challenger.roc_auc,
             "gate_challenger_pr_auc": self.challenger.pr_auc,
             "gate_validation_rows": self.challenger.n_rows,
             "gate_validation_anomalies": self.challenger.n_anomalies,
             "gate_promoted": float(self.promote)}
        if self.champion is not None:
            m["gate_champion_roc_auc"] = self.champion.roc_auc
            m["gate_champion_pr_auc"] = self.champion.pr_auc
        return m

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@contextlib.contextmanager
def _lenient(detector: AnomalyDetector) -> Iterator[None]:
    """Score unseen category levels as rare for the duration of the block."""
    before = detector.handle_unknown
    detector.handle_unknown = "keep"
    try:
        yield
    finally:
        detector.handle_unknown = before


def evaluate(detector: AnomalyDetector, X: pd.DataFrame, y: np.ndarray, *,
             file: str | None = None) -> Evaluation:
    """ROC-AUC and PR-AUC of ``detector`` on ``X`` (columns it does not know are ignored)."""
    known = set(detector.input_columns_)
    cols = [c for c in X.columns if c in known]
    with _lenient(detector):
        scores = detector.decision_function(X[cols], file=file)
    y = np.asarray(y).astype(int)
    return Evaluation(float(roc_auc_score(y, scores)), float(average_precision_score(y, scores)),
                      len(y), int(y.sum()))


def decide(challenger: Evaluation, champion: Evaluation | None, *, min_val_auc: float = 0.6,
           tolerance: float = 0.0, champion_desc: str | None = None,
           champion_error: str | None = None) -> GateDecision:
    """Promote iff the challenger clears the floor and is no worse than the champion - tolerance.

    The reason lists every check that failed (or, when promoted, what was compared).
    """
    ch = challenger.roc_auc
    who = champion_desc or "the champion"
    floor_ok = ch >= min_val_auc
    checks = [f"challenger ROC-AUC {ch:.3f} {'>=' if floor_ok else '<'} floor {min_val_auc}"]
    ok = [floor_ok]
    if champion is not None:
        beats = ch >= champion.roc_auc - tolerance
        checks.insert(0, f"challenger ROC-AUC {ch:.3f} {'>=' if beats else '<'} {who} ROC-AUC "
                         f"{champion.roc_auc:.3f} - tolerance {tolerance}")
        ok.insert(0, beats)
    elif champion_error:
        checks.insert(0, f"{who} is unusable ({champion_error})")
        ok.insert(0, True)
    else:
        checks.insert(0, "no champion yet")
        ok.insert(0, True)
    promote = all(ok)
    if promote:
        reason = "passed: " + "; ".join(checks)
    else:
        reason = "failed: " + "; ".join(c for c, good in zip(checks, ok) if not good)
        if champion is not None or champion_error:
            reason += f"; {who} stays"
    return GateDecision(promote, reason, challenger, champion, champion_desc, champion_error,
                        min_val_auc, tolerance)


def compare(challenger: AnomalyDetector, champion: AnomalyDetector | None, X: pd.DataFrame,
            y: np.ndarray, *, file: str | None = None, min_val_auc: float = 0.6,
            tolerance: float = 0.0, champion_desc: str | None = None,
            champion_error: str | None = None) -> GateDecision:
    """Evaluate both models on the validation set and :func:`decide` (see the module docstring).

    ``champion_error`` says why a champion that exists could not be loaded (it is then unusable).
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    ch = evaluate(challenger, X, y, file=file)  # bad input here is the validation file's fault
    champ, error = None, champion_error
    if champion is not None:
        try:
            champ = evaluate(champion, X, y, file=file)
        except (GenaugInputError, ModelFormatError) as e:
            error = f"{type(e).__name__}: {e}"
    return decide(ch, champ, min_val_auc=min_val_auc, tolerance=tolerance,
                  champion_desc=champion_desc, champion_error=error)
