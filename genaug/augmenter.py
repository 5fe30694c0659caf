"""The augmenter: a class-conditional generator of synthetic rows for mixed-type tables.

``Augmenter`` fits a conditional VAE (class one-hot into encoder and decoder; Gaussian numeric
outputs with a learned sigma, softmax categories, Bernoulli missingness) on the quantile-encoded
table, with class-balanced minibatches. Synthetic rows decode a latent ``z`` drawn, by
``model``:

* ``"vae"``: from the prior ``N(0, I)`` (``sample_z="prior"``) or near the posteriors of
  training rows of the requested class (``sample_z="posterior"``);
* ``"gan"``: from a conditional WGAN-GP trained in the VAE's latent space on the encoder's
  posterior samples (:mod:`genaug.adversarial`); its generator starts as the prior.

Categories and missingness are *sampled* from the decoder's probabilities, numerics are the
decoder's mean plus sigma times noise. Both stages keep the weights with the best validation
C2ST (a leave-one-out k-NN classifier telling synthetic from held-out real rows; 0.5 is ideal)
and stop after ``patience`` checks without improvement. A copy guard rejects synthetic rows
closer to a training row than real held-out rows usually are, and the anomaly options use
:class:`genaug.AnomalyDetector` to drop unusual training rows or reject unusual synthetic ones.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .adversarial import train_latent_gan
from .detector import AnomalyDetector
from .errors import GenaugInputError
from .likelihood import ColumnNLL
from .neighbours import CopyGuard, knn_c2st
from .nn.latent_gan import LatentCritic, LatentGenerator
from .nn.vae import EnsembleVAE
from .persistence import read_model_folder, write_model_folder
from .sampling import DecoderSampler
from .schema import _as_str, as_frame, infer_schema
from .training import TensorTable, resolve_device, torch_threads, train_vae
from .transform import TabularEncoder

log = logging.getLogger(__name__)

FORMAT = "genaug.Augmenter"
FORMAT_VERSION = 1
LABEL_COLUMN = "__label__"
_CHUNK = 8192  # rows per decoder call: fits in cache, fastest on one thread
_MAX_ROUNDS = 20  # resampling rounds for rejected rows
_PRIOR_AFTER = 3  # rounds before rejected rows are drawn from the prior
_MIN_CHECK_STEPS = 50  # optimiser steps at least between validation checks (small tables)


class Augmenter(BaseEstimator):
    """Class-conditional generator for mixed-type tables; an imbalanced-learn style sampler.

    Parameters
    ----------
    model : ``"vae"`` (conditional VAE) or ``"gan"`` (a latent GAN on top of it).
    hidden, n_layers, latent : VAE layer width, hidden layers, latent size.
    beta, warmup : KL weight and the share of steps over which it ramps up.
    max_steps, max_epochs : VAE training length is ``min(max_steps, max_epochs * batches)``.
    batch_size, lr : VAE minibatch size and Adam learning rate.
    balanced : draw minibatches with every class equally likely (else in data proportions).
    sample_z : for ``model="vae"``: ``"prior"`` or ``"posterior"`` (z near the posterior of a
        random training row of the requested class).
    temperature : scale of the latent noise (1 = the model's own; < 1 truncates).
    numeric_noise : numerics are mean + sigma * noise (True) or the decoder mean (False).
    gan_steps, gan_batch_size, gan_lr, critic_lr, gan_hidden, r1_gamma, gan_check_every :
        the latent GAN's generator steps, minibatch, generator and critic learning rates,
        width, R1 penalty weight and steps between validation checks.
    copy_guard : reject synthetic rows closer to a training row than the ``guard_quantile``
        of real rows' leave-one-out distances to the training set (per class), and exact
        copies; rejected rows are drawn again.
    drop_anomalies : fit an :class:`AnomalyDetector` on the features plus the label and drop
        the training rows it flags before fitting the generator.
    reject_anomalies : reject (and redraw) synthetic rows the detector flags.
    detector_params : keyword arguments for that detector. A row is flagged when its score is
        above both the detector's threshold and its class's ``1 - contamination`` quantile,
        so no class loses more than that share to the detector.
    validation_fraction : share of each class held out for the validation C2ST.
    c2st_every, patience : VAE epochs between validation checks; checks without improvement
        before training stops (the best weights are kept).
    sampling_strategy : what :meth:`fit_resample` adds, as in imbalanced-learn: ``"auto"``,
        ``"minority"``, ``"not majority"``, ``"not minority"``, ``"all"``, a float (binary:
        minority/majority ratio after resampling) or a dict ``{class: n_samples}``.
    numeric, max_levels, int_max_levels : encoder settings (see :class:`TabularEncoder`).
    device, n_threads, random_state, verbose : as for :class:`AnomalyDetector`.

    Attributes
    ----------
    classes_, class_counts_ : the labels seen by ``fit`` (sorted) and their row counts.
    history_ : list of JSON-ready dicts, one per VAE epoch (``phase="vae"``), then one per
        latent-GAN check (``phase="gan"``, only with ``model="gan"``). Every record has
        ``phase`` and ``epoch`` (1-based within its phase). VAE records: ``step`` (optimiser
        steps so far), ``train_loss`` (KL-weighted negative ELBO per row), ``train_nll``,
        ``train_kl``; on some epochs ``val_loss`` (validation rows); on checked epochs
        (every ``c2st_every`` and the last) ``val_c2st`` (mean over classes) and
        ``val_c2st_class{i}`` (``i`` indexes ``classes_``). GAN records: ``gan_step``,
        ``critic_loss``, ``generator_loss``, ``critic_gap``, ``val_c2st``,
        ``val_c2st_class{i}``, ``latent_c2st`` and ``latent_c2st_class{i}``.
    best_epoch_, best_gan_step_ : where the kept weights come from (lowest ``val_c2st``).
    timings_ : seconds spent in ``"vae"``, ``"gan"`` and the whole ``"fit"``.
    n_dropped_, dropped_index_ : training rows dropped by ``drop_anomalies`` (positions).
    last_rejected_ : rows redrawn by the last :meth:`sample` call, ``{"copy", "anomaly"}``.
    n_synthetic_ : rows added by the last :meth:`fit_resample`.
    """

    def __init__(
        self,
        *,
        model: Literal["vae", "gan"] = "vae",
        hidden: int = 128,
        n_layers: int = 2,
        latent: int = 16,
        beta: float = 1.0,
        warmup: float = 0.1,
        max_steps: int = 1500,
        max_epochs: int = 300,
        batch_size: int = 512,
        lr: float = 3e-3,
        balanced: bool = True,
        sample_z: Literal["prior", "posterior"] = "posterior",
        temperature: float = 1.0,
        numeric_noise: bool = True,
        gan_steps: int = 600,
        gan_batch_size: int = 256,
        gan_lr: float = 2e-4,
        gan_hidden: int = 64,
        critic_lr: float = 8e-4,
        r1_gamma: float = 1.0,
        gan_check_every: int = 50,
        copy_guard: bool = True,
        guard_quantile: float = 0.05,
        drop_anomalies: bool = False,
        reject_anomalies: bool = False,
        detector_params: dict[str, Any] | None = None,
        validation_fraction: float = 0.1,
        c2st_every: int = 5,
        patience: int = 4,
        sampling_strategy: Any = "auto",
        numeric: Literal["standard", "quantile"] = "quantile",
        max_levels: int = 50,
        int_max_levels: int = 10,
        device: str = "auto",
        n_threads: int | None = 1,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.hidden = hidden
        self.n_layers = n_layers
        self.latent = latent
        self.beta = beta
        self.warmup = warmup
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.balanced = balanced
        self.sample_z = sample_z
        self.temperature = temperature
        self.numeric_noise = numeric_noise
        self.gan_steps = gan_steps
        self.gan_batch_size = gan_batch_size
        self.gan_lr = gan_lr
        self.gan_hidden = gan_hidden
        self.critic_lr = critic_lr
        self.r1_gamma = r1_gamma
        self.gan_check_every = gan_check_every
        self.copy_guard = copy_guard
        self.guard_quantile = guard_quantile
        self.drop_anomalies = drop_anomalies
        self.reject_anomalies = reject_anomalies
        self.detector_params = detector_params
        self.validation_fraction = validation_fraction
        self.c2st_every = c2st_every
        self.patience = patience
        self.sampling_strategy = sampling_strategy
        self.numeric = numeric
        self.max_levels = max_levels
        self.int_max_levels = int_max_levels
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------------- checks
    def _check_params(self) -> None:
        choices = {"model": ("vae", "gan"), "sample_z": ("prior", "posterior"),
                   "numeric": ("standard", "quantile")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        positive = ("hidden", "n_layers", "latent", "max_steps", "max_epochs", "batch_size",
                    "gan_batch_size", "gan_hidden", "gan_check_every", "c2st_every",
                    "patience")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.gan_steps < 0:
            raise ValueError(f"gan_steps must be >= 0, got {self.gan_steps}")
        if not 0.0 <= self.validation_fraction < 0.5:
            raise ValueError("validation_fraction must be in [0, 0.5)")
        if not 0.0 <= self.guard_quantile < 1.0:
            raise ValueError("guard_quantile must be in [0, 1)")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.random_state is not None and not isinstance(self.random_state, (int, np.integer)):
            raise ValueError("random_state must be an int or None")

    # ------------------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any) -> Augmenter:
        """Learn the schema, encoder, conditional VAE (and latent GAN) from ``X`` and labels
        ``y``."""
        self._check_params()
        with torch_threads(self.n_threads):
            return self._fit(X, y)

    def _fit(self, X: Any, y: Any) -> Augmenter:
        t0 = time.perf_counter()
        df = as_frame(X)
        labels = _labels(y, len(df))
        self.classes_, y_idx = np.unique(labels, return_inverse=True)
        n_classes = len(self.classes_)
        self.class_counts_ = np.bincount(y_idx, minlength=n_classes)
        self._set_columns(X, df)
        schema = infer_schema(df, int_max_levels=self.int_max_levels, constant="drop",
                              all_numeric=not isinstance(X, pd.DataFrame), id_min_rows=2**62)
        self.constants_ = {c: _constant(df[c]) for c in schema.dropped}
        clean = schema.validate(df)
        (s_split, s_enc, s_vae, s_batch, s_gan, s_gan_batch, s_check, s_sample,
         s_det) = np.random.SeedSequence(self.random_state).spawn(9)
        self.device_ = resolve_device(self.device)
        self.schema_ = schema
        self.encoder_ = TabularEncoder(numeric=self.numeric, max_levels=self.max_levels).fit(
            clean, schema
        )
        self.sample_seed_ = int(s_sample.generate_state(1, np.uint32)[0])
        self.timings_: dict[str, float] = {}

        keep = np.ones(len(df), dtype=bool)
        self.detector_: AnomalyDetector | None = None
        if self.drop_anomalies or self.reject_anomalies:
            keep = self._fit_detector(df, labels, y_idx, s_det)
            if not self.drop_anomalies:
                keep[:] = True
        self.n_dropped_ = int((~keep).sum())
        self.dropped_index_ = np.flatnonzero(~keep)

        fit_idx, val_idx = _stratified_split(y_idx, keep, self.validation_fraction,
                                             np.random.default_rng(s_split))
        self.validation_index_ = val_idx
        # the copy guard's reference: every training row, encoded without random tie spreading
        ref_enc = self.encoder_.transform(clean)
        ref, ref_codes = ref_enc.X, ref_enc.cat_codes
        enc = self.encoder_.transform(clean, rng=np.random.default_rng(s_enc))
        eye = np.eye(n_classes, dtype=np.float32)
        table = TensorTable.from_encoded(enc, self.device_, cond=eye[y_idx])
        fit_t = table.take(torch.as_tensor(fit_idx, device=self.device_))
        val_t = table.take(torch.as_tensor(val_idx, device=self.device_)) if len(val_idx) \
            else None
        d = self.encoder_.n_features_out_
        self.dims_ = {"n_features": d, "n_numeric": len(self.encoder_.num_spans),
                      "hidden": int(self.hidden), "latent": int(self.latent),
                      "n_layers": int(self.n_layers), "n_classes": n_classes,
                      "gan_hidden": int(self.gan_hidden)}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(s_vae.generate_state(1)[0]))
            self.vae_ = self._build_vae().to(self.device_)
            self.gan_: LatentGenerator | None = None
            critic = None
            if self.model == "gan":
                self.gan_ = self._build_gan().to(self.device_)
                critic = LatentCritic(int(self.latent), n_classes, int(self.gan_hidden)).to(
                    self.device_)
        self._eye = torch.as_tensor(eye, device=self.device_)
        self._set_posteriors(np.zeros((0, int(self.latent))), np.zeros((0, int(self.latent))),
                             np.zeros(0, dtype=int))

        checker = _Checker(self, ref[val_idx], y_idx[val_idx], s_check)
        sampler = _class_sampler(y_idx[fit_idx], n_classes, self.balanced)
        n_fit = len(fit_idx)
        steps_per_epoch = max(1, math.ceil(n_fit / min(self.batch_size, n_fit)))
        self.n_steps_ = int(min(self.max_steps, self.max_epochs * steps_per_epoch))
        # the GAN learns the encoder's posteriors: pick the VAE whose decoder renders them best
        vae_source = "posterior" if self.model == "gan" else self.sample_z
        history: list[dict[str, Any]] = []
        best = _Best(self.vae_)

        # on small tables an epoch is one step: check every few epochs *and* steps, so that
        # the noisy validation C2ST cannot stop training after a few dozen steps
        every = max(int(self.c2st_every), math.ceil(_MIN_CHECK_STEPS / steps_per_epoch))

        def on_epoch(rec: dict[str, Any]) -> bool:
            rec["phase"] = "vae"
            if not checker.active or (rec["epoch"] % every and rec["step"] < self.n_steps_):
                return False
            if vae_source == "posterior":
                self._posteriors_from(fit_t, y_idx[fit_idx])
            rec["val_c2st"] = checker(vae_source)
            rec.update({f"val_c2st_class{c}": v for c, v in checker.last.items()})
            return best.update(rec["val_c2st"], rec["epoch"], self.patience)

        t_vae = time.perf_counter()
        history += train_vae(
            self.vae_, ColumnNLL(self.encoder_, self.device_), fit_t, val_t,
            n_steps=self.n_steps_, batch_size=self.batch_size, lr=self.lr, beta=self.beta,
            warmup=self.warmup, generator=_torch_gen(s_batch), rng=np.random.default_rng(s_batch),
            sampler=sampler, progress=self.verbose, desc="training conditional VAE",
            on_epoch=on_epoch,
        )
        best.restore()
        self._refresh_decoder()
        self.best_epoch_ = best.at
        self.timings_["vae"] = time.perf_counter() - t_vae
        if self.model == "gan" or self.sample_z == "posterior":
            self._posteriors_from(fit_t, y_idx[fit_idx])
        if self.model == "gan":
            assert self.gan_ is not None and critic is not None
            t_gan = time.perf_counter()
            history += self._fit_gan(critic, checker, sampler, s_gan, s_gan_batch)
            self.timings_["gan"] = time.perf_counter() - t_gan
        self.history_ = history
        self._guard: CopyGuard | None = None
        self.guard_thresholds_ = np.zeros(n_classes)
        if self.copy_guard:
            values = clean[[s.column for s in self.encoder_.num_spans]].to_numpy(dtype=float)
            self._guard = CopyGuard.fit(values, ref_codes, y_idx, self._n_slots(),
                                        self.guard_quantile, np.random.default_rng(s_split))
            self.guard_thresholds_ = self._guard.thresholds
        self._sample_rng = np.random.default_rng(self.sample_seed_)
        self.timings_["fit"] = time.perf_counter() - t0
        return self

    def _fit_gan(self, critic: LatentCritic, checker: _Checker, sampler: Any,
                 s_gan: np.random.SeedSequence, s_batch: np.random.SeedSequence) -> list[dict]:
        assert self.gan_ is not None
        best = _Best(self.gan_)

        checks = iter(range(1, 1 << 30))

        def on_check(rec: dict[str, Any]) -> bool:
            rec["phase"] = "gan"
            rec["epoch"] = next(checks)  # the check's number: one "epoch" per check
            if not checker.active:
                return False
            rec["val_c2st"] = checker("gan")
            rec.update({f"val_c2st_class{c}": v for c, v in checker.last.items()})
            rec["latent_c2st"] = checker.latent(self)
            rec.update({f"latent_c2st_class{c}": v for c, v in checker.last.items()})
            return best.update(rec["val_c2st"], rec["gan_step"], self.patience)

        mu, logvar, lab = self._post_mu, self._post_logvar, self._post_labels
        hist = train_latent_gan(
            self.gan_, critic, mu, logvar, self._eye[lab], n_steps=int(self.gan_steps),
            batch_size=int(self.gan_batch_size), lr=self.gan_lr, critic_lr=self.critic_lr,
            r1_gamma=self.r1_gamma, generator=_torch_gen(s_gan),
            rng=np.random.default_rng(s_batch),
            sampler=_class_sampler(lab.cpu().numpy(), len(self.classes_), self.balanced),
            check_every=int(self.gan_check_every), on_check=on_check, progress=self.verbose,
        )
        best.restore()
        self.gan_.eval()
        self.best_gan_step_ = best.at
        return hist

    def _fit_detector(self, df: pd.DataFrame, labels: np.ndarray, y_idx: np.ndarray,
                      seed: np.random.SeedSequence) -> np.ndarray:
        """Fit the anomaly detector on features + label; per-class thresholds; rows to keep."""
        params = dict(self.detector_params or {})
        params.setdefault("device", self.device)
        params.setdefault("n_threads", self.n_threads)
        params.setdefault("random_state", int(seed.generate_state(1)[0] % 2**31))
        det = AnomalyDetector(**params)
        with_label = df.copy()
        with_label[LABEL_COLUMN] = _as_str(pd.Series(labels, index=df.index)).to_numpy()
        det.fit(with_label)
        scores = det.decision_scores_
        thr = np.empty(len(self.classes_))
        for c in range(len(self.classes_)):
            s = scores[y_idx == c]
            thr[c] = max(det.threshold_, float(np.quantile(s, 1.0 - det.contamination)))
        self.detector_ = det
        self.anomaly_thresholds_ = thr
        return scores <= thr[y_idx]

    # ------------------------------------------------------------------------------- layout
    def _set_columns(self, X: Any, df: pd.DataFrame) -> None:
        self.named_input_ = isinstance(X, pd.DataFrame)
        self.input_columns_ = list(map(str, df.columns))
        self.column_names_ = list(X.columns) if self.named_input_ else list(self.input_columns_)
        self.input_dtypes_ = {str(c): str(df[c].dtype) for c in df.columns}
        self.n_features_in_ = len(self.input_columns_)
        if self.named_input_:
            self.feature_names_in_ = np.asarray(self.input_columns_, dtype=object)
        self.categories_ = {}
        for c in df.columns:
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                self.categories_[str(c)] = {"categories": df[c].cat.categories.tolist(),
                                            "ordered": bool(df[c].cat.ordered)}

    def _refresh_decoder(self) -> None:
        """Rebuild the fast sampling head from the VAE's current weights."""
        self.vae_.eval()
        self._decoder = DecoderSampler(self.vae_, self.encoder_, self.device_)

    def _n_slots(self) -> list[int]:
        return [s.end - s.start for s in self.encoder_.cat_spans]

    def _build_vae(self) -> EnsembleVAE:
        dm = self.dims_
        return EnsembleVAE(dm["n_features"], dm["n_numeric"], hidden=dm["hidden"],
                           latent=dm["latent"], n_layers=dm["n_layers"], n_members=1,
                           n_cond=dm["n_classes"])

    def _build_gan(self) -> LatentGenerator:
        dm = self.dims_
        return LatentGenerator(dm["latent"], dm["n_classes"], dm["gan_hidden"])

    @torch.inference_mode()
    def _posteriors_from(self, table: TensorTable, y_idx: np.ndarray) -> None:
        self.vae_.eval()
        mu, logvar = self.vae_.encode(table.X[None], table.cond[None])
        self._set_posteriors(mu[0], logvar[0], y_idx)

    def _set_posteriors(self, mu: Any, logvar: Any, y_idx: np.ndarray) -> None:
        dev = self.device_
        self._post_mu = torch.as_tensor(mu, dtype=torch.float32, device=dev).clone()
        self._post_logvar = torch.as_tensor(logvar, dtype=torch.float32, device=dev).clone()
        self._post_labels = torch.as_tensor(np.asarray(y_idx), dtype=torch.long, device=dev)
        order = np.argsort(np.asarray(y_idx), kind="stable")
        counts = np.bincount(np.asarray(y_idx, dtype=int), minlength=len(self.classes_))
        self._post_order = torch.as_tensor(order, dtype=torch.long, device=dev)
        self._post_start = torch.as_tensor(np.r_[0, np.cumsum(counts)[:-1]], dtype=torch.long,
                                           device=dev)
        self._post_count = torch.as_tensor(counts, dtype=torch.long, device=dev)

    # ------------------------------------------------------------------------------- drawing
    def _source(self) -> str:
        return "gan" if self.model == "gan" else self.sample_z

    @torch.inference_mode()
    def _draw(self, y_idx: np.ndarray, source: str, tg: torch.Generator
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Numeric values (source units), their missing mask and categorical slots for rows
        of classes ``y_idx``, decoded from latents drawn from ``source``."""
        if self.gan_ is not None:
            self.gan_.eval()
        dev = self.device_
        dec = self._decoder
        n = len(y_idx)
        znum = np.empty((n, dec.n_num), dtype=np.float32)
        missing = np.zeros((n, dec.n_num), dtype=bool)
        slots = np.empty((n, dec.n_cat), dtype=np.int64)
        latent = self.dims_["latent"]
        for s in range(0, n, _CHUNK):
            lab = torch.as_tensor(y_idx[s:s + _CHUNK], dtype=torch.long, device=dev)
            m = len(lab)
            c = self._eye[lab]
            eps = torch.randn((m, latent), generator=tg, device=tg.device).to(dev)
            eps = eps * self.temperature
            if source == "prior":
                z = eps
            elif source == "posterior":
                count = self._post_count[lab]
                if bool((count == 0).any()):
                    raise RuntimeError("posterior sampling: a class has no training rows")
                u = torch.rand(m, generator=tg, device=tg.device).to(dev)
                pick = torch.minimum((u * count).long(), count - 1)
                row = self._post_order[self._post_start[lab] + pick]
                z = self._post_mu[row] + torch.exp(0.5 * self._post_logvar[row]) * eps
            else:
                assert self.gan_ is not None
                z = self.gan_(eps, c)
            num, miss, slot = dec(z, c, tg, self.numeric_noise)
            znum[s:s + m] = num.cpu().numpy()
            missing[s:s + m, dec.miss_cols] = miss.cpu().numpy()
            slots[s:s + m] = slot.cpu().numpy()
        values = self.encoder_.numeric_values(znum.astype(float))
        return values, missing, slots

    def _encode_drawn(self, values: np.ndarray, missing: np.ndarray, slots: np.ndarray
                      ) -> np.ndarray:
        """Drawn rows laid out exactly as ``encoder_.transform`` (without tie spreading) would
        encode their decoded frame."""
        enc = self.encoder_
        out = np.zeros((len(values), enc.n_features_out_), dtype=np.float32)
        if len(enc.num_spans):
            z = enc.normalise_values(np.where(missing, np.nan, values))
            out[:, [s.start for s in enc.num_spans]] = np.nan_to_num(z, nan=0.0)
        miss_of = {s.column: s.start for s in enc.miss_spans}
        for j, span in enumerate(enc.num_spans):
            if span.column in miss_of:
                out[:, miss_of[span.column]] = missing[:, j]
        rows = np.arange(len(values))
        for j, span in enumerate(enc.cat_spans):
            out[rows, span.start + slots[:, j]] = 1.0
        return out

    def _frame(self, values: np.ndarray, missing: np.ndarray, slots: np.ndarray,
               rng: np.random.Generator) -> pd.DataFrame:
        """Decoded rows as a frame with the training columns, order, dtypes and levels."""
        body = self.encoder_.decode(values, missing, slots, rng)
        n = len(body)
        cols: dict[Any, Any] = {}
        for name, orig in zip(self.input_columns_, self.column_names_):
            if name in self.constants_:
                value, dtype = self.constants_[name]
                cols[orig] = pd.Series([value] * n, dtype=object).astype(dtype).to_numpy()
                if isinstance(cols[orig], np.ndarray) and dtype in ("str", "string"):
                    cols[orig] = pd.array(cols[orig], dtype=dtype)
                continue
            col = body[name]
            if name in self.categories_:
                spec = self.categories_[name]
                cats = spec["categories"]
                lookup = dict(zip(_as_str(pd.Series(cats, dtype=object)), cats))
                vals = col.astype(object).map(lookup)
                col = pd.Categorical(vals, categories=cats, ordered=spec["ordered"])
            cols[orig] = col.array if isinstance(col, pd.Series) else col
        return pd.DataFrame(cols, index=pd.RangeIndex(n))

    def _generate(self, y_idx: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Rows for classes ``y_idx`` (in that order), redrawing rows the guards reject."""
        tg = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**63 - 1)))
        source = self._source()
        n = len(y_idx)
        values = np.empty((n, self._decoder.n_num))
        missing = np.zeros((n, self._decoder.n_num), dtype=bool)
        slots = np.empty((n, self._decoder.n_cat), dtype=np.int64)
        todo = np.arange(n)
        self.last_rejected_ = {"copy": 0, "anomaly": 0}
        for round_ in range(_MAX_ROUNDS):
            # a row still rejected after a few rounds sits where the posteriors (or the GAN)
            # crowd the training rows: draw it from the prior instead
            src = source if round_ < _PRIOR_AFTER else "prior"
            v, m, s = self._draw(y_idx[todo], src, tg)
            values[todo], missing[todo], slots[todo] = v, m, s
            bad = np.zeros(len(todo), dtype=bool)
            if self._guard is not None and len(todo):
                bad = self._guard.too_close(np.where(m, np.nan, v), s, y_idx[todo])
                self.last_rejected_["copy"] += int(bad.sum())
            if self.reject_anomalies and self.detector_ is not None and len(todo):
                ok_idx = np.flatnonzero(~bad)
                anom = self._anomalous(self._frame(v[ok_idx], m[ok_idx], s[ok_idx], rng),
                                       y_idx[todo[ok_idx]])
                bad[ok_idx[anom]] = True
                self.last_rejected_["anomaly"] += int(anom.sum())
            todo = todo[bad]
            if not len(todo):
                break
        else:
            warnings.warn(
                f"{len(todo)} of {n} synthetic rows were still rejected after {_MAX_ROUNDS} "
                "rounds and are returned anyway (the copy guard or the anomaly detector finds "
                "little room here; consider copy_guard=False or a lower guard_quantile)",
                UserWarning, stacklevel=3)
        return self._frame(values, missing, slots, rng)

    def _anomalous(self, frame: pd.DataFrame, y_idx: np.ndarray) -> np.ndarray:
        assert self.detector_ is not None
        if not len(frame):
            return np.zeros(0, dtype=bool)
        scored = frame.copy()
        scored.columns = self.input_columns_
        scored[LABEL_COLUMN] = _as_str(pd.Series(self.classes_[y_idx])).to_numpy()
        return self.detector_.decision_function(scored) > self.anomaly_thresholds_[y_idx]

    # ------------------------------------------------------------------------------- sampling
    def sample(
        self, n: int, label: Any = None, *, random_state: int | None = None
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """``n`` synthetic rows and their labels: all ``label``, or drawn in training
        proportions when ``label`` is None.

        Draws come from an internal generator seeded at fit (or load), so a model fitted with
        the same ``random_state`` (or reloaded) gives the same sequence of samples;
        ``random_state`` here uses a separate seed instead.
        """
        check_is_fitted(self, "vae_")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        rng = self._sample_rng if random_state is None else np.random.default_rng(random_state)
        if label is None:
            p = self.class_counts_ / self.class_counts_.sum()
            y_idx = rng.choice(len(self.classes_), size=int(n), p=p)
        else:
            hit = np.flatnonzero(self.classes_ == label)
            if not len(hit):
                raise GenaugInputError(
                    "unknown label", column=LABEL_COLUMN,
                    expected=f"one of {self.classes_.tolist()}", found=repr(label))
            y_idx = np.full(int(n), hit[0], dtype=np.int64)
        with torch_threads(self.n_threads):
            frame = self._generate(y_idx, rng)
        return frame, self.classes_[y_idx]

    def fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        """Fit, then append synthetic rows as ``sampling_strategy`` asks (imbalanced-learn's
        contract): the original rows first, then the synthetic ones (``n_synthetic_``)."""
        from imblearn.utils import check_sampling_strategy

        labels = _labels(y, len(X))
        if len(np.unique(labels)) < 2:
            raise GenaugInputError(
                "fit_resample needs at least two classes", column=LABEL_COLUMN,
                expected="labels of 2 or more classes", found=f"only {labels[0]!r}")
        self.fit(X, y)
        wanted = check_sampling_strategy(self.sampling_strategy, labels, "over-sampling")
        frames, ys = [], []
        for cls, k in wanted.items():
            if k > 0:
                f, lab = self.sample(int(k), label=cls)
                frames.append(f)
                ys.append(lab)
        n_syn = int(sum(len(f) for f in frames))
        self.n_synthetic_ = n_syn
        self.sample_indices_ = np.arange(len(X))
        synth = (pd.concat(frames, ignore_index=True) if frames
                 else self._frame(*self._draw(np.zeros(0, dtype=np.int64), "prior",
                                              torch.Generator().manual_seed(0)),
                                  np.random.default_rng(0)))
        y_syn = np.concatenate(ys) if ys else labels[:0]
        if isinstance(X, pd.DataFrame):
            X_res = pd.concat([X.reset_index(drop=True), synth.set_axis(X.columns, axis=1)],
                              ignore_index=True)
            for c in X.columns:  # concat may widen a dtype (e.g. categories): keep the input's
                if X_res[c].dtype != X[c].dtype and isinstance(X[c].dtype, pd.CategoricalDtype):
                    X_res[c] = X_res[c].astype(X[c].dtype)
        else:
            arr = np.asarray(X)
            X_res = np.vstack([arr, synth.to_numpy(dtype=arr.dtype)]) if n_syn else arr.copy()
        y_res_arr = np.concatenate([labels, y_syn.astype(labels.dtype, copy=False)])
        if isinstance(y, pd.Series):
            return X_res, pd.Series(y_res_arr, name=y.name)
        return X_res, y_res_arr

    # ------------------------------------------------------------------------------- persistence
    def save(self, folder: str | Path) -> Path:
        """Write the fitted augmenter to ``folder`` (JSON + tensors; no pickle).

        With ``copy_guard`` or ``sample_z="posterior"`` the folder holds the encoded training
        rows (or their latent posteriors): treat it as you would the training data.
        """
        check_is_fitted(self, "vae_")
        tensors = {f"vae.{k}": v for k, v in self.vae_.state_dict().items()}
        if self.gan_ is not None:
            tensors.update({f"gan.{k}": v for k, v in self.gan_.state_dict().items()})
        if self.sample_z == "posterior" and self.model == "vae":
            tensors.update({"post.mu": self._post_mu, "post.logvar": self._post_logvar,
                            "post.labels": self._post_labels})
        if self._guard is not None:
            tensors["guard.values"] = torch.tensor(self._guard.values)
            tensors["guard.slots"] = torch.tensor(self._guard.slots)
            tensors["guard.labels"] = torch.tensor(self._guard.labels)
        det_cfg = None
        if self.detector_ is not None:
            det_cfg, det_t = self.detector_.to_state()
            tensors.update({f"detector.{k}": v for k, v in det_t.items()})
        params = self.get_params()
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "params": params,
            "classes": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "class_counts": self.class_counts_,
            "input_columns": self.input_columns_,
            "column_names": self.column_names_,
            "named_input": self.named_input_,
            "input_dtypes": self.input_dtypes_,
            "categories": self.categories_,
            "constants": self.constants_,
            "encoder": self.encoder_.get_state(),
            "dims": self.dims_,
            "n_steps": self.n_steps_,
            "best_epoch": self.best_epoch_,
            "best_gan_step": getattr(self, "best_gan_step_", None),
            "guard_thresholds": self.guard_thresholds_,
            "anomaly_thresholds": getattr(self, "anomaly_thresholds_", None),
            "n_dropped": self.n_dropped_,
            "dropped_index": self.dropped_index_,
            "validation_index": self.validation_index_,
            "sample_seed": self.sample_seed_,
            "history": self.history_,
            "timings": self.timings_,
            "detector": det_cfg,
        }
        return write_model_folder(folder, config, tensors)

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto") -> Augmenter:
        """Rebuild an augmenter saved by :meth:`save` (on any device)."""
        cfg, tensors = read_model_folder(folder, FORMAT, {FORMAT_VERSION})
        self = cls(**dict(cfg["params"], device=device))
        self.device_ = resolve_device(device)
        self.classes_ = np.asarray(cfg["classes"], dtype=np.dtype(cfg["classes_dtype"]))
        self.class_counts_ = np.asarray(cfg["class_counts"], dtype=np.int64)
        self.input_columns_ = cfg["input_columns"]
        self.column_names_ = cfg["column_names"]
        self.named_input_ = cfg["named_input"]
        self.input_dtypes_ = cfg["input_dtypes"]
        self.n_features_in_ = len(self.input_columns_)
        if self.named_input_:
            self.feature_names_in_ = np.asarray(self.input_columns_, dtype=object)
        self.categories_ = cfg["categories"]
        self.constants_ = {k: tuple(v) for k, v in cfg["constants"].items()}
        self.encoder_ = TabularEncoder.from_state(cfg["encoder"])
        self.schema_ = self.encoder_.schema_
        self.dims_ = cfg["dims"]
        self.n_steps_ = cfg["n_steps"]
        self.best_epoch_ = cfg["best_epoch"]
        if cfg["best_gan_step"] is not None:
            self.best_gan_step_ = cfg["best_gan_step"]
        self.guard_thresholds_ = np.asarray(cfg["guard_thresholds"], dtype=float)
        self.n_dropped_ = cfg["n_dropped"]
        self.dropped_index_ = np.asarray(cfg["dropped_index"], dtype=np.int64)
        self.validation_index_ = np.asarray(cfg["validation_index"], dtype=np.int64)
        self.sample_seed_ = cfg["sample_seed"]
        self.history_ = cfg["history"]
        self.timings_ = cfg["timings"]
        self._eye = torch.eye(self.dims_["n_classes"], device=self.device_)

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.vae_ = self._build_vae()
        self.vae_.load_state_dict(part("vae."))
        self.vae_.to(self.device_).eval()
        self._refresh_decoder()
        self.gan_ = None
        if self.model == "gan":
            self.gan_ = self._build_gan()
            self.gan_.load_state_dict(part("gan."))
            self.gan_.to(self.device_).eval()
        post = part("post.")
        if post:
            self._set_posteriors(post["mu"], post["logvar"], post["labels"].numpy())
        self._guard = None
        if "guard.values" in tensors:
            self._guard = CopyGuard(tensors["guard.values"].numpy(),
                                    tensors["guard.slots"].numpy(),
                                    tensors["guard.labels"].numpy(), self._n_slots(),
                                    self.guard_thresholds_)
        self.detector_ = None
        if cfg["detector"] is not None:
            self.detector_ = AnomalyDetector.from_state(cfg["detector"], part("detector."),
                                                        device=device)
            self.anomaly_thresholds_ = np.asarray(cfg["anomaly_thresholds"], dtype=float)
        self._sample_rng = np.random.default_rng(self.sample_seed_)
        return self


