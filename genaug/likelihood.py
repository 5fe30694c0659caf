"""Per-column negative log-likelihood of an encoded table under a VAE decoder's outputs.

For each source column the terms are (all in nats):

* numeric: Gaussian NLL ``0.5 * ((x - mu)^2 / sigma^2 + log sigma^2 + log 2 pi)`` with a
  learned per-row variance; nothing when the value is missing;
* categorical: cross-entropy of the observed level;
* missingness: Bernoulli NLL of the missing indicator, for columns that had missing values in
  training.

A value the training data never allowed (a missing value in a column that never had one, or an
unknown level with no ``__other__`` slot) costs ``log(n_train + 2)``: the Laplace estimate of an
event seen 0 times in ``n_train`` rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .transform import TabularEncoder

_LOG_2PI = math.log(2 * math.pi)


class ColumnNLL:
    """Callable that maps decoder outputs to an ``(K, batch, n_columns)`` NLL tensor."""

    def __init__(self, encoder: TabularEncoder, device: torch.device) -> None:
        cols = encoder.schema_.feature_names
        pos = {c: i for i, c in enumerate(cols)}
        self.n_columns = len(cols)
        num = encoder.num_spans
        miss = encoder.miss_spans
        with_miss = {s.column for s in miss}

        def t(values: list[int]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.long, device=device)

        self.num_pos = t([s.start for s in num])
        self.num_col = t([pos[s.column] for s in num])
        self.num_has_miss = torch.tensor([s.column in with_miss for s in num], device=device)
        self.miss_pos = t([s.start for s in miss])
        self.miss_col = t([pos[s.column] for s in miss])
        cat = encoder.cat_spans
        # flat index of every one-hot slot, and which categorical span (segment) it belongs to
        self.cat_pos = t([i for s in cat for i in range(s.start, s.end)])
        self.cat_seg = t([j for j, s in enumerate(cat) for _ in range(s.start, s.end)])
        self.cat_col = t([pos[s.column] for s in cat])
        self.n_cat = len(cat)
        self.penalty = math.log(encoder.n_train_ + 2)

    def __call__(
        self,
        out: torch.Tensor,
        num_logvar: torch.Tensor,
        x: torch.Tensor,
        num_missing: torch.Tensor,
        cat_codes: torch.Tensor,
    ) -> torch.Tensor:
        nll = out.new_zeros(*out.shape[:-1], self.n_columns)
        if len(self.num_pos):
            mu = out[..., self.num_pos]
            xv = x[..., self.num_pos]
            g = 0.5 * ((xv - mu).pow(2) * torch.exp(-num_logvar) + num_logvar + _LOG_2PI)
            unexpected = num_missing & ~self.num_has_miss
            g = torch.where(num_missing, unexpected.to(g.dtype) * self.penalty, g)
            nll = nll.index_add(-1, self.num_col, g)
        if len(self.miss_pos):
            b = F.binary_cross_entropy_with_logits(
                out[..., self.miss_pos], x[..., self.miss_pos], reduction="none"
            )
            nll = nll.index_add(-1, self.miss_col, b)
        if self.n_cat:
            nll = nll.index_add(-1, self.cat_col, self._cross_entropy(out, x, cat_codes))
        return nll

    def _cross_entropy(
        self, out: torch.Tensor, x: torch.Tensor, cat_codes: torch.Tensor
    ) -> torch.Tensor:
        """Cross-entropy of every categorical column at once (segment-wise log-softmax)."""
        logits = out[..., self.cat_pos]
        onehot = x[..., self.cat_pos]
        shape = (*logits.shape[:-1], self.n_cat)
        seg = self.cat_seg.expand_as(logits)
        seg_max = logits.new_full(shape, -torch.inf).scatter_reduce(
            -1, seg, logits.detach(), reduce="amax", include_self=True
        )
        shifted = logits - seg_max.gather(-1, seg)
        lse = logits.new_zeros(shape).index_add(-1, self.cat_seg, shifted.exp()).log()
        picked = logits.new_zeros(shape).index_add(-1, self.cat_seg, onehot * shifted)
        ce = lse - picked
        return torch.where(cat_codes < 0, torch.full_like(ce, self.penalty), ce)
