"""Fast draws of encoded rows from a trained conditional VAE decoder (sampling only).

:class:`DecoderSampler` copies the decoder's weights into plain matrices, with the output layer
reordered to ``[numeric means | missingness logits | category logits | numeric log-variances]``
and the category logits centred per column (folded into the weights, so it costs nothing).
Categories are drawn by inverse CDF for all columns at once: a block-triangular matrix product
gives each column's cumulative sums, one uniform per row and column picks the level.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .nn.vae import EnsembleVAE
from .transform import TabularEncoder


class DecoderSampler:
    """Decoder outputs -> sampled numerics (normalised), missing mask and category slots."""

    def __init__(self, vae: EnsembleVAE, encoder: TabularEncoder, device: torch.device) -> None:
        num = encoder.num_spans
        miss_of = {s.column: s.start for s in encoder.miss_spans}
        self.n_num = len(num)
        self.miss_cols = np.array([j for j, s in enumerate(num) if s.column in miss_of],
                                  dtype=np.int64)
        cat = encoder.cat_spans
        self.n_cat = len(cat)
        sizes = np.array([s.end - s.start for s in cat], dtype=np.int64)
        order = ([s.start for s in num] + [miss_of[num[j].column] for j in self.miss_cols]
                 + [i for s in cat for i in range(s.start, s.end)])
        with torch.no_grad():
            layers = [m for m in vae.decoder if hasattr(m, "weight")]
            self.hidden = [(lin.weight[0].detach().clone().to(device),
                            lin.bias[0, 0].detach().clone().to(device)) for lin in layers]
            w = vae.dec_out.weight[0][:, order].clone()
            b = vae.dec_out.bias[0, 0][order].clone()
            c0 = self.n_num + len(self.miss_cols)
            if self.n_cat:  # centre each column's logits: softmax is unchanged, exp is safe
                seg = torch.as_tensor(np.repeat(np.arange(self.n_cat), sizes))
                avg = F.one_hot(seg, self.n_cat).T.float() / torch.as_tensor(sizes)[:, None]
                w[:, c0:] -= (w[:, c0:] @ avg.T)[:, seg]
                b[c0:] -= (b[c0:] @ avg.T)[seg]
            lv_w = vae.dec_logvar.weight[0][:, : self.n_num]
            lv_b = vae.dec_logvar.bias[0, 0][: self.n_num]
            self.out_w = torch.cat([w, lv_w], 1).to(device)
            self.out_b = torch.cat([b, lv_b]).to(device)
        self.c0 = self.n_num + len(self.miss_cols)
        self.c1 = self.c0 + int(sizes.sum())
        seg_np = np.repeat(np.arange(self.n_cat), sizes)
        same = seg_np[:, None] == seg_np[None, :]
        upper = np.arange(len(seg_np))[:, None] <= np.arange(len(seg_np))[None, :]
        self.cumsum = torch.as_tensor((same & upper).astype(np.float32), device=device)
        member = (seg_np[:, None] == np.arange(self.n_cat)[None, :]).astype(np.float32)
        self.count = torch.as_tensor(member, device=device)  # slots -> columns
        self.expand = torch.as_tensor(member.T.copy(), device=device)  # columns -> slots
        self.ends = torch.as_tensor(np.cumsum(sizes) - 1, device=device)
        self.last = torch.as_tensor(sizes - 1, device=device)

    def __call__(
        self, z: torch.Tensor, cond: torch.Tensor, gen: torch.Generator, numeric_noise: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised numerics ``(m, n_num)``, missing mask ``(m, n_miss)``, slots
        ``(m, n_cat)``."""
        dev = z.device
        h = torch.cat([z, cond], 1)
        for w, b in self.hidden:
            h = F.silu(torch.addmm(b, h, w))
        out = torch.addmm(self.out_b, h, self.out_w)
        m = len(z)

        def rand(*shape: int, normal: bool = False) -> torch.Tensor:
            f = torch.randn if normal else torch.rand
            return f(shape, generator=gen, device=gen.device).to(dev)

        num = out[:, : self.n_num]
        if numeric_noise and self.n_num:
            logvar = out[:, self.c1:].clamp(-6.0, 4.0)
            num = num + torch.exp(0.5 * logvar) * rand(m, self.n_num, normal=True)
        n_miss = self.c0 - self.n_num
        miss = rand(m, n_miss) < torch.sigmoid(out[:, self.n_num:self.c0]) if n_miss \
            else out.new_zeros((m, 0), dtype=torch.bool)
        if self.n_cat:
            e = torch.exp(out[:, self.c0:self.c1].clamp(-60.0, 60.0))
            cs = e @ self.cumsum  # cumulative sums within each column
            thr = rand(m, self.n_cat) * cs[:, self.ends]
            slots = ((cs < thr @ self.expand).float() @ self.count).long()
            slots = torch.minimum(slots, self.last)
        else:
            slots = torch.zeros((m, 0), dtype=torch.long, device=dev)
        return num, miss, slots
