"""A class-conditional DCGAN-style generator and a spectral-norm projection discriminator.

Images are C x H x W in [0, 1]; as in :mod:`genaug.nn.conv_vae`, height and width are padded
up to a multiple of 4 inside the networks (the generator's output is cropped back).

* :class:`ImageGenerator`: ``z`` and a learned class embedding -> linear -> (2b, H/4, W/4) ->
  two transposed convolutions with batch norm and ReLU -> 3x3 conv -> sigmoid. With
  ``conditioning="cbn"`` the class also sets the gain and bias of every batch norm
  (conditional batch norm, de Vries et al. 2017; as in BigGAN), so it acts at every
  resolution, not only through the first linear layer.
* :class:`ProjectionDiscriminator` (Miyato & Koyama 2018): spectral-normalised convolutions,
  sum pooling, an unconditional linear output plus the inner product of the pooled features
  with a class embedding.
* :func:`truncated_normal`: the noise of the truncation trick (BigGAN, Brock et al. 2019).
* :func:`translate`: a differentiable random shift applied to real and fake images alike
  before the discriminator (DiffAugment, Zhao et al. 2020), which keeps the discriminator from
  memorising a few hundred images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _ceil4(n: int) -> int:
    return 4 * math.ceil(n / 4)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias come from the class: ``(1 + gain[y]) * bn(x) + bias[y]``
    (both tables start at zero, i.e. as a plain batch norm)."""

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(n_classes, channels)
        self.bias = nn.Embedding(n_classes, channels)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        g = 1.0 + self.gain(labels)[:, :, None, None]
        return g * self.bn(x) + self.bias(labels)[:, :, None, None]


class ImageGenerator(nn.Module):
    """``forward(z, labels)`` -> images ``(batch, C, H, W)`` in [0, 1].

    ``conditioning``: ``"concat"`` (the class embedding joins ``z`` at the input only) or
    ``"cbn"`` (that, and conditional batch norm in every block)."""

    def __init__(
        self, channels: int, height: int, width: int, n_classes: int, *, latent: int = 64,
        base: int = 32, embed: int = 32, conditioning: str = "concat",
    ) -> None:
        super().__init__()
        if conditioning not in ("concat", "cbn"):
            raise ValueError(f"conditioning must be 'concat' or 'cbn', got {conditioning!r}")
        self.channels, self.height, self.width = channels, height, width
        self.latent, self.n_classes, self.conditioning = latent, n_classes, conditioning
        ph, pw = _ceil4(height), _ceil4(width)
        c1, c2 = base, 2 * base
        self.grid = (c2, ph // 4, pw // 4)
        self.embed = nn.Embedding(n_classes, embed)
        self.fc = nn.Linear(latent + embed, c2 * self.grid[1] * self.grid[2])
        if conditioning == "concat":
            self.net = nn.Sequential(
                nn.BatchNorm2d(c2), nn.ReLU(),
                nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.BatchNorm2d(c1), nn.ReLU(),
                nn.ConvTranspose2d(c1, c1, 4, 2, 1), nn.BatchNorm2d(c1), nn.ReLU(),
                nn.Conv2d(c1, channels, 3, 1, 1),
            )
        else:
            self.norms = nn.ModuleList([ConditionalBatchNorm2d(c, n_classes)
                                        for c in (c2, c1, c1)])
            self.convs = nn.ModuleList([nn.ConvTranspose2d(c2, c1, 4, 2, 1),
                                        nn.ConvTranspose2d(c1, c1, 4, 2, 1),
                                        nn.Conv2d(c1, channels, 3, 1, 1)])

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(labels)], 1)).view(-1, *self.grid)
        if self.conditioning == "concat":
            h = self.net(h)
        else:
            for norm, conv in zip(self.norms, self.convs):
                h = conv(F.relu(norm(h, labels)))
        return torch.sigmoid(h[..., : self.height, : self.width])


class ProjectionDiscriminator(nn.Module):
    """``forward(x, labels)`` -> one real-vs-fake logit per image (hinge loss).

    With ``aux=True`` it also has a class head on the pooled features (AC-GAN, Odena et al.
    2017): ``forward(x, labels, with_classes=True)`` returns ``(logit, class logits)``."""

    def __init__(
        self, channels: int, height: int, width: int, n_classes: int, *, base: int = 32,
        aux: bool = False,
    ) -> None:
        super().__init__()
        self.height, self.width = height, width
        self.ph, self.pw = _ceil4(height), _ceil4(width)
        c1, c2 = base, 2 * base
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(channels, c1, 3, 1, 1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(c1, c1, 4, 2, 1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(c1, c2, 4, 2, 1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(c2, c2, 3, 1, 1)), nn.LeakyReLU(0.2),
        )
        self.out = spectral_norm(nn.Linear(c2, 1))
        self.embed = spectral_norm(nn.Embedding(n_classes, c2))
        self.classify = spectral_norm(nn.Linear(c2, n_classes)) if aux else None

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor, with_classes: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(x * 2.0 - 1.0, (0, self.pw - self.width, 0, self.ph - self.height))
        h = self.net(x).sum((2, 3))
        logit = self.out(h).squeeze(1) + (self.embed(labels) * h).sum(1)
        if not with_classes:
            return logit
        if self.classify is None:
            raise ValueError("this discriminator has no class head (aux=False)")
        return logit, self.classify(h)


def truncated_normal(
    n: int, dim: int, truncation: float | None, generator: torch.Generator
) -> torch.Tensor:
    """``(n, dim)`` standard normal noise; with ``truncation`` ``t`` each value is drawn from
    the normal restricted to ``[-t, t]`` (inverse CDF of a uniform, one draw per value)."""
    if truncation is None:
        return torch.randn((n, dim), generator=generator)
    lo = 0.5 * math.erfc(truncation / math.sqrt(2.0))  # Phi(-t)
    u = torch.rand((n, dim), generator=generator, dtype=torch.float64)
    return torch.special.ndtri(lo + u * (1.0 - 2.0 * lo)).float()


def translate(x: torch.Tensor, shift: float, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``shift`` x its size (zero fill); differentiable in ``x``."""
    if shift <= 0:
        return x
    n = x.shape[0]
    t = (torch.rand((n, 2), generator=generator) * 2 - 1).to(x.device) * (2 * shift)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
