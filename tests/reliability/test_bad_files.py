"""Bad files in the incoming folder: each kind is quarantined with its named error and a reason.

Every case is one real batch run (``score_incoming``) over a folder holding the bad file and a
good one: the bad file must land in ``quarantine`` with ``<name>.reason.json``, the good file must
be scored and moved to ``processed``, and ``out/`` must hold the good file's scores and nothing
else (no temp or partial file). Edge cases that are valid input are scored, not quarantined.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genaug.batch import score_incoming
from genaug.ledger import DONE, QUARANTINED, Ledger, file_digest

from .conftest import age, batch_folders, clean_frame, listing

BASE = clean_frame(40, seed=22)  # good rows each bad file is made from
GOOD = "good.parquet"


def _parquet(df: pd.DataFrame) -> Callable[[Path], None]:
    return lambda p: pq.write_table(pa.Table.from_pandas(df, preserve_index=False), p)


def _csv(df: pd.DataFrame, **kw) -> Callable[[Path], None]:
    return lambda p: df.to_csv(p, index=False, **kw)


def _raw(data: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data)


def _text_in_numeric() -> pd.DataFrame:
    df = BASE.copy()
    df["a"] = df["a"].astype(object)
    df.loc[3, "a"] = "n/a?"
    return df


def _with(col: str, row: int, value) -> pd.DataFrame:
    df = BASE.copy()
    df[col] = df[col].astype(object) if isinstance(value, str) else df[col]
    df.loc[row, col] = value
    return df


def _truncated_parquet(p: Path) -> None:
    _parquet(BASE)(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _mixed_encoding(late: bool) -> Callable[[Path], None]:
    """UTF-8 text with one latin-1 line, in the first 8 KiB (sniffed) or far after it."""
    head = pd.concat([BASE] * (60 if late else 1)).to_csv(index=False).encode()
    bad = "0.5,1.0,caf\u00e9,S,3\n".encode("latin-1")
    return _raw(head + bad + "0.5,1.0,caf\u00e9,S,3\n".encode())


def _duplicate_columns_parquet(p: Path) -> None:
    cols = [pa.array(BASE[c]) for c in BASE.columns] + [pa.array(BASE["a"])]
    pq.write_table(pa.table(cols, names=[*BASE.columns, "a"]), p)


def _nested(col: str, value) -> Callable[[Path], None]:
    return _parquet(BASE.assign(**{col: [value] * len(BASE)}))


HEADER = ",".join(BASE.columns)
# kind -> (file name, writer, expected error, expected column or None)
BAD: dict[str, tuple[str, Callable[[Path], None], str, str | None]] = {
    "missing column": ("missing_col.parquet", _parquet(BASE.drop(columns="colour")),
                       "MissingColumnError", "colour"),
    "extra column": ("extra_col.parquet", _parquet(BASE.assign(surprise=1.0)),
                     "ExtraColumnError", "surprise"),
    "text in a numeric column": ("text_in_numeric.csv", _csv(_text_in_numeric()),
                                 "DtypeError", "a"),
    "numbers in a text column": ("numbers_in_text.csv",
                                 _csv(BASE.assign(colour=np.arange(len(BASE)))),
                                 "DtypeError", "colour"),
    "booleans in a numeric column": ("bool_in_numeric.parquet", _parquet(BASE.assign(a=True)),
                                     "DtypeError", "a"),
    "timestamps in a numeric column": ("dates_in_numeric.parquet",
                                       _parquet(BASE.assign(a=pd.Timestamp("2024-05-01"))),
                                       "DtypeError", "a"),
    "+inf": ("plus_inf.parquet", _parquet(_with("b", 5, np.inf)), "NonFiniteError", "b"),
    "-inf in CSV text": ("minus_inf.csv", _csv(_with("a", 7, "-inf")), "NonFiniteError", "a"),
    "beyond float range in CSV (1e400)": ("huge_number.csv", _csv(_with("a", 2, "1e400")),
                                          "NonFiniteError", "a"),
    "column of all NULLs": ("all_null.parquet", _parquet(BASE.assign(a=None)),
                            "AllMissingError", "a"),
    "unseen category": ("unseen_level.parquet", _parquet(_with("size", 1, "XXL")),
                        "UnseenCategoryError", "size"),
    "20 000 new categories": ("many_levels.parquet",
                              _parquet(pd.concat([BASE] * 500, ignore_index=True).assign(
                                  colour=[f"c{i}" for i in range(20_000)])),
                              "UnseenCategoryError", "colour"),
    "zero-byte CSV": ("zero.csv", _raw(b""), "EmptyInputError", None),
    "zero-byte Parquet": ("zero.parquet", _raw(b""), "EmptyInputError", None),
    "header-only CSV": ("header_only.csv", _raw(f"{HEADER}\n".encode()), "EmptyInputError",
                        None),
    "Parquet with zero rows": ("zero_rows.parquet", _parquet(BASE.head(0)), "EmptyInputError",
                               None),
    "truncated Parquet": ("truncated.parquet", _truncated_parquet, "CorruptFileError", None),
    "CSV bytes under a .parquet name": ("not_parquet.parquet", _csv(BASE), "CorruptFileError",
                                        None),
    "latin-1 line in UTF-8 CSV (early)": ("latin1_early.csv", _mixed_encoding(late=False),
                                          "CorruptFileError", None),
    "latin-1 line in UTF-8 CSV (after 8 KiB)": ("latin1_late.csv", _mixed_encoding(late=True),
                                                "CorruptFileError", "colour"),
    "binary bytes under a .csv name": ("binary.csv", _raw(b"PK\x03\x04" + bytes(range(256)) * 8),
                                       "CorruptFileError", None),
    "UTF-16 CSV": ("utf16.csv", _raw(BASE.to_csv(index=False).encode("utf-16")),
                   "CorruptFileError", None),
    "duplicated column names (CSV)": ("dup_cols.csv",
                                      _raw(f"{HEADER},a\n0.1,0.2,red,S,3,0.4\n".encode()),
                                      "DuplicateColumnError", "a"),
    "duplicated column names (Parquet)": ("dup_cols.parquet", _duplicate_columns_parquet,
                                          "DuplicateColumnError", "a"),
    "ragged rows": ("ragged.csv", _raw(f"{HEADER}\n0.1,0.2,red,S,3\n0.1,0.2,red\n".encode()),
                    "CSVFormatError", None),
    "wrong delimiter": ("semicolons.csv", _csv(BASE, sep=";"), "CSVFormatError", HEADER.replace(
        ",", ";")),
    "missing header": ("no_header.csv", _csv(BASE[["a", "b"]], header=False), "CSVFormatError",
                       None),
    "JSON under a .csv name": ("records.csv",
                               _raw(BASE.to_json(orient="records", indent=2).encode()),
                               "CSVFormatError", None),
    "one line, no line break": ("lone_line.csv", _raw(HEADER.encode()), "EmptyInputError", None),
    "list column (numeric)": ("list_numeric.parquet", _nested("a", [1.0, 2.0]), "DtypeError",
                              "a"),
    "list column (categorical)": ("list_text.parquet", _nested("colour", ["red"]), "DtypeError",
                                  "colour"),
    "struct column": ("struct.parquet", _nested("b", {"x": 1.0}), "DtypeError", "b"),
}


def _run(root: Path, detector, files: dict[str, Callable[[Path], None]], **kw):
    d = batch_folders(root)
    for name, write in files.items():
        write(d["incoming"] / name)
        age(d["incoming"] / name)
    ledger = Ledger(root / "ledger.sqlite")
    res = score_incoming(d["incoming"], detector, out=d["out"], processed=d["processed"],
                         quarantine=d["quarantine"], ledger=ledger, **kw)
    return d, ledger, res


def test_at_least_twenty_kinds():
    assert len(BAD) >= 20
    assert len({name for name, *_ in BAD.values()}) == len(BAD)


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_file_is_quarantined_and_the_good_one_scored(kind, tmp_path, strict_detector):
    name, write, error, column = BAD[kind]
    d, ledger, res = _run(tmp_path, strict_detector, {name: write, GOOD: _parquet(BASE)})
    assert res.quarantined == [name] and res.scored == [GOOD] and not res.failed
    assert listing(d["incoming"]) == []
    assert listing(d["quarantine"]) == sorted([name, f"{name}.reason.json"])
    reason = json.loads((d["quarantine"] / f"{name}.reason.json").read_text())
    assert set(reason) >= {"file", "column", "expected", "found", "error"}
    assert reason["error"] == error, reason
    assert reason["file"] == str(d["incoming"] / name)
    assert reason["column"] == column
    assert reason["expected"] and reason["found"]
    assert len(reason["found"]) <= 300  # a bounded summary, not every bad value
    assert ledger.status(file_digest(d["quarantine"] / name)) == QUARANTINED
    # the good file: scored, moved, recorded; out/ holds its scores and nothing else
    assert listing(d["processed"]) == [GOOD]
    assert listing(d["out"]) == ["good.scores.parquet"]
    assert len(pd.read_parquet(d["out"] / "good.scores.parquet")) == len(BASE)
    assert ledger.status(file_digest(d["processed"] / GOOD)) == DONE


def _some_nan(col: str) -> pd.DataFrame:
    df = BASE.copy()
    df.loc[::4, col] = np.nan
    return df


# valid input that looks unusual: scored, never quarantined
EDGE: dict[str, tuple[str, Callable[[Path], None], int]] = {
    "one-row CSV": ("one_row.csv", _csv(BASE.head(1)), 1),
    "one-row Parquet": ("one_row.parquet", _parquet(BASE.head(1)), 1),
    "NaN in a column that had none in training": ("some_nan.parquet", _parquet(_some_nan("a")),
                                                  len(BASE)),
    "columns in another order": ("reordered.parquet", _parquet(BASE[BASE.columns[::-1]]),
                                 len(BASE)),
    "UTF-8 byte-order mark and CRLF line ends": (
        "bom_crlf.csv",
        _raw(b"\xef\xbb\xbf" + BASE.to_csv(index=False).replace("\n", "\r\n").encode()),
        len(BASE)),
    "pandas category dtype, integer levels as floats": (
        "category.parquet",
        _parquet(BASE.assign(colour=BASE["colour"].astype("category"),
                             count=BASE["count"].astype(float))),
        len(BASE)),
}


@pytest.mark.parametrize("kind", list(EDGE))
def test_unusual_but_valid_file_is_scored(kind, tmp_path, strict_detector):
    name, write, n_rows = EDGE[kind]
    d, _, res = _run(tmp_path, strict_detector, {name: write})
    assert res.scored == [name] and not res.quarantined, res.summary()
    stem = name.rsplit(".", 1)[0]
    scores = pd.read_parquet(d["out"] / f"{stem}.scores.parquet")
    assert len(scores) == n_rows and np.isfinite(scores["score"]).all()
    assert listing(d["processed"]) == [name] and listing(d["quarantine"]) == []


def test_unsupported_and_hidden_files_are_not_picked_up(tmp_path, strict_detector):
    others = {"notes.json": _raw(b'{"a": 1}'), "book.xlsx": _raw(b"PK\x03\x04 not read"),
              "README": _raw(b"hello"), ".hidden.csv": _csv(BASE),
              ".good.parquet.x1y2.tmp": _parquet(BASE)}
    d, _, res = _run(tmp_path, strict_detector, {**others, GOOD: _parquet(BASE)}, min_age=0)
    assert res.scored == [GOOD] and not res.quarantined and not res.skipped
    assert listing(d["incoming"]) == sorted(others)  # left alone, byte for byte
    assert listing(d["quarantine"]) == [] and listing(d["out"]) == ["good.scores.parquet"]


def test_file_still_being_written_is_skipped_then_scored(tmp_path, strict_detector):
    d = batch_folders(tmp_path)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    part = d["incoming"] / "arriving.csv"
    text = BASE.to_csv(index=False)

    def run():
        return score_incoming(d["incoming"], strict_detector, out=d["out"],
                              processed=d["processed"], quarantine=d["quarantine"],
                              ledger=ledger, min_age=30)

    part.write_text(text[: len(text) // 3])  # a writer is mid-way: cut inside a row
    assert run().skipped == ["arriving.csv"]
    with open(part, "a") as fh:  # it grows and its mtime moves: still skipped
        fh.write(text[len(text) // 3: 2 * len(text) // 3])
    res = run()
    assert res.skipped == ["arriving.csv"] and not res.quarantined
    assert listing(d["incoming"]) == ["arriving.csv"] and listing(d["quarantine"]) == []
    assert listing(d["out"]) == []
    with open(part, "a") as fh:
        fh.write(text[2 * len(text) // 3:])
    age(part)  # the writer is done and the file has settled
    res = run()
    assert res.scored == ["arriving.csv"] and not res.skipped
    assert len(pd.read_parquet(d["out"] / "arriving.scores.parquet")) == len(BASE)
    assert listing(d["processed"]) == ["arriving.csv"]
