"""Labelled validation sets with injected *dependency* anomalies, for the retrain gate.

Real anomaly labels are rarely at hand. A dependency anomaly (ADBench's term, Han et al. 2022)
is a row whose every column is a real value from the data, drawn independently of the other
columns: each marginal distribution is intact, only the joint structure is broken, which is
exactly what a detector of unusual rows should notice. The set is deterministic for a seed.

    python -m genaug.anomalies data/sample/adult_incoming.parquet \\
        data/sample/adult_validation.parquet --n-anomalies 60 --seed 0

rebuilds the shipped ``adult_validation.parquet``: the 600 incoming rows labelled 0, plus 60
rows labelled 1 whose columns were each drawn from a different random incoming row.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd

from .io import atomic_path, read_table


def with_dependency_anomalies(df: pd.DataFrame, n_anomalies: int, *, seed: int = 0,
                              label: str = "is_anomaly") -> pd.DataFrame:
    """``df`` labelled 0, plus ``n_anomalies`` rows labelled 1 whose columns are sampled
    independently (each column's value from its own random row of ``df``)."""
    if label in df.columns:
        raise ValueError(f"df already has a column named {label!r}")
    if n_anomalies < 1 or len(df) < 2:
        raise ValueError("need n_anomalies >= 1 and at least 2 rows")
    rng = np.random.default_rng(seed)
    fake = pd.DataFrame({c: df[c].iloc[rng.integers(0, len(df), n_anomalies)].to_numpy()
                         for c in df.columns})
    fake = fake.astype(df.dtypes.to_dict())
    out = pd.concat([df.reset_index(drop=True), fake], ignore_index=True)
    out[label] = np.r_[np.zeros(len(df), dtype=np.int64), np.ones(n_anomalies, dtype=np.int64)]
    # shuffle so that file order says nothing about the label
    return out.iloc[rng.permutation(len(out))].reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    """Write a validation set built by :func:`with_dependency_anomalies` (Parquet)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--n-anomalies", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", default="is_anomaly")
    args = p.parse_args(argv)
    out = with_dependency_anomalies(read_table(args.source), args.n_anomalies, seed=args.seed,
                                    label=args.label)
    with atomic_path(os.fspath(args.out)) as tmp:
        out.to_parquet(tmp, index=False)
    print(f"wrote {args.out}: {len(out)} rows, {int(out[args.label].sum())} anomalies")


if __name__ == "__main__":
    main()
