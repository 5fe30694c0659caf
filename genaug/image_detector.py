"""The image anomaly detector: a convolutional VAE with a per-pixel likelihood.

Score of an image (``decision_function``, higher = more anomalous), as for tables:

* ``vae_score(X)``: the negative ELBO at the posterior mean, averaged over ``n_members`` VAEs:
  ``sum_pixels NLL(x_p) + KL(q(z|x) || p(z))``, with the per-pixel Gaussian of
  :mod:`genaug.nn.conv_vae`. ``explain(X)`` returns the per-pixel NLL as an N x H x W
  **anomaly map** (channels summed): ``explain(X).sum(axis=(1, 2)) + latent_score(X) ==
  vae_score(X)``.
* With ``combine="none"`` the decision score *is* ``vae_score``.
* With ``combine="iforest"``, the VAE score and an isolation forest's score on the flattened
  pixels are each mapped through their empirical CDF on the training images (extended
  linearly beyond it) and averaged, as :class:`genaug.AnomalyDetector` does; with
  ``calibration="log"`` (the default) the CDF is that of the log of each score's excess over
  an offset below the training scores, so beyond the training range a part grows with the log
  of its excess and a heavy-tailed part cannot outvote the others.
* With ``combine="knn+iforest"`` (the default, chosen by ``benchmarks/images.py``), a third
  part joins the average: ``latent_distance(X)``, the mean distance of the posterior mean to
  its ``n_neighbors`` nearest training posterior means, after whitening the latent space with
  the training means' Ledoit-Wolf covariance (a Mahalanobis metric, but local: it follows a
  normal class that sits in several clusters). It catches images that the decoder
  reconstructs well but that sit where no training image does. The training images' own
  distances, used for the calibration, leave the image itself out.
* ``combine="latent+iforest"`` (the default before format version 2) uses instead the squared
  Mahalanobis distance to the training posterior means' centre (one Gaussian).

With either combination the score no longer decomposes; the maps then show where the VAE part
blames.

Same contract as :class:`genaug.AnomalyDetector` (PyOD's conventions, scikit-learn's
estimator rules): ``predict`` gives 1 for anomalies; the threshold is the
``1 - contamination`` quantile of scores on held-out training images (no labels); the model
saves as a folder of JSON + tensors (no pickle).

Input: image arrays N x H x W or N x H x W x C (C = 1 or 3), ``uint8`` or floats in [0, 1], or
an :class:`~genaug.images.ImageSet`; scoring checks that the image size and channels are those
seen in ``fit`` (:class:`~genaug.errors.ImageSizeError` otherwise).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.covariance import LedoitWolf
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .detector import _Calibrator
from .errors import ImageShapeError, ImageSizeError
from .forest import ArrayForest
from .images import to_unit_array
from .nn.conv_vae import ConvVAE, kl_normal, pixel_nll
from .persistence import read_model_folder, write_model_folder
from .threshold import ThresholdMixin
from .training import _adam, resolve_device, torch_threads

FORMAT = "genaug.ImageAnomalyDetector"
FORMAT_VERSION = 2  # 2: kNN latent reference ("knn+iforest"); version 1 still loads
COMBINE = ("knn+iforest", "latent+iforest", "iforest", "none")
LATENT = ("knn+iforest", "latent+iforest")


class ImageAnomalyDetector(ThresholdMixin, BaseEstimator):
    """Convolutional VAE anomaly detector for small images, with per-pixel anomaly maps.

    Parameters
    ----------
    n_members : VAEs (different initialisations) whose scores and maps are averaged.
    latent, base : latent size and channel width of the first conv stage (the second has 2x).
    min_std : floor of the per-pixel standard deviation (pixels in [0, 1]).
    beta, warmup : KL weight and the fraction of steps over which it ramps up.
    max_steps, max_epochs : training length is ``min(max_steps, max_epochs * batches/epoch)``.
    batch_size, lr : Adam minibatch size and learning rate.
    trim : after warm-up, the share of highest-loss images left out of each minibatch's loss
        (robustness to anomalies hidden in the training images).
    shift : training-time augmentation: each training image is moved by up to ``shift`` pixels
        in each direction (zero fill) every time it is drawn; 0 = off.
    combine, n_trees : ``"knn+iforest"`` averages the calibrated VAE score, the latent kNN
        distance and an isolation forest's score (``n_trees`` trees) on the pixels;
        ``"latent+iforest"`` the same with the latent Mahalanobis distance instead of kNN;
        ``"iforest"`` the VAE and forest scores; ``"none"`` is the VAE score alone. (Before
        version 2 the defaults were ``"latent+iforest"`` and 100 trees.)
    n_neighbors : neighbours of the latent kNN distance (``combine="knn+iforest"``).
    calibration : how each part is put on a common scale before averaging: ``"cdf"`` its
        training ECDF (extended linearly past the ends); ``"log"`` the same on the log of the
        part's excess over an offset below the training scores (see ``_LogCalibrator``).
        Version 1 models used ``"cdf"``.
    contamination : target false-alarm rate; ``threshold_`` is this upper quantile of scores on
        the held-out validation images.
    validation_fraction : share of training images held out for the threshold and val loss.
    device : ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``...
    n_threads : torch CPU threads while fitting and scoring (restored afterwards).
    random_state : seed; the same seed, data and CPU give identical scores.
    verbose : show a progress bar while training.
    """

    def __init__(
        self,
        *,
        n_members: int = 1,
        latent: int = 16,
        base: int = 16,
        min_std: float = 0.1,
        beta: float = 1.0,
        warmup: float = 0.1,
        max_steps: int = 1500,
        max_epochs: int = 150,
        batch_size: int = 64,
        lr: float = 2e-3,
        trim: float = 0.0,
        shift: int = 0,
        combine: str = "knn+iforest",
        n_trees: int = 300,
        n_neighbors: int = 3,
        calibration: str = "log",
        contamination: float = 0.01,
        validation_fraction: float = 0.1,
        device: str = "auto",
        n_threads: int | None = 1,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_members = n_members
        self.latent = latent
        self.base = base
        self.min_std = min_std
        self.beta = beta
        self.warmup = warmup
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.trim = trim
        self.shift = shift
        self.combine = combine
        self.n_trees = n_trees
        self.n_neighbors = n_neighbors
        self.calibration = calibration
        self.contamination = contamination
        self.validation_fraction = validation_fraction
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------------- fit
    def _check_params(self) -> None:
        if self.combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {self.combine!r}")
        if self.calibration not in ("log", "cdf"):
            raise ValueError(f"calibration must be 'log' or 'cdf', got {self.calibration!r}")
        if not 0.0 < self.contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
        if not 0.0 <= self.validation_fraction < 0.9:
            raise ValueError("validation_fraction must be in [0, 0.9)")
        if not 0.0 <= self.trim < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {self.trim}")
        if min(self.n_members, self.max_steps, self.batch_size, self.latent, self.base,
               self.n_neighbors, self.n_trees) < 1:
            raise ValueError("n_members, max_steps, batch_size, latent, base, n_neighbors and "
                             "n_trees must be >= 1")
        if not 0.0 < self.min_std < 1.0:
            raise ValueError(f"min_std must be in (0, 1), got {self.min_std}")
        if self.random_state is not None and not isinstance(self.random_state, (int, np.integer)):
            raise ValueError("random_state must be an int or None")

    def fit(self, X: Any, y: Any = None, *, file: str | None = None) -> ImageAnomalyDetector:
        """Learn the VAEs and the threshold from images ``X``; ``y`` is ignored."""
        self._check_params()
        with torch_threads(self.n_threads):
            return self._fit(X, file)

    def _fit(self, X: Any, file: str | None) -> ImageAnomalyDetector:
        x = to_unit_array(X, file=file)
        n, c, h, w = x.shape
        self.image_shape_ = (c, h, w)
        self.n_features_in_ = c * h * w
        seed = np.random.SeedSequence(self.random_state)
        s_split, s_torch, s_batch, s_forest = seed.spawn(4)
        rng = np.random.default_rng(s_split)
        n_val = int(round(self.validation_fraction * n)) if n >= 20 else 0
        perm = rng.permutation(n)
        val_idx, fit_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        self.device_ = resolve_device(self.device)
        self.dims_ = {"channels": c, "height": h, "width": w, "latent": self.latent,
                      "base": self.base, "min_std": self.min_std, "n_members": self.n_members}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(s_torch.generate_state(1)[0]))
            self.models_ = self._build_models()
        gen = torch.Generator(device="cpu").manual_seed(int(s_torch.generate_state(2)[1]))
        xt = torch.as_tensor(x, device=self.device_)
        steps_per_epoch = max(1, math.ceil(len(fit_idx) / min(self.batch_size, len(fit_idx))))
        self.n_steps_ = int(min(self.max_steps, self.max_epochs * steps_per_epoch))
        brng = np.random.default_rng(s_batch)
        self.history_ = []
        for k, model in enumerate(self.models_):
            hist = train_conv_vae(
                model, xt[torch.as_tensor(fit_idx)], xt[torch.as_tensor(val_idx)] if n_val
                else None, n_steps=self.n_steps_, batch_size=self.batch_size, lr=self.lr,
                beta=self.beta, warmup=self.warmup, trim=self.trim, shift=self.shift,
                generator=gen, rng=brng,
                progress=self.verbose, desc=f"training conv VAE {k + 1}/{self.n_members}")
            self.history_ += [dict(r, member=k) for r in hist]
        self.latent_location_ = self.latent_precision_ = None
        self.latent_whitening_ = self.latent_reference_ = None
        if self.combine in LATENT:
            mus = self._posterior_means(xt[torch.as_tensor(fit_idx)])
            fits = [LedoitWolf().fit(m) for m in mus]
            self.latent_location_ = np.stack([f.location_ for f in fits])
            if self.combine == "latent+iforest":
                self.latent_precision_ = np.stack([f.precision_ for f in fits])
            else:
                self.latent_whitening_ = np.stack([np.linalg.cholesky(f.precision_)
                                                   for f in fits])
                self.latent_reference_ = np.stack(
                    [(m - loc) @ w for m, loc, w in
                     zip(mus, self.latent_location_, self.latent_whitening_)])
        maps, kl, dist = self._parts(xt)
        if self.latent_reference_ is not None:  # training images: leave themselves out
            dist[fit_idx] = np.mean([_knn_distance(r, r, self.n_neighbors, exclude_self=True)
                                     for r in self.latent_reference_], axis=0)
        vae = maps.sum((1, 2)) + kl
        self.forest_, self.calibrators_ = None, {}
        if self.combine != "none":
            flat = x.reshape(n, -1)
            self.forest_ = ArrayForest.fit(flat[fit_idx], self.n_trees,
                                           int(s_forest.generate_state(1)[0] % 2**31))
            cal = _LogCalibrator.fit if self.calibration == "log" else _Calibrator.fit
            self.calibrators_ = {"vae": cal(vae[fit_idx]),
                                 "iforest": cal(self.forest_.score(flat[fit_idx]))}
            if dist is not None:
                self.calibrators_["latent"] = cal(dist[fit_idx])
        scores = self._final(vae, dist, xt)
        self.decision_scores_ = scores
        self.validation_index_ = val_idx if n_val else fit_idx
        self.validation_scores_ = scores[self.validation_index_]
        if not n_val:
            warnings.warn("fewer than 20 images: the threshold is set on training scores, "
                          "which underestimates the false-alarm rate", UserWarning, stacklevel=3)
        self.set_threshold(contamination=self.contamination)
        self.labels_ = (scores > self.threshold_).astype(int)
        return self

    def _build_models(self) -> torch.nn.ModuleList:
        d = self.dims_
        return torch.nn.ModuleList(
            ConvVAE(d["channels"], d["height"], d["width"], latent=d["latent"], base=d["base"],
                    min_std=d["min_std"])
            for _ in range(d["n_members"])
        ).to(self.device_)

    # ------------------------------------------------------------------------------- scoring
    def _tensor(self, X: Any, file: str | None) -> torch.Tensor:
        check_is_fitted(self, "models_")
        x = to_unit_array(X, file=file)
        c, h, w = self.image_shape_
        if x.shape[2:] != (h, w):
            raise ImageSizeError("image size differs from the training images'", file=file,
                                 expected=f"{h}x{w}", found=f"{x.shape[2]}x{x.shape[3]}")
        if x.shape[1] != c:
            raise ImageShapeError("channel count differs from the training images'", file=file,
                                  expected=f"{c} channel(s)", found=f"{x.shape[1]}")
        return torch.as_tensor(x, device=self.device_)

    @torch.inference_mode()
    def _posterior_means(self, xt: torch.Tensor) -> list[np.ndarray]:
        """Each member's posterior means ``(n, latent)``."""
        with torch_threads(self.n_threads):
            return [m.eval().encode(xt)[0].cpu().numpy().astype(float) for m in self.models_]

    @torch.inference_mode()
    def _parts(
        self, xt: torch.Tensor, chunk: int = 512
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Anomaly maps ``(n, H, W)``, KL ``(n,)`` and the latent distance (or None), averaged
        over members."""
        maps, kls, dists = [], [], []
        loc = getattr(self, "latent_location_", None)
        prec = getattr(self, "latent_precision_", None)
        whiten = getattr(self, "latent_whitening_", None)
        ref = getattr(self, "latent_reference_", None)
        with torch_threads(self.n_threads):
            for s in range(0, len(xt), chunk):
                xb = xt[s:s + chunk]
                m_sum = torch.zeros(xb.shape[0], *xb.shape[2:], device=xb.device)
                k_sum = torch.zeros(xb.shape[0], device=xb.device)
                d_sum = np.zeros(xb.shape[0])
                for j, model in enumerate(self.models_):
                    model.eval()
                    mean, px_logvar, mu, logvar = model(xb)
                    m_sum += pixel_nll(xb, mean, px_logvar)
                    k_sum += kl_normal(mu, logvar)
                    if loc is not None:
                        diff = mu.cpu().numpy().astype(float) - loc[j]
                        if ref is not None:
                            d_sum += _knn_distance(ref[j], diff @ whiten[j], self.n_neighbors)
                        else:
                            d_sum += np.einsum("ni,ij,nj->n", diff, prec[j], diff)
                maps.append((m_sum / len(self.models_)).cpu().numpy())
                kls.append((k_sum / len(self.models_)).cpu().numpy())
                dists.append(d_sum / len(self.models_))
        dist = np.concatenate(dists) if loc is not None else None
        return np.concatenate(maps).astype(float), np.concatenate(kls).astype(float), dist

    def _final(self, vae: np.ndarray, dist: np.ndarray | None, xt: torch.Tensor) -> np.ndarray:
        if self.forest_ is None:
            return vae
        forest = self.forest_.score(xt.reshape(len(xt), -1).cpu().numpy())
        parts = [self.calibrators_["vae"](vae), self.calibrators_["iforest"](forest)]
        if dist is not None:
            parts.append(self.calibrators_["latent"](dist))
        return np.mean(parts, axis=0)

    def vae_score(self, X: Any, *, file: str | None = None) -> np.ndarray:
        """Negative ELBO per image at the posterior mean (averaged over members)."""
        maps, kl, _ = self._parts(self._tensor(X, file))
        return maps.sum((1, 2)) + kl

    def latent_distance(self, X: Any, *, file: str | None = None) -> np.ndarray:
        """Distance of each image's posterior mean to the training ones' (averaged over
        members): the mean whitened distance to the ``n_neighbors`` nearest
        (``combine="knn+iforest"``) or the squared Mahalanobis distance to their centre
        (``"latent+iforest"``)."""
        check_is_fitted(self, "models_")
        if self.latent_location_ is None:
            raise ValueError(f"latent_distance needs combine in {LATENT}")
        return self._parts(self._tensor(X, file))[2]

    def decision_function(self, X: Any, *, file: str | None = None) -> np.ndarray:
        """Anomaly score per image; higher = more anomalous (see the module docstring)."""
        xt = self._tensor(X, file)
        maps, kl, dist = self._parts(xt)
        return self._final(maps.sum((1, 2)) + kl, dist, xt)

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn's convention: the opposite of :meth:`decision_function`."""
        return -self.decision_function(X)

    def predict(self, X: Any, *, file: str | None = None) -> np.ndarray:
        """1 for images scoring above ``threshold_``, else 0."""
        check_is_fitted(self, "threshold_")
        return (self.decision_function(X, file=file) > self.threshold_).astype(int)

    def explain(self, X: Any, *, file: str | None = None) -> np.ndarray:
        """Per-pixel anomaly map, N x H x W: each pixel's NLL (channels summed)."""
        return self._parts(self._tensor(X, file))[0]

    def latent_score(self, X: Any, *, file: str | None = None) -> np.ndarray:
        """The KL part of the score, per image (the rest is the map's sum)."""
        return self._parts(self._tensor(X, file))[1]

    def reconstruct(self, X: Any, *, file: str | None = None) -> np.ndarray:
        """Decoder means at the posterior mean, float N x C x H x W in [0, 1] (first member)."""
        xt = self._tensor(X, file)
        with torch.inference_mode(), torch_threads(self.n_threads):
            model = self.models_[0].eval()
            return model(xt)[0].cpu().numpy()

    # ------------------------------------------------------------------------------- persistence
    def save(self, folder: str | Path) -> Path:
        """Write the fitted model to ``folder`` (JSON + tensors; no pickle)."""
        check_is_fitted(self, "models_")
        tensors = {f"vae.{k}": v for k, v in self.models_.state_dict().items()}
        if self.forest_ is not None:
            for k, v in self.forest_.arrays.items():
                tensors[f"forest.{k}"] = torch.as_tensor(v)
        if self.latent_location_ is not None:
            tensors["latent.location"] = torch.as_tensor(self.latent_location_)
        if self.latent_precision_ is not None:
            tensors["latent.precision"] = torch.as_tensor(self.latent_precision_)
        if self.latent_reference_ is not None:
            tensors["latent.whitening"] = torch.as_tensor(self.latent_whitening_)
            tensors["latent.reference"] = torch.as_tensor(self.latent_reference_)
        config = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "params": self.get_params(), "dims": self.dims_, "image_shape": self.image_shape_,
            "n_steps": self.n_steps_, "threshold": self.threshold_,
            "validation_scores": self.validation_scores_,
            "validation_index": self.validation_index_,
            "decision_scores": self.decision_scores_, "history": self.history_,
            "calibrators": {k: c.q for k, c in self.calibrators_.items()},
            "calibration_offsets": {k: c.offset for k, c in self.calibrators_.items()
                                    if isinstance(c, _LogCalibrator)},
            "forest": None if self.forest_ is None else {
                "denominator": self.forest_.denominator, "max_depth": self.forest_.max_depth},
        }
        return write_model_folder(folder, config, tensors)

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto") -> ImageAnomalyDetector:
        """Rebuild a detector saved by :meth:`save` (on any device; format 1 or 2)."""
        cfg, tensors = read_model_folder(folder, FORMAT, {1, FORMAT_VERSION})
        params = dict(cfg["params"], device=device)
        if cfg["format_version"] == 1:  # no latent kNN reference; combine/n_trees are saved
            params.setdefault("calibration", "cdf")
        self = cls(**params)
        self.dims_ = cfg["dims"]
        self.image_shape_ = tuple(cfg["image_shape"])
        self.n_features_in_ = int(np.prod(self.image_shape_))
        self.n_steps_ = cfg["n_steps"]
        self.device_ = resolve_device(device)
        self.models_ = self._build_models()
        self.models_.load_state_dict({k[4:]: v for k, v in tensors.items()
                                      if k.startswith("vae.")})
        self.models_.eval()
        self.history_ = cfg["history"]
        offsets = cfg.get("calibration_offsets", {})
        self.calibrators_ = {k: _LogCalibrator(np.asarray(q), offsets[k]) if k in offsets
                             else _Calibrator(np.asarray(q)) for k, q in cfg["calibrators"].items()}
        self.latent_location_ = self.latent_precision_ = None
        self.latent_whitening_ = self.latent_reference_ = None
        for name in ("location", "precision", "whitening", "reference"):
            if f"latent.{name}" in tensors:
                setattr(self, f"latent_{name}_", tensors[f"latent.{name}"].numpy())
        self.forest_ = None
        if cfg["forest"] is not None:
            arrays = {k[7:]: v.numpy() for k, v in tensors.items() if k.startswith("forest.")}
            self.forest_ = ArrayForest(arrays, cfg["forest"]["denominator"],
                                       cfg["forest"]["max_depth"])
        self.decision_scores_ = np.asarray(cfg["decision_scores"], dtype=float)
        self.validation_scores_ = np.asarray(cfg["validation_scores"], dtype=float)
        self.validation_index_ = np.asarray(cfg["validation_index"], dtype=int)
        self.set_threshold(value=cfg["threshold"])
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        return self


