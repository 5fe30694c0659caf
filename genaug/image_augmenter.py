"""The image augmenter: a class-conditional GAN with the augmenter's contract.

``fit(X, y)`` trains :class:`~genaug.nn.image_gan.ImageGenerator` against a spectral-norm
projection discriminator with the hinge loss, on real minibatches drawn class-balanced (so a
rare class is seen as often as the others) and with random shifts on everything the
discriminator sees (DiffAugment). With ``truncation`` set, samples (and the held-out checks)
use the truncation trick: noise drawn from a truncated normal, trading variety for images more
typical of their class. ``sample(n, label=c)`` draws ``n`` images of class ``c``;
``fit_resample(X, y)`` returns ``X`` and ``y`` with generated images appended, as
imbalanced-learn's over-samplers do, so it drops into imblearn's ``Pipeline`` and into
:func:`genaug.evaluation.evaluate_augmentation`.

**Model selection is by a held-out check, not by losses.** ``validation_fraction`` of the real
images (stratified) are held out. A logistic regression on pixels trained on the other real
images (the *checker*) is fitted once; ``n_checks`` times during training the generator draws
``check_samples`` images per class and we record:

* ``class_share``: the share of them the checker assigns to the requested class (averaged over
  classes; ``class_share_min`` is the worst class);
* ``c2st_auc``: a classifier two-sample test, the cross-validated ROC-AUC of a logistic
  regression telling generated images from the held-out real ones (0.5 = indistinguishable).

The generator kept is the one with the highest ``(1 - w) * class_share + w * class_share_min -
(c2st_auc - 0.5)`` (``w = min_share_weight``); the record
of every check is in ``history_`` (with per-epoch losses) and the chosen one in ``selected_``.
``epoch_grids_`` holds, at the end of every epoch, ``(epoch, images)`` with ``grid_samples``
generated images per class from the same fixed noise (classes x grid_samples x C x H x W,
``uint8``), so the sample grids in MLflow (:func:`genaug.tracking.log_image_augmenter`) show
the generator's progress; with more than ``max_grids`` epochs, every k-th epoch (and the last)
so that at most ``max_grids`` are kept. They are not saved with the model.

Inputs: images N x H x W or N x H x W x C (``uint8``, or floats in [0, 1]); or a pixel table (a
2-D array or DataFrame with one column per pixel, C x H x W order) when ``image_shape`` is
given. Samples come back in the layout and value kind of the training input.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .errors import GenaugInputError, ImageShapeError
from .images import to_unit_array
from .nn.image_gan import ImageGenerator, ProjectionDiscriminator, translate, truncated_normal
from .persistence import read_model_folder, write_model_folder
from .training import resolve_device, torch_threads

FORMAT = "genaug.ImageAugmenter"
FORMAT_VERSION = 2  # 2: dims name the generator's conditioning (v1 = "concat")


class ImageAugmenter(BaseEstimator):
    """Class-conditional image GAN for augmentation (see the module docstring).

    Parameters
    ----------
    latent, base, embed : noise size, channel width of the networks, class-embedding size.
    conditioning : ``"cbn"`` (class embedding at the input and conditional batch norm in every
        generator block) or ``"concat"`` (class embedding at the input only).
    aux_weight : weight of an auxiliary classification loss (AC-GAN): a class head on the
        discriminator learns the classes of real images, and the generator is pushed to make
        images that head assigns to the requested class. 0 turns it off.
    truncation : the truncation trick (BigGAN): noise drawn from a standard normal truncated
        to ``[-truncation, truncation]`` when sampling and in the held-out checks (training
        uses the full normal). Smaller = more typical, less varied images; ``None`` (default)
        = off. On Fashion-MNIST (``benchmarks/images.py``) 1.5 and 1.0 raised the share of
        samples a classifier assigns to the requested class (0.881 -> 0.900 -> 0.907) but
        lowered what the samples did for a random forest (1.0: worse than random
        oversampling), so it is off by default. It can be changed with ``set_params`` after
        fitting (the selection was made with the value set at fit time).
    min_share_weight : weight of the worst class's share in the selection score (see
        the module docstring).
    max_steps, max_epochs : discriminator+generator steps: ``min(max_steps, max_epochs *
        batches per epoch)``.
    batch_size, lr_g, lr_d : minibatch size and Adam learning rates (betas 0.5, 0.999).
    shift : random translation (share of the image size) applied before the discriminator.
    validation_fraction : share of real images held out for the C2ST check.
    n_checks, check_samples : how many checks during training, generated images per class.
    grid_samples, max_grids : generated images per class in each epoch's sample grid; the
        most grids kept (epochs are thinned evenly beyond that).
    sampling_strategy : for :meth:`fit_resample`, as imbalanced-learn: ``"auto"`` grows every
        class but the largest to the largest class's count; a dict ``{class: target count}``.
    image_shape : ``(C, H, W)`` or ``(H, W)`` when ``X`` is a pixel table.
    device, n_threads, random_state, verbose : as for the detectors.
    """

    def __init__(
        self,
        *,
        latent: int = 64,
        base: int = 32,
        embed: int = 32,
        conditioning: str = "concat",
        aux_weight: float = 0.0,
        truncation: float | None = None,
        min_share_weight: float = 0.0,
        max_steps: int = 2000,
        max_epochs: int = 300,
        batch_size: int = 64,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        shift: float = 0.125,
        validation_fraction: float = 0.2,
        n_checks: int = 10,
        check_samples: int = 64,
        grid_samples: int = 8,
        max_grids: int = 100,
        sampling_strategy: Any = "auto",
        image_shape: tuple[int, ...] | None = None,
        device: str = "auto",
        n_threads: int | None = 1,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.latent = latent
        self.base = base
        self.embed = embed
        self.conditioning = conditioning
        self.aux_weight = aux_weight
        self.truncation = truncation
        self.min_share_weight = min_share_weight
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr_g = lr_g
        self.lr_d = lr_d
        self.shift = shift
        self.validation_fraction = validation_fraction
        self.n_checks = n_checks
        self.check_samples = check_samples
        self.grid_samples = grid_samples
        self.max_grids = max_grids
        self.sampling_strategy = sampling_strategy
        self.image_shape = image_shape
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------------- input
    def _layout(self, X: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Images as float N x C x H x W in [0, 1], and how to give samples back."""
        if isinstance(X, pd.DataFrame) or np.asarray(X).ndim == 2:
            if self.image_shape is None:
                raise ImageShapeError("a pixel table needs image_shape=(C, H, W) or (H, W)",
                                      expected="image_shape set", found="image_shape=None")
            shape = tuple(int(v) for v in self.image_shape)
            shape = (1, *shape) if len(shape) == 2 else shape
            columns = list(X.columns) if isinstance(X, pd.DataFrame) else None
            flat = np.asarray(X, dtype=np.float64 if columns is not None else None)
            if flat.shape[1] != int(np.prod(shape)):
                raise ImageShapeError("pixel table width does not match image_shape",
                                      expected=f"{int(np.prod(shape))} columns for {shape}",
                                      found=f"{flat.shape[1]} columns")
            kind = "uint8" if flat.dtype == np.uint8 else "float"
            imgs = flat.reshape(len(flat), *shape)
            # NCHW -> NHWC for the shared checker
            x = to_unit_array(imgs.transpose(0, 2, 3, 1))
            return x, {"layout": "table", "columns": columns, "kind": kind,
                       "dtype": str(flat.dtype)}
        arr = np.asarray(X)
        kind = "uint8" if np.issubdtype(arr.dtype, np.integer) else "float"
        return to_unit_array(arr), {"layout": "nhwc" if arr.ndim == 4 else "nhw",
                                    "columns": None, "kind": kind, "dtype": str(arr.dtype)}

    def _output(self, x: np.ndarray) -> Any:
        """Generated float N x C x H x W -> the layout and kind of the training input."""
        fmt = self.output_format_
        if fmt["kind"] == "uint8":
            x = np.round(x * 255.0)
        if fmt["layout"] == "table":
            flat = x.reshape(len(x), -1).astype(fmt["dtype"] if fmt["kind"] == "uint8"
                                                 else np.float64)
            if fmt["columns"] is not None:
                return pd.DataFrame(flat, columns=fmt["columns"])
            return flat
        out = x.transpose(0, 2, 3, 1) if fmt["layout"] == "nhwc" else x[:, 0]
        return out.astype(np.uint8 if fmt["kind"] == "uint8" else np.float32)

    # ------------------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any) -> ImageAugmenter:
        """Train the conditional GAN on images ``X`` with class labels ``y``."""
        if self.n_checks < 1 or self.check_samples < 2 or self.max_steps < 1:
            raise ValueError("n_checks >= 1, check_samples >= 2 and max_steps >= 1 needed")
        if not 0.0 < self.validation_fraction < 0.9:
            raise ValueError("validation_fraction must be in (0, 0.9)")
        if self.truncation is not None and not self.truncation > 0:
            raise ValueError(f"truncation must be > 0 or None, got {self.truncation!r}")
        if self.aux_weight < 0 or not 0.0 <= self.min_share_weight <= 1.0:
            raise ValueError("aux_weight >= 0 and min_share_weight in [0, 1] needed")
        x, self.output_format_ = self._layout(X)
        y_arr = np.asarray(y).ravel()
        if len(y_arr) != len(x):
            raise GenaugInputError("labels do not match the images",
                                   expected=f"{len(x)} labels", found=f"{len(y_arr)}")
        self.classes_, codes, counts = np.unique(y_arr, return_inverse=True, return_counts=True)
        if counts.min() < 2:
            raise GenaugInputError("every class needs at least 2 images",
                                   expected="2 or more images per class",
                                   found=f"class {self.classes_[np.argmin(counts)]!r}: "
                                         f"{counts.min()} image(s)")
        self.class_counts_ = counts
        self.image_shape_ = tuple(int(v) for v in x.shape[1:])
        with torch_threads(self.n_threads):
            self._fit(x, codes)
        return self

    def _fit(self, x: np.ndarray, codes: np.ndarray) -> None:
        seed = np.random.SeedSequence(self.random_state)
        s_split, s_torch, s_batch, s_check = seed.spawn(4)
        n_val = int(round(self.validation_fraction * len(x)))
        split_seed = int(s_split.generate_state(1)[0] % 2**31)
        try:
            tr, va = train_test_split(np.arange(len(x)), test_size=max(n_val, len(self.classes_)),
                                      stratify=codes, random_state=split_seed)
        except ValueError:  # a class too small to stratify: plain random split
            tr, va = train_test_split(np.arange(len(x)), test_size=max(n_val, 1),
                                      random_state=split_seed)
        tr, va = np.sort(tr), np.sort(va)
        if len(np.unique(codes[tr])) < len(self.classes_):
            tr = np.arange(len(x))  # keep every class in training; C2ST then sees train images
        flat = x.reshape(len(x), -1)
        checker = LogisticRegression(C=0.1, max_iter=300).fit(flat[tr], codes[tr])
        self.device_ = resolve_device(self.device)
        c, h, w = self.image_shape_
        k = len(self.classes_)
        self.dims_ = {"channels": c, "height": h, "width": w, "n_classes": k,
                      "latent": self.latent, "base": self.base, "embed": self.embed,
                      "conditioning": self.conditioning}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(s_torch.generate_state(1)[0]))
            gen = self._build_generator()
            disc = ProjectionDiscriminator(c, h, w, k, base=self.base,
                                           aux=self.aux_weight > 0).to(self.device_)
        g = torch.Generator().manual_seed(int(s_torch.generate_state(2)[1]))
        rng = np.random.default_rng(s_batch)
        opt_g = torch.optim.Adam(gen.parameters(), lr=self.lr_g, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(disc.parameters(), lr=self.lr_d, betas=(0.5, 0.999))
        xt = torch.as_tensor(x[tr], device=self.device_)
        ct = codes[tr]
        by_class = [np.flatnonzero(ct == j) for j in range(k)]
        bs = min(self.batch_size, len(tr))
        steps_per_epoch = max(1, math.ceil(len(tr) / bs))
        self.n_steps_ = int(min(self.max_steps, self.max_epochs * steps_per_epoch))
        check_at = set(np.unique(np.linspace(0, self.n_steps_, self.n_checks + 1)[1:]
                                 .round().astype(int)))
        best_score, best_state = -np.inf, None
        history: list[dict[str, float]] = []
        self.epoch_grids_: list[tuple[int, np.ndarray]] = []
        n_epochs = math.ceil(self.n_steps_ / steps_per_epoch)
        grid_every = max(1, math.ceil(n_epochs / max(self.max_grids, 1)))
        gz = torch.Generator().manual_seed(int(s_check.generate_state(3)[2]))
        grid_labels = torch.as_tensor(np.repeat(np.arange(k), self.grid_samples),
                                      device=self.device_)
        grid_z = torch.randn((len(grid_labels), self.latent), generator=gz).to(self.device_)
        run = {"d_loss": 0.0, "g_loss": 0.0, "n": 0}
        epoch = 0
        gen.train()
        disc.train()
        bar = tqdm(range(1, self.n_steps_ + 1), desc="training image GAN",
                   disable=not self.verbose, leave=False)
        for step in bar:
            # class-balanced real batch: uniform class, then a uniform image of that class
            lab = rng.integers(0, k, bs)
            idx = np.array([by_class[j][rng.integers(len(by_class[j]))] for j in lab])
            labels = torch.as_tensor(lab, device=self.device_)
            real = xt[torch.as_tensor(idx, device=self.device_)]
            z = torch.randn((bs, self.latent), generator=g).to(self.device_)
            fake = gen(z, labels)
            d_real, ce_real = self._critic(disc, translate(real, self.shift, g), labels)
            d_fake, _ = self._critic(disc, translate(fake.detach(), self.shift, g), labels)
            d_loss = (torch.relu(1.0 - d_real).mean() + torch.relu(1.0 + d_fake).mean()
                      + self.aux_weight * ce_real)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            d_gen, ce_gen = self._critic(disc, translate(fake, self.shift, g), labels)
            g_loss = -d_gen.mean() + self.aux_weight * ce_gen
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            run["d_loss"] += float(d_loss.detach())
            run["g_loss"] += float(g_loss.detach())
            run["n"] += 1
            end_epoch = step % steps_per_epoch == 0 or step == self.n_steps_
            if end_epoch:
                epoch += 1
                rec: dict[str, float] = {"epoch": epoch, "step": step,
                                         "d_loss": run["d_loss"] / run["n"],
                                         "g_loss": run["g_loss"] / run["n"]}
                run = {"d_loss": 0.0, "g_loss": 0.0, "n": 0}
                history.append(rec)
                if self.grid_samples > 0 and (epoch % grid_every == 0 or step == self.n_steps_):
                    self.epoch_grids_.append((epoch, self._grid(gen, grid_z, grid_labels)))
            if step in check_at:
                chk = self._check(gen, checker, flat[va], s_check, step)
                if not end_epoch:
                    history.append({"epoch": epoch + 1, "step": step})
                history[-1].update(chk)
                if chk["selection_score"] > best_score:
                    best_score = chk["selection_score"]
                    best_state = copy.deepcopy(gen.state_dict())
                    self.selected_ = dict(chk, step=step)
                bar.set_postfix(share=f"{chk['class_share']:.2f}", c2st=f"{chk['c2st_auc']:.2f}")
                gen.train()
        assert best_state is not None
        gen.load_state_dict(best_state)
        self.generator_ = gen.eval()
        self.history_ = history
        self._sample_gen = torch.Generator().manual_seed(int(s_torch.generate_state(3)[2]))

    def _critic(
        self, disc: ProjectionDiscriminator, x: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The discriminator's logits and (with ``aux_weight``) its class head's cross-entropy
        against ``labels`` (0 without)."""
        if self.aux_weight <= 0:
            return disc(x, labels), torch.zeros((), device=x.device)
        logit, cls = disc(x, labels, with_classes=True)
        return logit, torch.nn.functional.cross_entropy(cls, labels)

    def _build_generator(self) -> ImageGenerator:
        d = self.dims_
        return ImageGenerator(d["channels"], d["height"], d["width"], d["n_classes"],
                              latent=d["latent"], base=d["base"], embed=d["embed"],
                              conditioning=d.get("conditioning", "concat")).to(self.device_)

    def _grid(self, gen: ImageGenerator, z: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        """One sample grid from fixed noise: classes x grid_samples x C x H x W, uint8."""
        gen.eval()
        with torch.inference_mode():
            x = gen(z, labels).cpu().numpy()
        gen.train()
        x = x.reshape(len(self.classes_), self.grid_samples, *x.shape[1:])
        return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)

    def _check(
        self, gen: ImageGenerator, checker: LogisticRegression, real_val: np.ndarray,
        seed: np.random.SeedSequence, step: int,
    ) -> dict[str, float]:
        """Class share (checker on generated images) and C2ST AUC against held-out images."""
        k, m = len(self.classes_), self.check_samples
        g = torch.Generator().manual_seed(int(seed.generate_state(1)[0]) + step)
        gen.eval()
        labels = np.repeat(np.arange(k), m)
        with torch.inference_mode():
            z = truncated_normal(len(labels), self.latent, self.truncation, g).to(self.device_)
            fake = gen(z, torch.as_tensor(labels, device=self.device_)).cpu().numpy()
        fake = fake.reshape(len(fake), -1)
        pred = checker.predict(fake)
        per_class = np.array([np.mean(pred[labels == j] == j) for j in range(k)])
        rs = np.random.default_rng(int(seed.generate_state(2)[1]) + step)
        take = rs.choice(len(fake), size=min(len(fake), max(len(real_val), 2)), replace=False)
        both = np.vstack([real_val, fake[take]])
        is_fake = np.r_[np.zeros(len(real_val)), np.ones(len(take))]
        folds = int(min(3, len(real_val), len(take)))
        auc = 0.5
        if folds >= 2:
            p = cross_val_predict(LogisticRegression(C=0.1, max_iter=300), both, is_fake,
                                  cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                                  method="predict_proba")[:, 1]
            auc = float(roc_auc_score(is_fake, p))
        share, worst = float(per_class.mean()), float(per_class.min())
        w = self.min_share_weight
        return {"class_share": share, "class_share_min": worst, "c2st_auc": auc,
                "selection_score": (1 - w) * share + w * worst - max(auc - 0.5, 0.0)}

    # ------------------------------------------------------------------------------- sampling
    def _codes(self, label: Any, n: int) -> np.ndarray:
        if label is None:
            p = self.class_counts_ / self.class_counts_.sum()
            rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,),
                                                          generator=self._sample_gen)))
            return rng.choice(len(self.classes_), size=n, p=p)
        hit = np.flatnonzero(self.classes_ == label)
        if not len(hit):
            raise GenaugInputError("unknown class label", column="label",
                                   expected=f"one of {self.classes_.tolist()}", found=repr(label))
        return np.full(n, int(hit[0]))

    def sample(self, n: int, label: Any = None) -> tuple[Any, np.ndarray]:
        """``n`` generated images of class ``label`` (None: classes in training proportions),
        and their labels; in the training input's layout and value kind."""
        check_is_fitted(self, "generator_")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        codes = self._codes(label, n)
        out = []
        with torch.inference_mode(), torch_threads(self.n_threads):
            for s in range(0, n, 1024):
                part = torch.as_tensor(codes[s:s + 1024], device=self.device_)
                z = truncated_normal(len(part), self.latent, self.truncation,
                                     self._sample_gen)
                out.append(self.generator_(z.to(self.device_), part).cpu().numpy())
        x = np.concatenate(out) if out else np.zeros((0, *self.image_shape_), np.float32)
        return self._output(x), self.classes_[codes]

    def reseed(self, random_state: int | None) -> ImageAugmenter:
        """Restart the sampling random stream (same seed -> same samples)."""
        check_is_fitted(self, "generator_")
        s = np.random.SeedSequence(random_state).spawn(4)[1]
        self._sample_gen = torch.Generator().manual_seed(int(s.generate_state(3)[2]))
        return self

    def _targets(self, y: np.ndarray) -> dict[Any, int]:
        classes, counts = np.unique(y, return_counts=True)
        have = dict(zip(classes.tolist(), counts.tolist()))
        st = self.sampling_strategy
        if st == "auto" or st == "not majority":
            top = max(have.values())
            return {c: top - v for c, v in have.items() if v < top}
        if isinstance(st, dict):
            return {c: max(0, int(t) - have.get(c, 0)) for c, t in st.items()}
        raise ValueError(f"sampling_strategy must be 'auto' or a dict, got {st!r}")

    def fit_resample(self, X: Any, y: Any) -> tuple[Any, np.ndarray]:
        """Fit on ``(X, y)``, then return them with generated images appended."""
        return self.fit(X, y).resample(X, y)

    def resample(self, X: Any, y: Any) -> tuple[Any, np.ndarray]:
        """``X`` and ``y`` with generated images appended per ``sampling_strategy``, from the
        fitted generator (no refit: for an augmenter loaded from the registry)."""
        check_is_fitted(self, "generator_")
        y_arr = np.asarray(y).ravel()
        extra_X, extra_y = [], []
        for c, n in self._targets(y_arr).items():
            if n > 0:
                xs, ys = self.sample(n, label=c)
                extra_X.append(xs)
                extra_y.append(ys)
        if not extra_X:
            return X, y_arr
        if isinstance(X, pd.DataFrame):
            X_res: Any = pd.concat([X.reset_index(drop=True), *extra_X], ignore_index=True)
        else:
            X_res = np.concatenate([np.asarray(X), *extra_X]).astype(np.asarray(X).dtype)
        return X_res, np.concatenate([y_arr, *extra_y])

    # ------------------------------------------------------------------------------- persistence
    def save(self, folder: str | Path) -> Path:
        """Write the fitted generator to ``folder`` (JSON + tensors; no pickle)."""
        check_is_fitted(self, "generator_")
        params = self.get_params()
        params["sampling_strategy"] = (params["sampling_strategy"] if isinstance(
            params["sampling_strategy"], str) else {"__dict__": [
                [_plain(k), int(v)] for k, v in params["sampling_strategy"].items()]})
        fmt = dict(self.output_format_)
        config = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "params": params,
            "dims": self.dims_, "image_shape": self.image_shape_,
            "classes": [_plain(c) for c in self.classes_],
            "classes_dtype": str(self.classes_.dtype),
            "class_counts": self.class_counts_, "output_format": fmt,
            "n_steps": self.n_steps_, "history": self.history_, "selected": self.selected_,
        }
        tensors = {f"generator.{k}": v for k, v in self.generator_.state_dict().items()}
        return write_model_folder(folder, config, tensors)

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto") -> ImageAugmenter:
        """Rebuild an augmenter saved by :meth:`save` (sampling only; no refit needed)."""
        cfg, tensors = read_model_folder(folder, FORMAT, {1, FORMAT_VERSION})
        params = dict(cfg["params"], device=device)
        if cfg["format_version"] == 1:  # before these options: what v1 models did
            params = {"conditioning": "concat", "aux_weight": 0.0, "truncation": None,
                      "min_share_weight": 0.0, **params}
            cfg["dims"] = {"conditioning": "concat", **cfg["dims"]}
        st = params["sampling_strategy"]
        if isinstance(st, dict):
            params["sampling_strategy"] = {k: v for k, v in st["__dict__"]}
        if params.get("image_shape") is not None:
            params["image_shape"] = tuple(params["image_shape"])
        self = cls(**params)
        self.dims_ = cfg["dims"]
        self.image_shape_ = tuple(cfg["image_shape"])
        self.classes_ = np.asarray(cfg["classes"], dtype=cfg["classes_dtype"])
        self.class_counts_ = np.asarray(cfg["class_counts"], dtype=int)
        self.output_format_ = cfg["output_format"]
        self.n_steps_ = cfg["n_steps"]
        self.history_ = cfg["history"]
        self.selected_ = cfg["selected"]
        self.device_ = resolve_device(device)
        self.generator_ = self._build_generator()
        self.generator_.load_state_dict({k[10:]: v for k, v in tensors.items()
                                         if k.startswith("generator.")})
        self.generator_.eval()
        self.reseed(self.random_state)
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_sample_gen", None)  # a torch.Generator does not pickle (e.g. for clone)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "generator_" in state:
            self.reseed(self.random_state)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
