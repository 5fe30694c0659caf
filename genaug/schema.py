"""Column kinds of a table, inferred at fit, saved with the model and enforced at scoring.

Rules (documented in the README):

* ``bool``, string, object and pandas ``category`` columns are **categorical**; so are integer
  columns with at most ``int_max_levels`` (default 10) distinct values when the input is a
  DataFrame. A NumPy array is all numeric.
* Float and other integer columns are **numeric**.
* Datetime columns become numeric (days since 1970-01-01, as a float).
* String or integer columns with a distinct value in every row (at least ``id_min_rows`` rows)
  are **ID-like**: excluded from the model with a warning.
* Columns with a single value and no missing cells are **constant**: dropped with a warning, or
  rejected with :class:`~genaug.errors.ConstantColumnError` when ``constant="error"``.
* Missing values (NaN/None/NaT) are allowed in every column; ``+-inf`` is not.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from .errors import (
    AllMissingError,
    ConstantColumnError,
    DtypeError,
    DuplicateColumnError,
    EmptyInputError,
    ExtraColumnError,
    MissingColumnError,
    NonFiniteError,
    UnseenCategoryError,
)

NUMERIC = "numeric"
CATEGORICAL = "categorical"
DATETIME = "datetime"
_EPOCH = pd.Timestamp("1970-01-01")
_DAY = pd.Timedelta(days=1)


@dataclass
class ColumnSpec:
    """One model column: its kind, source dtype, levels (categorical) and missingness."""

    name: str
    kind: str
    dtype: str
    levels: list[str] | None = None
    nullable: bool = False


@dataclass
class Schema:
    """The fitted schema of a table: model columns, optional target, and dropped columns."""

    columns: list[ColumnSpec]
    target: str | None = None
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """Names of the columns the model uses, in order."""
        return [c.name for c in self.columns]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "columns": [asdict(c) for c in self.columns],
            "target": self.target,
            "dropped": dict(self.dropped),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        """Inverse of :meth:`to_dict`."""
        return cls(
            columns=[ColumnSpec(**c) for c in d["columns"]],
            target=d.get("target"),
            dropped=dict(d.get("dropped", {})),
        )

    def validate(
        self,
        df: pd.DataFrame,
        *,
        file: str | None = None,
        handle_unknown: Literal["error", "keep"] = "error",
        allow_extra: Sequence[str] = (),
    ) -> pd.DataFrame:
        """Check ``df`` against the schema and return the model columns, cleaned.

        Numeric and datetime columns come back as float64 (NaN = missing), categorical ones as
        object arrays of strings (None = missing). Raises a :class:`GenaugInputError` subclass
        naming ``file`` and the column on the first violation.
        """
        _check_frame(df, file)
        known = set(self.feature_names) | set(self.dropped) | set(allow_extra)
        if self.target is not None:
            known.add(self.target)
        missing = [c for c in self.feature_names if c not in df.columns]
        if missing:
            raise MissingColumnError(
                f"{len(missing)} model column(s) absent",
                file=file,
                column=missing[0],
                expected=f"columns {self.feature_names}",
                found=f"columns {list(map(str, df.columns))}",
            )
        extra = [str(c) for c in df.columns if c not in known]
        if extra:
            raise ExtraColumnError(
                f"{len(extra)} column(s) the model does not know: {extra[:5]}",
                file=file,
                column=extra[0],
                expected=f"only columns {self.feature_names}",
                found=f"extra columns {extra}",
            )
        out = {}
        for spec in self.columns:
            out[spec.name] = _clean_column(df[spec.name], spec, file, handle_unknown)
        return pd.DataFrame(out, index=df.index)


def _check_frame(df: pd.DataFrame, file: str | None) -> None:
    if df.shape[1] == 0:
        raise EmptyInputError("no columns", file=file, expected="at least 1 column", found="0")
    if df.shape[0] == 0:
        raise EmptyInputError("no rows", file=file, expected="at least 1 row", found="0 rows")
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise DuplicateColumnError(
            "duplicated column name",
            file=file,
            column=str(dup[0]),
            expected="unique column names",
            found=f"{dup[0]!r} more than once",
        )


def as_frame(X: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Turn a DataFrame or a 2-D array into a DataFrame (array columns named ``x0..``)."""
    if isinstance(X, pd.DataFrame):
        if all(isinstance(c, str) for c in X.columns):
            return X
        return X.rename(columns=str)  # the schema stores names as text
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise DtypeError("need a 2-D table", expected="2-D array", found=f"{arr.ndim}-D array")
    if columns is None:
        columns = [f"x{i}" for i in range(arr.shape[1])]
    return pd.DataFrame(arr, columns=list(columns))


