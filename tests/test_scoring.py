"""The fast scoring path gives the same answers as the plain one."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from genaug import AnomalyDetector
from genaug.forest import ArrayForest
from genaug.schema import level_codes
from genaug.scoring import score_file

from .conftest import mixed_frame


@pytest.fixture(scope="module")
def detector():
    df = mixed_frame(n=400, seed=31).drop(columns="is_anomaly")
    return AnomalyDetector(random_state=0, max_steps=40, n_members=2).fit(df)


def test_threaded_pipeline_equals_single_thread(tmp_path, detector):
    df = mixed_frame(n=900, seed=32).drop(columns="is_anomaly")
    df["id"] = np.arange(1000, 1900)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "x.parquet",
                   row_group_size=128)
    runs = {}
    for p in (0, 1, 3):
        res = score_file(tmp_path / "x.parquet", detector, tmp_path / f"s{p}.parquet",
                         key_column="id", batch_rows=100, sample_rows=250, prefetch=p)
        runs[p] = (pd.read_parquet(tmp_path / f"s{p}.parquet"), res)
    ref, ref_res = runs[0]
    assert ref["id"].tolist() == list(range(1000, 1900))
    np.testing.assert_allclose(ref["score"], detector.decision_function(df.drop(columns="id")),
                               rtol=1e-6)
    for p in (1, 3):
        out, res = runs[p]
        pd.testing.assert_frame_equal(out, ref)
        assert (res.n_rows, res.n_flagged) == (ref_res.n_rows, ref_res.n_flagged)
        pd.testing.assert_frame_equal(res.sample, ref_res.sample)
        assert res.drift.table() == ref_res.drift.table()


def test_error_in_a_late_batch_stops_the_threads_and_leaves_no_output(tmp_path, detector):
    import threading

    from genaug.errors import UnseenCategoryError

    df = mixed_frame(n=800, seed=33).drop(columns="is_anomaly")
    df.loc[700, "colour"] = "purple"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "x.parquet",
                   row_group_size=100)
    with pytest.raises(UnseenCategoryError, match="x.parquet"):
        score_file(tmp_path / "x.parquet", detector, tmp_path / "out" / "x.scores.parquet",
                   batch_rows=100)
    assert list((tmp_path / "out").iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("genaug-")]


def test_forest_kernels_agree():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 6))
    forest = ArrayForest.fit(X, n_estimators=30, random_state=2)
    Y = rng.normal(scale=3, size=(1100, 6)).astype(np.float32)
    ref = 2.0 ** (-forest._depths_numpy(Y, 128) / forest.denominator)
    np.testing.assert_allclose(forest.score(Y, n_threads=1), ref, rtol=1e-12)
    np.testing.assert_allclose(forest.score(Y), ref, rtol=1e-12)
    # values exactly on a float64 threshold's float32 neighbours keep sklearn's side
    t = forest.arrays["threshold"][forest.arrays["left"] >= 0][:50]
    f = forest.arrays["feature"][forest.arrays["left"] >= 0][:50]
    Z = np.zeros((150, 6), np.float32)
    for i, (ti, fi) in enumerate(zip(t, f)):
        t32 = np.float32(ti)
        Z[3 * i:3 * i + 3, fi] = [np.nextafter(t32, np.float32(-np.inf)), t32,
                                  np.nextafter(t32, np.float32(np.inf))]
    np.testing.assert_allclose(forest.score(Z, n_threads=1),
                               2.0 ** (-forest._depths_numpy(Z, 64) / forest.denominator),
                               rtol=1e-12)


def test_fused_forward_equals_module_forward(detector):
    X = torch.as_tensor(detector.encoder_.transform(
        detector._clean(mixed_frame(n=300, seed=34).drop(columns="is_anomaly"), None)).X)
    k = detector.dims_["n_members"]
    with torch.inference_mode():
        fast = detector.model_.forward_mean(X.expand(k, -1, -1))
        slow = detector.model_(X.expand(k, -1, -1))
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_level_codes_maps_unknown_and_missing():
    vals = np.array(["b", None, "a", "zz", "b", np.nan], dtype=object)
    codes = level_codes(vals, {"a": 0, "b": 1}, unknown=7, missing=9)
    assert codes.tolist() == [1, 9, 0, 7, 1, 9] and codes.dtype == np.int64


def test_batched_reading_keeps_arrow_memory_bounded(tmp_path):
    from genaug.io import iter_parquet_record_batches

    rng = np.random.default_rng(5)
    table = pa.table({f"x{j}": rng.normal(size=200_000) for j in range(10)})
    pq.write_table(table, tmp_path / "x.parquet", row_group_size=5000, compression="none")
    del table
    start = pa.total_allocated_bytes()
    peak = 0
    for batch in iter_parquet_record_batches(tmp_path / "x.parquet", batch_rows=5000):
        peak = max(peak, pa.total_allocated_bytes() - start)
        del batch
    # one row group is 400 kB; the file is 16 MB (pre-buffered reading held all of it)
    assert peak < 4_000_000
