"""An isolation forest stored as plain arrays, so it saves without pickle.

Fitting uses scikit-learn's :class:`~sklearn.ensemble.IsolationForest`; the fitted trees are then
flattened into arrays and scored by a vectorised traversal that reproduces
``-IsolationForest.score_samples`` exactly (a test checks it).
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest


def _average_path_length(n: np.ndarray) -> np.ndarray:
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class ArrayForest:
    """Isolation forest as arrays: node feature, threshold, children and leaf path length."""

    ARRAYS = ("feature", "threshold", "left", "right", "leaf_depth", "roots")

    def __init__(self, arrays: dict[str, np.ndarray], denominator: float, max_depth: int) -> None:
        self.arrays = arrays
        self.denominator = float(denominator)
        self.max_depth = int(max_depth)

    @classmethod
    def fit(cls, X: np.ndarray, n_estimators: int, random_state: int) -> ArrayForest:
        """Fit scikit-learn's IsolationForest on ``X`` and flatten its trees."""
        iso = IsolationForest(n_estimators=n_estimators, random_state=random_state).fit(X)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in cls.ARRAYS}
        offset = 0
        max_depth = 0
        for est, feats in zip(iso.estimators_, iso.estimators_features_):
            t = est.tree_
            depth = t.compute_node_depths()
            leaf = t.children_left == -1
            parts["feature"].append(np.where(leaf, 0, np.asarray(feats)[np.maximum(t.feature, 0)]))
            parts["threshold"].append(t.threshold.astype(np.float64))
            parts["left"].append(np.where(leaf, -1, t.children_left + offset))
            parts["right"].append(np.where(leaf, -1, t.children_right + offset))
            parts["leaf_depth"].append(depth + _average_path_length(t.n_node_samples) - 1.0)
            parts["roots"].append(np.array([offset]))
            max_depth = max(max_depth, int(depth.max()))
            offset += t.node_count
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        arrays["feature"] = arrays["feature"].astype(np.int64)
        arrays["left"] = arrays["left"].astype(np.int64)
        arrays["right"] = arrays["right"].astype(np.int64)
        arrays["roots"] = arrays["roots"].astype(np.int64)
        denominator = len(iso.estimators_) * _average_path_length(np.array([iso._max_samples]))[0]
        return cls(arrays, denominator, max_depth)

    def score(self, X: np.ndarray, chunk: int = 16384) -> np.ndarray:
        """Anomaly score per row (higher = more anomalous), equal to ``-score_samples``."""
        a = self.arrays
        X = np.asarray(X, dtype=np.float32)  # the trees compare float32 values, as sklearn does
        out = np.empty(len(X))
        for s in range(0, len(X), chunk):
            xb = X[s:s + chunk]
            rows = np.arange(len(xb))[:, None]
            node = np.broadcast_to(a["roots"], (len(xb), len(a["roots"]))).copy()
            for _ in range(self.max_depth):
                left = a["left"][node]
                inner = left >= 0
                if not inner.any():
                    break
                go_left = xb[rows, a["feature"][node]] <= a["threshold"][node]
                node = np.where(inner, np.where(go_left, left, a["right"][node]), node)
            depths = a["leaf_depth"][node].sum(1)
            out[s:s + chunk] = 2.0 ** (-depths / self.denominator) if self.denominator else 1.0
        return out
