"""A small convolutional VAE with a per-pixel Gaussian decoder (pure torch module).

Images are C x H x W in [0, 1]. Height and width are zero-padded (bottom, right) up to a
multiple of 4 for the two stride-2 stages and the output is cropped back, so 8 x 8, 28 x 28
and 32 x 32 images all work. The decoder gives, for every pixel and channel, a mean in [0, 1]
and a log-variance clamped to ``[2 log min_std, 2 log max_std]``; the floor keeps the
likelihood of always-black pixels finite, and sets how loudly a pixel that should be black but
is not is blamed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_LOG_2PI = math.log(2 * math.pi)


def _ceil4(n: int) -> int:
    return 4 * math.ceil(n / 4)


class ConvVAE(nn.Module):
    """Encoder conv(3x3) -> conv(4x4, s2) -> conv(4x4, s2) -> linear; decoder mirrors it."""

    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        *,
        latent: int = 16,
        base: int = 16,
        min_std: float = 0.1,
        max_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.channels, self.height, self.width = channels, height, width
        self.latent = latent
        self.ph, self.pw = _ceil4(height), _ceil4(width)
        c1, c2 = base, 2 * base
        self.grid = (c2, self.ph // 4, self.pw // 4)
        feat = c2 * self.grid[1] * self.grid[2]
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, c1, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(c1, c1, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(c1, c2, 4, 2, 1), nn.SiLU(),
            nn.Flatten(),
        )
        self.enc_mu = nn.Linear(feat, latent)
        self.enc_logvar = nn.Linear(feat, latent)
        self.dec_in = nn.Linear(latent, feat)
        self.decoder = nn.Sequential(
            nn.SiLU(), nn.Unflatten(1, self.grid),
            nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.SiLU(),
            nn.ConvTranspose2d(c1, c1, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(c1, 2 * channels, 3, 1, 1),
        )
        self.logvar_min = 2 * math.log(min_std)
        self.logvar_max = 2 * math.log(max_std)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each ``(batch, latent)``."""
        x = F.pad(x, (0, self.pw - self.width, 0, self.ph - self.height))
        h = self.encoder(x)
        return self.enc_mu(h), self.enc_logvar(h).clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel mean in [0, 1] and log-variance, each ``(batch, C, H, W)``."""
        out = self.decoder(self.dec_in(z))[..., : self.height, : self.width]
        c = self.channels
        loc = torch.sigmoid(out[:, :c])
        logvar = self.logvar_min + (self.logvar_max - self.logvar_min) * torch.sigmoid(out[:, c:])
        return loc, logvar

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, reparameterise with ``noise`` (None: posterior mean), decode."""
        mu, logvar = self.encode(x)
        z = mu if noise is None else mu + noise * torch.exp(0.5 * logvar)
        loc, px_logvar = self.decode(z)
        return loc, px_logvar, mu, logvar


def pixel_nll(x: torch.Tensor, loc: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood per pixel, summed over channels: ``(batch, H, W)``."""
    return (0.5 * ((x - loc).pow(2) * torch.exp(-logvar) + logvar + _LOG_2PI)).sum(1)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per image."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
