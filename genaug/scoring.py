"""Score a whole file with bounded memory: read in batches, write the scores file atomically."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .detector import AnomalyDetector
from .drift import DriftAccumulator, DriftReport
from .errors import MissingColumnError
from .io import PARQUET_SUFFIXES, atomic_path, iter_parquet_record_batches, read_table
from .training import TensorTable


@dataclass
class ScoredFile:
    """Totals of a scored file, the first ``sample_rows`` score rows (for reports) and its drift
    against the training data (:mod:`genaug.drift`; None if not asked for)."""

    output: Path
    n_rows: int
    n_flagged: int
    sample: pd.DataFrame
    drift: DriftReport | None = None


def _prepared(
    batches: Iterator[pa.RecordBatch | pd.DataFrame],
    detector: AnomalyDetector,
    file: str,
    key_column: str | None,
) -> Iterator[tuple[pa.RecordBatch | pd.DataFrame, pd.DataFrame, pd.DataFrame, TensorTable]]:
    """Read, convert, validate and encode each batch: ``(batch, frame, clean, table)``."""
    extra = (key_column,) if key_column else ()
    for batch in batches:
        df = batch if isinstance(batch, pd.DataFrame) else batch.to_pandas()
        if key_column and key_column not in df.columns:
            raise MissingColumnError("key column absent", file=file, column=key_column,
                                     expected=f"a column named {key_column!r}",
                                     found=f"columns {list(df.columns)}")
        clean, table = detector._prepare(df, file, extra)
        yield batch, df, clean, table


class _Sink:
    """Writes score batches to the Parquet file, counts them, feeds drift, keeps a sample."""

    def __init__(self, path: Path, detector: AnomalyDetector, key_column: str | None,
                 metadata: dict[str, str] | None, acc: DriftAccumulator | None,
                 sample_rows: int) -> None:
        self.path = path
        self.names = [key_column or "row", "score", "is_anomaly",
                      *(f"contrib_{c}" for c in detector.schema_.feature_names)]
        self.metadata = metadata
        self.acc = acc
        self.sample_rows = sample_rows
        self.writer: pq.ParquetWriter | None = None
        self.samples: list[pd.DataFrame] = []
        self.n_rows = self.n_flagged = self.kept = 0

    def write(self, key: pa.Array, score: np.ndarray, flag: np.ndarray, nll: np.ndarray,
              df: pd.DataFrame, clean: pd.DataFrame) -> None:
        """Append one batch's scores."""
        table = pa.table([key, pa.array(score), pa.array(flag.astype(np.int64)),
                          *(pa.array(nll[:, j]) for j in range(nll.shape[1]))], names=self.names)
        if self.metadata:
            table = table.replace_schema_metadata(self.metadata)
        if self.writer is None:
            # no dictionary pages for float columns: their values rarely repeat
            self.writer = pq.ParquetWriter(self.path, table.schema,
                                           use_dictionary=[self.names[0], "is_anomaly"])
        self.writer.write_table(table)
        self.n_rows += len(table)
        self.n_flagged += int(flag.sum())
        if self.acc is not None:
            self.acc.update(df, score, flag, clean=clean)
        if self.kept < self.sample_rows:
            self.samples.append(table.slice(0, self.sample_rows - self.kept).to_pandas())
            self.kept += len(self.samples[-1])

    def close(self) -> None:
        """Close the Parquet file (before it is renamed into place, or removed)."""
        if self.writer is not None:
            self.writer.close()


_DONE = object()


def _prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead.

    Reading, validating and encoding a batch (Arrow, pandas, NumPy) then overlaps with scoring
    the previous one (torch and numba, which release the GIL); memory holds ``depth`` + 1
    prepared batches. An exception in the thread is raised here, in order.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            put((None, e))
            return
        put((_DONE, None))

    thread = threading.Thread(target=work, name="genaug-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def score_file(
    data: str | os.PathLike,
    detector: AnomalyDetector,
    out: str | os.PathLike,
    *,
    key_column: str | None = None,
    batch_rows: int = 65536,
    sample_rows: int = 100_000,
    metadata: dict[str, str] | None = None,
    drift: bool = True,
    prefetch: int = 1,
) -> ScoredFile:
    """Validate and score ``data`` into ``out`` (Parquet) without loading it whole.

    Parquet inputs are streamed in ``batch_rows`` batches; CSV files are read whole. The
    output holds a row key (``key_column``'s values, else ``row`` = 0, 1, ...), ``score``,
    ``is_anomaly`` and ``contrib_<column>``; it appears only once every batch has been scored
    (temp file, then rename), so a bad row anywhere leaves no partial output. ``metadata`` is
    added to the output's Parquet key-value metadata (e.g. the input's hash, for provenance).
    With ``drift``, each batch's rows and scores are also counted into the training bins
    (bounded memory) and the PSI report comes back in :attr:`ScoredFile.drift`.
    With ``prefetch`` > 0, up to that many batches are read and validated in a background
    thread while the current one is scored, the isolation forest runs in another thread
    beside the VAEs, and a fourth writes the previous batch's scores and drift counts: the
    work overlaps without intra-op thread pools that spin (0: everything in this thread).
    """
    data = Path(data)
    file = str(data)
    if data.suffix.lower() in PARQUET_SUFFIXES:
        batches: Iterator[pa.RecordBatch | pd.DataFrame] = iter_parquet_record_batches(
            data, batch_rows)
    else:
        batches = iter([read_table(data)])
    prepared = _prepared(batches, detector, file, key_column)
    if prefetch > 0:
        prepared = _prefetch(prepared, prefetch)
    acc = detector.drift_accumulator() if drift else None
    forest_pool = post_pool = None
    if prefetch > 0:
        forest_pool = ThreadPoolExecutor(1, thread_name_prefix="genaug-forest")
        post_pool = ThreadPoolExecutor(1, thread_name_prefix="genaug-write")
    pending: list[Future] = []
    n_rows = 0
    with atomic_path(out) as tmp:
        sink = _Sink(tmp, detector, key_column, metadata, acc, sample_rows)
        try:
            for batch, df, clean, tensors in prepared:
                score, flag, nll = detector._score_table(tensors, forest_pool)
                if key_column:
                    key = (batch.column(key_column) if isinstance(batch, pa.RecordBatch)
                           else pa.array(df[key_column].to_numpy()))
                else:
                    key = pa.array(np.arange(n_rows, n_rows + len(df), dtype=np.int64))
                n_rows += len(df)
                if post_pool is None:
                    sink.write(key, score, flag, nll, df, clean)
                    continue
                # writing, drift counts and the report sample run in one thread, in order,
                # beside the next batch's scoring; at most two batches wait for it
                pending.append(post_pool.submit(sink.write, key, score, flag, nll, df, clean))
                while len(pending) > 1:
                    pending.pop(0).result()
            for fut in pending:
                fut.result()
        finally:
            close = getattr(prepared, "close", None)
            if close is not None:
                close()  # stops the prefetch thread when scoring failed part-way
            for pool in (forest_pool, post_pool):
                if pool is not None:
                    pool.shutdown()
            sink.close()
    return ScoredFile(Path(out), sink.n_rows, sink.n_flagged,
                      pd.concat(sink.samples, ignore_index=True),
                      None if acc is None else acc.report())
