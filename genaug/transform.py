"""Reversible tabular encoder: numeric normalisation, capped one-hot categories, missingness.

The encoded matrix is laid out in :class:`Span`s, one or two per source column:

* numeric/datetime column -> one ``num`` value (standardised, or quantile-to-normal), plus a
  ``miss`` indicator if the column had missing values in training;
* categorical column -> a ``cat`` one-hot block over the ``max_levels`` most frequent levels,
  plus ``__other__`` (rarer levels) and ``__missing__`` when needed.

Models read the spans to build per-column likelihoods; :meth:`TabularEncoder.inverse_transform`
turns model outputs back into a frame with the original columns, dtypes and levels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from scipy.special import ndtri

from .schema import CATEGORICAL, DATETIME, Schema, level_codes

OTHER = "__other__"
MISSING = "__missing__"
_EPOCH = pd.Timestamp("1970-01-01")


@dataclass
class Span:
    """A slice ``[start, end)`` of the encoded matrix that belongs to one source column."""

    column: str
    kind: str  # "num" | "cat" | "miss"
    start: int
    end: int


@dataclass
class Encoded:
    """An encoded table: the model input plus what the likelihood needs to score it."""

    X: np.ndarray  # float32, (n, n_features_out)
    num_missing: np.ndarray  # bool, (n, n_numeric): value absent (excluded from the Gaussian term)
    cat_codes: np.ndarray  # int64, (n, n_categorical): slot index, -1 when the level has no slot


class TabularEncoder:
    """Fit on a frame cleaned by :meth:`Schema.validate`; transform to floats and back."""

    def __init__(
        self,
        numeric: Literal["standard", "quantile"] = "standard",
        max_levels: int = 50,
        n_quantiles: int = 1000,
    ) -> None:
        self.numeric = numeric
        self.max_levels = max_levels
        self.n_quantiles = n_quantiles

    # ----------------------------------------------------------------------------- fitting
    def fit(self, df: pd.DataFrame, schema: Schema) -> TabularEncoder:
        """Learn normalisation constants and category slots from a validated frame."""
        if self.numeric not in ("standard", "quantile"):
            raise ValueError(f"numeric must be 'standard' or 'quantile', got {self.numeric!r}")
        self.schema_ = schema
        self.num_state_: dict[str, dict[str, Any]] = {}
        self.cat_state_: dict[str, dict[str, Any]] = {}
        spans: list[Span] = []
        pos = 0
        for spec in schema.columns:
            col = df[spec.name]
            if spec.kind == CATEGORICAL:
                counts = pd.Series(col).value_counts(dropna=True)
                ordered = [lv for lv in (spec.levels or []) if lv in counts.index]
                kept = ordered[: self.max_levels]
                tail = ordered[self.max_levels:]
                slots = list(kept)
                if tail:
                    slots.append(OTHER)
                has_missing = bool(pd.isna(col).any())
                if has_missing:
                    slots.append(MISSING)
                tail_counts = np.array([counts[t] for t in tail], dtype=float)
                self.cat_state_[spec.name] = {
                    "slots": slots,
                    "tail": tail,
                    "tail_p": (tail_counts / tail_counts.sum()).tolist() if tail else [],
                }
                spans.append(Span(spec.name, "cat", pos, pos + len(slots)))
                pos += len(slots)
            else:
                vals = np.asarray(col, dtype=float)
                present = vals[~np.isnan(vals)]
                state = self._fit_numeric(present)
                state["has_missing"] = bool(np.isnan(vals).any())
                state["integer"] = bool(np.all(np.mod(present, 1) == 0)) and spec.kind != DATETIME
                state["min"], state["max"] = float(present.min()), float(present.max())
                self.num_state_[spec.name] = state
                spans.append(Span(spec.name, "num", pos, pos + 1))
                pos += 1
                if state["has_missing"]:
                    spans.append(Span(spec.name, "miss", pos, pos + 1))
                    pos += 1
        self.spans_ = spans
        self._table = None
        self.n_features_out_ = pos
        self.n_train_ = len(df)
        return self

    def _fit_numeric(self, present: np.ndarray) -> dict[str, Any]:
        if self.numeric == "standard":
            mean = float(present.mean())
            std = float(present.std())
            return {"mean": mean, "scale": max(std, 1e-6 * (abs(mean) + 1.0))}
        k = int(min(self.n_quantiles, max(len(present), 2)))
        probs = np.linspace(0.0, 1.0, k)
        q = np.quantile(present, probs)
        uniq, first = np.unique(q, return_index=True)
        last = np.r_[first[1:] - 1, k - 1]
        return {"values": uniq.tolist(), "p_lo": probs[first].tolist(),
                "p_hi": probs[last].tolist(), "n_grid": k}

    # ----------------------------------------------------------------------------- spans
    @property
    def num_spans(self) -> list[Span]:
        """The ``num`` spans, in column order."""
        return [s for s in self.spans_ if s.kind == "num"]

    @property
    def cat_spans(self) -> list[Span]:
        """The ``cat`` spans, in column order."""
        return [s for s in self.spans_ if s.kind == "cat"]

    @property
    def miss_spans(self) -> list[Span]:
        """The ``miss`` spans, in column order."""
        return [s for s in self.spans_ if s.kind == "miss"]

    # ----------------------------------------------------------------------------- forward
    def transform(self, df: pd.DataFrame, rng: np.random.Generator | None = None) -> Encoded:
        """Encode a validated frame. ``rng`` spreads quantile ties randomly (training only)."""
        n = len(df)
        X = np.zeros((n, self.n_features_out_), dtype=np.float32)
        num_missing = np.zeros((n, len(self.num_spans)), dtype=bool)
        cat_codes = np.zeros((n, len(self.cat_spans)), dtype=np.int64)
        i_num = i_cat = 0
        for span in self.spans_:
            col = df[span.column]
            if span.kind == "num":
                vals = np.asarray(col, dtype=float)
                miss = np.isnan(vals)
                z = self._normalise(np.where(miss, 0.0, vals), self.num_state_[span.column], rng)
                X[:, span.start] = np.where(miss, 0.0, z)
                num_missing[:, i_num] = miss
                i_num += 1
            elif span.kind == "miss":
                X[:, span.start] = np.isnan(np.asarray(col, dtype=float))
            else:
                codes = self._codes(np.asarray(col, dtype=object), self.cat_state_[span.column])
                ok = codes >= 0
                X[np.flatnonzero(ok), span.start + codes[ok]] = 1.0
                cat_codes[:, i_cat] = codes
                i_cat += 1
        return Encoded(X=X, num_missing=num_missing, cat_codes=cat_codes)

    def _normalise(
        self, x: np.ndarray, st: dict[str, Any], rng: np.random.Generator | None
    ) -> np.ndarray:
        if self.numeric == "standard":
            return (x - st["mean"]) / st["scale"]
        values, lo, hi = (np.asarray(st[k]) for k in ("values", "p_lo", "p_hi"))
        xp, fp = self._knots(values, lo, hi)
        u = np.interp(x, fp, xp)  # between values: the same knots as the inverse map
        idx = np.clip(np.searchsorted(values, x), 0, len(values) - 1)
        tied = (values[idx] == x) & (hi[idx] > lo[idx])
        if tied.any():  # a tied value: its group's mid-probability, or a random spot in it
            t = idx[tied]
            r = rng.random(len(t)) if rng is not None else 0.5
            u[tied] = lo[t] + r * (hi[t] - lo[t])
        eps = self._eps(values)
        return ndtri(eps + (1 - 2 * eps) * np.clip(u, 0.0, 1.0))

    @staticmethod
    def _knots(
        values: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Piecewise-linear CDF knots (probability, value): a tied value spans [lo, hi]."""
        flat = hi > lo
        p = np.concatenate([lo, hi[flat]])
        v = np.concatenate([values, values[flat]])
        order = np.argsort(p, kind="stable")
        return p[order], v[order]

    @staticmethod
    def _eps(values: np.ndarray) -> float:
        # squeeze [0, 1] into [eps, 1 - eps] so the ends map to finite z (and back exactly)
        return 0.5 / max(len(values), 2)

    @staticmethod
    def _codes(vals: np.ndarray, st: dict[str, Any]) -> np.ndarray:
        slots = {lv: i for i, lv in enumerate(st["slots"])}
        return level_codes(vals, slots, slots.get(OTHER, -1), slots.get(MISSING, -1))

    # ----------------------------------------------------------------------------- inverse
    def inverse_transform(
        self,
        X: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """Decode a matrix laid out like :meth:`transform`'s output back to source columns.

        ``cat`` blocks may hold one-hot rows or probabilities; ``miss`` values are
        probabilities of "missing". With ``rng`` categories and missingness are sampled from
        those probabilities; without it the most likely level is taken (and p > 0.5 means
        missing).
        """
        X = np.asarray(X, dtype=float)
        n = X.shape[0]
        num = self.num_spans
        miss_of = {s.column: s.start for s in self.miss_spans}
        missing = np.zeros((n, len(num)), dtype=bool)
        for j, span in enumerate(num):
            if span.column in miss_of:
                p = np.clip(X[:, miss_of[span.column]], 0.0, 1.0)
                missing[:, j] = rng.random(n) < p if rng is not None else p > 0.5
        slots = np.zeros((n, len(self.cat_spans)), dtype=np.int64)
        for j, span in enumerate(self.cat_spans):
            probs = np.clip(X[:, span.start:span.end], 0.0, None)
            if rng is not None:
                probs = probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)
                cum = probs.cumsum(1)
                slots[:, j] = np.minimum((cum < rng.random((n, 1))).sum(1), probs.shape[1] - 1)
            else:
                slots[:, j] = probs.argmax(1)
        values = self.numeric_values(X[:, [s.start for s in num]])
        return self.decode(values, missing, slots, rng)

    def numeric_values(self, z: np.ndarray) -> np.ndarray:
        """Normalised values ``(n, n_numeric)`` back to source units, clipped to the training
        range and rounded for integer columns (datetimes stay in days since 1970).

        Vectorised over columns: every breakpoint of the quantile map lies on the grid of
        probabilities it was fitted on, so linear interpolation between the map's values at
        consecutive grid points *is* the map, and needs no search.
        """
        t = self._numeric_table()
        zt = torch.as_tensor(np.asarray(z, dtype=np.float32))
        if self.numeric == "standard":
            v = zt.double() * t["scale"] + t["mean"]
        else:  # torch: its float32 ndtr is several times faster than scipy's
            p = ((torch.special.ndtr(zt) - t["eps"]) / (1.0 - 2.0 * t["eps"])).clamp_(0.0, 1.0)
            x = p * t["steps"]
            i = torch.minimum(x.long(), t["steps"] - 1)
            frac = (x - i).double()
            flat = t["offset"] + i
            a = torch.take(t["table"], flat)
            v = a + (torch.take(t["table"], flat + 1) - a) * frac
        v = torch.minimum(torch.maximum(v, t["min"]), t["max"])
        return torch.where(t["integer"], torch.round(v), v).numpy()

    def _numeric_table(self) -> dict[str, torch.Tensor]:
        """Per-column constants of :meth:`numeric_values`, built once."""
        if getattr(self, "_table", None) is not None:
            return self._table
        states = [self.num_state_[s.column] for s in self.num_spans]
        t: dict[str, Any] = {
            "min": torch.tensor([st["min"] for st in states], dtype=torch.float64),
            "max": torch.tensor([st["max"] for st in states], dtype=torch.float64),
            "integer": torch.tensor([st["integer"] for st in states], dtype=torch.bool),
        }
        if self.numeric == "standard":
            t["scale"] = torch.tensor([st["scale"] for st in states], dtype=torch.float64)
            t["mean"] = torch.tensor([st["mean"] for st in states], dtype=torch.float64)
        else:
            tables, steps, eps = [], [], []
            for st in states:
                values, lo, hi = (np.asarray(st[k]) for k in ("values", "p_lo", "p_hi"))
                xp, fp = self._knots(values, lo, hi)
                k = int(st.get("n_grid") or 0)
                if k < 2 or not np.allclose(xp * (k - 1), np.round(xp * (k - 1))):
                    k = 4096  # an encoder saved without its grid: a fine approximation
                tables.append(np.interp(np.linspace(0.0, 1.0, k), xp, fp))
                steps.append(k - 1)
                eps.append(self._eps(values))
            sizes = np.array([len(tb) for tb in tables], dtype=np.int64)
            t["table"] = torch.as_tensor(np.concatenate(tables) if tables else np.zeros(0))
            t["offset"] = torch.as_tensor(np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64))
            t["steps"] = torch.as_tensor(np.array(steps, dtype=np.int64))
            t["eps"] = torch.tensor(eps, dtype=torch.float32)
        self._table = t
        return t

    def normalise_values(self, values: np.ndarray) -> np.ndarray:
        """Source-unit numeric values ``(n, n_numeric)`` to normalised ones (ties at their
        group's middle; NaN stays NaN): the inverse of :meth:`numeric_values`."""
        out = np.empty(values.shape, dtype=float)
        for j, span in enumerate(self.num_spans):
            v = values[:, j]
            miss = np.isnan(v)
            z = self._normalise(np.where(miss, 0.0, v), self.num_state_[span.column], None)
            out[:, j] = np.where(miss, np.nan, z)
        return out

    def decode(
        self,
        values: np.ndarray,
        missing: np.ndarray,
        slots: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """Build the source frame from numeric ``values`` ``(n, n_numeric)`` in source units
        (see :meth:`numeric_values`), their ``missing`` mask, and one slot index per row and
        categorical column ``(n, n_categorical)``. An ``__other__`` slot becomes one of the rare
        levels it stands for (drawn with ``rng`` in training proportions, else the first)."""
        n = values.shape[0]
        num_j = {s.column: j for j, s in enumerate(self.num_spans)}
        cat_j = {s.column: j for j, s in enumerate(self.cat_spans)}
        out: dict[str, Any] = {}
        for spec in self.schema_.columns:
            if spec.name in num_j:
                j = num_j[spec.name]
                out[spec.name] = self._restore_numeric(values[:, j], missing[:, j], spec.dtype,
                                                       spec.kind)
                continue
            st = self.cat_state_[spec.name]
            idx = slots[:, cat_j[spec.name]]
            kept = [s for s in st["slots"] if s not in (OTHER, MISSING)]
            tail = list(st["tail"])
            codes = np.where(idx < len(kept), idx, -1)
            if tail:
                is_other = idx == st["slots"].index(OTHER)
                k = int(is_other.sum())
                if k:
                    pick = rng.choice(len(tail), size=k, p=st["tail_p"]) if rng is not None \
                        else np.zeros(k, dtype=np.int64)
                    codes[is_other] = len(kept) + pick
            out[spec.name] = _restore_levels(kept + tail, codes, spec.dtype)
        return pd.DataFrame(out, index=pd.RangeIndex(n))

    @staticmethod
    def _restore_numeric(vals: np.ndarray, missing: np.ndarray, dtype: str, kind: str) -> Any:
        if kind == DATETIME:
            ts = _EPOCH + pd.to_timedelta(vals, unit="D")
            return pd.Series(ts).where(~missing).astype(dtype)
        return _cast_numbers(vals, missing, dtype)

    # ----------------------------------------------------------------------------- state
    def get_state(self) -> dict[str, Any]:
        """JSON-ready fitted state (no pickle)."""
        return {
            "params": {"numeric": self.numeric, "max_levels": self.max_levels,
                       "n_quantiles": self.n_quantiles},
            "schema": self.schema_.to_dict(),
            "num_state": self.num_state_,
            "cat_state": self.cat_state_,
            "spans": [asdict(s) for s in self.spans_],
            "n_features_out": self.n_features_out_,
            "n_train": self.n_train_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TabularEncoder:
        """Rebuild a fitted encoder from :meth:`get_state`."""
        enc = cls(**state["params"])
        enc.schema_ = Schema.from_dict(state["schema"])
        enc.num_state_ = state["num_state"]
        enc.cat_state_ = state["cat_state"]
        enc.spans_ = [Span(**s) for s in state["spans"]]
        enc.n_features_out_ = state["n_features_out"]
        enc.n_train_ = state["n_train"]
        return enc


def _nullable(dtype: str) -> str:
    """The pandas nullable dtype that holds ``dtype``'s values plus missing ones."""
    d = dtype.lower()
    if d.startswith("uint"):
        return "UInt" + d[4:]
    if d.startswith("int"):
        return "Int" + d[3:]
    if d.startswith("float"):
        return "Float" + d[5:]
    return "boolean" if d in ("bool", "boolean") else dtype


def _cast_numbers(vals: np.ndarray, missing: np.ndarray, dtype: str) -> Any:
    """Numbers back to ``dtype``: numpy dtypes stay numpy unless values are missing (then the
    nullable pandas dtype, since numpy ints cannot hold NaN); nullable dtypes stay nullable."""
    nullable = dtype[:1].isupper() or dtype == "boolean"
    if dtype.lower().startswith(("int", "uint")):
        vals = np.round(vals)
    if nullable or (missing.any() and not dtype.lower().startswith("float")):
        return pd.array(np.where(missing, np.nan, vals).astype(float), dtype=_nullable(dtype))
    if dtype.lower().startswith(("int", "uint", "float", "bool")):
        return np.where(missing, np.nan, vals).astype(dtype)
    return np.where(missing, np.nan, vals).astype(float)


def _restore_levels(levels: list[str], codes: np.ndarray, dtype: str) -> Any:
    """Levels ``levels[codes]`` (-1 = missing) cast back to the column's training dtype; each
    level is converted once, then gathered."""
    missing = codes < 0
    safe = np.where(missing, 0, codes)
    if dtype in ("bool", "boolean") or dtype.lower().startswith(("int", "uint", "float")):
        if dtype in ("bool", "boolean"):
            table = np.array([lv == "True" for lv in levels], dtype=float)
        else:
            table = np.array([float(lv) for lv in levels], dtype=float)
        return _cast_numbers(table[safe], missing, dtype)
    if dtype == "category":
        return pd.Categorical.from_codes(codes, categories=levels)
    if dtype in ("string", "str") or dtype.startswith("string["):
        target = pd.api.types.pandas_dtype(dtype)
        if getattr(target, "storage", None) == "pyarrow":  # gather in Arrow: no Python loop
            import pyarrow as pa

            arr = pa.DictionaryArray.from_arrays(
                pa.array(safe.astype(np.int32), mask=missing),
                pa.array(levels or [""], type=pa.large_string()),
            ).cast(pa.large_string())
            return pd.array(arr, dtype=target)
        labels = np.asarray(list(levels) + [None], dtype=object)[np.where(missing, -1, codes)]
        return pd.array(labels, dtype=target)
    return np.asarray(list(levels) + [None], dtype=object)[np.where(missing, -1, codes)]
