"""Baseline over-samplers for augmentation arms: random duplication and the SMOTE family.

:class:`SmoteSampler` picks SMOTE (all columns numeric), SMOTENC (mixed) or SMOTEN (all
categorical) from the column dtypes of ``X`` when it is fitted, and copes with missing
values, which imbalanced-learn's SMOTE variants reject: numeric gaps are filled with the
column's median and categorical gaps become a level of their own, only to find neighbours and
interpolate. The original rows come back unchanged (with their gaps); synthetic rows carry
interpolated numbers and, where the level drawn was "missing", a missing category.

:func:`make_arm` turns an arm name into a factory ``seed -> sampler | None`` as
:func:`genaug.evaluation.evaluate_augmentation` expects: "none", "random", "smote", and
genaug's own generators "vae", "gan" and "default" (the :class:`~genaug.Augmenter`'s default
model), optionally with an anomaly filter: "+drop" (drop training rows the detector flags),
"+reject" (redraw synthetic rows it flags) or "+filter" (both), e.g. ``"vae+filter"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE, SMOTEN, SMOTENC, RandomOverSampler
from imblearn.utils import check_sampling_strategy
from sklearn.base import BaseEstimator

from .errors import GenaugInputError

MISSING_LEVEL = "__missing__"
ARM_NAMES = ("none", "random", "smote", "vae", "gan", "default")
FILTERS = {"": {}, "drop": {"drop_anomalies": True}, "reject": {"reject_anomalies": True},
           "filter": {"drop_anomalies": True, "reject_anomalies": True}}


def is_numeric_column(s: pd.Series) -> bool:
    """True for numeric, non-boolean dtypes; everything else is treated as categorical."""
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


class SmoteSampler(BaseEstimator):
    """SMOTE, SMOTENC or SMOTEN chosen from the column dtypes; tolerates missing values.

    Parameters follow imbalanced-learn (``sampling_strategy``, ``k_neighbors``,
    ``random_state``). ``k_neighbors`` is lowered to (rows of the smallest class to grow) - 1
    when that class is small. After :meth:`fit_resample`: ``kind_`` ("SMOTE", "SMOTENC",
    "SMOTEN"), ``sampler_`` (the imbalanced-learn object) and ``categorical_`` (column names).
    """

    def __init__(
        self, sampling_strategy: Any = "auto", k_neighbors: int = 5,
        random_state: int | None = None,
    ) -> None:
        self.sampling_strategy = sampling_strategy
        self.k_neighbors = k_neighbors
        self.random_state = random_state

    def fit_resample(self, X: Any, y: Any) -> tuple[pd.DataFrame, np.ndarray]:
        """Return the original rows followed by synthetic rows, and their labels."""
        df = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
        df = df.reset_index(drop=True)
        y_arr = np.asarray(y).ravel()
        if len(y_arr) != len(df):
            raise GenaugInputError("labels do not match the rows", expected=f"{len(df)} labels",
                                   found=f"{len(y_arr)}")
        cat = [c for c in df.columns if not is_numeric_column(df[c])]
        num = [c for c in df.columns if c not in cat]
        filled = df.copy()
        for c in num:
            med = filled[c].median()
            filled[c] = filled[c].fillna(0.0 if pd.isna(med) else med)
        for c in cat:
            filled[c] = filled[c].astype(object).where(filled[c].notna(), MISSING_LEVEL)
        k = self._neighbours(y_arr)
        if not cat:
            kind, sampler = "SMOTE", SMOTE(sampling_strategy=self.sampling_strategy,
                                           k_neighbors=k, random_state=self.random_state)
        elif not num:
            kind, sampler = "SMOTEN", SMOTEN(sampling_strategy=self.sampling_strategy,
                                             k_neighbors=k, random_state=self.random_state)
        else:
            kind, sampler = "SMOTENC", SMOTENC(
                categorical_features=[df.columns.get_loc(c) for c in cat],
                sampling_strategy=self.sampling_strategy, k_neighbors=k,
                random_state=self.random_state)
        X_res, y_res = sampler.fit_resample(filled, y_arr)
        # imbalanced-learn's over-samplers return the input rows first, new rows after them
        new = pd.DataFrame(X_res).iloc[len(df):].reset_index(drop=True)
        new.columns = df.columns
        for c in cat:
            new[c] = new[c].astype(object).where(new[c] != MISSING_LEVEL, np.nan)
        for c in num:  # interpolated: integer columns come back as floats
            new[c] = pd.to_numeric(new[c]).astype(float)
        self.kind_, self.sampler_, self.categorical_ = kind, sampler, cat
        out = pd.concat([df, new], ignore_index=True)
        return out, np.r_[y_arr, np.asarray(y_res)[len(df):]]

    def _neighbours(self, y: np.ndarray) -> int:
        grow = check_sampling_strategy(self.sampling_strategy, y, "over-sampling")
        if not grow:
            return self.k_neighbors
        classes, counts = np.unique(y, return_counts=True)
        smallest = min(int(counts[classes == c][0]) for c in grow)
        if smallest < 2:
            raise GenaugInputError("too few rows of a class to interpolate between",
                                   expected="at least 2 rows of each class to grow",
                                   found=f"{smallest} row(s)")
        return min(self.k_neighbors, smallest - 1)


def make_arm(name: str, **params: Any) -> Callable[[int], Any]:
    """A factory ``seed -> sampler | None`` for a named arm (module docstring).

    ``params`` go to the sampler (:class:`~imblearn.over_sampling.RandomOverSampler`,
    :class:`SmoteSampler` or :class:`~genaug.Augmenter`), e.g. ``k_neighbors=3`` or
    ``max_steps=300``.
    """
    if name == "none":
        if params:
            raise ValueError("the 'none' arm takes no parameters")
        return _none
    if name == "random":
        return lambda seed: RandomOverSampler(random_state=seed, **params)
    if name == "smote":
        return lambda seed: SmoteSampler(random_state=seed, **params)
    if is_generator_arm(name):
        from .augmenter import Augmenter

        model, _, filt = name.partition("+")
        opts = {**params, **FILTERS[filt]}
        if model != "default":
            opts["model"] = model
        return lambda seed: Augmenter(random_state=seed, **opts)
    raise ValueError(f"unknown arm {name!r}: expected one of {ARM_NAMES} or a factory")


def is_generator_arm(name: str) -> bool:
    """Whether ``name`` is one of genaug's generators ("vae", "gan+filter", ...)."""
    model, sep, filt = name.partition("+")
    return model in ("vae", "gan", "default") and filt in FILTERS and bool(filt) == bool(sep)


def _none(seed: int) -> None:
    return None
