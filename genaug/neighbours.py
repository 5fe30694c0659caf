"""Nearest-neighbour tools on encoded rows: distances to a reference set, a k-NN C2ST, and the
copy guard that rejects synthetic rows too close to a training row."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata


def min_sq_distances(
    a: np.ndarray, b: np.ndarray, *, exclude_self: bool = False, chunk: int = 2048
) -> np.ndarray:
    """Squared Euclidean distance from each row of ``a`` to its nearest row of ``b``.

    ``exclude_self`` (``a`` is the first ``len(a)`` rows of ``b``) skips the row itself: a
    leave-one-out distance, as if that row had been held out.
    """
    ta = torch.as_tensor(np.asarray(a, dtype=np.float32))
    tb = torch.as_tensor(np.asarray(b, dtype=np.float32))
    nb = (tb * tb).sum(1)
    out = np.empty(len(ta), dtype=np.float64)
    with torch.inference_mode():
        for s in range(0, len(ta), chunk):
            x = ta[s:s + chunk]
            d = (x * x).sum(1, keepdim=True) + nb[None, :] - 2.0 * x @ tb.T
            if exclude_self:
                rows = torch.arange(len(x))
                d[rows, rows + s] = torch.inf
            out[s:s + chunk] = d.min(1).values.clamp(min=0.0).double().numpy()
    return out


def knn_c2st(real: np.ndarray, synth: np.ndarray, k: int = 5) -> float:
    """ROC-AUC of a leave-one-out k-NN classifier telling ``synth`` from ``real`` rows.

    0.5 means the neighbourhoods cannot tell them apart; cheap enough to run during training.
    """
    x = torch.as_tensor(np.vstack([real, synth]).astype(np.float32))
    is_synth = np.r_[np.zeros(len(real)), np.ones(len(synth))]
    k = int(min(k, len(x) - 1))
    with torch.inference_mode():
        sq = (x * x).sum(1)
        d = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
        d.fill_diagonal_(torch.inf)
        nn_idx = d.topk(k, largest=False).indices.numpy()
    return rank_auc(is_synth, is_synth[nn_idx].mean(1))


def rank_auc(labels: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC from ranks (Mann-Whitney U), ties counted half."""
    pos = np.asarray(labels, dtype=bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if not n1 or not n0:
        return float("nan")
    r = rankdata(score)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


class CopyGuard:
    """Flags synthetic rows that copy a training row, or nearly do.

    Rows are compared as standardised numerics, missing indicators and one-hot categories
    (the usual distance-to-closest-record space):

    * exact copies of *any* training row are found by hashing the rows' values;
    * near copies: a row of class ``c`` closer to a training row of class ``c`` than the
      ``quantile`` of the class's own leave-one-out nearest-neighbour distances, i.e. closer
      than most real rows of the class would be had they been held out. Projections onto the
      class's top principal axes never lengthen a distance, so a cheap projected search clears
      most rows and only the rest are checked in full.
    """

    def __init__(self, values: np.ndarray, slots: np.ndarray, labels: np.ndarray,
                 n_slots: list[int], thresholds: np.ndarray, n_axes: int = 16) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.slots = np.asarray(slots, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_slots = [int(k) for k in n_slots]
        self.thresholds = np.asarray(thresholds, dtype=float)
        self.mean = np.nan_to_num(np.nanmean(self.values, 0))
        std = np.nan_to_num(np.nanstd(self.values, 0))
        self.scale = np.where(std > 0, std, 1.0)
        self.has_missing = np.isnan(self.values).any(0)
        self.slot_offset = np.r_[0, np.cumsum(self.n_slots)[:-1]].astype(np.int64)
        self.weights = np.random.default_rng(0).integers(
            1, 2**63, size=self.values.shape[1] + self.slots.shape[1], dtype=np.uint64)
        self.hashes = np.unique(self._hash(self.values, self.slots))
        rep = self.encode(self.values, self.slots)
        self.classes: dict[int, tuple[torch.Tensor, ...]] = {}
        for c in np.unique(self.labels):
            rows = rep[self.labels == c]
            mean = rows.mean(0)
            k = int(min(n_axes, rows.shape[1], max(len(rows) - 1, 1)))
            _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
            axes = np.ascontiguousarray(vt[:k].T, dtype=np.float32)
            proj = torch.as_tensor((rows - mean) @ axes)
            self.classes[int(c)] = (torch.as_tensor(rows), torch.as_tensor(mean),
                                    torch.as_tensor(axes), proj.T.contiguous(),
                                    (proj * proj).sum(1))

    @classmethod
    def fit(cls, values: np.ndarray, slots: np.ndarray, labels: np.ndarray,
            n_slots: list[int], quantile: float, rng: np.random.Generator,
            max_rows: int = 2000) -> CopyGuard:
        """Set each class's threshold from its rows' leave-one-out distances."""
        guard = cls(values, slots, labels, n_slots, np.zeros(int(labels.max()) + 1))
        rep = guard.encode(guard.values, guard.slots)
        for c in range(len(guard.thresholds)):
            rows = np.flatnonzero(guard.labels == c)
            if len(rows) < 2:
                continue
            probe = rng.choice(len(rows), size=min(len(rows), max_rows), replace=False)
            rest = np.setdiff1d(np.arange(len(rows)), probe)
            # the probe rows come first so that exclude_self skips exactly the row itself
            d = np.sqrt(min_sq_distances(rep[rows[probe]], rep[rows[np.r_[probe, rest]]],
                                         exclude_self=True))
            guard.thresholds[c] = float(np.quantile(d, quantile))
        return guard

    def encode(self, values: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Rows as standardised numerics, missing indicators and one-hot categories."""
        n = len(values)
        miss = np.isnan(values)
        num = np.where(miss, 0.0, (values - self.mean) / self.scale)
        out = np.zeros((n, num.shape[1] + int(self.has_missing.sum()) + sum(self.n_slots)),
                       dtype=np.float32)
        out[:, : num.shape[1]] = num
        k = num.shape[1] + int(self.has_missing.sum())
        out[:, num.shape[1]:k] = miss[:, self.has_missing]
        if slots.shape[1]:
            rows = np.repeat(np.arange(n), slots.shape[1])
            out[rows, (k + self.slot_offset + slots).ravel()] = 1.0
        return out

    def _hash(self, values: np.ndarray, slots: np.ndarray) -> np.ndarray:
        v = np.where(np.isnan(values), -np.inf, values).astype(np.float32)
        keys = np.hstack([v.view(np.uint32).astype(np.uint64), slots.astype(np.uint64)])
        return (keys * self.weights).sum(1)  # wraps modulo 2**64

    def too_close(self, values: np.ndarray, slots: np.ndarray, labels: np.ndarray
                  ) -> np.ndarray:
        """Boolean mask of the rows to reject."""
        h = self._hash(values, slots)
        pos = np.minimum(np.searchsorted(self.hashes, h), len(self.hashes) - 1)
        out = self.hashes[pos] == h
        rows = self.encode(values, slots)
        with torch.inference_mode():
            for c in np.unique(labels):
                tau2 = float(self.thresholds[c]) ** 2 if c < len(self.thresholds) else 0.0
                if int(c) not in self.classes or tau2 <= 0:
                    continue
                ref, mean, axes, proj_t, sq = self.classes[int(c)]
                sel = np.flatnonzero(labels == c)
                p = (torch.as_tensor(rows[sel]) - mean) @ axes
                # |p - r|^2 < tau^2  <=>  2 p.r - |r|^2 > |p|^2 - tau^2
                need = (p * p).sum(1) - tau2
                cand = []
                for s in range(0, len(p), 1024):
                    score = torch.addmm(-sq, p[s:s + 1024], proj_t, alpha=2.0)
                    cand.append(score.amax(1) > need[s:s + 1024])
                hit = sel[torch.cat(cand).numpy()]
                if len(hit):
                    out[hit] |= min_sq_distances(rows[hit], ref.numpy()) < tau2
        return out
