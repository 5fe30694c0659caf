"""Bad input: each kind raises its own GenaugInputError subclass naming the file and the column.

Files are real (Parquet via pandas/pyarrow, CSV text) and written to ``tmp_path``; detectors are
tiny (one member, 30 steps) and the scoring tests share one fitted on 200 rows.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import genaug
from genaug import AnomalyDetector, GenaugError, GenaugInputError
from genaug.errors import (
    AllMissingError,
    ConstantColumnError,
    CorruptFileError,
    CSVFormatError,
    DtypeError,
    DuplicateColumnError,
    EmptyInputError,
    ExtraColumnError,
    MissingColumnError,
    NonFiniteError,
    UnseenCategoryError,
    UnsupportedFormatError,
)

N_ROWS = 200


def tiny(**kw) -> AnomalyDetector:
    return AnomalyDetector(random_state=0, max_steps=30, n_members=1, **kw)


def make_frame(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.normal(10.0, 2.0, size=n),
            "color": rng.choice(["red", "green", "blue"], size=n),
        }
    )


@pytest.fixture(scope="module")
def fitted() -> AnomalyDetector:
    return tiny().fit(make_frame())


@pytest.fixture
def rows() -> pd.DataFrame:
    """A few clean rows from the training distribution, to be spoiled by each test."""
    return make_frame(n=8, seed=1)


def assert_names(err: GenaugInputError, path: Path | None, column: str | None) -> None:
    """The error's attributes and message name the file and the column."""
    msg = str(err)
    if path is not None:
        assert err.file == str(path)
        assert str(path) in msg
    if column is not None:
        assert err.column == column
        assert repr(column) in msg
    assert isinstance(err, GenaugInputError)
    assert isinstance(err, ValueError)  # so generic `except ValueError` handlers still work


def score_file(det: AnomalyDetector, path: Path) -> np.ndarray:
    df = genaug.read_table(path)
    return det.decision_function(df, file=str(path))


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def write_parquet(df: pd.DataFrame, path: Path) -> Path:
    df.to_parquet(path, index=False)
    return path


def test_clean_file_scores(fitted, rows, tmp_path):
    """Sanity check for the scoring tests below: the unspoiled rows score fine from both formats."""
    for path in (write_csv(rows, tmp_path / "ok.csv"), write_parquet(rows, tmp_path / "ok.pq")):
        scores = score_file(fitted, path)
        assert scores.shape == (len(rows),)
        assert np.isfinite(scores).all()


# ------------------------------------------------------------------ 1. missing column at scoring
@pytest.mark.parametrize("writer", [write_csv, write_parquet], ids=["csv", "parquet"])
def test_missing_column_at_scoring(fitted, rows, tmp_path, writer):
    path = writer(rows.drop(columns="y"), tmp_path / f"batch.{writer.__name__[6:]}")
    with pytest.raises(MissingColumnError) as ei:
        score_file(fitted, path)
    assert_names(ei.value, path, "y")
    assert "x" in str(ei.value.expected) and "'y'" in str(ei.value.expected)


def test_missing_column_in_memory_has_no_file(fitted, rows):
    with pytest.raises(MissingColumnError) as ei:
        fitted.decision_function(rows.drop(columns="color"))
    assert ei.value.column == "color"
    assert ei.value.file is None


# ------------------------------------------------------------------ 2. extra column at scoring
def test_extra_column_at_scoring(fitted, rows, tmp_path):
    path = write_csv(rows.assign(surprise=1.5), tmp_path / "extra.csv")
    with pytest.raises(ExtraColumnError) as ei:
        score_file(fitted, path)
    assert_names(ei.value, path, "surprise")
    assert "surprise" in str(ei.value.found)


# ------------------------------------------------------------------ 3. wrong dtype at scoring
def test_text_in_numeric_column_at_scoring(fitted, rows, tmp_path):
    bad = rows.astype({"x": object})
    bad.loc[bad.index[2], "x"] = "oops"
    path = write_csv(bad, tmp_path / "text_in_x.csv")
    assert not pd.api.types.is_numeric_dtype(genaug.read_table(path)["x"])
    with pytest.raises(DtypeError) as ei:
        score_file(fitted, path)
    assert_names(ei.value, path, "x")
    assert "oops" in str(ei.value.found)


def test_numbers_in_text_column_at_scoring(fitted, rows, tmp_path):
    path = write_parquet(rows.assign(color=np.arange(len(rows))), tmp_path / "int_color.parquet")
    with pytest.raises(DtypeError) as ei:
        score_file(fitted, path)
    assert_names(ei.value, path, "color")