def train_conv_vae(
    model: ConvVAE,
    train: torch.Tensor,
    valid: torch.Tensor | None,
    *,
    n_steps: int,
    batch_size: int,
    lr: float,
    beta: float,
    warmup: float,
    generator: torch.Generator,
    rng: np.random.Generator,
    trim: float = 0.0,
    shift: int = 0,
    progress: bool = False,
    desc: str = "conv VAE",
) -> list[dict[str, float]]:
    """Train one VAE for ``n_steps`` Adam steps on the negative ELBO; return per-epoch losses.

    The KL weight rises linearly to ``beta`` over the first ``warmup`` share of steps; after
    it, ``trim`` > 0 drops that share of the highest-loss images of each minibatch.
    """
    n = len(train)
    bs = min(batch_size, n)
    steps_per_epoch = max(1, math.ceil(n / bs))
    opt = _adam(model, lr)
    warm = max(1, int(warmup * n_steps))
    history: list[dict[str, float]] = []
    perm = np.arange(n)
    running, count, epoch = 0.0, 0, 0
    model.train()
    bar = tqdm(range(n_steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        pos = step % steps_per_epoch
        if pos == 0:
            perm = rng.permutation(n)
        xb = train[torch.as_tensor(perm[pos * bs:(pos + 1) * bs], device=train.device)]
        if shift > 0:
            xb = random_shift(xb, shift, rng)
        noise = torch.randn((len(xb), model.latent), generator=generator).to(train.device)
        loc, px_logvar, mu, logvar = model(xb, noise)
        b = beta * min(1.0, (step + 1) / warm)
        per_img = pixel_nll(xb, loc, px_logvar).sum((1, 2)) + b * kl_normal(mu, logvar)
        if trim > 0 and step >= warm:
            keep = (per_img.detach() <= torch.quantile(per_img.detach(), 1.0 - trim))
            loss = (per_img * keep).sum() / keep.sum().clamp(min=1)
        else:
            loss = per_img.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += float(loss.detach())
        count += 1
        if pos == steps_per_epoch - 1 or step == n_steps - 1:
            epoch += 1
            rec = {"epoch": epoch, "step": step + 1, "train_loss": running / count}
            if valid is not None and len(valid):
                with torch.inference_mode():
                    model.eval()
                    loc, px_logvar, mu, logvar = model(valid)
                    rec["val_loss"] = float((pixel_nll(valid, loc, px_logvar).sum((1, 2))
                                             + kl_normal(mu, logvar)).mean())
                    model.train()
            history.append(rec)
            bar.set_postfix(loss=f"{rec['train_loss']:.1f}")
            running, count = 0.0, 0
    model.eval()
    return history


class _LogCalibrator(_Calibrator):
    """:class:`_Calibrator` on ``log(s - offset)``: the offset sits below the training minimum
    by the minimum-to-median spread (scores below it count as the offset), so that beyond the
    training range each part grows with the log of its excess, not linearly. A part with a
    heavy tail then cannot outvote the others on far-out images."""

    def __init__(self, quantiles: np.ndarray, offset: float) -> None:
        super().__init__(quantiles)
        self.offset = float(offset)

    @classmethod
    def fit(cls, scores: np.ndarray, n: int = 513) -> _LogCalibrator:
        q0, q50 = np.quantile(scores, [0.0, 0.5])
        offset = float(q0 - (q50 - q0) - 1e-9 * max(1.0, abs(q0)))
        return cls(np.quantile(cls._log(scores, offset), np.linspace(0, 1, n)), offset)

    @staticmethod
    def _log(s: np.ndarray, offset: float) -> np.ndarray:
        return np.log(np.maximum(np.asarray(s, dtype=float) - offset, 1e-12))

    def __call__(self, s: np.ndarray) -> np.ndarray:
        return super().__call__(self._log(s, self.offset))


def _knn_distance(
    reference: np.ndarray, query: np.ndarray, k: int, *, exclude_self: bool = False
) -> np.ndarray:
    """Mean Euclidean distance of each query row to its ``k`` nearest reference rows
    (``exclude_self``: the query is the reference and each row's own zero is skipped)."""
    ref = torch.as_tensor(reference, dtype=torch.float64)
    q = torch.as_tensor(query, dtype=torch.float64)
    n_ref = len(ref) - int(exclude_self)
    if n_ref < 1:
        return np.zeros(len(q))
    k = min(k, n_ref)
    step = max(1, 2**22 // max(1, len(ref)))
    out = []
    for s in range(0, len(q), step):
        d = torch.cdist(q[s:s + step], ref)
        if exclude_self:
            idx = torch.arange(s, s + len(d))
            d[idx - s, idx] = math.inf
        out.append(d.topk(k, dim=1, largest=False).values.mean(1))
    return torch.cat(out).numpy() if out else np.zeros(0)


def random_shift(x: torch.Tensor, shift: int, rng: np.random.Generator) -> torch.Tensor:
    """Move each image by a random whole number of pixels in ``[-shift, shift]`` (zero fill)."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (shift, shift, shift, shift))
    off = rng.integers(0, 2 * shift + 1, (n, 2))
    return torch.stack([padded[i, :, a:a + h, b:b + w] for i, (a, b) in enumerate(off)])
