"""The augmentation evaluation of :mod:`genaug.evaluation`, on images.

:func:`evaluate_image_augmentation` flattens images to a pixel table (one column per pixel, in
C x H x W order, values in [0, 1]) and runs :func:`~genaug.evaluation.evaluate_augmentation` on
it: the same seeded splits, classifiers on pixels, paired differences with confidence
intervals and verdicts. The arm ``"gan"`` is :class:`~genaug.image_augmenter.ImageAugmenter`
through :class:`PixelTableSampler`, which turns the training part's pixel table back into
images for the GAN.

The evaluation leaves out constant columns (e.g. a corner pixel black in every image); the
sampler puts them back, with their single value, before training the GAN, and returns only the
columns it was given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .evaluation import CLASSIFIERS, EvaluationResult, evaluate_augmentation
from .image_augmenter import ImageAugmenter
from .images import to_unit_array


def pixel_table(X: Any) -> tuple[pd.DataFrame, tuple[int, int, int]]:
    """Images -> a float pixel table with columns ``p0, p1, ...`` and the ``(C, H, W)`` shape."""
    x = to_unit_array(X)
    shape = tuple(int(v) for v in x.shape[1:])
    flat = x.reshape(len(x), -1).astype(np.float64)
    return pd.DataFrame(flat, columns=[f"p{i}" for i in range(flat.shape[1])]), shape


class PixelTableSampler:
    """An imbalanced-learn style sampler that runs an :class:`ImageAugmenter` on a pixel table.

    ``columns`` are all pixel columns in order and ``fill`` the value of each constant column;
    :meth:`fit_resample` accepts a table with any subset of the columns.
    """

    def __init__(self, augmenter: ImageAugmenter, columns: list[str],
                 fill: Mapping[str, float]) -> None:
        self.augmenter = augmenter
        self.columns = columns
        self.fill = dict(fill)

    def fit_resample(self, X: pd.DataFrame, y: Any) -> tuple[pd.DataFrame, np.ndarray]:
        """The given rows, then generated ones (columns as given)."""
        X = X.reset_index(drop=True)
        full = pd.DataFrame({c: X[c].to_numpy(float) if c in X.columns
                             else np.full(len(X), self.fill.get(c, 0.0))
                             for c in self.columns})
        X_res, y_res = self.augmenter.fit_resample(full, y)
        out = pd.concat([X, X_res.iloc[len(X):][list(X.columns)]], ignore_index=True)
        return out, np.asarray(y_res)


def gan_arm(
    shape: tuple[int, int, int], columns: list[str], fill: Mapping[str, float],
    **params: Any,
) -> Callable[[int], PixelTableSampler]:
    """A factory ``seed -> sampler`` for the ``"gan"`` arm (``params`` go to the augmenter)."""
    return lambda seed: PixelTableSampler(
        ImageAugmenter(image_shape=shape, random_state=seed, **params), columns, fill)


def evaluate_image_augmentation(
    X: Any,
    y: Any,
    arms: Sequence[str] | Mapping[str, Any] = ("none", "random", "gan"),
    *,
    classifiers: Sequence[str] | Mapping[str, Any] = CLASSIFIERS,
    gan_params: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> EvaluationResult:
    """Compare augmentation arms on images (see :func:`genaug.evaluation.evaluate_augmentation`
    for ``classifiers``, ``n_splits``, ``positive``...). Arms: "none", "random", "smote",
    "gan", or factories ``seed -> sampler`` that take a pixel table."""
    df, shape = pixel_table(X)
    const = {c: float(df[c].iloc[0]) for c in df.columns if df[c].nunique() == 1}
    items = arms.items() if isinstance(arms, Mapping) else [(a, a) for a in arms]
    resolved: dict[str, Any] = {}
    for name, a in items:
        if a == "gan":
            resolved[name] = gan_arm(shape, list(df.columns), const, **dict(gan_params or {}))
        else:
            resolved[name] = a
    return evaluate_augmentation(df, y, resolved, classifiers=classifiers, **kwargs)
