"""The VAE anomaly detector: a scikit-learn estimator for mixed-type tables.

Score of a row (``decision_function``, higher = more anomalous):

* ``vae_score(X)``: the negative ELBO at the posterior mean, averaged over ``n_members``
  VAEs: ``sum_j NLL_j(x) + KL(q(z|x) || p(z))``. ``explain(X)`` returns the ``NLL_j`` per input
  column (averaged over members) and ``explain(X, with_latent=True)`` adds the KL as a column
  named ``__latent__``, so ``explain(X, with_latent=True).sum(axis=1) == vae_score(X)``.
* With ``combine="none"`` the decision score *is* ``vae_score``.
* With ``combine="iforest"`` (the default, chosen by ``benchmarks/anomaly.py``), the VAE score
  and an isolation forest's score are each mapped through their empirical CDF on the training
  rows (linearly extended beyond the observed range) and averaged. The map is monotone, so
  rows are still ordered by how unusual both parts find them, but the score no longer
  decomposes; ``explain`` then tells which columns drive the VAE part.
"""

from __future__ import annotations

import logging
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .drift import DriftAccumulator, TrainingProfile
from .errors import ModelFormatError
from .forest import ArrayForest
from .likelihood import ColumnNLL
from .nn.vae import EnsembleVAE
from .persistence import read_model_folder, write_model_folder
from .schema import Schema, as_frame, infer_schema
from .threshold import ThresholdMixin
from .training import TensorTable, resolve_device, score_parts, torch_threads, train_vae
from .transform import TabularEncoder

log = logging.getLogger(__name__)

FORMAT = "genaug.AnomalyDetector"
FORMAT_VERSION = 1
LATENT_COLUMN = "__latent__"


