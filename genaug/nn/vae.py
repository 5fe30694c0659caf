"""Pure torch modules for an ensemble of small MLP VAEs trained side by side.

Every layer carries a leading ensemble dimension ``K`` so that K independently initialised
VAEs train in one batched matrix product: inputs are ``(K, batch, features)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """K independent linear layers applied with one batched matmul."""

    def __init__(self, k: int, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, n_in, n_out))
        self.bias = nn.Parameter(torch.empty(k, 1, n_out))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like ``nn.Linear`` (uniform in +-1/sqrt(fan_in)), per member."""
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def _mlp(k: int, n_in: int, hidden: int, n_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_layers):
        layers += [EnsembleLinear(k, width, hidden), nn.SiLU()]
        width = hidden
    return nn.Sequential(*layers)


class EnsembleVAE(nn.Module):
    """K heteroscedastic MLP VAEs, optionally conditioned on a vector (e.g. a class one-hot).

    The decoder returns the location/logit for every encoded feature and a log-variance for
    each numeric feature; the likelihood that reads them lives in :mod:`genaug.likelihood`.
    """

    def __init__(
        self,
        n_features: int,
        n_numeric: int,
        *,
        hidden: int = 64,
        latent: int = 8,
        n_layers: int = 2,
        n_members: int = 1,
        n_cond: int = 0,
    ) -> None:
        super().__init__()
        k = n_members
        self.latent = latent
        self.n_cond = n_cond
        self.encoder = _mlp(k, n_features + n_cond, hidden, n_layers)
        self.enc_mu = EnsembleLinear(k, hidden, latent)
        self.enc_logvar = EnsembleLinear(k, hidden, latent)
        self.decoder = _mlp(k, latent + n_cond, hidden, n_layers)
        self.dec_out = EnsembleLinear(k, hidden, n_features)
        self.dec_logvar = EnsembleLinear(k, hidden, max(n_numeric, 1))
        self.n_numeric = n_numeric

    def encode(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each ``(K, batch, latent)``."""
        h = self.encoder(x if cond is None else torch.cat([x, cond], -1))
        return self.enc_mu(h), self.enc_logvar(h).clamp(-10.0, 10.0)

    def decode(
        self, z: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature locations/logits ``(K, batch, features)`` and numeric log-variances."""
        h = self.decoder(z if cond is None else torch.cat([z, cond], -1))
        logvar = self.dec_logvar(h)[..., : self.n_numeric].clamp(-6.0, 4.0)
        return self.dec_out(h), logvar

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, reparameterise with the given ``noise`` (None: posterior mean), decode."""
        mu, logvar = self.encode(x, cond)
        z = mu if noise is None else mu + noise * torch.exp(0.5 * logvar)
        out, num_logvar = self.decode(z, cond)
        return out, num_logvar, mu, logvar


    def forward_mean(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` at the posterior mean, for scoring: the same maths, fewer kernels.

        The two encoder heads (mean, log-variance) run as one batched product, and so do the
        two decoder heads; an input shared by all members (``x.expand(K, ...)``, stride 0)
        goes through the first layer as one matrix product. Equal to :meth:`forward` up to
        float rounding.
        """
        k = self.enc_mu.weight.shape[0]
        h = x if cond is None else torch.cat([x, cond], -1)
        layers = list(self.encoder)
        first = layers[0]
        if h.dim() == 3 and h.stride(0) == 0 and isinstance(first, EnsembleLinear):
            w = first.weight  # (K, n_in, H) -> (n_in, K * H): one product for all members
            flat = torch.addmm(first.bias.reshape(-1), h[0], w.permute(1, 0, 2).reshape(
                w.shape[1], -1))
            h = flat.view(h.shape[1], k, -1).transpose(0, 1)
            layers = layers[1:]
        for layer in layers:
            h = layer(h)
        lat = self.latent
        heads = torch.baddbmm(torch.cat([self.enc_mu.bias, self.enc_logvar.bias], -1), h,
                              torch.cat([self.enc_mu.weight, self.enc_logvar.weight], -1))
        mu, logvar = heads[..., :lat], heads[..., lat:].clamp(-10.0, 10.0)
        h = self.decoder(mu if cond is None else torch.cat([mu, cond], -1))
        n_out = self.dec_out.weight.shape[-1]
        dec = torch.baddbmm(torch.cat([self.dec_out.bias, self.dec_logvar.bias], -1), h,
                            torch.cat([self.dec_out.weight, self.dec_logvar.weight], -1))
        out = dec[..., :n_out]
        num_logvar = dec[..., n_out:n_out + self.n_numeric].clamp(-6.0, 4.0)
        return out, num_logvar, mu, logvar


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
