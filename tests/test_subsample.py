"""max_train_rows: a bounded, seeded, uniform random sample of a file too large for memory."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genaug import AnomalyDetector
from genaug.subsample import read_training_table, sample_parquet

from .conftest import mixed_frame


@pytest.fixture
def big(tmp_path):
    """3,000 rows in row groups of 250, with their row number in ``rid``."""
    df = mixed_frame(n=3000, seed=21).drop(columns="is_anomaly")
    df["rid"] = np.arange(len(df))
    path = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=250)
    return path, df


def test_sample_has_exactly_n_distinct_rows_of_the_file_in_file_order(big):
    path, df = big
    s = sample_parquet(path, 400, random_state=3, batch_rows=128)
    assert len(s) == 400 and s["rid"].is_unique and s["rid"].is_monotonic_increasing
    expected = df.set_index("rid").loc[s["rid"]].reset_index()[list(df.columns)]
    pd.testing.assert_frame_equal(s[list(df.columns)], expected, check_dtype=False)


def test_sample_is_deterministic_given_the_seed_whatever_the_batch_size(big):
    path, _ = big
    a = sample_parquet(path, 400, random_state=3, batch_rows=128)["rid"].tolist()
    b = sample_parquet(path, 400, random_state=3, batch_rows=1000)["rid"].tolist()
    c = sample_parquet(path, 400, random_state=4, batch_rows=128)["rid"].tolist()
    assert a == b
    assert a != c


def test_sample_is_uniform_over_the_file(big):
    path, _ = big
    rid = sample_parquet(path, 1500, random_state=0, batch_rows=100)["rid"].to_numpy()
    # every tenth of the file holds about a tenth of the sample (a front-loaded or
    # last-batch-biased sampler puts far more or far fewer rows in the first or last tenth)
    counts = np.bincount(rid // 300, minlength=10)
    assert counts.min() > 110 and counts.max() < 190


def test_csv_sample_matches_parquet_sample(big, tmp_path):
    path, df = big
    df.to_csv(tmp_path / "big.csv", index=False)
    a, total_a = read_training_table(path, 300, random_state=5)
    b, total_b = read_training_table(tmp_path / "big.csv", 300, random_state=5)
    assert total_a == total_b == 3000
    assert a["rid"].tolist() == b["rid"].tolist()


def test_small_file_is_taken_whole(big):
    path, _ = big
    df, total = read_training_table(path, 10_000, random_state=0)
    assert len(df) == total == 3000
    whole, none = read_training_table(path, None)
    assert none is None and len(whole) == 3000


def test_detector_trained_on_exactly_max_train_rows(big):
    path, _ = big
    df, total = read_training_table(path, 500, random_state=1)
    det = AnomalyDetector(random_state=0, max_steps=20, n_members=1,
                          exclude_columns=("rid",)).fit(df)
    assert total == 3000 and det.encoder_.n_train_ == 500 and len(det.decision_scores_) == 500


def test_bad_sample_size_is_refused(big):
    path, _ = big
    with pytest.raises(ValueError, match="at least 1"):
        read_training_table(path, 0)
