"""Pure torch modules for a conditional GAN in a VAE's latent space.

The generator is residual: ``z = eps + f([eps, c])`` with the last layer of ``f`` initialised to
zero, so before training it *is* the VAE's prior ``N(0, I)``, and training only has to learn the
correction from the prior to the class's aggregate posterior. The critic scores ``[z, c]``.
"""

from __future__ import annotations

import torch
from torch import nn


def _mlp(n_in: int, hidden: int, n_layers: int, act: type[nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_layers):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    return layers


class LatentGenerator(nn.Module):
    """``z = eps + f([eps, c])``: starts as the identity map of the prior noise."""

    def __init__(self, latent: int, n_cond: int, hidden: int = 128, n_layers: int = 2) -> None:
        super().__init__()
        self.latent = latent
        self.n_cond = n_cond
        last = nn.Linear(hidden, latent)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*_mlp(latent + n_cond, hidden, n_layers, nn.SiLU), last)

    def forward(self, eps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return eps + self.net(torch.cat([eps, cond], -1))


class LatentCritic(nn.Module):
    """Critic (discriminator logit) on ``[z, c]``; no normalisation layers, so the R1 penalty
    is per sample."""

    def __init__(self, latent: int, n_cond: int, hidden: int = 128, n_layers: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(*_mlp(latent + n_cond, hidden, n_layers, nn.SiLU),
                                 nn.Linear(hidden, 1))

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, cond], -1)).squeeze(-1)