def _is_categorical_dtype(s: pd.Series) -> bool:
    return (
        pd.api.types.is_bool_dtype(s)
        or isinstance(s.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(s)
        or s.dtype == object
    )


def _nested_value(s: pd.Series) -> Any:
    """The first list, dict, set or array in an object column (a nested Parquet type), or None."""
    if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) != "mixed":
        return None
    for v in s:
        if isinstance(v, (list, tuple, dict, set, np.ndarray)):
            return v
    return None


def _check_not_nested(s: pd.Series, name: str, file: str | None) -> None:
    v = _nested_value(s)
    if v is not None:
        raise DtypeError("nested values (lists or structs) in a column", file=file, column=name,
                         expected="one scalar per cell",
                         found=f"{type(v).__name__} values such as {str(v)[:40]}")


def infer_schema(
    df: pd.DataFrame,
    *,
    target: str | None = None,
    file: str | None = None,
    int_max_levels: int = 10,
    constant: Literal["drop", "error"] = "drop",
    id_min_rows: int = 50,
    all_numeric: bool = False,
    exclude: Sequence[str] = (),
) -> Schema:
    """Infer a :class:`Schema` from a training frame (rules in the module docstring)."""
    _check_frame(df, file)
    if target is not None and target not in df.columns:
        raise MissingColumnError(
            "target column absent",
            file=file,
            column=target,
            expected=f"a column named {target!r}",
            found=f"columns {list(map(str, df.columns))}",
        )
    columns: list[ColumnSpec] = []
    dropped: dict[str, str] = {}
    n = len(df)
    for name in exclude:
        if name not in df.columns:
            raise MissingColumnError(
                "column to exclude is absent", file=file, column=str(name),
                expected=f"a column named {name!r}", found=f"columns {list(map(str, df.columns))}",
            )
        dropped[str(name)] = "excluded by the caller"
    for name in df.columns:
        if name == target or str(name) in dropped:
            continue
        s = df[name]
        col = str(name)
        _check_not_nested(s, col, file)
        n_missing = int(s.isna().sum())
        if n_missing == n:
            raise AllMissingError(
                "every value is missing", file=file, column=col,
                expected="at least one value", found=f"{n} missing of {n}",
            )
        if pd.api.types.is_datetime64_any_dtype(s):
            kind = DATETIME
        elif all_numeric and not _is_categorical_dtype(s):
            kind = NUMERIC
        elif _is_categorical_dtype(s):
            kind = CATEGORICAL
        elif pd.api.types.is_integer_dtype(s) and s.nunique() <= int_max_levels:
            kind = CATEGORICAL
        elif pd.api.types.is_numeric_dtype(s):
            kind = NUMERIC
        else:
            raise DtypeError(
                "unsupported column type", file=file, column=col,
                expected="numeric, string, bool, category or datetime", found=str(s.dtype),
            )
        # before the constant rule: a column that is +inf in every row is an error, not dropped
        if kind == NUMERIC:
            vals = s.to_numpy(dtype=float, na_value=np.nan)
            if np.isinf(vals).any():
                raise NonFiniteError(
                    "infinite values", file=file, column=col,
                    expected="finite numbers or NaN",
                    found=f"{int(np.isinf(vals).sum())} infinite value(s)",
                )
        nunique = s.nunique(dropna=True)
        id_like = not all_numeric and (
            (pd.api.types.is_integer_dtype(s) or (kind == CATEGORICAL and not
             pd.api.types.is_bool_dtype(s)))
            and n >= id_min_rows
            and nunique == n
        )
        if id_like:
            dropped[col] = "id-like: a distinct value in every row"
            warnings.warn(f"column {col!r} looks like an ID (a distinct value per row); "
                          "excluded from the model", UserWarning, stacklevel=2)
            continue
        if nunique <= 1 and n_missing == 0:
            if constant == "error":
                raise ConstantColumnError(
                    "zero variance: one value in every row", file=file, column=col,
                    expected="at least two distinct values", found=f"only {_plain(s.iloc[0])!r}",
                )
            dropped[col] = "constant: one value in every row"
            warnings.warn(f"column {col!r} is constant; excluded from the model",
                          UserWarning, stacklevel=2)
            continue
        levels = None
        if kind == CATEGORICAL:
            counts = _as_str(s).value_counts(dropna=True)
            # most frequent first; ties broken by the level's text so the order is deterministic
            levels = sorted(counts.index.tolist(), key=lambda v: (-int(counts[v]), v))
        columns.append(ColumnSpec(col, kind, str(s.dtype), levels, n_missing > 0))
    if not columns:
        raise EmptyInputError(
            "no usable columns left after excluding ID-like and constant ones", file=file,
            expected="at least one feature column", found=f"dropped {sorted(dropped)}",
        )
    return Schema(columns=columns, target=target, dropped=dropped)


