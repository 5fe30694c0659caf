"""A bounded uniform random sample of a table too large for memory (``max_train_rows``).

Every row gets a uniform random key, drawn in file order from a seeded generator, and the
``n`` rows with the smallest keys are kept (bottom-k sampling: a uniform sample without
replacement). Parquet files are read batch by batch, so memory holds ``n`` rows plus one batch
whatever the file size; the sample is the same for a given seed whatever the batch size, and
comes back in file order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .io import PARQUET_SUFFIXES, iter_parquet_record_batches, read_table


def sample_parquet(
    path: str | os.PathLike,
    n: int,
    *,
    random_state: int | None = 0,
    columns: list[str] | None = None,
    batch_rows: int = 262144,
) -> pd.DataFrame:
    """``n`` rows drawn uniformly without replacement from a Parquet file (all rows if fewer)."""
    if n < 1:
        raise ValueError(f"the sample size must be at least 1, got {n}")
    rng = np.random.default_rng(random_state)
    kept: pa.Table | None = None
    keys = np.empty(0)
    seen = 0
    for batch in iter_parquet_record_batches(path, batch_rows, columns):
        k = rng.random(batch.num_rows)
        order = np.arange(seen, seen + batch.num_rows)
        seen += batch.num_rows
        if kept is not None and len(keys) >= n:
            cand = np.flatnonzero(k < keys.max())  # rows that can enter the sample
            if not len(cand):
                continue
            batch, k, order = batch.take(pa.array(cand)), k[cand], order[cand]
        table = pa.Table.from_batches([batch.append_column("__order__", pa.array(order))])
        kept = table if kept is None else pa.concat_tables([kept, table])
        keys = np.concatenate([keys, k])
        if len(keys) > n:
            best = np.sort(np.argpartition(keys, n - 1)[:n])
            kept, keys = kept.take(pa.array(best)), keys[best]
    assert kept is not None  # iter_parquet_record_batches rejects files without rows
    kept = kept.take(pa.array(np.argsort(kept.column("__order__").to_numpy(), kind="stable")))
    return kept.drop_columns(["__order__"]).to_pandas()


def read_training_table(
    path: str | os.PathLike, max_rows: int | None = None, *, random_state: int | None = 0
) -> tuple[pd.DataFrame, int | None]:
    """The training table of ``path``: all of it, or a seeded uniform sample of ``max_rows``.

    Returns the frame and the file's row count when a sample was taken (else None). Parquet
    files are sampled in batches (bounded memory); CSV files are read whole, then sampled.
    """
    if max_rows is None:
        return read_table(path), None
    if max_rows < 1:
        raise ValueError(f"max_train_rows must be at least 1, got {max_rows}")
    if Path(path).suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        df = sample_parquet(path, max_rows, random_state=random_state)
        total = pq.ParquetFile(path).metadata.num_rows
    else:
        full = read_table(path)
        total = len(full)
        if total <= max_rows:
            return full, total
        rng = np.random.default_rng(random_state)
        idx = np.sort(np.argpartition(rng.random(total), max_rows - 1)[:max_rows])
        df = full.iloc[idx].reset_index(drop=True)
    return df, total
