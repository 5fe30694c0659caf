"""An isolation forest stored as plain arrays, so it saves without pickle.

Fitting uses scikit-learn's :class:`~sklearn.ensemble.IsolationForest`; the fitted trees are then
flattened into arrays and scored by a vectorised traversal that reproduces
``-IsolationForest.score_samples`` exactly (a test checks it).

The traversal is compiled with numba when it is installed (blocks of rows in parallel, each block
walking one tree at a time so that the tree stays in cache), else done with NumPy gathers;
both give the same scores.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; NumPy is the fallback
    numba = None

_BLOCK = 256


def _path_lengths_py(X, feature, threshold, child, leaf_depth, roots, depth, out):  # noqa: ANN001
    """Sum over trees of each row's leaf path length (the numba kernel's source).

    The nodes are laid out by :meth:`ArrayForest._compiled_arrays`: a node's children are
    ``child[node]`` (left) and ``child[node] + 1`` (right), and a leaf is its own left child
    with threshold +inf, so every row takes ``depth`` steps per tree with no branch: the rows of
    a block advance side by side, a level at a time, while the tree stays in cache.
    """
    n = X.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for b in numba.prange(n_blocks):
        lo = b * _BLOCK
        hi = min(lo + _BLOCK, n)
        nodes = np.empty(hi - lo, dtype=np.int32)
        acc = np.zeros(hi - lo)
        for t in range(roots.shape[0]):
            nodes[:] = roots[t]
            for _ in range(depth):
                for i in range(hi - lo):
                    nd = nodes[i]
                    nodes[i] = child[nd] + (X[lo + i, feature[nd]] > threshold[nd])
            for i in range(hi - lo):
                acc[i] += leaf_depth[nodes[i]]
        out[lo:hi] = acc


if numba is None:
    _path_lengths = _path_lengths_serial = None
else:
    _path_lengths = numba.njit(parallel=True, nogil=True, cache=True)(_path_lengths_py)
    # one thread: no threading layer (safe to call from several threads at once)
    _path_lengths_serial = numba.njit(nogil=True, cache=True)(_path_lengths_py)


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

    def score(self, X: np.ndarray, chunk: int = 16384, n_threads: int | None = None) -> np.ndarray:
        """Anomaly score per row (higher = more anomalous), equal to ``-score_samples``.

        ``n_threads`` caps numba's threads (None: numba's default, all cores; 1: a serial
        kernel that releases the GIL, so it can run beside other work in a thread).
        """
        X = np.ascontiguousarray(X, dtype=np.float32)  # float32 comparisons, as sklearn does
        if _path_lengths is None or np.isnan(X).any():  # the kernel would send NaN left
            depths = self._depths_numpy(X, chunk)
        else:
            depths = self._depths_numba(X, n_threads)
        return 2.0 ** (-depths / self.denominator) if self.denominator else np.ones(len(X))

    def _compiled_arrays(self) -> tuple[np.ndarray, ...]:
        """The trees renumbered breadth-first so that siblings are adjacent (for the kernel).

        Thresholds become float32: for a float32 ``x``, ``x <= t`` holds exactly when ``x`` is
        at most the largest float32 not above ``t``, so the comparisons are unchanged.
        """
        cached = getattr(self, "_c", None)
        if cached is not None:
            return cached
        a = self.arrays
        left, right = a["left"].tolist(), a["right"].tolist()
        order: list[int] = []  # old node id, in the new order
        new_roots = []
        child = []
        for root in a["roots"].tolist():
            new_roots.append(len(order))
            order.append(root)
            head = len(order) - 1
            while head < len(order):
                node = order[head]
                if left[node] >= 0:
                    child.append(len(order))
                    order += [left[node], right[node]]
                else:
                    child.append(head)
                head += 1
        old = np.asarray(order)
        leaf = a["left"][old] < 0
        t = a["threshold"][old].astype(np.float64)
        t32 = t.astype(np.float32)
        t32 = np.where(t32.astype(np.float64) > t, np.nextafter(t32, np.float32(-np.inf)), t32)
        cached = self._c = (
            np.where(leaf, 0, a["feature"][old]).astype(np.int32),
            np.where(leaf, np.float32(np.inf), t32).astype(np.float32),
            np.asarray(child, dtype=np.int32),
            np.ascontiguousarray(a["leaf_depth"][old], dtype=np.float64),
            np.asarray(new_roots, dtype=np.int32),
        )
        return cached

    def _depths_numba(self, X: np.ndarray, n_threads: int | None) -> np.ndarray:
        out = np.empty(len(X))
        if not len(X):
            return out
        args = (*self._compiled_arrays(), self.max_depth, out)
        if n_threads == 1:
            _path_lengths_serial(X, *args)
            return out
        before = numba.get_num_threads()
        if n_threads is not None:
            numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))
        try:
            _path_lengths(X, *args)
        finally:
            numba.set_num_threads(before)
        return out

    def _depths_numpy(self, X: np.ndarray, chunk: int) -> np.ndarray:
        a = self.arrays
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
            out[s:s + chunk] = a["leaf_depth"][node].sum(1)
        return out
