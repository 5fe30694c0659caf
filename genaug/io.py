"""Reading tables (Parquet, CSV) with clear errors, and atomic writes (temp file, then rename)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import (
    CorruptFileError,
    CSVFormatError,
    DuplicateColumnError,
    EmptyInputError,
    UnsupportedFormatError,
)

PARQUET_SUFFIXES = {".parquet", ".pq"}
CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Parquet or CSV file into a DataFrame; raise a named error for bad files."""
    path, file = _check_file(path)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        table = _read_parquet(path)
    elif suffix in CSV_SUFFIXES:
        table = _read_csv(path)
    else:
        raise UnsupportedFormatError(
            "unsupported file type", file=file,
            expected=f"one of {sorted(PARQUET_SUFFIXES | CSV_SUFFIXES)}", found=suffix or "none",
        )
    _check_shape(table.column_names, table.num_rows, file)
    return table.to_pandas()


def _check_file(path: str | os.PathLike) -> tuple[Path, str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise EmptyInputError("the file is empty", file=str(path), expected="a table",
                              found="0 bytes")
    return path, str(path)


def _check_shape(names: list[str], num_rows: int, file: str) -> None:
    if not names:
        raise EmptyInputError("no columns", file=file, expected="at least 1 column", found="0")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DuplicateColumnError("duplicated column name", file=file, column=dup[0],
                                   expected="unique column names",
                                   found=f"{dup[0]!r} {names.count(dup[0])} times")
    if num_rows == 0:
        raise EmptyInputError("no rows (header only?)", file=file,
                              expected="at least 1 row", found="0 rows")


def iter_parquet_batches(
    path: str | os.PathLike, batch_rows: int = 65536
) -> Iterator[pd.DataFrame]:
    """Read a Parquet file in batches of ``batch_rows`` rows, with ``read_table``'s checks.

    Memory stays bounded by the batch (and row-group) size, whatever the file size.
    """
    for batch in iter_parquet_record_batches(path, batch_rows):
        yield batch.to_pandas()


def iter_parquet_record_batches(
    path: str | os.PathLike, batch_rows: int = 65536, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """:func:`iter_parquet_batches` as Arrow record batches (of ``columns``, default all)."""
    path, file = _check_file(path)
    try:
        # pre_buffer=False: with pre-buffering, iter_batches keeps every row group it has read
        # cached until the file is closed, so memory grew with the file's size
        pf = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowException, OSError) as e:
        raise CorruptFileError("not a readable Parquet file", file=file, expected="a Parquet file",
                               found=str(e).splitlines()[0][:200]) from None
    _check_shape(pf.schema_arrow.names, pf.metadata.num_rows, file)
    batches = pf.iter_batches(batch_size=batch_rows, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as e:
            raise CorruptFileError("Parquet data could not be decoded", file=file,
                                   expected="a Parquet file",
                                   found=str(e).splitlines()[0][:200]) from None
        yield batch


def _read_parquet(path: Path) -> pa.Table:
    try:
        # ParquetFile, not pq.read_table: the dataset reader behind read_table rejects duplicated
        # column names as "Multiple matches for FieldRef", which would look like corruption
        with pq.ParquetFile(path) as pf:
            return pf.read()
    except (pa.ArrowException, OSError) as e:
        raise CorruptFileError(
            "not a readable Parquet file", file=str(path),
            expected="a Parquet file", found=str(e).splitlines()[0][:200],
        ) from None


def _looks_binary(path: Path, n: int = 8192) -> bool:
    """True when the file's first bytes are not text: NUL bytes or invalid UTF-8."""
    with open(path, "rb") as fh:
        head = fh.read(n)
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # a multi-byte character cut by the read limit is fine; anything else is not text
        return len(head) < n or e.start < len(head) - 4
    return False


def _read_csv(path: Path) -> pa.Table:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    if _looks_binary(path):
        raise CorruptFileError("binary data, not CSV text", file=str(path),
                               expected="UTF-8 text", found="NUL bytes or invalid UTF-8")
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            # an empty field is a missing value in text columns too, as in numeric ones
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
    except UnicodeDecodeError as e:
        raise CorruptFileError("text is not valid UTF-8", file=str(path),
                               expected="UTF-8 text", found=str(e)[:200]) from None
    except pa.ArrowInvalid as e:
        msg = str(e).splitlines()[0]
        if "UTF8" in msg or "utf8" in msg.lower():
            raise CorruptFileError("text is not valid UTF-8", file=str(path),
                                   expected="UTF-8 text", found=msg[:200]) from None
        if "Expected" in msg and "columns" in msg:
            raise CSVFormatError("rows have different numbers of fields", file=str(path),
                                 expected="the same field count as the header",
                                 found=msg[:200]) from None
        if "Empty CSV" in msg:
            with open(path, "rb") as fh:
                text = fh.read(1 << 16).strip()
            # Arrow says "empty" for a lone line without a line break too: do not call it empty
            what = "no rows (a header line at most)" if text else "the file is empty"
            raise EmptyInputError(what, file=str(path), expected="a header and rows",
                                  found="one line, no line break" if text else "no data") from None
        raise CorruptFileError("not a readable CSV file", file=str(path),
                               expected="a CSV file", found=msg[:200]) from None
    names = table.column_names
    for name, typ in zip(names, table.schema.types):
        # invalid UTF-8 past the sniffed head makes Arrow fall back to raw bytes for the column
        if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
            raise CorruptFileError("text is not valid UTF-8", file=str(path), column=name,
                                   expected="UTF-8 text", found="bytes that are not UTF-8")
    if len(names) == 1:
        for other in (";", "\t", "|"):
            if other != delimiter and other in names[0]:
                raise CSVFormatError(
                    "one column whose name contains another delimiter: wrong delimiter?",
                    file=str(path), column=names[0][:60],
                    expected=f"fields separated by {delimiter!r}", found=f"{other!r} separators",
                )
    if names and all(_NUMBER.match(n.strip()) for n in names):
        raise CSVFormatError(
            "the first line looks like data, not column names: missing header?",
            file=str(path), expected="a header row of column names",
            found=f"first line {names[:5]}",
        )
    return table


def default_mode(base: int) -> int:
    """``base`` (0o666 for files, 0o777 for folders) less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, default_mode(0o666))  # mkstemp makes 0600: give normal modes
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_stale_temps(folder: str | os.PathLike, older_than: float) -> list[Path]:
    """Delete :func:`atomic_path` temp files in ``folder`` untouched for ``older_than`` seconds.

    They are what a killed process leaves behind; a live writer keeps touching its temp file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than
    removed = []
    for p in folder.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink()
                removed.append(p)
    return removed


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    return Path(path)