def _plain(v: Any) -> Any:
    """A NumPy scalar as the Python value, so messages read ``5.0``, not ``np.float64(5.0)``."""
    return v.item() if isinstance(v, np.generic) else v


def level_codes(values: Any, mapping: dict[Any, int], unknown: int, missing: int) -> np.ndarray:
    """``mapping[v]`` for each value (``unknown`` if absent, ``missing`` for None/NaN), int64.

    Hashes each distinct value once (``pd.factorize``) rather than every cell.
    """
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    lookup = np.fromiter((mapping.get(u, unknown) for u in uniques), dtype=np.int64,
                         count=len(uniques))
    return np.append(lookup, np.int64(missing))[codes]  # code -1 (missing) takes the last slot


def _as_str(s: pd.Series) -> pd.Series:
    """Categorical values as strings (None for missing), so 1, '1' and True compare predictably."""
    if isinstance(s.dtype, pd.StringDtype) or (
        s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) == "string"
    ):  # already text: only the missing marker changes (fast path for large batches)
        return pd.Series(s.to_numpy(dtype=object, na_value=None), index=s.index, dtype=object)
    obj = s.astype(object)
    mask = s.isna().to_numpy()
    if pd.api.types.is_float_dtype(s):
        # 3.0 and 3 name the same level (CSV readers turn int columns with gaps into floats)
        out = obj.map(lambda v: str(int(v)) if float(v).is_integer() else str(v))
    else:
        out = obj.map(str)
    out[mask] = None
    return out.astype(object)


def _clean_column(
    s: pd.Series, spec: ColumnSpec, file: str | None, handle_unknown: str
) -> np.ndarray:
    n = len(s)
    _check_not_nested(s, spec.name, file)
    if spec.kind in (NUMERIC, DATETIME):
        if spec.kind == DATETIME:
            try:
                ts = pd.to_datetime(s, errors="raise")
                if getattr(ts.dt, "tz", None) is not None:  # time-zone aware: count in UTC
                    ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
                vals = ((ts - _EPOCH) / _DAY).to_numpy(dtype=float, na_value=np.nan)
            except (ValueError, TypeError) as e:
                raise DtypeError("values are not dates", file=file, column=spec.name,
                                 expected="datetime", found=str(e)[:80]) from None
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            vals = s.to_numpy(dtype=float, na_value=np.nan)
        elif pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_timedelta64_dtype(s):
            # pd.to_numeric would pass them on silently as nanosecond counts
            raise DtypeError("dates or durations in a numeric column", file=file,
                             column=spec.name, expected=f"numeric ({spec.dtype})",
                             found=str(s.dtype))
        elif pd.api.types.is_bool_dtype(s):
            raise DtypeError("boolean values in a numeric column", file=file, column=spec.name,
                             expected=f"numeric ({spec.dtype})", found=str(s.dtype))
        else:
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna() & s.notna()
            if bad.any():
                raise DtypeError(
                    "non-numeric values in a numeric column", file=file, column=spec.name,
                    expected=f"numeric ({spec.dtype})",
                    found=f"{s.dtype} values such as {s[bad].iloc[0]!r}",
                )
            vals = num.to_numpy(dtype=float, na_value=np.nan)
        if np.isinf(vals).any():
            raise NonFiniteError("infinite values", file=file, column=spec.name,
                                 expected="finite numbers or NaN",
                                 found=f"{int(np.isinf(vals).sum())} infinite value(s)")
        if n > 0 and np.isnan(vals).all() and not spec.nullable:
            raise AllMissingError("every value is missing", file=file, column=spec.name,
                                  expected="values (no missing in training)",
                                  found=f"{n} missing of {n}")
        return vals
    # categorical
    if (
        pd.api.types.is_numeric_dtype(s)
        and not pd.api.types.is_bool_dtype(s)
        and not (spec.dtype.startswith(("int", "uint", "Int", "UInt", "float", "Float")))
        and s.notna().any()
    ):
        raise DtypeError("numbers in a text column", file=file, column=spec.name,
                         expected=f"categorical ({spec.dtype})", found=str(s.dtype))
    vals = _as_str(s)
    if n > 0 and vals.isna().all() and not spec.nullable:
        raise AllMissingError("every value is missing", file=file, column=spec.name,
                              expected="values (no missing in training)",
                              found=f"{n} missing of {n}")
    if handle_unknown == "error":
        known = set(spec.levels or [])
        unseen = sorted({v for v in vals.dropna().unique() if v not in known})
        if unseen:
            raise UnseenCategoryError(
                f"{len(unseen)} level(s) never seen in training", file=file, column=spec.name,
                expected=f"one of {list(spec.levels or [])[:10]}"
                + (" ..." if len(spec.levels or []) > 10 else ""),
                found=f"{unseen[:5]}" + (" ..." if len(unseen) > 5 else ""),
            )
    return vals.to_numpy(dtype=object)
