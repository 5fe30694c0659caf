"""Augmented datasets: real rows plus synthetic ones marked ``is_synthetic``, and a manifest.

:func:`augment_frame` asks a fitted :class:`~genaug.Augmenter` for the rows that a
``sampling_strategy`` (imbalanced-learn's meaning) calls for and appends them to the real table;
:func:`write_augmented` writes the Parquet file and its manifest atomically (temp file, then
rename), the manifest last, so a manifest always describes a complete file.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import GenaugInputError, MissingColumnError
from .io import atomic_path, write_json_atomic
from .ledger import file_digest

SYNTHETIC_COLUMN = "is_synthetic"


@dataclass
class Manifest:
    """Provenance of an augmented file (written as ``<output stem>.manifest.json``)."""

    source: str
    source_sha256: str
    output: str
    target: str
    seed: int | None
    sampling_strategy: Any
    model: dict[str, Any]
    rows_real: int
    rows_synthetic: int
    class_counts_real: dict[str, int]
    synthetic_by_class: dict[str, int]
    output_sha256: str = ""
    created: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @property
    def rows_total(self) -> int:
        return self.rows_real + self.rows_synthetic

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_total": self.rows_total}


def split_target(df: pd.DataFrame, target: str, file: str | None = None
                 ) -> tuple[pd.DataFrame, pd.Series]:
    """``(features, labels)``; a missing target column or missing labels are input errors."""
    if target not in df.columns:
        raise MissingColumnError("target column absent", file=file, column=target,
                                 expected=f"a column named {target!r}",
                                 found=f"columns {list(map(str, df.columns))}")
    y = df[target]
    if y.isna().any():
        raise GenaugInputError("missing labels in the target column", file=file, column=target,
                               expected="a label on every row",
                               found=f"{int(y.isna().sum())} missing")
    if SYNTHETIC_COLUMN in df.columns:
        raise GenaugInputError("the table is already augmented", file=file,
                               column=SYNTHETIC_COLUMN, expected="real rows only",
                               found=f"a {SYNTHETIC_COLUMN!r} column")
    return df.drop(columns=[target]), y


def synthetic_counts(y: Any, sampling_strategy: Any = "auto") -> dict[Any, int]:
    """Synthetic rows per class that ``sampling_strategy`` asks for (imbalanced-learn's
    over-sampling semantics: ``"auto"``, ``"minority"``, a float ratio, a dict...)."""
    from imblearn.utils import check_sampling_strategy

    labels = np.asarray(y)
    wanted = check_sampling_strategy(sampling_strategy, labels, "over-sampling")
    return {k.item() if isinstance(k, np.generic) else k: int(v)
            for k, v in wanted.items() if v > 0}


def augment_frame(
    X: pd.DataFrame, y: pd.Series, augmenter: Any, sampling_strategy: Any = "auto",
    *, random_state: int | None = None,
) -> tuple[pd.DataFrame, dict[Any, int]]:
    """Real rows (``is_synthetic`` False) then synthetic ones (True), with the label column.

    Column order and dtypes follow ``X``; the label column keeps ``y``'s name and dtype.
    ``random_state`` seeds the draws (None: the augmenter's own sequence).
    """
    counts = synthetic_counts(y, sampling_strategy)
    name = y.name if y.name is not None else "label"
    real = X.reset_index(drop=True).copy()
    real[name] = y.to_numpy()
    real[SYNTHETIC_COLUMN] = False
    parts = [real]
    seeds = np.random.SeedSequence(random_state).spawn(len(counts)) if random_state is not None \
        else [None] * len(counts)
    for (cls, k), seed in zip(counts.items(), seeds):
        rs = None if seed is None else int(seed.generate_state(1)[0])
        synth, lab = augmenter.sample(k, label=cls, random_state=rs)
        if set(synth.columns) == set(X.columns):
            synth = synth[list(X.columns)]
        else:
            raise GenaugInputError("the table's columns differ from the augmenter's",
                                   expected=f"columns {list(synth.columns)}",
                                   found=f"columns {list(X.columns)}")
        synth[name] = lab
        synth[SYNTHETIC_COLUMN] = True
        parts.append(synth)
    out = pd.concat(parts, ignore_index=True)
    for c in X.columns:  # concat may widen a dtype (categories, nullable ints): keep the input's
        if out[c].dtype != X[c].dtype:
            try:
                out[c] = out[c].astype(X[c].dtype)
            except (TypeError, ValueError):
                pass
    if out[name].dtype != y.dtype:
        out[name] = out[name].astype(y.dtype)
    return out, counts


def manifest_path(output: str | os.PathLike) -> Path:
    """``data/x.augmented.parquet`` -> ``data/x.augmented.manifest.json``."""
    output = Path(output)
    return output.with_name(output.stem + ".manifest.json")


def write_augmented(frame: pd.DataFrame, output: str | os.PathLike,
                    manifest: Manifest) -> Manifest:
    """Write ``frame`` to ``output`` (Parquet) and then its manifest, each atomically."""
    output = Path(output)
    with atomic_path(output) as tmp:
        frame.to_parquet(tmp, index=False)
    manifest.output = str(output)
    manifest.output_sha256 = file_digest(output)
    write_json_atomic(manifest.to_dict(), manifest_path(output))
    return manifest


def class_key(v: Any) -> str:
    """A class label as a JSON object key."""
    return str(v.item() if isinstance(v, np.generic) else v)