# ----------------------------------------------------------------------------------- helpers
class _Best:
    """Keeps a copy of a module's weights at its best (lowest) validation score so far."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.score = math.inf
        self.state: dict[str, torch.Tensor] | None = None
        self.at: int | None = None
        self.bad = 0

    def update(self, score: float, at: int, patience: int) -> bool:
        """Record ``score``; True once ``patience`` checks in a row did not improve it."""
        if score < self.score - 1e-4:
            self.score, self.at, self.bad = score, at, 0
            self.state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            return False
        self.bad += 1
        return self.bad >= patience

    def restore(self) -> None:
        if self.state is not None:
            self.module.load_state_dict(self.state)


class _Checker:
    """Validation C2ST: synthetic rows for the held-out rows' classes against those rows,
    with the same random numbers at every check so that checks compare like with like."""

    min_rows = 5

    def __init__(self, aug: Augmenter, real: np.ndarray, y_idx: np.ndarray,
                 seed: np.random.SeedSequence) -> None:
        self.aug = aug
        self.real = real
        self.y_idx = y_idx
        self.seed = int(seed.generate_state(1)[0])
        counts = np.bincount(y_idx, minlength=len(aug.classes_))
        # every class counts the same: augmenting is mostly about the small ones
        self.classes = [c for c in range(len(counts)) if counts[c] >= self.min_rows]
        self.n_synth = {c: int(max(counts[c], 200)) for c in self.classes}
        self.active = bool(self.classes)

    def __call__(self, source: str) -> float:
        aug = self.aug
        aug._refresh_decoder()
        tg = torch.Generator(device="cpu").manual_seed(self.seed)
        labels = np.concatenate([np.full(self.n_synth[c], c) for c in self.classes])
        v, m, s = aug._draw(labels, source, tg)
        synth = aug._encode_drawn(v, m, s)
        self.last = {c: knn_c2st(self.real[self.y_idx == c], synth[labels == c])
                     for c in self.classes}
        return float(np.mean(list(self.last.values())))

    @torch.inference_mode()
    def latent(self, aug: Augmenter) -> float:
        """C2ST in latent space, per class: generator output against posterior draws of the
        training rows (tells the GAN's error from the decoder's)."""
        assert aug.gan_ is not None
        tg = torch.Generator(device="cpu").manual_seed(self.seed + 1)
        lab = aug._post_labels.cpu().numpy()
        aucs: list[float] = []
        self.last = {}
        for c in self.classes:
            rows = np.flatnonzero(lab == c)[:1000]
            if len(rows) < self.min_rows:
                continue
            idx = torch.as_tensor(rows, device=aug.device_)
            shape = (len(rows), aug.dims_["latent"])
            eps = torch.randn(shape, generator=tg).to(aug.device_)
            real = aug._post_mu[idx] + torch.exp(0.5 * aug._post_logvar[idx]) * eps
            fake = aug.gan_(torch.randn(shape, generator=tg).to(aug.device_),
                            aug._eye[aug._post_labels[idx]])
            aucs.append(knn_c2st(real.cpu().numpy(), fake.cpu().numpy()))
            self.last[c] = aucs[-1]
        return float(np.mean(aucs)) if aucs else float("nan")


def _labels(y: Any, n: int) -> np.ndarray:
    if y is None:
        raise ValueError("Augmenter needs labels y (use a constant array for one class)")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) != n:
        raise GenaugInputError("labels do not match the rows", column=LABEL_COLUMN,
                               expected=f"{n} labels in a 1-D array", found=f"shape {arr.shape}")
    if pd.isna(pd.Series(arr)).any():
        raise GenaugInputError("missing labels", column=LABEL_COLUMN,
                               expected="a label for every row",
                               found=f"{int(pd.isna(pd.Series(arr)).sum())} missing")
    if arr.dtype == object:
        try:
            arr = arr.astype(type(arr[0])) if len({type(v) for v in arr}) == 1 else arr
        except (TypeError, ValueError):
            pass
    return arr


def _constant(s: pd.Series) -> tuple[Any, str]:
    """The value and dtype of a constant column, JSON-ready."""
    v = s.dropna().iloc[0] if s.notna().any() else None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, pd.Timestamp):
        v = v.isoformat()
    return v, str(s.dtype)


def _stratified_split(
    y_idx: np.ndarray, keep: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows among ``keep``: ``fraction`` of each class (none from
    classes with fewer than 10 rows)."""
    fit, val = [], []
    for c in np.unique(y_idx):
        rows = rng.permutation(np.flatnonzero((y_idx == c) & keep))
        k = int(round(fraction * len(rows))) if len(rows) >= 10 else 0
        val.append(rows[:k])
        fit.append(rows[k:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val)).astype(np.int64)


def _class_sampler(y_idx: np.ndarray, n_classes: int, balanced: bool) -> Any:
    """Minibatch indices ``(K, B)``: classes equally likely (``balanced``) or as in the data."""
    order = np.argsort(y_idx, kind="stable")
    counts = np.bincount(y_idx, minlength=n_classes)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    present = np.flatnonzero(counts)
    p = np.full(len(present), 1.0 / len(present)) if balanced else counts[present] / len(y_idx)

    def sample(rng: np.random.Generator, k: int, b: int) -> np.ndarray:
        cls = present[rng.choice(len(present), size=(k, b), p=p)]
        pos = (rng.random((k, b)) * counts[cls]).astype(np.int64)
        return order[starts[cls] + np.minimum(pos, counts[cls] - 1)]

    return sample


def _torch_gen(seed: np.random.SeedSequence) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(int(seed.generate_state(2)[1]))
