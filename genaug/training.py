"""Training and scoring loops for :class:`~genaug.nn.vae.EnsembleVAE` on encoded tables."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .likelihood import ColumnNLL
from .nn.vae import EnsembleVAE, kl_normal
from .transform import Encoded

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU, and logs the choice."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        picked = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        picked = torch.device("mps")
    else:
        picked = torch.device("cpu")
    log.info("genaug: device='auto' picked %s", picked)
    return picked


@dataclass
class TensorTable:
    """An :class:`Encoded` table moved to a device."""

    X: torch.Tensor
    num_missing: torch.Tensor
    cat_codes: torch.Tensor
    cond: torch.Tensor | None = None

    @classmethod
    def from_encoded(
        cls, enc: Encoded, device: torch.device, cond: np.ndarray | None = None
    ) -> TensorTable:
        """Copy the arrays of ``enc`` (and an optional condition matrix) to ``device``."""
        return cls(
            torch.as_tensor(enc.X, device=device),
            torch.as_tensor(enc.num_missing, device=device),
            torch.as_tensor(enc.cat_codes, device=device),
            None if cond is None else torch.as_tensor(cond, dtype=torch.float32, device=device),
        )

    def __len__(self) -> int:
        return self.X.shape[0]

    def take(self, idx: torch.Tensor) -> TensorTable:
        """Rows ``idx``; a 2-D ``idx`` of shape (K, B) gives one minibatch per member."""
        return TensorTable(
            self.X[idx], self.num_missing[idx], self.cat_codes[idx],
            None if self.cond is None else self.cond[idx],
        )


def _adam(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    # the fused kernel cuts the optimiser's per-step overhead, which dominates for small MLPs
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=lr)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` intra-op threads (None: leave as is), then restore the count."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def negative_elbo_parts(
    model: EnsembleVAE,
    nll_fn: ColumnNLL,
    batch: TensorTable,
    noise: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column reconstruction NLL ``(K, B, C)`` and KL ``(K, B)`` for a (K, B) batch."""
    out, num_logvar, mu, logvar = model(batch.X, batch.cond, noise)
    nll = nll_fn(out, num_logvar, batch.X, batch.num_missing, batch.cat_codes)
    return nll, kl_normal(mu, logvar)


def train_vae(
    model: EnsembleVAE,
    nll_fn: ColumnNLL,
    train: TensorTable,
    valid: TensorTable | None,
    *,
    n_steps: int,
    batch_size: int,
    lr: float,
    beta: float,
    warmup: float,
    generator: torch.Generator,
    rng: np.random.Generator,
    sampler: Callable[[np.random.Generator, int, int], np.ndarray] | None = None,
    trim: float = 0.0,
    progress: bool = False,
    desc: str = "VAE",
    on_epoch: Callable[[dict[str, float]], bool] | None = None,
) -> list[dict[str, float]]:
    """Train all K members for ``n_steps`` Adam steps; return per-epoch losses.

    Each member draws its own minibatches (``sampler(rng, K, B)`` may replace the default
    epoch-wise shuffling, e.g. with class-balanced draws). The KL weight rises linearly to
    ``beta`` over the first ``warmup`` fraction of steps; after it, ``trim`` > 0 drops that
    share of each member's highest-loss rows from every minibatch. ``on_epoch(record)`` runs
    after each epoch; it may add entries to the record, and returning True stops training.
    """
    k = model.enc_mu.weight.shape[0]
    n = len(train)
    bs = min(batch_size, n)
    steps_per_epoch = max(1, math.ceil(n / bs))
    opt = _adam(model, lr)
    device = train.X.device
    warm = max(1, int(warmup * n_steps))
    history: list[dict[str, float]] = []
    n_epochs = math.ceil(n_steps / steps_per_epoch)
    eval_every = max(1, n_epochs // 50)
    perms: np.ndarray | None = None
    running, count, epoch = 0.0, 0, 0
    run_nll, run_kl = 0.0, 0.0
    model.train()
    bar = tqdm(range(n_steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        pos = step % steps_per_epoch
        if sampler is not None:
            idx = sampler(rng, k, bs)
        else:
            if pos == 0:
                perms = np.stack([rng.permutation(n) for _ in range(k)])
            assert perms is not None
            idx = perms[:, pos * bs:(pos + 1) * bs]
        batch = train.take(torch.as_tensor(idx, device=device))
        noise = torch.randn(
            (k, idx.shape[1], model.latent), generator=generator, device=generator.device
        ).to(device)
        nll, kl = negative_elbo_parts(model, nll_fn, batch, noise)
        b = beta * min(1.0, (step + 1) / warm)
        per_row = nll.sum(-1) + b * kl
        if trim > 0 and step >= warm:
            # trimmed loss: ignore each member's worst-fitting rows in the batch, so that
            # anomalies hidden in the training data are not learnt as normal
            cut = torch.quantile(per_row.detach(), 1.0 - trim, dim=1, keepdim=True)
            keep = (per_row.detach() <= cut).to(per_row.dtype)
            loss = (per_row * keep).sum() / keep.sum().clamp(min=1.0)
        else:
            loss = per_row.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += float(loss.detach())
        run_nll += float(nll.detach().sum(-1).mean())
        run_kl += float(kl.detach().mean())
        count += 1
        if pos == steps_per_epoch - 1 or step == n_steps - 1:
            epoch += 1
            rec = {"epoch": epoch, "step": step + 1, "train_loss": running / count,
                   "train_nll": run_nll / count, "train_kl": run_kl / count}
            if valid is not None and len(valid) and (epoch % eval_every == 0
                                                      or step == n_steps - 1):
                nll_v, kl_v = score_parts(model, nll_fn, valid)
                rec["val_loss"] = _trimmed_mean(nll_v.sum(-1) + kl_v,
                                                trim if step >= warm else 0.0)
                model.train()
            history.append(rec)
            bar.set_postfix(loss=f"{rec['train_loss']:.3f}")
            running, count, run_nll, run_kl = 0.0, 0, 0.0, 0.0
            if on_epoch is not None:
                stop = on_epoch(rec)
                model.train()
                if stop:
                    break
    model.eval()
    return history


def _trimmed_mean(per_row: torch.Tensor, trim: float) -> float:
    """Mean of each member's lowest (1 - trim) share of rows, averaged: the training objective
    measured on other rows (with trimming, the plain mean is dominated by the dropped rows)."""
    if trim <= 0:
        return float(per_row.mean())
    cut = torch.quantile(per_row, 1.0 - trim, dim=1, keepdim=True)
    keep = per_row <= cut
    return float((per_row * keep).sum() / keep.sum().clamp(min=1))


@torch.inference_mode()
def score_parts(
    model: EnsembleVAE, nll_fn: ColumnNLL, table: TensorTable, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic per-column NLL ``(K, n, C)`` and KL ``(K, n)`` at the posterior mean."""
    model.eval()
    k = model.enc_mu.weight.shape[0]
    nlls, kls = [], []
    for s in range(0, len(table), chunk):
        sl = slice(s, s + chunk)
        part = TensorTable(
            table.X[sl].expand(k, -1, -1),
            table.num_missing[sl].expand(k, -1, -1),
            table.cat_codes[sl].expand(k, -1, -1),
            None if table.cond is None else table.cond[sl].expand(k, -1, -1),
        )
        out, num_logvar, mu, logvar = model.forward_mean(part.X, part.cond)
        nll = nll_fn(out, num_logvar, part.X, part.num_missing, part.cat_codes)
        kl = kl_normal(mu, logvar)
        nlls.append(nll)
        kls.append(kl)
    return torch.cat(nlls, 1), torch.cat(kls, 1)