def test_bool_in_numeric_column_at_scoring(fitted, rows):
    with pytest.raises(DtypeError) as ei:
        fitted.decision_function(rows.assign(y=rows["y"] > 10))
    assert_names(ei.value, None, "y")


# ------------------------------------------------------------------ 4. unseen category
def test_unseen_category_raises_by_default(fitted, rows, tmp_path):
    assert fitted.handle_unknown == "error"
    bad = rows.copy()
    bad.loc[bad.index[3], "color"] = "purple"
    path = write_csv(bad, tmp_path / "purple.csv")
    with pytest.raises(UnseenCategoryError) as ei:
        score_file(fitted, path)
    assert_names(ei.value, path, "color")
    assert "purple" in str(ei.value)
    assert "red" in str(ei.value.expected)


def test_unseen_category_kept_when_asked(fitted, rows, tmp_path):
    det = copy.deepcopy(fitted).set_params(handle_unknown="keep")
    bad = rows.copy()
    bad.loc[bad.index[3], "color"] = "purple"
    path = write_csv(bad, tmp_path / "purple.csv")
    scores = score_file(det, path)
    assert scores.shape == (len(rows),)
    assert np.isfinite(scores).all()
    # the shared detector is untouched
    with pytest.raises(UnseenCategoryError):
        score_file(fitted, path)


# ------------------------------------------------------------------ 5. all-NaN column at fit
@pytest.mark.parametrize(
    "empty", [np.nan, None, pd.NaT], ids=["float-nan", "object-none", "datetime-nat"]
)
def test_all_missing_column_at_fit(empty):
    df = make_frame().assign(blank=empty)
    with pytest.raises(AllMissingError) as ei:
        tiny().fit(df)
    assert_names(ei.value, None, "blank")
    assert f"{N_ROWS} missing of {N_ROWS}" in str(ei.value.found)


def test_all_missing_column_at_fit_from_file(tmp_path):
    path = tmp_path / "train.csv"
    frame = make_frame()
    frame.insert(1, "blank", "")
    path.write_text(frame.to_csv(index=False))
    df = genaug.read_table(path)
    with pytest.raises(AllMissingError) as ei:
        tiny().fit(df, file=str(path))
    assert_names(ei.value, path, "blank")


def test_all_missing_at_scoring_in_column_without_gaps(fitted, rows, tmp_path):
    path = write_parquet(rows.assign(y=np.nan), tmp_path / "no_y.parquet")
    with pytest.raises(AllMissingError) as ei:
        score_file(fitted, path)
    assert_names(ei.value, path, "y")


# ------------------------------------------------------------------ 6. inf at fit and scoring
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_inf_at_fit(value):
    df = make_frame()
    df.loc[17, "y"] = value
    with pytest.raises(NonFiniteError) as ei:
        tiny().fit(df)
    assert_names(ei.value, None, "y")
    assert "1 infinite" in str(ei.value.found)


def test_inf_at_fit_from_csv(tmp_path):
    frame = make_frame().astype({"x": object})
    frame.loc[5, "x"] = "inf"
    path = write_csv(frame, tmp_path / "train_inf.csv")
    df = genaug.read_table(path)
    with pytest.raises(NonFiniteError) as ei:
        tiny().fit(df, file=str(path))
    assert_names(ei.value, path, "x")


def test_column_of_only_inf_is_an_error_not_a_constant():
    # regression: the constant rule used to run first and drop this column with a warning
    df = make_frame().assign(ratio=np.inf)
    with pytest.raises(NonFiniteError) as ei:
        tiny().fit(df)
    assert_names(ei.value, None, "ratio")


def test_inf_at_scoring(fitted, rows, tmp_path):
    bad = rows.astype({"y": object})
    bad.loc[bad.index[0], "y"] = "-inf"
    path = write_csv(bad, tmp_path / "score_inf.csv")
    assert genaug.read_table(path)["y"].dtype == np.float64  # a real float -inf, not text
    with pytest.raises(NonFiniteError) as ei:
        score_file(fitted, path)
    assert_names(ei.value, path, "y")


def test_inf_at_scoring_in_memory(fitted, rows):
    bad = rows.copy()
    bad.loc[bad.index[1], "x"] = np.inf
    with pytest.raises(NonFiniteError) as ei:
        fitted.decision_function(bad)
    assert_names(ei.value, None, "x")


