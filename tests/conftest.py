"""Shared fixtures: isolated Prefect home and MLflow stores, small generated tables."""

import os
import shutil
import tempfile

_TMP = tempfile.mkdtemp(prefix="genaug-tests-")
os.environ["PREFECT_HOME"] = os.path.join(_TMP, "prefect")  # before prefect is imported
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402


def mixed_frame(n: int = 400, seed: int = 0, n_anomalies: int = 0) -> pd.DataFrame:
    """A mixed table: correlated numerics, categoricals tied to them, some NaNs.

    The last ``n_anomalies`` rows break the correlations (label column ``is_anomaly``).
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, n)
    b = 2 * a + rng.normal(0, 0.3, n)
    colour = np.where(a > 0, "red", "blue").astype(object)
    size = rng.choice(["S", "M", "L"], size=n, p=[0.5, 0.3, 0.2]).astype(object)
    count = rng.poisson(3, n)
    df = pd.DataFrame({"a": a, "b": b, "colour": colour, "size": size, "count": count})
    df.loc[rng.choice(n, n // 20, replace=False), "b"] = np.nan
    df.loc[rng.choice(n, n // 25, replace=False), "size"] = None
    labels = np.zeros(n, dtype=int)
    if n_anomalies:
        idx = np.arange(n - n_anomalies, n)
        df.loc[idx, "b"] = -2 * df.loc[idx, "a"] + rng.normal(0, 0.3, n_anomalies)
        df.loc[idx, "colour"] = np.where(df.loc[idx, "a"] > 0, "blue", "red")
        labels[idx] = 1
    df["is_anomaly"] = labels
    return df


@pytest.fixture
def mixed() -> pd.DataFrame:
    """400 clean rows of :func:`mixed_frame` (without the label column)."""
    return mixed_frame().drop(columns="is_anomaly")


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory):
    """A migrated, empty MLflow SQLite DB (migrations take ~7 s: do them once)."""
    import mlflow

    d = tmp_path_factory.mktemp("mlflow-template")
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{d / 'mlflow.db'}").search_experiments()
    return d / "mlflow.db"


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch, mlflow_template_db):
    """A real MLflow store in a temp folder, used through MLFLOW_TRACKING_URI."""
    shutil.copy(mlflow_template_db, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def prefect_api():
    """A temporary Prefect API (SQLite + ephemeral server) for flow-level tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
