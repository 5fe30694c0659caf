"""Flow ``train-detector``: read a table, fit the VAE detector, log and register it in MLflow."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from genaug import AnomalyDetector, read_table
from genaug.errors import DtypeError, MissingColumnError
from pipelines._retry import retry_unless_bad_input


def check_labels(df: Any, column: str, file: str) -> Any:
    """The 0/1 anomaly labels in ``column``, or a named error."""
    if column not in df.columns:
        raise MissingColumnError("label column absent", file=file, column=column,
                                 expected=f"a column named {column!r}",
                                 found=f"columns {list(df.columns)}")
    values = df[column]
    if values.isna().any() or not set(values.unique()) <= {0, 1}:
        raise DtypeError("labels must be 0 (normal) or 1 (anomaly)", file=file, column=column,
                         expected="0/1 without missing values",
                         found=f"values {sorted(map(str, values.unique()))[:5]}")
    return values.astype(int).to_numpy()


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def fit_detector(
    data: str, params: dict[str, Any], model_dir: str, label_column: str | None = None
) -> dict[str, Any]:
    """Read and validate ``data``, fit a detector, save it to ``model_dir``."""
    from genaug import tracking

    logger = get_run_logger()
    tracking.check_store()  # fail (and retry) before a long fit whose result could not be logged
    df = read_table(data)
    if label_column:
        check_labels(df, label_column, data)
    t0 = time.perf_counter()
    det = AnomalyDetector(**params).fit(df, file=data)
    seconds = time.perf_counter() - t0
    det.save(model_dir)
    logger.info("fitted on %d rows x %d columns in %.1f s; threshold %.4g (flag rate %.2f%%)",
                len(df), det.n_features_in_, seconds, det.threshold_, 100 * det.flag_rate_)
    return {"model_dir": model_dir, "fit_seconds": seconds, "n_rows": len(df)}


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def log_and_register(
    data: str, model_dir: str, fit_seconds: float, model_name: str,
    label_column: str | None, min_val_auc: float,
) -> dict[str, Any]:
    """Log the fitted detector to MLflow and register it; move ``champion`` if it passes."""
    from genaug import tracking

    tracking.check_store()  # MLflow itself would wait ~20 s per call on a locked SQLite store
    df = read_table(data)
    det = AnomalyDetector.load(model_dir)
    labels = None
    if label_column:
        labels = check_labels(df, label_column, data)
    rec = tracking.log_detector_training(
        det, df, dataset_name=Path(data).stem, source=str(Path(data).resolve()),
        register_as=model_name, labels=labels, min_val_auc=min_val_auc, fit_seconds=fit_seconds,
    )
    return rec.__dict__


@flow(name="train-detector", log_prints=True)
def train_detector(
    data: str = "data/sample/adult_train.parquet",
    model_name: str = "genaug-detector",
    target: str | None = "income",
    label_column: str | None = None,
    min_val_auc: float = 0.6,
    random_state: int = 0,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a detector on ``data`` and register it as ``model_name`` in MLflow.

    ``target`` is left out of the features; ``label_column`` (1 = anomaly), if given, is left
    out too and used for the registry's ROC-AUC gate.
    """
    p = {"random_state": random_state, "target": target, "verbose": True, **(params or {})}
    if label_column:
        p["exclude_columns"] = (label_column,)
    with tempfile.TemporaryDirectory(prefix="genaug-model-") as tmp:
        fitted = fit_detector(data, p, str(Path(tmp) / "detector"), label_column)
        rec = log_and_register(data, fitted["model_dir"], fitted["fit_seconds"], model_name,
                               label_column, min_val_auc)
    create_markdown_artifact(
        key="detector-training",
        markdown=(f"### Detector trained on `{data}`\n\n| item | value |\n|---|---|\n"
                  f"| rows | {fitted['n_rows']} |\n| fit seconds | {fitted['fit_seconds']:.1f} |\n"
                  f"| registered | {rec['registered_name']} v{rec['version']} |\n"
                  f"| gate | {rec['gate']} |\n| champion | {rec['promoted']} |\n"
                  f"| MLflow run | {rec['url']} |\n"),
    )
    return rec


if __name__ == "__main__":
    train_detector()