# ------------------------------------------------------------------ 7. empty input
@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet", "empty.tsv"])
def test_zero_byte_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(EmptyInputError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, None)
    assert "0 bytes" in str(ei.value.found)


def test_parquet_with_zero_rows(tmp_path):
    path = write_parquet(make_frame().iloc[:0], tmp_path / "zero_rows.parquet")
    assert pq.ParquetFile(path).metadata.num_rows == 0  # a valid Parquet file, just empty
    with pytest.raises(EmptyInputError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, None)


def test_parquet_with_zero_columns(tmp_path):
    path = write_parquet(pd.DataFrame(), tmp_path / "no_columns.parquet")
    with pytest.raises(EmptyInputError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, None)


@pytest.mark.parametrize("text", ["x,y,color\n", "x,y,color"], ids=["newline", "no-newline"])
def test_csv_with_header_only(tmp_path, text):
    path = tmp_path / "header_only.csv"
    path.write_text(text)
    with pytest.raises(EmptyInputError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, None)


def test_empty_frame_at_scoring(fitted, rows):
    with pytest.raises(EmptyInputError):
        fitted.decision_function(rows.iloc[:0], file="batch-0.parquet")


# ------------------------------------------------------------------ 8. corrupt Parquet
def _real_parquet_bytes(tmp_path: Path) -> bytes:
    src = write_parquet(make_frame(n=500), tmp_path / "src.parquet")
    return src.read_bytes()