class _Calibrator:
    """Monotone map of a raw score to its training ECDF, extended linearly past the ends."""

    def __init__(self, quantiles: np.ndarray) -> None:
        self.q = np.asarray(quantiles, dtype=float)

    @classmethod
    def fit(cls, scores: np.ndarray, n: int = 513) -> _Calibrator:
        return cls(np.quantile(scores, np.linspace(0, 1, n)))

    def __call__(self, s: np.ndarray) -> np.ndarray:
        q = self.q
        p = np.linspace(0, 1, len(q))
        mid = q[len(q) // 2]
        out = np.interp(s, q, p)
        hi_scale = max(q[-1] - mid, 1e-12)
        lo_scale = max(mid - q[0], 1e-12)
        out = np.where(s > q[-1], 1.0 + (s - q[-1]) / hi_scale, out)
        return np.where(s < q[0], (s - q[0]) / lo_scale, out)


class AnomalyDetector(ThresholdMixin, BaseEstimator):
    """VAE anomaly detector for tables with numeric, categorical and missing values.

    Follows PyOD's convention: ``decision_function`` is higher for more anomalous rows and
    ``predict`` returns 1 for anomalies, 0 otherwise (not scikit-learn's +1/-1).

    Parameters
    ----------
    n_members : number of VAEs (different initialisations) whose scores are averaged.
    hidden, latent : layer width and latent size; ``None`` = ``clip(2d, 32, 128)`` and
        ``clip(d // 3, 2, 16)`` for ``d`` encoded features.
    n_layers : hidden layers in encoder and decoder.
    beta, warmup : KL weight and the fraction of steps over which it ramps up.
    max_steps, max_epochs : training length is ``min(max_steps, max_epochs * batches/epoch)``.
    batch_size, lr : Adam minibatch size and learning rate.
    trim : after warm-up, the share of highest-loss rows left out of each minibatch's loss
        (robustness to anomalies hidden in the training data).
    combine : ``"iforest"`` rank-averages with an isolation forest, ``"none"`` is the VAE alone.
    contamination : target false-alarm rate; ``threshold_`` is this upper quantile of scores on
        the held-out validation rows.
    validation_fraction : share of training rows held out for the threshold and val loss.
    numeric : ``"standard"`` or ``"quantile"`` normalisation of numeric columns.
    max_levels : one-hot cap per categorical column (rarer levels share ``__other__``).
    int_max_levels : integer columns with at most this many values are categorical.
    constant_columns : ``"drop"`` (warn and exclude) or ``"error"``.
    handle_unknown : unseen categories at scoring: ``"error"`` or ``"keep"`` (scored as rare).
    target : a column to leave out of the features (e.g. a label), if present.
    exclude_columns : more columns to leave out (they are allowed, and ignored, at scoring).
    device : ``"auto"``, ``"cpu"``, ``"cuda"``...
    n_threads : torch CPU threads while fitting and scoring (restored afterwards); these small
        MLPs run fastest on one thread. ``None`` leaves torch's setting alone.
    random_state : seed; the same seed, data and CPU give identical scores.
    verbose : show a progress bar while training.
    """

    def __init__(
        self,
        *,
        n_members: int = 3,
        hidden: int | None = None,
        latent: int | None = None,
        n_layers: int = 2,
        beta: float = 1.0,
        warmup: float = 0.1,
        max_steps: int = 1000,
        max_epochs: int = 300,
        batch_size: int = 128,
        lr: float = 1e-3,
        trim: float = 0.2,
        combine: Literal["iforest", "none"] = "iforest",
        n_trees: int = 100,
        contamination: float = 0.01,
        validation_fraction: float = 0.1,
        numeric: Literal["standard", "quantile"] = "standard",
        max_levels: int = 50,
        int_max_levels: int = 10,
        constant_columns: Literal["drop", "error"] = "drop",
        handle_unknown: Literal["error", "keep"] = "error",
        target: str | None = None,
        exclude_columns: tuple[str, ...] = (),
        device: str = "auto",
        n_threads: int | None = 1,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_members = n_members
        self.hidden = hidden
        self.latent = latent
        self.n_layers = n_layers
        self.beta = beta
        self.warmup = warmup
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.trim = trim
        self.combine = combine
        self.n_trees = n_trees
        self.contamination = contamination
        self.validation_fraction = validation_fraction
        self.numeric = numeric
        self.max_levels = max_levels
        self.int_max_levels = int_max_levels
        self.constant_columns = constant_columns
        self.handle_unknown = handle_unknown
        self.target = target
        self.exclude_columns = exclude_columns
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------------- fit
    def _check_params(self) -> None:
        choices = {"combine": ("iforest", "none"), "numeric": ("standard", "quantile"),
                   "constant_columns": ("drop", "error"), "handle_unknown": ("error", "keep")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0.0 < self.contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
        if not 0.0 <= self.validation_fraction < 0.9:
            raise ValueError("validation_fraction must be in [0, 0.9)")
        if not 0.0 <= self.trim < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {self.trim}")
        if self.n_members < 1 or self.max_steps < 1 or self.batch_size < 1:
            raise ValueError("n_members, max_steps and batch_size must be at least 1")
        if self.random_state is not None and not isinstance(self.random_state, (int, np.integer)):
            raise ValueError("random_state must be an int or None")

    def fit(self, X: Any, y: Any = None, *, file: str | None = None) -> AnomalyDetector:
        """Learn the schema, encoder, VAEs, (forest) and threshold from ``X``; ``y`` is ignored."""
        self._check_params()
        with torch_threads(self.n_threads):
            return self._fit(X, file)

    def _fit(self, X: Any, file: str | None) -> AnomalyDetector:
        df = as_frame(X)
        schema = infer_schema(
            df, target=self.target if self.target in df.columns else None, file=file,
            int_max_levels=self.int_max_levels, constant=self.constant_columns,
            all_numeric=not isinstance(X, pd.DataFrame), exclude=tuple(self.exclude_columns),
        )
        clean = schema.validate(df, file=file)
        seed = np.random.SeedSequence(self.random_state)
        s_split, s_torch, s_batch, s_forest = seed.spawn(4)
        rng = np.random.default_rng(s_split)
        n = len(clean)
        n_val = int(round(self.validation_fraction * n)) if n >= 20 else 0
        perm = rng.permutation(n)
        val_idx, fit_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])

        self.schema_ = schema
        # compact bin counts of the training columns, for drift reports at scoring (genaug.drift)
        self.profile_: TrainingProfile | None = TrainingProfile.fit(clean, schema)
        self._set_input_attrs(list(map(str, df.columns)), isinstance(X, pd.DataFrame))
        # all rows: a column whose few values all fell into the validation split must still
        # get normalisation constants (no labels are involved)
        self.encoder_ = TabularEncoder(numeric=self.numeric, max_levels=self.max_levels).fit(
            clean, schema
        )
        self.device_ = resolve_device(self.device)
        enc = self.encoder_.transform(clean)
        d = self.encoder_.n_features_out_
        self.dims_ = {
            "n_features": d,
            "n_numeric": len(self.encoder_.num_spans),
            "hidden": self.hidden or int(np.clip(2 * d, 32, 128)),
            "latent": self.latent or int(np.clip(d // 3, 2, 16)),
            "n_layers": self.n_layers,
            "n_members": self.n_members,
        }
        g = torch.Generator(device="cpu").manual_seed(int(s_torch.generate_state(1)[0]))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(s_torch.generate_state(2)[1]))
            self.model_ = self._build_model().to(self.device_)
        self._nll = ColumnNLL(self.encoder_, self.device_)
        table = TensorTable.from_encoded(enc, self.device_)
        fit_t = table.take(torch.as_tensor(fit_idx, device=self.device_))
        val_t = table.take(torch.as_tensor(val_idx, device=self.device_)) if n_val else None
        steps_per_epoch = max(1, math.ceil(len(fit_idx) / min(self.batch_size, len(fit_idx))))
        self.n_steps_ = int(min(self.max_steps, self.max_epochs * steps_per_epoch))
        self.history_ = train_vae(
            self.model_, self._nll, fit_t, val_t, n_steps=self.n_steps_,
            batch_size=self.batch_size, lr=self.lr, beta=self.beta, warmup=self.warmup,
            trim=self.trim,
            generator=g, rng=np.random.default_rng(s_batch), progress=self.verbose,
            desc="training VAE",
        )
        vae_all = self._vae_score_table(table)
        self.forest_ = None
        self.calibrators_: dict[str, _Calibrator] = {}
        if self.combine == "iforest":
            self.forest_ = ArrayForest.fit(
                enc.X[fit_idx], self.n_trees, int(s_forest.generate_state(1)[0] % 2**31)
            )
            forest_all = self.forest_.score(enc.X)
            self.calibrators_ = {
                "vae": _Calibrator.fit(vae_all[fit_idx]),
                "iforest": _Calibrator.fit(forest_all[fit_idx]),
            }
            scores = self._combine(vae_all, forest_all)
        else:
            scores = vae_all
        self.decision_scores_ = scores
        self.validation_index_ = val_idx if n_val else fit_idx
        self.validation_scores_ = scores[val_idx] if n_val else scores[fit_idx]
        if not n_val:
            warnings.warn("fewer than 20 rows: the threshold is set on training scores, which "
                          "underestimates the false-alarm rate", UserWarning, stacklevel=2)
        self.set_threshold(contamination=self.contamination)
        self.labels_ = (scores > self.threshold_).astype(int)
        return self

    def _set_input_attrs(self, columns: list[str], named: bool) -> None:
        self.input_columns_ = columns
        self.n_features_in_ = len(columns)
        if named:
            self.feature_names_in_ = np.asarray(columns, dtype=object)
        self.model_feature_names_ = list(self.schema_.feature_names)

    def _build_model(self) -> EnsembleVAE:
        dm = self.dims_
        return EnsembleVAE(
            dm["n_features"], dm["n_numeric"], hidden=dm["hidden"], latent=dm["latent"],
            n_layers=dm["n_layers"], n_members=dm["n_members"],
        )

    # ------------------------------------------------------------------------------- scoring
    def _clean(self, X: Any, file: str | None, allow_extra: tuple[str, ...] = ()) -> pd.DataFrame:
        check_is_fitted(self, "model_")
        df = as_frame(X, columns=None if isinstance(X, pd.DataFrame) else self.input_columns_)
        return self.schema_.validate(df, file=file, handle_unknown=self.handle_unknown,
                                     allow_extra=allow_extra)

    def _table(self, X: Any, file: str | None, allow_extra: tuple[str, ...] = ()) -> TensorTable:
        clean = self._clean(X, file, allow_extra)
        return TensorTable.from_encoded(self.encoder_.transform(clean), self.device_)

    def _vae_parts(self, table: TensorTable) -> tuple[np.ndarray, np.ndarray]:
        with torch_threads(self.n_threads):
            nll, kl = score_parts(self.model_, self._nll, table)
        return nll.mean(0).cpu().numpy().astype(float), kl.mean(0).cpu().numpy().astype(float)

    def _vae_score_table(self, table: TensorTable) -> np.ndarray:
        nll, kl = self._vae_parts(table)
        return nll.sum(1) + kl

    def _combine(self, vae: np.ndarray, forest: np.ndarray) -> np.ndarray:
        return 0.5 * (self.calibrators_["vae"](vae) + self.calibrators_["iforest"](forest))

    def _final_score(self, vae: np.ndarray, table: TensorTable) -> np.ndarray:
        """The decision score from the VAE score (and the forest, when combined)."""
        if self.forest_ is None:
            return vae
        return self._combine(vae, self.forest_.score(table.X.cpu().numpy(),
                                                     n_threads=self.n_threads))

    def vae_score(self, X: Any, *, file: str | None = None) -> np.ndarray:
        """Negative ELBO per row at the posterior mean (averaged over members)."""
        return self._vae_score_table(self._table(X, file))

    def decision_function(self, X: Any, *, file: str | None = None) -> np.ndarray:
        """Anomaly score per row; higher = more anomalous (see the module docstring)."""
        table = self._table(X, file)
        return self._final_score(self._vae_score_table(table), table)

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn's convention: the opposite of :meth:`decision_function`."""
        return -self.decision_function(X)

    def predict(self, X: Any, *, file: str | None = None) -> np.ndarray:
        """1 for rows scoring above ``threshold_``, else 0."""
        return (self.decision_function(X, file=file) > self.threshold_).astype(int)

    def explain(
        self, X: Any, *, with_latent: bool = False, file: str | None = None
    ) -> pd.DataFrame:
        """Per-column reconstruction NLL (nats), one column per model input column.

        Rows plus the ``__latent__`` KL term (``with_latent=True``) sum to :meth:`vae_score`.
        """
        nll, kl = self._vae_parts(self._table(X, file))
        index = X.index if isinstance(X, pd.DataFrame) else None
        out = pd.DataFrame(nll, columns=self.schema_.feature_names, index=index)
        if with_latent:
            out[LATENT_COLUMN] = kl
        return out

    def score_frame(
        self, X: Any, *, file: str | None = None, allow_extra: tuple[str, ...] = ()
    ) -> pd.DataFrame:
        """``score``, ``is_anomaly`` and per-column contributions, in one frame.

        ``allow_extra`` names columns that may be present and are ignored (e.g. a row key).
        """
        score, flag, nll, _ = self.score_arrays(X, file=file, allow_extra=allow_extra)
        index = X.index if isinstance(X, pd.DataFrame) else None
        out = pd.DataFrame({"score": score, "is_anomaly": flag}, index=index)
        contrib = pd.DataFrame(nll, columns=[f"contrib_{c}" for c in self.schema_.feature_names],
                               index=index)
        return pd.concat([out, contrib], axis=1)

    def score_arrays(
        self, X: Any, *, file: str | None = None, allow_extra: tuple[str, ...] = ()
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
        """:meth:`score_frame`'s content as arrays, plus the validated frame.

        Returns ``score`` (n,), ``is_anomaly`` (n,) int, the per-column contributions (n, C),
        and the frame cleaned by the schema (what drift counting needs, so it is not validated
        twice).
        """
        clean, table = self._prepare(X, file, tuple(allow_extra))
        score, flag, nll = self._score_table(table)
        return score, flag, nll, clean

    def _prepare(
        self, X: Any, file: str | None, allow_extra: tuple[str, ...] = ()
    ) -> tuple[pd.DataFrame, TensorTable]:
        """Validate and encode (pandas and NumPy work; :mod:`genaug.scoring` runs it in a
        thread beside :meth:`_score_table`, which is torch and numba work)."""
        clean = self._clean(X, file, allow_extra)
        return clean, TensorTable.from_encoded(self.encoder_.transform(clean), self.device_)

    def _score_table(
        self, table: TensorTable, pool: ThreadPoolExecutor | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score, flag and contributions; with a ``pool``, the forest runs in one of its
        threads while torch runs the VAEs here (both release the GIL)."""
        if pool is None or self.forest_ is None:
            nll, kl = self._vae_parts(table)
            score = self._final_score(nll.sum(1) + kl, table)
        else:
            forest = pool.submit(self.forest_.score, table.X.cpu().numpy(), n_threads=1)
            nll, kl = self._vae_parts(table)
            score = self._combine(nll.sum(1) + kl, forest.result())
        return score, (score > self.threshold_).astype(int), nll

    def drift_accumulator(self, min_rows: int | None = None) -> DriftAccumulator:
        """A :class:`~genaug.drift.DriftAccumulator` for this model's training profile.

        Column drift is unavailable (reported as such) for models saved before profiles existed.
        """
        check_is_fitted(self, "validation_scores_")
        kw = {} if min_rows is None else {"min_rows": min_rows}
        return DriftAccumulator(getattr(self, "profile_", None), self.schema_,
                                self.validation_scores_, expected_flag_rate=self.flag_rate_, **kw)

    # ------------------------------------------------------------------------------- persistence
    def save(self, folder: str | Path) -> Path:
        """Write the fitted model to ``folder`` (JSON + tensors; no pickle)."""
        return write_model_folder(folder, *self.to_state())

    def to_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The fitted model as a JSON-ready config and a flat dict of tensors (see :meth:`save`;
        other models embed a detector this way)."""
        check_is_fitted(self, "model_")
        tensors = {f"vae.{k}": v for k, v in self.model_.state_dict().items()}
        if self.forest_ is not None:
            for k, v in self.forest_.arrays.items():
                tensors[f"forest.{k}"] = torch.as_tensor(v)
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "input_columns": self.input_columns_,
            "named_input": hasattr(self, "feature_names_in_"),
            "encoder": self.encoder_.get_state(),
            "dims": self.dims_,
            "n_steps": self.n_steps_,
            "threshold": self.threshold_,
            "validation_scores": self.validation_scores_,
            "validation_index": self.validation_index_,
            "decision_scores": self.decision_scores_,
            "history": self.history_,
            "profile": None if self.profile_ is None else self.profile_.to_dict(),
            "calibrators": {k: c.q for k, c in self.calibrators_.items()},
            "forest": None if self.forest_ is None else {
                "denominator": self.forest_.denominator, "max_depth": self.forest_.max_depth},
        }
        return config, tensors

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto") -> AnomalyDetector:
        """Rebuild a detector saved by :meth:`save` (on any device)."""
        return cls.from_state(*read_model_folder(folder, FORMAT, {FORMAT_VERSION}), device=device)

    @classmethod
    def from_state(
        cls, cfg: dict[str, Any], tensors: dict[str, torch.Tensor], device: str = "auto"
    ) -> AnomalyDetector:
        """Rebuild a detector from :meth:`to_state`'s output."""
        if cfg.get("format") != FORMAT or cfg.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(
                f"expected a {FORMAT!r} model of version {FORMAT_VERSION}, got "
                f"{cfg.get('format')!r} version {cfg.get('format_version')!r}"
            )
        params = dict(cfg["params"], device=device)
        self = cls(**params)
        self.encoder_ = TabularEncoder.from_state(cfg["encoder"])
        self.schema_: Schema = self.encoder_.schema_
        self._set_input_attrs(cfg["input_columns"], cfg.get("named_input", True))
        self.dims_ = cfg["dims"]
        self.n_steps_ = cfg["n_steps"]
        self.device_ = resolve_device(device)
        self.model_ = self._build_model()
        self.model_.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("vae.")})
        self.model_.to(self.device_).eval()
        self._nll = ColumnNLL(self.encoder_, self.device_)
        self.history_ = cfg["history"]
        # absent in folders saved before drift profiles: drift is then reported as unavailable
        profile = cfg.get("profile")
        self.profile_ = None if profile is None else TrainingProfile.from_dict(profile)
        self.calibrators_ = {k: _Calibrator(np.asarray(q)) for k, q in cfg["calibrators"].items()}
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

    def __getstate__(self) -> dict[str, Any]:
        # ColumnNLL holds device tensors; rebuild it rather than pickling it (e.g. for clone)
        state = dict(self.__dict__)
        state.pop("_nll", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "encoder_" in state and "device_" in state:
            self._nll = ColumnNLL(self.encoder_, self.device_)
