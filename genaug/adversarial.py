"""Training loop for the latent GAN (:mod:`genaug.nn.latent_gan`): WGAN-GP on posterior samples.

The "real" data are draws ``mu_i + sigma_i * eps`` from the VAE encoder's posteriors of the
training rows, with their class; the generator learns to produce them from prior noise. The
GAN's losses say little about sample quality, so the caller selects the generator by a
validation C2ST through ``on_check`` (see :class:`genaug.Augmenter`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .nn.latent_gan import LatentCritic, LatentGenerator


def _gradient_penalty(
    critic: LatentCritic, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor,
    alpha: torch.Tensor,
) -> torch.Tensor:
    """Gulrajani et al. (2017): (||grad_x D(x)|| - 1)^2 on random interpolates."""
    mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mix, cond).sum(), mix, create_graph=True)
    return (grad.norm(dim=-1) - 1.0).pow(2).mean()


def train_latent_gan(
    gen: LatentGenerator,
    critic: LatentCritic,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    cond: torch.Tensor,
    *,
    n_steps: int,
    batch_size: int,
    lr: float,
    n_critic: int,
    gp_weight: float,
    generator: torch.Generator,
    rng: np.random.Generator,
    sampler: Callable[[np.random.Generator, int, int], np.ndarray],
    check_every: int,
    on_check: Callable[[dict[str, float]], bool] | None = None,
    progress: bool = False,
) -> list[dict[str, float]]:
    """Train ``gen`` against ``critic`` for at most ``n_steps`` generator steps.

    ``sampler(rng, 1, B)`` gives minibatch row indices (e.g. class-balanced). Every
    ``check_every`` generator steps (and before the first), ``on_check(record)`` may add
    entries to the record (e.g. a validation C2ST) and returns True to stop.
    """
    device = mu.device
    latent = mu.shape[1]
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))
    std = torch.exp(0.5 * logvar)
    history: list[dict[str, float]] = []

    def noise(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=generator.device).to(device)

    def check(step: int, d_loss: float, g_loss: float, wdist: float) -> bool:
        rec = {"gan_step": step, "critic_loss": d_loss, "generator_loss": g_loss,
               "wasserstein": wdist}
        stop = on_check(rec) if on_check is not None else False
        history.append(rec)
        gen.train()
        critic.train()
        return bool(stop)

    if check(0, float("nan"), float("nan"), float("nan")):
        return history
    gen.train()
    critic.train()
    d_sum = g_sum = w_sum = 0.0
    count = 0
    for step in tqdm(range(1, n_steps + 1), desc="training latent GAN", disable=not progress,
                     leave=False):
        for _ in range(n_critic):
            idx = torch.as_tensor(sampler(rng, 1, batch_size)[0], device=device)
            c = cond[idx]
            real = mu[idx] + std[idx] * noise(len(idx), latent)
            with torch.no_grad():
                fake = gen(noise(len(idx), latent), c)
            d_real = critic(real, c).mean()
            d_fake = critic(fake, c).mean()
            alpha = torch.rand((len(idx), 1), generator=generator,
                               device=generator.device).to(device)
            gp = _gradient_penalty(critic, real, fake, c, alpha)
            d_loss = d_fake - d_real + gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        idx = torch.as_tensor(sampler(rng, 1, batch_size)[0], device=device)
        g_loss = -critic(gen(noise(len(idx), latent), cond[idx]), cond[idx]).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        d_sum += float(d_loss.detach())
        g_sum += float(g_loss.detach())
        w_sum += float((d_real - d_fake).detach())
        count += 1
        if step % check_every == 0 or step == n_steps:
            if check(step, d_sum / count, g_sum / count, w_sum / count):
                break
            d_sum = g_sum = w_sum = 0.0
            count = 0
    gen.eval()
    critic.eval()
    return history