@pytest.mark.parametrize("damage", ["random", "truncated", "tail-cut", "scrambled-middle"])
def test_corrupt_parquet(tmp_path, damage):
    good = _real_parquet_bytes(tmp_path)
    n = len(good)
    rng = np.random.default_rng(0)
    if damage == "random":
        data = rng.bytes(2048)
    elif damage == "truncated":
        data = good[: n // 2]
    elif damage == "tail-cut":
        data = good[:-3]
    else:  # magic bytes at both ends intact, data pages overwritten
        data = good[: n // 4] + rng.bytes(n // 2) + good[n // 4 + n // 2:]
        assert data[:4] == data[-4:] == b"PAR1"
    path = tmp_path / "broken.parquet"
    path.write_bytes(data)
    with pytest.raises(CorruptFileError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, None)


# ------------------------------------------------------------------ 9. malformed CSV
@pytest.mark.parametrize("sep", [";", "\t", "|"], ids=["semicolon", "tab", "pipe"])
def test_csv_with_wrong_delimiter(tmp_path, sep):
    path = tmp_path / "european.csv"
    make_frame(n=20).to_csv(path, sep=sep, index=False)
    with pytest.raises(CSVFormatError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, sep.join(["x", "y", "color"]))
    assert repr(sep) in str(ei.value.found)


def test_csv_without_header(tmp_path):
    path = tmp_path / "no_header.csv"
    make_frame(n=20).drop(columns="color").to_csv(path, header=False, index=False)
    with pytest.raises(CSVFormatError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, None)
    assert "header" in str(ei.value)


def test_csv_with_ragged_rows(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("x,y,color\n1.0,2.0,red\n3.0,4.0,blue,extra\n")
    with pytest.raises(CSVFormatError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, None)


# ------------------------------------------------------------------ 10. zero-variance column
def test_constant_column_error():
    df = make_frame().assign(k=5.0)
    with pytest.raises(ConstantColumnError) as ei:
        tiny(constant_columns="error").fit(df)
    assert_names(ei.value, None, "k")
    assert ei.value.found == "only 5.0"


def test_constant_column_error_from_file(tmp_path):
    path = write_parquet(make_frame().assign(site="berlin"), tmp_path / "train.parquet")
    with pytest.raises(ConstantColumnError) as ei:
        tiny(constant_columns="error").fit(genaug.read_table(path), file=str(path))
    assert_names(ei.value, path, "site")


def test_constant_column_dropped_by_default(rows):
    df = make_frame().assign(k=5.0)
    with pytest.warns(UserWarning, match="'k' is constant"):
        det = tiny().fit(df)
    assert det.constant_columns == "drop"
    assert "k" in det.schema_.dropped
    assert "k" not in det.schema_.feature_names
    assert det.schema_.feature_names == ["x", "y", "color"]
    # scoring works with or without the dropped column
    assert np.isfinite(det.decision_function(rows)).all()
    assert np.isfinite(det.decision_function(rows.assign(k=7.0))).all()


# ------------------------------------------------------------------ 11. duplicated column names
def test_duplicated_columns_in_csv(tmp_path):
    path = tmp_path / "dups.csv"
    path.write_text("x,y,x,color\n1.0,2.0,3.0,red\n4.0,5.0,6.0,blue\n")
    with pytest.raises(DuplicateColumnError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, "x")


def test_duplicated_columns_in_parquet(tmp_path):
    # regression: pq.read_table reported this as a corrupt file
    path = tmp_path / "dups.parquet"
    table = pa.table([pa.array([1.0, 2.0]), pa.array([3.0, 4.0])], names=["x", "x"])
    pq.write_table(table, path)
    with pytest.raises(DuplicateColumnError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, "x")


def test_duplicated_columns_in_frame(fitted, rows):
    bad = pd.concat([rows, rows[["y"]]], axis=1)
    with pytest.raises(DuplicateColumnError) as ei:
        fitted.decision_function(bad)
    assert_names(ei.value, None, "y")
    with pytest.raises(DuplicateColumnError):
        tiny().fit(pd.concat([make_frame(), make_frame()[["x"]]], axis=1))


# ------------------------------------------------------------------ 12. unsupported extension
@pytest.mark.parametrize("name", ["data.xlsx", "data.XLSX", "data.json", "data"])
def test_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(UnsupportedFormatError) as ei:
        genaug.read_table(path)
    assert_names(ei.value, path, None)
    assert (Path(name).suffix.lower() or "none") == ei.value.found
    assert ".parquet" in str(ei.value.expected)


def test_missing_file_is_not_an_input_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        genaug.read_table(tmp_path / "nope.parquet")


# ------------------------------------------------------------------ 13. ID-like column
def test_id_like_column_excluded_with_warning(rows):
    df = make_frame().assign(order_id=[f"ord-{i:05d}" for i in range(N_ROWS)])
    with pytest.warns(UserWarning, match="'order_id' looks like an ID"):
        det = tiny().fit(df)
    assert "order_id" in det.schema_.dropped
    assert "id-like" in det.schema_.dropped["order_id"]
    assert det.schema_.feature_names == ["x", "y", "color"]
    # new IDs at scoring are not "unseen categories": the column is not a model input
    scores = det.decision_function(rows.assign(order_id=[f"new-{i}" for i in range(len(rows))]))
    assert np.isfinite(scores).all()


def test_few_distinct_strings_are_not_id_like():
    from genaug.schema import infer_schema

    df = make_frame(n=40).assign(code=[f"c{i}" for i in range(40)])  # fewer than 50 rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schema = infer_schema(df)
    assert "code" in schema.feature_names
    assert schema.dropped == {}


# ------------------------------------------------------------------ 14. to_dict
def test_error_to_dict(fitted, rows, tmp_path):
    path = write_csv(rows.drop(columns="x"), tmp_path / "batch.csv")
    with pytest.raises(MissingColumnError) as ei:
        score_file(fitted, path)
    d = ei.value.to_dict()
    assert {"file", "column", "expected", "found", "error"} <= set(d)
    assert d["file"] == str(path)
    assert d["column"] == "x"
    assert d["error"] == "MissingColumnError"
    assert isinstance(d["expected"], str) and isinstance(d["found"], str)
    assert json.loads(json.dumps(d)) == d  # ready for a quarantine <file>.reason.json


def test_to_dict_without_file_or_column(tmp_path):
    err = GenaugInputError("something odd")
    d = err.to_dict()
    assert {"file", "column", "expected", "found", "error"} <= set(d)
    assert d["file"] is None and d["column"] is None
    assert d["expected"] is None and d["found"] is None
    assert d["error"] == "GenaugInputError"
    assert isinstance(err, GenaugError)


def test_with_file_names_the_file_once_known(tmp_path):
    err = UnseenCategoryError("1 level(s) never seen", column="color", expected="a", found="b")
    named = err.with_file(str(tmp_path / "late.csv"))
    assert type(named) is UnseenCategoryError
    assert_names(named, tmp_path / "late.csv", "color")
    assert named.to_dict()["file"] == str(tmp_path / "late.csv")
    assert named.with_file("other.csv") is named  # an error that names its file keeps it


def test_binary_bytes_under_a_csv_name_are_corrupt(tmp_path):
    import genaug
    from genaug.errors import CorruptFileError

    path = tmp_path / "noise.csv"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptFileError) as info:
        genaug.read_table(path)
    assert info.value.file == str(path)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,x\nJos\xe9,1\n".encode("latin-1"))
    with pytest.raises(CorruptFileError):
        genaug.read_table(latin)
